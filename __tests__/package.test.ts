// The package as users install it: its entry points resolved through package.json `exports`
// (the compiled build), what `npm pack` ships, and the bins. The full install of the packed
// tarball into a fresh project is scripts/pack-check.mjs, run by CI after the tests.
import { execFile } from "node:child_process";
import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { hubOnlyDependencies, ROOT } from "./support/process.js";

const run = promisify(execFile);

interface PackageJson {
  dependencies: Record<string, string>;
  exports: Record<string, { types: string; default: string } | string>;
  bin: Record<string, string>;
}
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as PackageJson;

const childEnv = () => {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the children
  return env;
};

/** Runs an ES module snippet in a fresh node in the repository root (where `queuehub` resolves to itself). */
async function node(code: string): Promise<string> {
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", code], {
    cwd: ROOT,
    env: childEnv(),
    timeout: 30_000,
  });
  return stdout;
}

test("`queuehub` gives the hub, its settings, the stores and the wire types", async () => {
  const names = JSON.parse(await node('console.log(JSON.stringify(Object.keys(await import("queuehub"))))'));
  expect(names).toEqual(
    expect.arrayContaining([
      "createHub",
      "parseConfig",
      "defaultConfig",
      "ConfigError",
      "openStore",
      "MemoryStore",
      "SqliteStore",
      "RedisStore",
      "StoreError",
      "ERROR_CODES",
    ]),
  );
  for (const entry of Object.values(pkg.exports)) {
    if (typeof entry === "string") continue;
    expect(() => accessSync(join(ROOT, entry.types))).not.toThrow();
    expect(() => accessSync(join(ROOT, entry.default))).not.toThrow();
  }
}, 60_000);

test("`queuehub/client` loads socket.io-client and none of the hub's dependencies", async () => {
  const dir = mkdtempSync(join(tmpdir(), "queuehub-client-"));
  try {
    const log = join(dir, "resolved.txt");
    // A loader hook writes down every module the import resolves; require.cache adds what
    // CommonJS modules require in turn.
    const hooks = `import { appendFileSync } from "node:fs";
      let log;
      export function initialize(data) { log = data.log; }
      export async function resolve(specifier, context, next) {
        const result = await next(specifier, context);
        appendFileSync(log, result.url + "\\n");
        return result;
      }`;
    const stdout = await node(`
      import { register, createRequire } from "node:module";
      register("data:text/javascript," + encodeURIComponent(${JSON.stringify(hooks)}), { data: { log: ${JSON.stringify(log)} } });
      const client = await import("queuehub/client");
      const cjs = Object.keys(createRequire(import.meta.url).cache);
      console.log(JSON.stringify({ exports: Object.keys(client), cjs }));
    `);
    const { exports, cjs } = JSON.parse(stdout) as { exports: string[]; cjs: string[] };
    expect(exports).toEqual(expect.arrayContaining(["HubClient", "HubError"]));
    const files = [
      ...readFileSync(log, "utf8")
        .split("\n")
        .filter((url) => url.startsWith("file:"))
        .map((url) => new URL(url).pathname),
      ...cjs,
    ].map((file) => (file.startsWith(ROOT) ? file.slice(ROOT.length) : file));

    const packageOf = (file: string) =>
      /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(file)?.[1];
    const loaded = new Set(files.flatMap((file) => packageOf(file) ?? []));
    expect(loaded.has("socket.io-client")).toBe(true);
    const hubOnly = hubOnlyDependencies();
    expect(hubOnly).toContain("better-sqlite3");
    expect(hubOnly.filter((name) => loaded.has(name))).toEqual([]);
    const own = files.filter((file) => file.startsWith("dist/"));
    expect(own).toContain("dist/clients/hub-client.js");
    expect(own.filter((file) => !file.startsWith("dist/clients/") && file !== "dist/protocol.js")).toEqual(
      [],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test("npm pack ships the build, README, LICENSE and the static assets, nothing else", async () => {
  // --ignore-scripts: globalSetup built dist/ already, and npm's script banners would precede the JSON.
  const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: ROOT,
    env: childEnv(),
    timeout: 60_000,
  });
  const [{ files }] = JSON.parse(stdout) as [{ files: { path: string }[] }];
  const paths = files.map((f) => f.path);
  const shipped =
    /^(package\.json|README\.md|LICENSE|dist\/.+\.(js|js\.map|d\.ts|lua)|public\/.+|examples\/.+)$/;
  expect(paths.filter((path) => !shipped.test(path))).toEqual([]);
  expect(paths.filter((path) => /\.ts$/.test(path) && !path.endsWith(".d.ts"))).toEqual([]);
  expect(paths).toEqual(
    expect.arrayContaining([
      "LICENSE",
      "README.md",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/clients/hub-client.js",
      "dist/clients/hub-client.d.ts",
      ...Object.values(pkg.bin),
    ]),
  );
  const lua = readdirLua(join(ROOT, "src")).map((file) => `dist/${file}`);
  expect(paths).toEqual(expect.arrayContaining(lua));
}, 60_000);

test("the build removes outputs whose source is gone and copies the .lua files beside the JavaScript", async () => {
  const stale = ["stale-source-gone.js", "stale-source-gone.d.ts", "clients/stale.js.map", "stray.txt"];
  for (const file of stale) writeFileSync(join(ROOT, "dist", file), "");
  await run(process.execPath, ["scripts/build.mjs"], { cwd: ROOT, env: childEnv(), timeout: 60_000 });
  expect(stale.filter((file) => existsSync(join(ROOT, "dist", file)))).toEqual([]);
  for (const file of readdirLua(join(ROOT, "src"))) {
    expect(readFileSync(join(ROOT, "dist", file), "utf8")).toBe(
      readFileSync(join(ROOT, "src", file), "utf8"),
    );
  }
  expect(existsSync(join(ROOT, "dist/index.js"))).toBe(true);
}, 60_000);

test("each bin starts with a shebang, is executable and answers --help", async () => {
  expect(Object.keys(pkg.bin).sort()).toEqual([
    "queuehub",
    "queuehub-dead-letters",
    "queuehub-driver",
    "queuehub-token",
    "queuehub-vendor",
  ]);
  for (const [name, target] of Object.entries(pkg.bin)) {
    const file = join(ROOT, target);
    expect(readFileSync(file, "utf8").split("\n")[0]).toBe("#!/usr/bin/env node");
    accessSync(file, constants.X_OK);
    // Run as the shell runs a bin: the file itself, through its shebang.
    const { stdout } = await run(file, ["--help"], { cwd: ROOT, env: childEnv(), timeout: 30_000 });
    expect(stdout).toMatch(new RegExp(`Usage: ${name} `));
  }
}, 60_000);

function readdirLua(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, encoding: "utf8" }) as string[]).filter((f) =>
    f.endsWith(".lua"),
  );
}
