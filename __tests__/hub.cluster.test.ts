// Two hubs on one Redis behave as one hub: the whole delivery-semantics suite runs with
// clients spread over both (each new client lands on the other hub), on a per-run prefix.
import type { DeliveryEmitter } from "../src/protocol.js";
import { RedisStore } from "../src/store/redis/index.js";
import { startHub, type TestContext, waitUntil } from "./support/hub.js";
import { deleteKeys, describeWithRedis, REDIS_URL, RUN } from "./support/redis.js";
import { deliverySemantics } from "./support/semantics.js";

const describeRedis = await describeWithRedis("cluster tests");
let run = 0;

async function startCluster(overrides = {}): Promise<TestContext> {
  const prefix = `${RUN}:cluster${++run}:`;
  const config = { store: "redis" as const, redisUrl: REDIS_URL, redisPrefix: prefix, ...overrides };
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
      const onB = await b.client("/caps", { clientId: "watcher" });
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
