// `npm run dead-letters`: the operator's CLI over the hub's dead-letter endpoints, run as a real process.
import { execFile } from "node:child_process";
import { startHub, type TestContext, waitUntil } from "./support/hub.js";
import { built, ROOT } from "./support/process.js";

let ctx: TestContext;
afterAll(async () => {
  await ctx?.close();
});

/** Runs the CLI as a process (asynchronously: the hub under test lives in this process). */
const cli = (...args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [built("clients/dead-letters.js"), ...args],
      { cwd: ROOT, timeout: 20_000, env: { ...process.env, NODE_OPTIONS: "" } },
      (err, stdout, stderr) => {
        const status = err ? (typeof err.code === "number" ? err.code : null) : 0;
        resolve({ status, stdout, stderr });
      },
    );
  });

test("lists, requeues and drops dead letters; says what is wrong", async () => {
  ctx = await startHub({ ackTimeoutMs: 1000, maxDeliveries: 1 });
  const sub = await ctx.client("/caps", { clientId: "flaky" });
  await sub.request("subscribe", { event: "pickup" });
  const pub = await ctx.client("/caps", { clientId: "vendor" });
  const first = (await pub.request("pickup", { order: 1 })).messageId as string;
  const second = (await pub.request("pickup", { order: 2 })).messageId as string;
  const deadCount = async () =>
    ((await (await fetch(`${ctx.url}/dead-letters?ns=caps`)).json()).deadLetters as unknown[]).length;
  let dead = 0;
  // waitUntil polls a synchronous check: refresh the count between polls.
  const refresh = setInterval(async () => {
    dead = await deadCount();
  }, 20);
  await waitUntil(() => dead === 2, 15_000).finally(() => clearInterval(refresh));

  const url = ["--url", ctx.url];
  const list = await cli("list", ...url);
  expect(list.status).toBe(0);
  expect(list.stdout).toContain(first);
  expect(list.stdout).toContain("max-deliveries");

  // The requeued message is acked the moment it arrives: its lease runs from its delivery, not
  // from the CLI's exit, which a busy machine can delay past the ack timeout.
  const ackedOnArrival = new Promise<unknown>((resolve) => {
    sub.socket.onAny((_event: string, arg: unknown) => {
      const messages = (Array.isArray(arg) ? arg : [arg]) as { messageId?: string }[];
      if (messages.some((m) => m?.messageId === first))
        resolve(sub.request("received", { messageId: first }));
    });
  });
  const requeue = await cli("requeue", first, ...url);
  expect(requeue.stdout).toContain("c:flaky");
  await sub.received(3, 10_000);
  expect(sub.messages.at(-1)).toMatchObject({ messageId: first, deliveries: 1 });
  expect(await ackedOnArrival).toEqual({ ok: true, removed: 1 });

  const drop = await cli("drop", "--all", ...url);
  expect(drop.stdout).toContain("dropped 1");
  expect((await cli("list", ...url)).stdout).not.toContain(second);

  expect((await cli("--help")).status).toBe(0);
  expect((await cli("explode", ...url)).status).toBe(2);
  expect((await cli("drop", ...url)).stderr).toContain("--all");
  const unreachable = await cli("list", "--url", "http://127.0.0.1:9");
  expect(unreachable.status).toBe(1);
  expect(unreachable.stderr).toContain("npm start");
}, 90_000);
