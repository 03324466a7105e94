// Protected open mode, as Redis's: an open hub (no secret) listens on loopback only; beyond it, it
// needs a secret or HUB_INSECURE=1, else it refuses to start and says what to do. The start-up
// line says which mode it runs in and why.
import { spawnSync } from "node:child_process";
import type { AddressInfo } from "node:net";
import { ConfigError } from "../src/config.js";
import { createHub, type Hub } from "../src/hub.js";
import { createLogger } from "../src/log.js";
import { MemoryStore } from "../src/store/memory.js";
import { built, killHubs, spawnHub } from "./support/process.js";

let hub: Hub | null = null;
afterEach(async () => {
  await hub?.close();
  hub = null;
});
afterAll(killHubs);

/** A hub with a logger that keeps its lines. */
async function start(options: Parameters<typeof createHub>[0]) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", (line) => void lines.push(JSON.parse(line) as Record<string, unknown>));
  hub = await createHub({ port: 0, queueStore: new MemoryStore(), logger, ...options });
  return { hub, lines, address: (hub.httpServer.address() as AddressInfo).address };
}

test("open and no HUB_HOST: loopback only, and the start-up line says so", async () => {
  const { address, lines } = await start({});
  expect(address).toBe("127.0.0.1");
  expect(lines).toContainEqual(
    expect.objectContaining({
      level: "info",
      mode: "open",
      host: "127.0.0.1",
      msg: expect.stringContaining("loopback only"),
    }),
  );
});

test("open and HUB_HOST beyond loopback: refused, naming HUB_SECRET and HUB_INSECURE", async () => {
  for (const host of ["0.0.0.0", "::", "192.0.2.10"]) {
    const failed = createHub({ port: 0, host, queueStore: new MemoryStore(), logLevel: "silent" });
    await expect(failed).rejects.toThrow(ConfigError);
    await expect(failed).rejects.toThrow(/HUB_SECRET.*HUB_INSECURE=1/);
  }
});

test("HUB_INSECURE=1 listens beyond loopback, with a warning", async () => {
  const { address, lines } = await start({ host: "0.0.0.0", insecure: true });
  expect(address).toBe("0.0.0.0");
  expect(lines).toContainEqual(expect.objectContaining({ level: "warn", mode: "open-insecure" }));
});

test("with a secret the hub listens on every interface by default, in token mode", async () => {
  const { address, lines } = await start({ secret: "s" });
  expect(address).toBe("0.0.0.0");
  expect(lines).toContainEqual(expect.objectContaining({ level: "info", mode: "tokens" }));
});

test("the hub process refuses HUB_HOST=0.0.0.0 without a secret (exit 2, what to do on stderr)", () => {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "", HUB_STORE: "memory", PORT: "0" };
  const run = spawnSync(process.execPath, [built("main.js")], {
    env: { ...env, HUB_HOST: "0.0.0.0" },
    encoding: "utf8",
    timeout: 15_000,
  });
  expect(run.status).toBe(2);
  expect(run.stderr).toContain("HUB_SECRET");
  expect(run.stderr).toContain("HUB_INSECURE=1");
});

test("the hub process started with no settings listens on loopback and logs its mode", async () => {
  const child = await spawnHub({ HUB_STORE: "memory", HUB_HOST: undefined });
  expect(child.logs()).toContainEqual(expect.objectContaining({ mode: "open", host: "127.0.0.1" }));
  await child.kill();
});
