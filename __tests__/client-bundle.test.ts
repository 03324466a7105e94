// `queuehub/client` in a browser: bundled by esbuild for the browser from the package's own
// `exports` (the compiled build), with no Node built-in and none of the hub's dependencies in
// it; then run in a real Chromium against a live hub: subscribe, publish, receive, ack.
import { builtinModules } from "node:module";
import { build, type Plugin } from "esbuild";
import { type Browser, chromium } from "playwright-core";
import { startHub, type TestContext } from "./support/hub.js";
import { hubOnlyDependencies, ROOT } from "./support/process.js";

/** Globals Node has and browsers do not: each free reference in the bundle becomes a marker. */
const NODE_GLOBALS = [
  "process",
  "Buffer",
  "global",
  "setImmediate",
  "clearImmediate",
  "require",
  "__dirname",
];
const MARKER = "__node_only_global__";

interface Bundle {
  code: string;
  /** Files that went into the bundle, relative to the repository root. */
  inputs: string[];
  /** Node built-ins some module imports: "events (from node_modules/x/index.js)". */
  builtins: string[];
}

/** Bundles the client; with `markNodeGlobals`, free references to NODE_GLOBALS become markers. */
async function bundleClient(markNodeGlobals: boolean): Promise<Bundle> {
  const builtins: string[] = [];
  const isBuiltin = (spec: string) =>
    spec.startsWith("node:") || builtinModules.some((m) => spec === m || spec.startsWith(`${m}/`));
  // esbuild would bundle an npm polyfill of the same name (events, buffer) without a word.
  const refuseBuiltins: Plugin = {
    name: "refuse-node-builtins",
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => {
        if (!isBuiltin(args.path)) return undefined;
        builtins.push(`${args.path} (from ${args.importer})`);
        return { path: args.path, external: true };
      });
    },
  };
  const result = await build({
    stdin: {
      contents: 'import { HubClient } from "queuehub/client";\nglobalThis.queuehub = { HubClient };\n',
      resolveDir: ROOT,
      sourcefile: "entry.js",
    },
    bundle: true,
    platform: "browser",
    format: "esm",
    write: false,
    metafile: true,
    logLevel: "silent",
    plugins: [refuseBuiltins],
    define: markNodeGlobals ? Object.fromEntries(NODE_GLOBALS.map((name) => [name, `${MARKER}${name}`])) : {},
  });
  const code = result.outputFiles[0]?.text ?? "";
  return { code, inputs: Object.keys(result.metafile.inputs), builtins };
}

let bundle: Bundle;
beforeAll(async () => {
  bundle = await bundleClient(false);
});

test("the browser bundle of queuehub/client needs no Node built-in and no Node-only global", async () => {
  expect(bundle.builtins).toEqual([]);
  const marked = await bundleClient(true);
  const nodeGlobals = [...marked.code.matchAll(new RegExp(`${MARKER}(\\w+)`, "g"))].map((m) => m[1]);
  expect([...new Set(nodeGlobals)]).toEqual([]);
});

test("the browser bundle holds the client library and socket.io-client, nothing of the hub", () => {
  const hubOnly = hubOnlyDependencies();
  expect(hubOnly).toContain("better-sqlite3");
  const packageOf = (input: string) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1];
  const packages = new Set(bundle.inputs.flatMap((input) => packageOf(input) ?? []));
  expect(packages.has("socket.io-client")).toBe(true);
  expect(hubOnly.filter((name) => packages.has(name))).toEqual([]);
  const own = bundle.inputs.filter((input) => !input.includes("node_modules/") && input !== "entry.js");
  expect(own).toContain("dist/clients/hub-client.js");
  // The client shares the contract's types only; a hub module in here means it imports the hub.
  expect(own.filter((file) => !file.startsWith("dist/clients/") && file !== "dist/protocol.js")).toEqual([]);
});

describe("in Chromium", () => {
  let ctx: TestContext;
  let browser: Browser;
  beforeAll(async () => {
    ctx = await startHub();
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
      timeout: 60_000,
    });
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await ctx?.close();
  });

  test("the bundled client subscribes, publishes, receives and acks", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(err.message));
    // The hub's own origin: the page talks to it as a page the hub serves would.
    await page.goto(`${ctx.url}/healthz`);
    await page.addScriptTag({ type: "module", content: bundle.code });
    await page.waitForFunction(() => "queuehub" in globalThis, null, { timeout: 10_000 });

    const received = await page.evaluate(async (url) => {
      type Client = {
        connect(): Promise<void>;
        subscribe(event: string, handler: (payload: unknown) => unknown): Promise<void>;
        publish(event: string, payload: unknown): Promise<string>;
        on(what: "error", fn: (err: Error) => void): void;
      };
      const { HubClient } = (globalThis as unknown as { queuehub: { HubClient: new (o: object) => Client } })
        .queuehub;
      const failures: string[] = [];
      const vendor = new HubClient({ url, namespace: "/caps", clientId: "browser-vendor" });
      vendor.on("error", (err) => failures.push(err.message));
      await vendor.connect();
      const got = new Promise<unknown>((resolve) => {
        void vendor.subscribe("delivered", resolve);
      });
      const driver = new HubClient({ url, namespace: "/caps", clientId: "browser-driver" });
      await driver.connect();
      await driver.publish("delivered", { orderId: "o-1" });
      return { payload: await got, failures };
    }, ctx.url);
    expect(received).toEqual({ payload: { orderId: "o-1" }, failures: [] });

    // The handler resolved: the client acks it (batched on a timer), so nothing stays pending.
    let pending = -1;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
      pending = await ctx.hub.store.pending("/caps", "browser-vendor", Date.now());
      if (pending === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect({ pending, errors }).toEqual({ pending: 0, errors: [] });
    await page.close();
  }, 60_000);
});
