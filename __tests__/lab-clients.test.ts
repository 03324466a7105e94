// The CAPS lab's key test, with lab-style client programs (fixtures/lab/, plain JavaScript as
// students write it), each run as a real child process against a live hub, one convention at a time:
// orders flow vendor → driver → in-transit/delivered → thank-you; stop the vendor, the driver
// delivers more, start it again: it thanks for each missed delivery exactly once, and after another
// restart nothing repeats. A second store gets none of the first store's deliveries.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { settle, startHub, type TestContext, waitUntil } from "./support/hub.js";
import { ROOT } from "./support/process.js";

const FIXTURES = join(ROOT, "__tests__/fixtures/lab");
/** Running lab programs, and their exits. */
const live = new Map<ChildProcess, Promise<void>>();

/** Stops every lab program still running and waits for it to exit. */
async function stopAll() {
  for (const child of live.keys()) child.kill("SIGKILL");
  await Promise.all(live.values());
}

/** A lab program's run: its stdout lines as they come. */
interface LabProgram {
  lines: string[];
  stop(): Promise<void>;
}

function run(file: string, env: Record<string, string>): LabProgram {
  const child = spawn(process.execPath, [join(FIXTURES, file)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });

  const lines: string[] = [];
  let partial = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    lines.push(...parts);
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  // "close": the process exited and its output pipes are closed.
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve())).then(() => {
    live.delete(child);
    if (stderr) console.error(`${file}: ${stderr}`);
  });
  live.set(child, exited);
  return {
    lines,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

afterAll(stopAll);

/** The order ids in lines of one kind (`VENDOR acme-widgets: Thank you for delivering <id>`). */
const ids = (lines: string[], prefix: string) =>
  lines.filter((line) => line.startsWith(prefix)).map((line) => line.slice(prefix.length));

interface Convention {
  folder: string;
  /** Places an order for a store while its vendor is stopped, as this convention's users do. */
  order(ctx: TestContext, store: string, id: string, api: LabProgram | null): Promise<void>;
  /** Runs the convention's API server too. */
  api: boolean;
}

/** An order over the lab's API server (POST /pickup). */
async function orderThroughApi(api: LabProgram, order: Record<string, string>) {
  await waitUntil(() => api.lines.some((line) => line.startsWith("API: listening on ")));
  const port = api.lines
    .find((line) => line.startsWith("API: listening on "))
    ?.split(" ")
    .at(-1);
  const res = await fetch(`http://127.0.0.1:${port}/pickup`, { method: "POST", body: JSON.stringify(order) });
  expect(res.status).toBe(201);
}

/** An order over the hub's own HTTP publish (an open hub: from null). */
async function orderOverHttp(ctx: TestContext, order: Record<string, string>) {
  const res = await fetch(`${ctx.url}/publish/caps/pickup`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(order),
  });
  expect(res.status).toBe(200);
}

const CONVENTIONS: [string, Convention][] = [
  [
    "the reference solution (clientID envelopes, getall, messageID) and its API",
    {
      folder: "reference",
      api: true,
      order: (_ctx, store, id, api) => orderThroughApi(api as LabProgram, { store, orderID: id }),
    },
  ],
  [
    "queueId and eventName, payloads carrying the recipient's queueId",
    {
      folder: "queue-id",
      api: false,
      order: (ctx, store, id) => orderOverHttp(ctx, { queueId: "driver", store, orderId: id }),
    },
  ],
  [
    "socket.io-client 2.x",
    {
      folder: "v2",
      api: false,
      order: (ctx, store, id) => orderOverHttp(ctx, { store, orderId: id }),
    },
  ],
];

describe.each(CONVENTIONS)("the lab's key test: %s", (_name, convention) => {
  let ctx: TestContext;
  afterEach(async () => {
    await stopAll();
    await ctx?.close();
  });

  test("missed thank-yous come once after a restart, never again, and only to their store", async () => {
    ctx = await startHub();
    const env = { HUB_URL: ctx.url, DRIVER_DELAY_MS: "50", ORDER_INTERVAL_MS: "100" };
    const file = (name: string) => join(convention.folder, name);
    const acme = "acme-widgets";
    const thanks = `VENDOR ${acme}: Thank you for delivering `;
    const pending = () => ctx.hub.store.pending("/caps", acme, Date.now());
    const waitForQueue = async (n: number) => {
      const deadline = Date.now() + 20_000;
      while ((await pending()) !== n) {
        if (Date.now() > deadline) throw new Error(`${acme}'s queue never held ${n} (${await pending()})`);
        await settle(20);
      }
    };

    const driver = run(file("driver.cjs"), env);
    // Subscriptions start when they are made: the driver is on duty before the first order.
    const onDuty = async () =>
      (await ctx.hub.store.subscriptions({ limit: 100 }, "/caps")).items.some(
        (s) => s.clientId === "driver" && s.event === "pickup",
      );
    for (const deadline = Date.now() + 20_000; !(await onDuty()); await settle(20)) {
      if (Date.now() > deadline) throw new Error(`the driver never subscribed: ${driver.lines.join("\n")}`);
    }
    const api = convention.api ? run(file("caps-api.cjs"), { ...env, PORT: "0" }) : null;
    const flowers = run(file("vendor.cjs"), { ...env, STORE: "1-800-flowers", ORDERS: "1" });
    let vendor = run(file("vendor.cjs"), { ...env, STORE: acme, ORDERS: "2" });

    // Orders flow: two orders, picked up, delivered, thanked; the thanks acked.
    await waitUntil(
      () => ids(vendor.lines, thanks).length === 2,
      20_000,
      () => vendor.lines.join("\n"),
    );
    expect(ids(vendor.lines, thanks).sort()).toEqual(ids(vendor.lines, `VENDOR ${acme}: ordered `).sort());
    await waitForQueue(0);
    await vendor.stop();

    // The vendor is away; the driver delivers three more of its orders.
    const missed = [randomUUID(), randomUUID(), randomUUID()];
    for (const id of missed) await convention.order(ctx, acme, id, api);
    await waitUntil(
      () => missed.every((id) => ids(driver.lines, "DRIVER: delivered ").includes(id)),
      20_000,
      () => driver.lines.join("\n"),
    );
    await waitForQueue(3);

    // Back: each missed thank-you exactly once.
    vendor = run(file("vendor.cjs"), { ...env, STORE: acme, ORDERS: "0" });
    await waitUntil(
      () => ids(vendor.lines, thanks).length >= 3,
      20_000,
      () => vendor.lines.join("\n"),
    );
    await waitForQueue(0);
    await settle(200);
    expect(ids(vendor.lines, thanks).sort()).toEqual([...missed].sort());
    await vendor.stop();

    // Once more: nothing repeats.
    vendor = run(file("vendor.cjs"), { ...env, STORE: acme, ORDERS: "0" });
    const connected = async () => (await ctx.hub.clients("/caps")).clients.some((c) => c.clientId === acme);
    for (const deadline = Date.now() + 20_000; !(await connected()); await settle(20)) {
      if (Date.now() > deadline) throw new Error(`the vendor never connected: ${vendor.lines.join("\n")}`);
    }
    await settle(300);
    expect(ids(vendor.lines, thanks)).toEqual([]);
    await vendor.stop();

    // The other store got its own thank-you and none of acme's.
    const flowersThanks = ids(flowers.lines, "VENDOR 1-800-flowers: Thank you for delivering ");
    expect(flowersThanks).toEqual(ids(flowers.lines, "VENDOR 1-800-flowers: ordered "));
    expect(flowersThanks).toHaveLength(1);
    // The API named itself by joining a store's room, yet took none of that store's deliveries.
    if (api) expect(api.lines.filter((line) => line.startsWith("API: got "))).toEqual([]);
    expect(ids(driver.lines, "DRIVER: picked up ")).toHaveLength(6);
  }, 120_000);
});
