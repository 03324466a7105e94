// Two hubs on one Redis behave as one hub: the whole delivery-semantics suite runs with
// clients spread over both (each new client lands on the other hub), on a per-run prefix.

import { createServer } from "node:http";
import { Redis } from "ioredis";
import { Server } from "socket.io";
import { useRedisAdapter } from "../src/cluster.js";
import { createLogger } from "../src/log.js";
import type { DeliveryEmitter } from "../src/protocol.js";
import { RedisStore } from "../src/store/redis/index.js";
import { settle, startHub, type TestContext, waitUntil } from "./support/hub.js";
import { deleteKeys, describeWithRedis, freePort, PrivateRedis, REDIS_URL, RUN } from "./support/redis.js";
import { deliverySemantics } from "./support/semantics.js";

const describeRedis = await describeWithRedis("cluster tests");
let run = 0;

async function startCluster(overrides = {}): Promise<TestContext> {
  const prefix = `${RUN}:cluster${++run}:`;
  // No `store` setting: a RedisStore instance given to createHub is enough to make the hubs a cluster.
  const config = { redisUrl: REDIS_URL, redisPrefix: prefix, ...overrides };
  const hubs = [
    await startHub(config, await RedisStore.connect({ url: REDIS_URL, prefix })),
    await startHub(config, await RedisStore.connect({ url: REDIS_URL, prefix })),
  ] as const;
  let next = 0;
  return {
    hub: hubs[0].hub,
    url: hubs[0].url,
    client: (ns, auth) => (hubs[next++ % 2] as TestContext).client(ns, auth),
    async close() {
      await Promise.all(hubs.map((h) => h.close()));
      await deleteKeys(REDIS_URL, prefix);
    },
  };
}

describeRedis("two hubs over Redis", () => {
  deliverySemantics("cluster of two hubs, Redis store", startCluster);
});

describeRedis("Socket.IO across hubs", () => {
  test("rooms, broadcasts and presence span both hubs (Redis adapter)", async () => {
    const prefix = `${RUN}:rooms:`;
    const config = { store: "redis" as const, redisUrl: REDIS_URL, redisPrefix: prefix };
    const a = await startHub(config, await RedisStore.connect({ url: REDIS_URL, prefix }));
    const b = await startHub(config, await RedisStore.connect({ url: REDIS_URL, prefix }));
    try {
      // A classroom connection's join: a live Socket.IO room (an identified one's is durable).
      const onB = await b.client("/caps");
      expect(await onB.request("join", "watcher")).toEqual({ ok: true });
      expect(await onB.request("join", "ops")).toEqual({ ok: true });
      const notices: unknown[] = [];
      onB.socket.on("notice", (n: unknown) => notices.push(n));
      // Presence: hub A sees the socket connected to hub B in the room.
      const sockets = await a.hub.io.of("/caps").in("ops").fetchSockets();
      expect(sockets.map((s) => s.data.clientId)).toEqual(["watcher"]);
      // An event of the host app's own, outside the contract's map: any emitter takes it.
      const room: DeliveryEmitter = a.hub.io.of("/caps").to("ops");
      room.emit("notice", "from hub A");
      await waitUntil(() => notices.length === 1);
      expect(notices).toEqual(["from hub A"]);
    } finally {
      await a.close();
      await b.close();
      await deleteKeys(REDIS_URL, prefix);
    }
  });
});

describeRedis("operator views across hubs", () => {
  test("GET /clients, /namespaces and the queue-depth metric on one hub count what every hub has", async () => {
    const prefix = `${RUN}:views:`;
    const config = { store: "redis" as const, redisUrl: REDIS_URL, redisPrefix: prefix };
    const a = await startHub(config, await RedisStore.connect({ url: REDIS_URL, prefix }));
    const b = await startHub(config, await RedisStore.connect({ url: REDIS_URL, prefix }));
    try {
      const onA = await a.client("/caps", { clientId: "on-a" });
      await b.client("/caps", { clientId: "on-b" });
      await b.client("/orders", { clientId: "elsewhere" });
      // Queue depth is the store's count: a publish through hub A shows on hub B's /metrics.
      expect(await onA.request("publish", { event: "e", payload: 1, to: "offline" })).toMatchObject({
        ok: true,
      });
      expect(await (await fetch(`${b.url}/metrics`)).text()).toContain(
        'queuehub_queue_depth{ns="/caps"} 1\n',
      );
      const clients = await (await fetch(`${a.url}/clients?ns=caps`)).json();
      expect(clients.partial).toBeUndefined();
      expect(clients.clients.map((c: { clientId: string }) => c.clientId).sort()).toEqual(["on-a", "on-b"]);
      const namespaces = await (await fetch(`${b.url}/namespaces`)).json();
      expect(
        namespaces.namespaces.map(({ ns, clients }: { ns: string; clients: number }) => ({ ns, clients })),
      ).toEqual([
        { ns: "/caps", clients: 2 },
        { ns: "/orders", clients: 1 },
      ]);
    } finally {
      await a.close();
      await b.close();
      await deleteKeys(REDIS_URL, prefix);
    }
  });
});

describeRedis("takeover across hubs", () => {
  test("a client's newer connection on hub B takes its deliveries from the older one on hub A", async () => {
    const prefix = `${RUN}:takeover:`;
    const config = { store: "redis" as const, redisUrl: REDIS_URL, redisPrefix: prefix };
    const a = await startHub(config, await RedisStore.connect({ url: REDIS_URL, prefix }));
    const b = await startHub(config, await RedisStore.connect({ url: REDIS_URL, prefix }));
    try {
      const older = await a.client("/", { clientId: "sub" });
      await older.request("subscribe", { event: "e" });
      const pub = await a.client("/", { clientId: "pub" });
      await pub.request("publish", { event: "e", payload: 0 });
      await older.received(1);
      const newer = await b.client("/", { clientId: "sub" });
      await newer.received(1);
      for (let i = 1; i <= 20; i++) await pub.request("publish", { event: "e", payload: i });
      await newer.received(21);
      await settle();
      expect(older.payloads()).toEqual([0]);
      expect(newer.payloads()).toEqual(Array.from({ length: 21 }, (_, i) => i));
    } finally {
      await a.close();
      await b.close();
      await deleteKeys(REDIS_URL, prefix);
    }
  });
});

describeRedis("the Redis adapter while Redis is down", () => {
  test("a message to the other hubs that cannot be sent is logged, never an unhandled rejection; closed then, it stops reconnecting", async () => {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    const lines: Record<string, unknown>[] = [];
    const io = new Server(createServer());
    const adapter = await useRedisAdapter(io, {
      url: redis.url,
      prefix: `${RUN}:down:`,
      log: createLogger("warn", (line) => lines.push(JSON.parse(line))),
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      await redis.stop();
      io.serverSideEmit("queuehub:wake", "/", ["c:someone"]);
      await waitUntil(
        () => lines.some((l) => l.msg === "cluster: message to the other hubs not sent"),
        10_000,
      );
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await io.close();
      await adapter.close();
    }
    // Closed while Redis was down, the adapter's clients stop for good: none comes back when it
    // returns (a client left reconnecting would keep the hub's process alive after close).
    await redis.start();
    const admin = new Redis(redis.url);
    try {
      await settle(3000); // longer than ioredis's longest wait between reconnects (2 s)
      const clients = (await admin.client("LIST")) as string;
      expect(clients.trim().split("\n")).toHaveLength(1);
    } finally {
      admin.disconnect();
      await redis.stop();
    }
  });
});
