// RedisStore: the store conformance suite against a real Redis, plus an outage test.
// REDIS_URL (default redis://127.0.0.1:6379). Without Redis the tests are skipped with a
// warning, except with CI=true, where they run and fail loudly.
import { Redis } from "ioredis";
import { RedisStore } from "../src/store/redis/index.js";
import { clientQueue, groupQueue, type NewMessage, StoreError } from "../src/store/store.js";
import { deleteKeys, describeWithRedis, freePort, PrivateRedis, REDIS_URL, RUN } from "./support/redis.js";
import { storeConformance } from "./support/store-conformance.js";

const describeRedis = await describeWithRedis("RedisStore tests");

describeRedis("RedisStore", () => {
  let n = 0;
  storeConformance("conformance", async () => {
    const prefix = `${RUN}:${++n}:`;
    let store = await RedisStore.connect({ url: REDIS_URL, prefix });
    return {
      store,
      async reopen() {
        await store.close();
        store = await RedisStore.connect({ url: REDIS_URL, prefix });
        return store;
      },
      async cleanup() {
        await store.close();
        await deleteKeys(REDIS_URL, prefix);
      },
    };
  });

  const msg = (i: number, event = "x"): NewMessage => ({
    messageId: `m${String(i).padStart(6, "0")}`,
    event,
    payload: { i },
    publishedAt: 1,
    from: null,
    expiresAt: null,
  });
  const enqueueReq = (store: RedisStore, ns: string, messages: NewMessage[]) =>
    store.enqueue({
      ns,
      messages,
      now: Date.now(),
      dedupWindowMs: 1000,
      maxQueueLength: 0,
      overflow: "reject",
    });

  it("two hubs over one Redis never hand one group entry to two members", async () => {
    const prefix = `${RUN}:hubs:`;
    const hubs = [
      await RedisStore.connect({ url: REDIS_URL, prefix }),
      await RedisStore.connect({ url: REDIS_URL, prefix }),
    ];
    try {
      const [a, b] = hubs as [RedisStore, RedisStore];
      await a.subscribe("/", "w1", ["x"], "workers");
      await b.subscribe("/", "w2", ["x"], "workers");
      const total = 500;
      for (let i = 0; i < total; i += 100) {
        await enqueueReq(
          a,
          "/",
          Array.from({ length: 100 }, (_, j) => msg(i + j)),
        );
      }
      const now = Date.now();
      const claims = Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a : b).claim({
          ns: "/",
          queue: groupQueue("workers"),
          consumer: i % 2 ? "w1" : "w2",
          limit: 20,
          now,
          leaseMs: 60_000,
          maxDeliveries: 0,
        }),
      );
      const ids = (await Promise.all(claims)).flatMap((r) => r.messages.map((m) => m.messageId));
      expect(ids).toHaveLength(total);
      expect(new Set(ids).size).toBe(total);
    } finally {
      for (const hub of hubs) await hub.close();
      await deleteKeys(REDIS_URL, prefix);
    }
  });

  it("stores one body per message whatever the fan-out, and frees it after the last ack", async () => {
    const prefix = `${RUN}:body:`;
    const store = await RedisStore.connect({ url: REDIS_URL, prefix });
    const admin = new Redis(REDIS_URL);
    try {
      const clients = Array.from({ length: 20 }, (_, i) => `c${i}`);
      for (const c of clients) await store.subscribe("/", c, ["x"], null);
      await enqueueReq(store, "/", [msg(1)]);
      const bodies = await admin.keys(`${prefix}m:*`);
      expect(bodies).toHaveLength(1);
      for (const c of clients) expect(await store.ack("/", c, ["m000001"])).toEqual(["m000001"]);
      expect(await admin.keys(`${prefix}m:*`)).toEqual([]);
      expect(await store.pending("/", "c0", Date.now())).toBe(0);
    } finally {
      admin.disconnect();
      await store.close();
      await deleteKeys(REDIS_URL, prefix);
    }
  });

  it("leaves no per-message or per-queue keys behind once everything is acked, expired or dropped", async () => {
    const prefix = `${RUN}:leak:`;
    const store = await RedisStore.connect({ url: REDIS_URL, prefix });
    const admin = new Redis(REDIS_URL);
    try {
      const ns = "/";
      const now = Date.now();
      await store.subscribe(ns, "a", ["x", "y"], null);
      await store.subscribe(ns, "b", ["x"], "g");
      const base = { ns, now, dedupWindowMs: 1000, maxQueueLength: 3, overflow: "drop-oldest" as const };
      const batch = Array.from({ length: 6 }, (_, i) => ({
        ...msg(i, i % 2 ? "y" : "x"),
        expiresAt: i === 5 ? now + 10 : null,
      }));
      const r = await store.enqueue({ ...base, messages: batch, key: { scope: "id:p", key: "k" } });
      expect(r.dropped).toBe(3); // a: 6 entries into 3 slots; g: 3 x entries fit
      const claimReq = (queue: string, consumer: string, at: number) => ({
        ns,
        queue,
        consumer,
        limit: 10,
        now: at,
        leaseMs: 100,
        maxDeliveries: 1,
      });
      await store.claim(claimReq(groupQueue("g"), "b", now));
      await store.claim(claimReq(groupQueue("g"), "b", now + 200)); // all 3 dead (max deliveries)
      expect(await store.sweep(now + 10)).toBe(1); // m000005 expired in a's queue
      const live = (await store.claim(claimReq(clientQueue("a"), "a", now + 10))).messages.map(
        (m) => m.messageId,
      );
      expect(live).toHaveLength(2);
      const dead = (await store.listDead(ns, { limit: 100 })).items.map((d) => d.messageId);
      expect(dead).toHaveLength(6);
      await store.requeueDead(ns, dead.slice(0, 2));
      const requeued = await store.claim(claimReq(groupQueue("g"), "b", now + 300));
      await store.claim(claimReq(clientQueue("a"), "a", now + 300));
      await store.ack(ns, "a", [...live, ...requeued.messages.map((m) => m.messageId), ...dead]);
      await store.ack(
        ns,
        "b",
        requeued.messages.map((m) => m.messageId),
      );
      await store.dropDead(ns, [
        ...new Set((await store.listDead(ns, { limit: 100 })).items.map((d) => d.messageId)),
      ]);
      expect((await store.stats({ limit: 100 }, ns)).items).toEqual([]);
      expect((await store.listDead(ns, { limit: 100 })).items).toEqual([]);
      await store.sweep(now + 10_000);
      const keys = (await admin.keys(`${prefix}*`)).map((k) => k.slice(prefix.length)).sort();
      // what remains is bookkeeping that does not grow with traffic
      expect(keys).toEqual([
        "cs:/|a",
        "cs:/|b",
        "dseq",
        "k2:/|4:id:p|k",
        "n:/",
        "nss",
        "seq",
        "sub:/|x",
        "sub:/|y",
        "subs:/",
        "version",
      ]);
    } finally {
      admin.disconnect();
      await store.close();
      await deleteKeys(REDIS_URL, prefix);
    }
  });

  it("unsubscribe and drop-oldest over a long queue run in steps of at most stepEntries entries", async () => {
    const prefix = `${RUN}:steps:`;
    const store = await RedisStore.connect({ url: REDIS_URL, prefix, stepEntries: 50 });
    try {
      await store.subscribe("/", "a", ["x", "y"], null);
      for (let i = 0; i < 2000; i += 100) {
        await enqueueReq(
          store,
          "/",
          Array.from({ length: 100 }, (_, j) => msg(i + j, (i + j) % 2 ? "y" : "x")),
        );
      }
      let steps = store.steps;
      // entries stored while it runs are not the unsubscribe's to drop
      const dropping = store.unsubscribe("/", "a", ["x"]);
      await enqueueReq(store, "/", [{ ...msg(5000), to: ["a"] }]);
      expect(await dropping).toBe(1000);
      expect(store.steps - steps).toBeGreaterThanOrEqual(2000 / 50);
      expect(await store.pending("/", "a", Date.now(), "x")).toBe(1);
      steps = store.steps;
      const r = await store.enqueue({
        ns: "/",
        messages: [msg(6000, "y")],
        now: Date.now(),
        dedupWindowMs: 1000,
        maxQueueLength: 10,
        overflow: "drop-oldest",
      });
      expect(r.dropped).toBe(1002 - 10);
      expect(store.steps - steps).toBeGreaterThanOrEqual(Math.floor(992 / 50) - 1);
      expect(await store.pending("/", "a", Date.now())).toBe(10);
      expect((await store.namespaces({ limit: 5 })).items).toEqual([
        { ns: "/", queues: 1, pending: 10, subscriptions: 1, rooms: 0, deadLetters: 992 },
      ]);
    } finally {
      await store.close();
      await deleteKeys(REDIS_URL, prefix);
    }
  });

  it("migrates data of the old layout (no rooms, keys per namespace) when it connects", async () => {
    const prefix = `${RUN}:layout1:`;
    const admin = new Redis(REDIS_URL);
    try {
      // Data as an older queuehub left it: written here through today's store, then turned back.
      const writer = await RedisStore.connect({ url: REDIS_URL, prefix });
      await writer.subscribe("/caps", "a", ["x"], null);
      await writer.subscribe("/caps", "b", ["x", "y"], "g");
      await writer.subscribe("/", "z", ["x"], null);
      const now = Date.now();
      await writer.enqueue({
        ns: "/caps",
        messages: [msg(1), msg(2, "y")],
        key: { scope: "id:p", key: "k1" },
        now,
        dedupWindowMs: 60_000,
        maxQueueLength: 0,
        overflow: "reject",
      });
      await writer.close();
      const k = (key: string) => `${prefix}${key}`;
      const toSet = async (key: string) => {
        const members = await admin.zrange(k(key), "0", "-1");
        await admin.del(k(key));
        if (members.length) await admin.sadd(k(key), ...members);
      };
      await toSet("nss");
      await toSet("qs:/caps");
      await admin.sadd(k("ev:/caps"), "x", "y");
      await admin.sadd(k("ev:/"), "x");
      await admin.del(k("subs:/caps"), k("subs:/"), k("n:/caps"), k("version"));
      await admin.rename(k("k2:/caps|4:id:p|k1"), k("k:/caps|k1"));

      const store = await RedisStore.connect({ url: REDIS_URL, prefix });
      try {
        expect(await admin.get(k("version"))).toBe("2");
        expect(await admin.type(k("nss"))).toBe("zset");
        expect((await store.subscriptions({ limit: 10 })).items).toEqual([
          { ns: "/", clientId: "z", event: "x", group: null },
          { ns: "/caps", clientId: "a", event: "x", group: null },
          { ns: "/caps", clientId: "b", event: "x", group: "g" },
          { ns: "/caps", clientId: "b", event: "y", group: "g" },
        ]);
        expect((await store.stats({ limit: 10 }, "/caps")).items.map((q) => [q.queue, q.pending])).toEqual([
          ["c:a", 1],
          ["g:g", 2],
        ]);
        expect((await store.namespaces({ limit: 10 })).items).toEqual([
          { ns: "/", queues: 0, pending: 0, subscriptions: 1, rooms: 0, deadLetters: 0 },
          { ns: "/caps", queues: 2, pending: 3, subscriptions: 3, rooms: 0, deadLetters: 0 },
        ]);
        // the old namespace-wide key still answers its retry inside the window
        const retry = await store.enqueue({
          ns: "/caps",
          messages: [msg(3)],
          key: { scope: "id:p", key: "k1" },
          now,
          dedupWindowMs: 60_000,
          maxQueueLength: 0,
          overflow: "reject",
        });
        expect(retry).toMatchObject({ duplicate: true, messageIds: ["m000001", "m000002"] });
        const claimed = await store.claim({
          ns: "/caps",
          queue: groupQueue("g"),
          consumer: "b",
          limit: 10,
          now,
          leaseMs: 1000,
          maxDeliveries: 0,
        });
        expect(claimed.messages.map((m) => m.messageId)).toEqual(["m000001", "m000002"]);
        // and it happens once: a second connect finds layout 2
        await store.joinRoom("/caps", "r", "a");
        const again = await RedisStore.connect({ url: REDIS_URL, prefix });
        expect((await again.namespaces({ limit: 10 })).items[1]).toMatchObject({ pending: 3, rooms: 1 });
        await again.close();
      } finally {
        await store.close();
      }
    } finally {
      admin.disconnect();
      await deleteKeys(REDIS_URL, prefix);
    }
  });

  describe("outage of a private redis-server", () => {
    let server: PrivateRedis | null = null;
    const startServer = async () => {
      server ??= new PrivateRedis(await freePort());
      await server.start();
    };
    const stopServer = async () => {
      await server?.stop();
    };

    afterEach(async () => {
      await stopServer();
      server = null;
    });

    it("rejects with UNAVAILABLE at once while Redis is down, and recovers by itself", async () => {
      await startServer();
      const store = await RedisStore.connect({ url: server?.url ?? "", prefix: "qh:" });
      try {
        await store.subscribe("/", "a", ["x"], null);
        await enqueueReq(store, "/", [msg(1)]);
        expect(await store.healthy()).toBe(true);

        await stopServer();
        const started = Date.now();
        let caught: unknown;
        try {
          await enqueueReq(store, "/", [msg(2)]);
        } catch (err) {
          caught = err;
        }
        expect(caught).toBeInstanceOf(StoreError);
        expect((caught as StoreError).code).toBe("UNAVAILABLE");
        expect(Date.now() - started).toBeLessThan(1000);
        expect(await store.healthy()).toBe(false);
        await expect(
          store.claim({
            ns: "/",
            queue: clientQueue("a"),
            consumer: "a",
            limit: 10,
            now: Date.now(),
            leaseMs: 1000,
            maxDeliveries: 0,
          }),
        ).rejects.toMatchObject({ code: "UNAVAILABLE" });
        expect(Date.now() - started).toBeLessThan(1000);

        await startServer(); // same port, empty data (no persistence), scripts not loaded
        const deadline = Date.now() + 5000;
        while (!(await store.healthy()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
        expect(await store.healthy()).toBe(true);
        await store.subscribe("/", "a", ["x"], null);
        const r = await enqueueReq(store, "/", [msg(3)]);
        expect(r.queues).toEqual([clientQueue("a")]);
        const claimed = await store.claim({
          ns: "/",
          queue: clientQueue("a"),
          consumer: "a",
          limit: 10,
          now: Date.now(),
          leaseMs: 1000,
          maxDeliveries: 0,
        });
        expect(claimed.messages.map((m) => m.messageId)).toEqual(["m000003"]);
      } finally {
        await store.close();
      }
    });

    it("connect() rejects with UNAVAILABLE when Redis is unreachable", async () => {
      const port = await freePort();
      const started = Date.now();
      await expect(
        RedisStore.connect({ url: `redis://127.0.0.1:${port}`, prefix: "qh:", connectTimeoutMs: 500 }),
      ).rejects.toMatchObject({ code: "UNAVAILABLE" });
      expect(Date.now() - started).toBeLessThan(2000);
    });
  });
});
