// Durability of the default store against kill -9: real hub processes on one SQLite file,
// SIGKILLed while publishers are mid-stream and again after acks. Every acked publish must
// be there exactly once, in each publisher's order; no acked `received` may come back.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { io, type Socket } from "socket.io-client";
import type { Message } from "../src/protocol.js";
import { waitUntil } from "./support/hub.js";
import { type HubProcess, killHubs, spawnHub } from "./support/process.js";

const dir = mkdtempSync(join(tmpdir(), "queuehub-crash-"));
const env = {
  HUB_STORE: "sqlite",
  HUB_DB: join(dir, "hub.db"),
  // Everything pending is streamed at once, so the subscriber sees the whole queue without acking.
  HUB_PREFETCH: "100000",
};
afterAll(async () => {
  await killHubs();
  rmSync(dir, { recursive: true, force: true });
});

function connect(url: string, clientId: string): Promise<Socket> {
  const socket = io(`${url}/caps`, {
    auth: { clientId, batch: true },
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  });
}

/** Connects the subscriber and collects its deliveries (listener attached before connecting). */
async function subscriber(url: string) {
  const messages: Message[] = [];
  const socket = io(`${url}/caps`, {
    auth: { clientId: "warehouse", batch: true },
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
  });
  socket.on("deliveries", (batch: Message[]) => messages.push(...batch));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", reject);
  });
  return { socket, messages };
}

/**
 * Publishers stream `pickup`s with a window of 8 in flight each, recording every acked id,
 * until `total` are acked; then the hub is SIGKILLed with publishes still in flight.
 */
async function publishUntilKilled(hub: HubProcess, round: number, total: number, acked: Map<string, string>) {
  const publishers = await Promise.all([0, 1, 2, 3].map((p) => connect(hub.url, `vendor-${p}`)));
  let count = 0;
  let killing: Promise<unknown> | null = null;
  const pump = (socket: Socket, p: number) =>
    new Promise<void>((resolve) => {
      let seq = 0;
      let inFlight = 0;
      const next = () => {
        while (!killing && inFlight < 8) {
          const payload = { p, round, seq: seq++ };
          inFlight++;
          socket
            .timeout(5000)
            .emitWithAck("publish", { event: "pickup", payload })
            .then(
              (reply: { ok: boolean; messageId?: string }) => {
                inFlight--;
                if (reply.ok && reply.messageId) {
                  acked.set(reply.messageId, `${p}:${round}:${payload.seq}`);
                  if (++count >= total && !killing) killing = hub.kill("SIGKILL");
                }
                next();
              },
              () => {
                inFlight--;
                if (inFlight === 0) resolve();
              },
            );
        }
        if (killing && inFlight === 0) resolve();
      };
      socket.on("disconnect", () => resolve());
      next();
    });
  await Promise.all(publishers.map((s, p) => pump(s, p)));
  await hub.exited;
  for (const s of publishers) s.close();
}

test("kill -9 while publishing, and after acking, loses no acked message and undoes no ack", async () => {
  let hub = await spawnHub(env);
  const first = await subscriber(hub.url);
  await first.socket.timeout(3000).emitWithAck("subscribe", { event: "pickup" });
  first.socket.close();

  // Three crashes mid-stream, each followed by a restart on the same file.
  const acked = new Map<string, string>();
  for (let round = 0; round < 3; round++) {
    await publishUntilKilled(hub, round, 800, acked);
    hub = await spawnHub(env);
  }
  expect(acked.size).toBeGreaterThanOrEqual(2400);

  const sub = await subscriber(hub.url);
  await waitUntil(
    () => sub.messages.length >= acked.size,
    15_000,
    () => `${sub.messages.length} of ${acked.size}`,
  );
  const ids = sub.messages.map((m) => m.messageId);
  expect(new Set(ids).size).toBe(ids.length); // exactly once
  for (const id of acked.keys()) expect(ids).toContain(id);
  // In order: each publisher's messages arrive in the order it sent them.
  const lastSeen = new Map<string, number>();
  for (const m of sub.messages) {
    const { p, round, seq } = m.payload as { p: number; round: number; seq: number };
    const order = round * 1_000_000 + seq;
    expect(order).toBeGreaterThan(lastSeen.get(String(p)) ?? -1);
    lastSeen.set(String(p), order);
  }

  // Ack every other message, then crash again: the acked never come back, the rest all do.
  const ackedNow = ids.filter((_, i) => i % 2 === 0);
  const kept = new Set(ids.filter((_, i) => i % 2 === 1));
  for (let i = 0; i < ackedNow.length; i += 500) {
    const reply = await sub.socket
      .timeout(5000)
      .emitWithAck("received", { messageIds: ackedNow.slice(i, i + 500) });
    expect(reply).toEqual({ ok: true, removed: Math.min(500, ackedNow.length - i) });
  }
  await hub.kill("SIGKILL");
  sub.socket.close();
  for (let crash = 0; crash < 2; crash++) {
    hub = await spawnHub(env);
    const again = await subscriber(hub.url);
    await waitUntil(
      () => again.messages.length >= kept.size,
      15_000,
      () => `${again.messages.length} of ${kept.size}`,
    );
    expect(new Set(again.messages.map((m) => m.messageId))).toEqual(kept);
    expect(again.messages.every((m) => m.deliveries >= 2)).toBe(true);
    await hub.kill("SIGKILL");
    again.socket.close();
  }
}, 90_000);

test("an unreadable database file stops the start with a message naming the file", async () => {
  const { writeFileSync } = await import("node:fs");
  const corrupt = join(dir, "corrupt.db");
  writeFileSync(corrupt, Buffer.alloc(64 * 1024, 7));
  await expect(
    spawnHub({ HUB_STORE: "sqlite", HUB_DB: corrupt }, { startTimeoutMs: 15_000 }),
  ).rejects.toThrow(corrupt);
  const underFile = join(dir, "corrupt.db", "hub.db");
  await expect(
    spawnHub({ HUB_STORE: "sqlite", HUB_DB: underFile }, { startTimeoutMs: 15_000 }),
  ).rejects.toThrow("corrupt.db");
}, 40_000);
