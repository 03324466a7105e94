// Test support for everything that needs Redis: REDIS_URL (default redis://127.0.0.1:6379).
// Without Redis the tests are skipped with a printed reason, except with CI=true, where
// they run and fail loudly. Keys live under a per-run prefix and only those are deleted.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { Redis } from "ioredis";
import { deleteKeysWithPrefix } from "../../src/store/redis/index.js";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const CI = process.env.CI === "true";
/** A prefix of this test run's own. */
export const RUN = `qhtest:${randomBytes(4).toString("hex")}`;

export async function unreachable(url: string): Promise<string | null> {
  const probe = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    retryStrategy: () => null,
  });
  probe.on("error", () => {});
  try {
    await probe.connect();
    await probe.ping();
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    if (probe.status !== "end") probe.disconnect(); // an ended client would leave a 2 s timer
  }
}

/** Deletes every key under prefix (only this run's: the Redis is shared). */
export const deleteKeys = deleteKeysWithPrefix;

/** `describe`, or `describe.skip` with a printed reason when Redis is missing outside CI. */
export async function describeWithRedis(what: string): Promise<jest.Describe> {
  const skipReason = CI ? null : await unreachable(REDIS_URL);
  if (!skipReason) return describe;
  console.warn(
    `Skipping ${what}: no Redis at REDIS_URL=${REDIS_URL} (${skipReason}). ` +
      "Start redis-server or set REDIS_URL; with CI=true these tests fail instead of skipping.",
  );
  return describe.skip;
}

export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });

/** A redis-server of the test's own, on its own port, to stop and start (an outage). */
export class PrivateRedis {
  private child: ChildProcess | null = null;
  constructor(readonly port: number) {}

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start() {
    this.child = spawn(
      "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: "ignore" },
    );
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if ((await unreachable(this.url)) === null) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server on port ${this.port} did not start`);
  }

  async stop() {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  }
}
