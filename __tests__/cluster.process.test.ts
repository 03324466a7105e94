// Real hub processes on one Redis (issue 7, points 3 and 4): two hubs started as
// `node dist/main.js`, each on its own port, on a per-run key prefix; then a
// hub of its own on a redis-server this test starts and stops (never the shared one).
import type { Message } from "../src/protocol.js";
import { TestClient, waitUntil } from "./support/hub.js";
import { type HubExit, type HubProcess, killHubs, spawnHub } from "./support/process.js";
import { deleteKeys, describeWithRedis, freePort, PrivateRedis, REDIS_URL, RUN } from "./support/redis.js";

const describeRedis = await describeWithRedis("hub process cluster tests");

const PREFIX = `${RUN}:proc:`;
const ACK_TIMEOUT_MS = 2000;
/** A small window, so a group's messages spread over members on both hubs. */
const PREFETCH = 8;

const clients: TestClient[] = [];
let privateRedis: PrivateRedis | null = null;

function hubEnv(redisUrl: string, prefix: string) {
  return {
    HUB_STORE: "redis",
    REDIS_URL: redisUrl,
    HUB_REDIS_PREFIX: prefix,
    HUB_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS),
    HUB_PREFETCH: String(PREFETCH),
  };
}

async function connect(hub: HubProcess, clientId: string): Promise<TestClient> {
  const client = new TestClient(hub.url, "/", { clientId });
  clients.push(client);
  await client.connected;
  return client;
}

/** Acks every delivery as it arrives (one `received` per event-loop turn); returns the ids acked. */
function autoAck(client: TestClient): Set<string> {
  const acked = new Set<string>();
  let batch: string[] = [];
  client.socket.onAny((event: string, arg: unknown) => {
    const messages = event === "deliveries" ? (arg as Message[]) : [arg as Message];
    const ids = messages.flatMap((m) =>
      m && typeof m === "object" && "messageId" in m ? [m.messageId] : [],
    );
    if (ids.length === 0) return;
    if (batch.length === 0) {
      setImmediate(() => {
        const sent = batch;
        batch = [];
        client.socket.emit("received", { messageIds: sent }, (reply: { ok: boolean }) => {
          if (reply.ok) for (const id of sent) acked.add(id);
        });
      });
    }
    batch.push(...ids);
  });
  return acked;
}

const ok = (reply: Record<string, unknown>) => {
  expect(reply).toMatchObject({ ok: true });
  return reply;
};

async function getJson(url: string) {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Pending entries of one queue (e.g. "c:alice", "g:workers") in `/`, by the hub's operator view. */
async function pending(hub: HubProcess, queue: string): Promise<number> {
  const { body } = await getJson(`${hub.url}/queues?ns=/`);
  const row = (body.queues as { queue: string; pending: number }[]).find((q) => q.queue === queue);
  return row?.pending ?? 0;
}

async function cleanup() {
  for (const c of clients.splice(0)) c.close();
  await killHubs();
}

describeRedis("hub processes over one Redis", () => {
  let a: HubProcess;
  let b: HubProcess;

  beforeAll(async () => {
    [a, b] = await Promise.all([spawnHub(hubEnv(REDIS_URL, PREFIX)), spawnHub(hubEnv(REDIS_URL, PREFIX))]);
  }, 30_000);

  afterAll(async () => {
    await cleanup();
    await deleteKeys(REDIS_URL, PREFIX);
  }, 15_000);

  it("a publisher on hub A reaches a subscriber on hub B", async () => {
    expect(a.port).not.toBe(b.port);
    const sub = await connect(b, "t1-sub");
    ok(await sub.request("subscribe", { event: "greet" }));
    const pub = await connect(a, "t1-pub");
    const { messageId } = ok(await pub.request("publish", { event: "greet", payload: { hello: "B" } }));

    const [m] = await sub.received(1);
    expect(m).toMatchObject({
      messageId,
      event: "greet",
      payload: { hello: "B" },
      from: "t1-pub",
      deliveries: 1,
    });
    expect(await sub.request("received", { messageId })).toEqual({ ok: true, removed: 1 });
    expect(await pending(b, "c:t1-sub")).toBe(0);
  });

  it("a client that leaves A, misses messages and comes back on B catches up in order", async () => {
    const pub = await connect(b, "t2-pub");
    const onA = await connect(a, "t2-sub");
    ok(await onA.request("subscribe", { event: "news" }));
    ok(await pub.request("publish", { event: "news", payload: 1 }));
    ok(await pub.request("publish", { event: "news", payload: 2 }));
    await onA.received(2);
    expect(onA.payloads()).toEqual([1, 2]);
    // 1 is acked, 2 is left in flight when the client goes away.
    expect(await onA.request("received", { messageId: onA.messages[0]?.messageId })).toEqual({
      ok: true,
      removed: 1,
    });
    onA.close();
    for (const n of [3, 4, 5, 6, 7]) ok(await pub.request("publish", { event: "news", payload: n }));

    const onB = await connect(b, "t2-sub");
    await onB.received(6);
    expect(onB.payloads()).toEqual([2, 3, 4, 5, 6, 7]);
    expect(onB.messages[0]).toMatchObject({ messageId: onA.messages[1]?.messageId, deliveries: 2 });
    expect(onB.messages.slice(1).every((m) => m.deliveries === 1)).toBe(true);
    expect(await onB.ackAll()).toBe(6);
    onB.close();

    // Everything was acked: a further reconnect (to A) gets nothing, and the queue is empty.
    const again = await connect(a, "t2-sub");
    expect(await again.request("getAll", {})).toEqual({ ok: true, count: 0 });
    expect(await pending(a, "c:t2-sub")).toBe(0);
    ok(await pub.request("publish", { event: "news", payload: 8 }));
    await again.received(1);
    expect(again.payloads()).toEqual([8]);
  });

  it("a group spread over both hubs gets each message exactly once", async () => {
    const members = await Promise.all(
      ["w1", "w2", "w3", "w4"].map((id, i) => connect(i % 2 ? b : a, `t3-${id}`)),
    );
    for (const m of members) {
      expect(await m.request("subscribe", { event: "job", group: "workers" })).toEqual({
        ok: true,
        events: ["job"],
      });
    }
    const acked = members.map(autoAck);
    const pub = await connect(a, "t3-pub");
    const total = 200;
    const replies = await Promise.all(
      Array.from({ length: total }, (_, i) => pub.request("publish", { event: "job", payload: i })),
    );
    const published = replies.map((r) => ok(r).messageId as string);
    expect(new Set(published).size).toBe(total);

    await waitUntil(
      () => acked.reduce((n, s) => n + s.size, 0) >= total,
      10_000,
      () => `${acked.reduce((n, s) => n + s.size, 0)} of ${total} acked`,
    );
    expect(await pending(a, "g:workers")).toBe(0);
    const delivered = members.flatMap((m) => m.messages.map((msg) => msg.messageId));
    expect(delivered.length).toBe(total); // no duplicates
    expect(new Set(delivered)).toEqual(new Set(published));
    expect(members.flatMap((m) => m.messages).every((msg) => msg.deliveries === 1)).toBe(true);
    // Both hubs' members took part.
    expect((members[0]?.messages.length ?? 0) + (members[2]?.messages.length ?? 0)).toBeGreaterThan(0);
    expect((members[1]?.messages.length ?? 0) + (members[3]?.messages.length ?? 0)).toBeGreaterThan(0);
  });

  it("SIGKILL of hub A while publishes are in flight loses no acked message", async () => {
    const sub = await connect(b, "t4-sub");
    ok(await sub.request("subscribe", { event: "load" }));
    autoAck(sub);
    const publishers = await Promise.all([connect(a, "t4-pub1"), connect(a, "t4-pub2")]);

    const acked = new Set<string>();
    let failed = 0;
    let n = 0;
    const killAfter = 300;
    let killed = null as Promise<HubExit> | null;
    const pump = async (pub: TestClient) => {
      // Keeps 16 publishes in flight per publisher until its hub is gone.
      const lane = async () => {
        while (pub.socket.connected) {
          try {
            const reply = (await pub.socket
              .timeout(5000)
              .emitWithAck("publish", { event: "load", payload: n++ })) as {
              ok: boolean;
              messageId?: string;
            };
            if (reply.ok && reply.messageId) acked.add(reply.messageId);
            else failed++;
          } catch {
            failed++; // no ack: cut off by the kill, so it may or may not be stored
          }
          if (acked.size >= killAfter && !killed) killed = a.kill("SIGKILL");
        }
      };
      await Promise.all(Array.from({ length: 16 }, lane));
    };
    await Promise.all(publishers.map(pump));
    expect(await killed).toEqual({ code: null, signal: "SIGKILL" });
    expect(acked.size).toBeGreaterThanOrEqual(killAfter);
    expect(failed).toBeGreaterThan(0); // the kill really cut publishes off mid-flight

    const got = () => new Set(sub.messages.map((m) => m.messageId));
    await waitUntil(
      () => [...acked].every((id) => got().has(id)),
      10_000,
      () =>
        `${[...acked].filter((id) => !got().has(id)).length} of ${acked.size} acked messages missing on B`,
    );
    expect(b.alive()).toBe(true);
  });
});

describeRedis("wake-ups between hub processes", () => {
  afterAll(cleanup, 15_000);

  it("are sent before the publisher's ack: a hub killed the moment it acks has woken the other hub", async () => {
    // An ack timeout of a minute and a wide window (so no ack is needed): hub B never polls, and
    // nothing but a wake-up from the publisher's hub makes it look at the queue again.
    const prefix = `${RUN}:wake:`;
    const env = { ...hubEnv(REDIS_URL, prefix), HUB_ACK_TIMEOUT_MS: "60000", HUB_PREFETCH: "10000" };
    const b = await spawnHub(env);
    try {
      const sub = await connect(b, "w-sub");
      ok(await sub.request("subscribe", { event: "w" }));
      for (let round = 1; round <= 3; round++) {
        const a = await spawnHub(env);
        const pub = await connect(a, `w-pub${round}`);
        const { messageId } = ok(await pub.request("publish", { event: "w", payload: round }));
        expect(await a.kill("SIGKILL")).toEqual({ code: null, signal: "SIGKILL" });
        await waitUntil(
          () => sub.messages.some((m) => m.messageId === messageId),
          5000,
          () => `round ${round}: the acked message never reached hub B`,
        );
      }
      expect(sub.payloads()).toEqual([1, 2, 3]);
    } finally {
      await b.kill("SIGKILL");
      await deleteKeys(REDIS_URL, prefix);
    }
  }, 60_000);
});

describeRedis("hub process through a Redis outage", () => {
  afterAll(async () => {
    await cleanup();
    await privateRedis?.stop();
  }, 15_000);

  it("refuses publishes and acks while Redis is down, says degraded, and recovers by itself", async () => {
    privateRedis = new PrivateRedis(await freePort());
    await privateRedis.start();
    const hub = await spawnHub(hubEnv(privateRedis.url, `${RUN}:outage:`));
    const sub = await connect(hub, "o-sub");
    const pub = await connect(hub, "o-pub");
    ok(await sub.request("subscribe", { event: "ping" }));
    ok(await pub.request("publish", { event: "ping", payload: "before" }));
    const [first] = await sub.received(1);
    expect(await getJson(`${hub.url}/healthz`)).toMatchObject({
      status: 200,
      body: { ok: true, status: "healthy" },
    });

    await privateRedis.stop();
    // Every publish and ack during the outage is refused at once; none is ever acked.
    const outageEnds = Date.now() + 1000;
    let tries = 0;
    while (tries < 3 || Date.now() < outageEnds) {
      tries++;
      const started = Date.now();
      const reply = await pub.request("publish", { event: "ping", payload: `during ${tries}` });
      expect(reply).toMatchObject({ ok: false, error: { code: "UNAVAILABLE" } });
      expect(Date.now() - started).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await sub.request("received", { messageId: first?.messageId })).toMatchObject({
      ok: false,
      error: { code: "UNAVAILABLE" },
    });
    const http = await fetch(`${hub.url}/publish/ping`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '"over http"',
    });
    expect(http.status).toBe(503);
    expect(await http.json()).toMatchObject({ ok: false, error: { code: "UNAVAILABLE" } });
    expect(await getJson(`${hub.url}/healthz`)).toMatchObject({
      status: 503,
      body: { ok: false, status: "degraded" },
    });
    expect(hub.alive()).toBe(true);

    // Redis comes back on the same port (empty: this private one keeps nothing on disk).
    await privateRedis.start();
    const back = Date.now();
    let health = await getJson(`${hub.url}/healthz`);
    while (health.status !== 200 && Date.now() - back < 5000) {
      await new Promise((r) => setTimeout(r, 50));
      health = await getJson(`${hub.url}/healthz`);
    }
    expect(health).toMatchObject({ status: 200, body: { ok: true, status: "healthy" } });

    ok(await sub.request("subscribe", { event: "ping" }));
    const { messageId } = ok(await pub.request("publish", { event: "ping", payload: "after" }));
    await waitUntil(
      () => sub.messages.some((m) => m.messageId === messageId),
      5000,
      () => "delivery after",
    );
    expect(sub.payloads()).toEqual(["before", "after"]); // nothing from the outage was stored
    expect(await sub.request("received", { messageId })).toEqual({ ok: true, removed: 1 });
    expect(hub.alive()).toBe(true);
    expect(hub.stderr()).not.toMatch(/error/i);
  });
});
