// The CAPS lab's own clients (PROTOCOL.md, "Lab clients"), rule by rule, over real sockets: what a
// classroom connection (no auth, open mode) may send and what it gets, and that none of it applies to
// identified connections. The lab's own programs run end to end in lab-clients.test.ts.
import { createRequire } from "node:module";
import { createLogger } from "../src/log.js";
import type { HubErrorEvent, Message } from "../src/protocol.js";
import { signToken } from "../src/token.js";
import { settle, startHub, TestClient, type TestContext, waitUntil } from "./support/hub.js";

const require = createRequire(import.meta.url);

/** The part of socket.io-client 2.x these tests use. */
interface V2Socket {
  on(event: string, listener: (...args: unknown[]) => void): void;
  emit(event: string, ...args: unknown[]): void;
  close(): void;
}
const ioV2 = require("socket.io-client-v2") as (url: string, options: object) => V2Socket;

let ctx: TestContext;
const v2Sockets: V2Socket[] = [];
afterEach(async () => {
  for (const socket of v2Sockets.splice(0)) socket.close();
  await ctx?.close();
});

/** A socket.io-client 2.x connection (Engine.IO v3); resolves once connected, rejects on refusal. */
function connectV2(url: string): Promise<{ socket: V2Socket; messages: Message[] }> {
  const socket = ioV2(url, { transports: ["websocket"], reconnection: false, forceNew: true });
  v2Sockets.push(socket);
  const messages: Message[] = [];
  socket.on("delivered", (m) => messages.push(m as Message));
  return new Promise((resolve, reject) => {
    socket.on("connect", () => resolve({ socket, messages }));
    socket.on("connect_error", (err) => reject(err));
    socket.on("error", (err) => reject(err));
  });
}

/** Polls an async check until it holds. */
async function waitFor(check: () => Promise<boolean>, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await settle(10);
  }
}

const subscriptions = async (ns?: string) => (await ctx.hub.store.subscriptions({ limit: 100 }, ns)).items;

const refused = (code: string) => ({ ok: false, error: { code, message: expect.any(String) } });

async function connections(url: string) {
  const health = (await (await fetch(`${url}/healthz`)).json()) as { connections: number };
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const gauge = /^queuehub_connections (\d+)$/m.exec(metrics)?.[1];
  const clients = (await (await fetch(`${url}/clients`)).json()) as { clients: unknown[] };
  return { health: health.connections, gauge: Number(gauge), clients: clients.clients };
}

describe("socket.io-client 2.x (Engine.IO v3)", () => {
  test("connects in open mode, consumes, and counts once although it is also on / implicitly", async () => {
    ctx = await startHub();
    const { socket, messages } = await connectV2(`${ctx.url}/caps`);
    socket.emit("getAll", { clientId: "acme", event: "delivered" });
    const driver = await ctx.client("/caps", { clientId: "driver" });
    await waitFor(async () => (await ctx.hub.clients("/caps")).clients.length === 2);
    expect(await connections(ctx.url)).toEqual({
      health: 2,
      gauge: 2,
      clients: expect.arrayContaining([expect.objectContaining({ ns: "/caps", clientId: "acme" })]),
    });
    expect(
      await driver.request("publish", { event: "delivered", payload: { order: 1 }, to: "acme" }),
    ).toMatchObject({ ok: true });
    await waitUntil(() => messages.length === 1);
    expect(messages[0]).toMatchObject({ event: "delivered", payload: { order: 1 }, from: "driver" });
    // A 2.x client on / alone is one connection too.
    await connectV2(ctx.url);
    expect(await connections(ctx.url)).toMatchObject({ health: 3, gauge: 3 });
  });

  test("is refused when HUB_ALLOW_EIO3 is off, and with a secret (it cannot send auth)", async () => {
    /** Status of an Engine.IO v3 handshake: 200 accepted, 400 "Unsupported protocol version". */
    const v3Handshake = async () => (await fetch(`${ctx.url}/socket.io/?EIO=3&transport=polling`)).status;
    ctx = await startHub();
    expect(await v3Handshake()).toBe(200);
    await ctx.close();
    ctx = await startHub({ allowEio3: false });
    expect(await v3Handshake()).toBe(400);
    await expect(connectV2(`${ctx.url}/caps`)).rejects.toBeDefined();
    await ctx.close();
    ctx = await startHub({ secret: "s3cret-for-tests" });
    expect(await v3Handshake()).toBe(400);
    await expect(connectV2(`${ctx.url}/caps`)).rejects.toBeDefined();
  });
});

describe("the lab's spellings, on classroom connections", () => {
  test("clientID, queueId, eventName and messageID in queue operations", async () => {
    ctx = await startHub();
    const vendor = await ctx.client("/caps");
    expect(await vendor.request("subscribe", { eventName: "delivered", clientID: "acme" })).toEqual({
      ok: true,
      events: ["delivered"],
    });
    const driver = await ctx.client("/caps");
    expect(await driver.request("subscribe", { event: "pickup", queueId: "driver" })).toEqual({
      ok: true,
      events: ["pickup"],
    });
    await driver.request("publish", { event: "delivered", payload: { order: 1 }, to: "acme" });
    const [delivered] = await vendor.received(1);
    expect(
      await vendor.request("received", {
        messageID: delivered?.messageId,
        event: "delivered",
        clientID: "acme",
      }),
    ).toEqual({ ok: true, removed: 1 });
    expect(await vendor.request("unsubscribe", { eventName: "delivered", queueId: "acme" })).toEqual({
      ok: true,
    });
    expect((await subscriptions()).map((s) => [s.clientId, s.event])).toEqual([["driver", "pickup"]]);
    // Two spellings that disagree are refused.
    expect(await vendor.request("subscribe", { event: "a", eventName: "b" })).toEqual(
      refused("INVALID_ARGUMENT"),
    );
  });

  test("the protocol's own event names in any letter case", async () => {
    ctx = await startHub();
    const vendor = await ctx.client("/caps");
    expect(await vendor.request("Join", "acme")).toEqual({ ok: true });
    expect(await vendor.request("SUBSCRIBE", { event: "delivered" })).toEqual({
      ok: true,
      events: ["delivered"],
    });
    const driver = await ctx.client("/caps", { clientId: "driver" });
    await driver.request("publish", { event: "delivered", payload: 1, to: "acme" });
    const [m] = await vendor.received(1);
    expect(await vendor.request("getall", {})).toEqual({ ok: true, count: 1 });
    expect(await vendor.request("GetAll", {})).toEqual({ ok: true, count: 1 });
    expect(await vendor.request("Received", { messageId: m?.messageId })).toEqual({ ok: true, removed: 1 });
    // Nothing was published under those names.
    expect((await ctx.hub.store.stats({ limit: 10 })).items.length).toBe(0);
  });

  test("getAll's lab forms; naming an event also subscribes durably", async () => {
    ctx = await startHub();
    const pub = await ctx.client("/caps", { clientId: "pub" });
    const a = await ctx.client("/caps");
    expect(await a.request("getAll", { clientID: "a", payload: "x" })).toEqual({ ok: true, count: 0 });
    expect(await a.request("getall", "y")).toEqual({ ok: true, count: 0 });
    const b = await ctx.client("/caps");
    expect(await b.request("getAll", { clientId: "b", eventName: "x" })).toEqual({ ok: true, count: 0 });
    const subs = await subscriptions("/caps");
    expect(subs.map((s) => `${s.clientId}:${s.event}`).sort()).toEqual(["a:x", "a:y", "b:x"]);
    a.close();
    await pub.request("publish", [
      { event: "x", payload: 1 },
      { event: "y", payload: 2 },
    ]);
    // { queueId } alone: every event that client subscribes to.
    const back = await ctx.client("/caps");
    expect(await back.request("getAll", { queueId: "a" })).toEqual({ ok: true, count: 2 });
    await back.received(2);
    expect(back.payloads()).toEqual([1, 2]);
  });

  test("an envelope publishes its payload and names the connection; a payload's fields are never identity", async () => {
    ctx = await startHub();
    const driver = await ctx.client("/caps", { clientId: "driver" });
    await driver.request("subscribe", { event: "pickup" });
    const api = await ctx.client("/caps");
    // Not an envelope: a payload that carries its recipient's queueId is published as it is, unnamed.
    expect(await api.request("pickup", { queueId: "driver", orderId: "o-1" })).toMatchObject({ ok: true });
    const vendor = await ctx.client("/caps");
    expect(await vendor.request("pickup", { clientID: "acme", payload: { orderId: "o-2" } })).toMatchObject({
      ok: true,
    });
    expect(
      await vendor.request("publish", { eventName: "pickup", clientID: "acme", payload: "o-3" }),
    ).toMatchObject({
      ok: true,
    });
    await driver.received(3);
    expect(driver.messages.map((m) => [m.payload, m.from])).toEqual([
      [{ queueId: "driver", orderId: "o-1" }, null],
      [{ orderId: "o-2" }, "acme"],
      ["o-3", "acme"],
    ]);
    // The envelope named the vendor; the payload named nobody.
    expect(await vendor.request("pickup", { clientID: "other", payload: 1 })).toEqual(
      refused("IDENTITY_MISMATCH"),
    );
    expect(await api.request("subscribe", { event: "delivered" })).toEqual(refused("IDENTITY_REQUIRED"));
    expect(await vendor.request("pickup", { event: "delivered", payload: 1 })).toEqual(
      refused("INVALID_ARGUMENT"),
    );
  });

  test("received takes the delivered message sent back as it came", async () => {
    ctx = await startHub();
    const sub = await ctx.client("/caps");
    await sub.request("subscribe", { event: "e", clientID: "sub" });
    const pub = await ctx.client("/caps", { clientId: "pub" });
    await pub.request("e", { clientId: "not read", n: 1 });
    const [m] = await sub.received(1);
    expect(await sub.request("received", m)).toEqual({ ok: true, removed: 1 });
  });
});

describe("classroom connections: names, consumers, deliveries", () => {
  test("a connection takes over its client's deliveries only when it consumes", async () => {
    ctx = await startHub();
    const vendor = await ctx.client("/caps");
    await vendor.request("subscribe", { event: "delivered", clientID: "acme" });
    // The lab's API joins the store's room and publishes: it is named acme, but takes nothing over.
    const api = await ctx.client("/caps");
    expect(await api.request("join", "acme")).toEqual({ ok: true });
    expect(await api.request("pickup", { store: "acme", orderId: "o-1" })).toMatchObject({ ok: true });
    const driver = await ctx.client("/caps", { clientId: "driver" });
    await driver.request("publish", { event: "delivered", payload: "d-1", to: "acme" });
    await vendor.received(1);
    // Once it consumes (getAll), it is the newest consumer and takes over.
    expect(await api.request("getAll", {})).toEqual({ ok: true, count: 1 });
    await api.received(1);
    expect(api.messages[0]).toMatchObject({ payload: "d-1", deliveries: 2 });
    await driver.request("publish", { event: "delivered", payload: "d-2", to: "acme" });
    await api.received(2);
    await settle();
    expect(vendor.payloads()).toEqual(["d-1"]);
  });

  test("join on a classroom connection joins only a live Socket.IO room, which carries no deliveries", async () => {
    ctx = await startHub();
    const victim = await ctx.client("/caps", { clientId: "victim" });
    await victim.request("subscribe", { event: "secret" });
    const api = await ctx.client("/caps");
    expect(await api.request("join", "victim")).toEqual({ ok: true });
    expect(await api.request("join", "another-store")).toEqual({ ok: true });
    const inRoom = await ctx.hub.io.of("/caps").in("another-store").fetchSockets();
    expect(inRoom.map((s) => s.data.clientId)).toEqual(["victim"]);
    const pub = await ctx.client("/caps", { clientId: "pub" });
    await pub.request("secret", "s");
    await victim.received(1);
    await settle();
    expect(api.messages).toEqual([]);
  });

  test("a classroom connection keeps its first identity until it disconnects", async () => {
    ctx = await startHub();
    const c = await ctx.client("/caps");
    expect(await c.request("join", "acme")).toEqual({ ok: true });
    for (const [event, arg] of [
      ["subscribe", { event: "e", clientID: "other" }],
      ["getAll", { queueId: "other" }],
      ["received", { messageID: "x", clientId: "other" }],
      ["publish", { event: "e", payload: 1, clientID: "other" }],
      ["e", { queueId: "other", payload: 1 }],
    ] as const) {
      expect([event, await c.request(event, arg)]).toEqual([event, refused("IDENTITY_MISMATCH")]);
    }
    c.close();
    const again = await ctx.client("/caps");
    expect(await again.request("subscribe", { event: "e", clientID: "other" })).toMatchObject({ ok: true });
  });

  test("deliveries carry messageID beside messageId, and the payload as published", async () => {
    ctx = await startHub();
    const lab = await ctx.client("/caps");
    await lab.request("subscribe", { event: "e", clientID: "lab" });
    const identified = await ctx.client("/caps", { clientId: "identified" });
    await identified.request("subscribe", { event: "e" });
    const pub = await ctx.client("/caps");
    await pub.request("e", { clientID: "vendor", payload: { order: 1 } });
    const [m] = await lab.received(1);
    expect(m).toEqual({
      messageId: expect.any(String),
      messageID: m?.messageId,
      event: "e",
      payload: { order: 1 },
      publishedAt: expect.any(Number),
      from: "vendor",
      deliveries: 1,
    });
    const [n] = await identified.received(1);
    expect(n).not.toHaveProperty("messageID");
    expect(n?.payload).toEqual({ order: 1 });
  });

  test("unnamed publishers share one idempotency-key scope and rate bucket per remote address", async () => {
    // Listening on every address, the hub sees two remote addresses: 127.0.0.1 and ::1 (an open
    // hub listens beyond loopback only when told it may).
    ctx = await startHub({ host: "::", insecure: true, rateLimit: 2 });
    const v6 = (ns: string) => new TestClient(ctx.url.replace("127.0.0.1", "[::1]"), ns, null);
    const first = await ctx.client("/caps");
    const second = await ctx.client("/caps");
    const other = v6("/caps");
    await other.connected;
    try {
      const a = await first.request("publish", { event: "e", payload: 1, key: "k" });
      expect(await second.request("publish", { event: "e", payload: 2, key: "k" })).toEqual(a);
      const b = await other.request("publish", { event: "e", payload: 3, key: "k" });
      expect(b).toMatchObject({ ok: true });
      expect(b.messageId).not.toBe(a.messageId);
      // 127.0.0.1 has used its two publishes a second; ::1 has one left.
      expect(await second.request("e", 4)).toEqual(refused("RATE_LIMITED"));
      expect(await other.request("e", 5)).toMatchObject({ ok: true });
    } finally {
      other.close();
    }
  });

  test("unnamed publishers share one rate bucket per remote address", async () => {
    ctx = await startHub({ rateLimit: 3 });
    const first = await ctx.client("/caps");
    const second = await ctx.client("/caps");
    const replies = [
      await first.request("e", 1),
      await second.request("e", 2),
      await first.request("e", 3),
      await second.request("e", 4),
    ];
    expect(replies.map((r) => r.ok)).toEqual([true, true, true, false]);
    expect(replies[3]).toEqual(refused("RATE_LIMITED"));
    // A named publisher has a bucket of its own.
    const named = await ctx.client("/caps");
    expect(await named.request("e", { clientID: "vendor", payload: 5 })).toMatchObject({ ok: true });
  });
});

describe("routing by payload (HUB_ROUTE_FIELD)", () => {
  /** Two stores subscribed to `delivered`, and a driver to `pickup`; identified connections. */
  async function stores(overrides: Parameters<typeof startHub>[0] = {}) {
    ctx = await startHub(overrides);
    const auth = async (clientId: string) =>
      overrides.secret ? { clientId, token: await signToken(overrides.secret, clientId) } : { clientId };
    const acme = await ctx.client("/caps", await auth("acme"));
    const flowers = await ctx.client("/caps", await auth("flowers"));
    const driver = await ctx.client("/caps", await auth("driver"));
    await acme.request("subscribe", { event: "delivered" });
    await flowers.request("subscribe", { event: "delivered" });
    await driver.request("subscribe", { event: "pickup" });
    return { acme, flowers, driver };
  }
  const httpPublish = async (event: string, payload: unknown, token?: string) =>
    (
      await fetch(`${ctx.url}/publish/caps/${event}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify(payload),
      })
    ).json();

  test("a classroom or HTTP publish naming a subscribed client goes to that client only", async () => {
    const { acme, flowers, driver } = await stores();
    const lab = await ctx.client("/caps");
    await lab.request("delivered", { store: "acme", order: 1 });
    expect(await httpPublish("delivered", { store: "flowers", order: 2 })).toMatchObject({ ok: true });
    // No store subscribes to pickup: it fans out to every driver.
    await lab.request("pickup", { store: "acme", order: 3 });
    await acme.received(1);
    await flowers.received(1);
    await driver.received(1);
    await settle();
    expect([acme.payloads(), flowers.payloads(), driver.payloads()]).toEqual([
      [{ store: "acme", order: 1 }],
      [{ store: "flowers", order: 2 }],
      [{ store: "acme", order: 3 }],
    ]);
  });

  test("otherwise it fans out: the publisher itself, no such subscriber, not a name, `to`", async () => {
    const { acme, flowers } = await stores();
    const self = await ctx.client("/caps");
    await self.request("delivered", { clientID: "acme", payload: { store: "acme", n: 1 } });
    const lab = await ctx.client("/caps");
    await lab.request("delivered", { store: "nobody", n: 2 });
    await lab.request("delivered", { store: 42, n: 3 });
    await lab.request("delivered", { store: "not/a name", n: 4 });
    await lab.request("delivered", ["store", "acme"]);
    await lab.request("publish", { event: "delivered", payload: { store: "acme", n: 5 }, to: "flowers" });
    await flowers.received(6);
    // acme published the first one itself: skipped, as in any fan-out.
    await acme.received(4);
    await settle();
    expect(flowers.payloads().map((p) => (Array.isArray(p) ? "array" : (p as { n: number }).n))).toEqual([
      1,
      2,
      3,
      4,
      "array",
      5,
    ]);
    expect(acme.messages).toHaveLength(4);
  });

  test("identified publishers are never routed; nor is anyone with a secret, or with routing off", async () => {
    let { acme, flowers, driver } = await stores();
    await driver.request("delivered", { store: "acme", n: 1 });
    await acme.received(1);
    await flowers.received(1);
    await ctx.close();

    ({ acme, flowers } = await stores({ routeField: null }));
    await (await ctx.client("/caps")).request("delivered", { store: "acme", n: 2 });
    await acme.received(1);
    await flowers.received(1);
    await ctx.close();

    const secret = "s3cret-for-tests";
    ({ acme, flowers } = await stores({ secret }));
    expect(
      await httpPublish("delivered", { store: "acme", n: 3 }, await signToken(secret, "api")),
    ).toMatchObject({
      ok: true,
    });
    await acme.received(1);
    await flowers.received(1);
  });

  test("HUB_ROUTE_FIELD names the field", async () => {
    const { acme, flowers } = await stores({ routeField: "shop" });
    const lab = await ctx.client("/caps");
    await lab.request("delivered", { store: "flowers", shop: "acme", n: 1 });
    await acme.received(1);
    await settle();
    expect(flowers.messages).toEqual([]);
  });
});

describe("hub:error", () => {
  test("a refused request without an ack callback gets hub:error, on any connection, and a log line", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger("info", (line) => lines.push(JSON.parse(line)));
    ctx = await startHub({ logger });
    const lab = await ctx.client("/caps");
    lab.socket.emit("subscribe", { event: "e" });
    const identified = await ctx.client("/caps", { clientId: "c" });
    identified.socket.emit("publish", { event: "e", surprise: true });
    await waitUntil(() => lab.errors.length === 1 && identified.errors.length === 1);
    expect(lab.errors).toEqual<HubErrorEvent[]>([
      {
        event: "subscribe",
        code: "IDENTITY_REQUIRED",
        message: expect.stringContaining("name this connection"),
      },
    ]);
    expect(identified.errors).toEqual([
      { event: "publish", code: "INVALID_ARGUMENT", message: expect.any(String) },
    ]);
    // With an ack callback the reply says it; no hub:error.
    expect(await identified.request("publish", { event: "e", surprise: true })).toEqual(
      refused("INVALID_ARGUMENT"),
    );
    await settle();
    expect(identified.errors).toHaveLength(1);
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: "request refused",
        ns: "/caps",
        event: "subscribe",
        code: "IDENTITY_REQUIRED",
        reason: expect.stringContaining("name this connection"),
      }),
    );
  });

  test("a flood of refusals is logged a few times, each one still answered", async () => {
    const lines: Record<string, unknown>[] = [];
    ctx = await startHub({ logger: createLogger("info", (line) => lines.push(JSON.parse(line))) });
    const lab = await ctx.client("/caps");
    for (let i = 0; i < 50; i++) lab.socket.emit("subscribe", { event: i });
    await waitUntil(() => lab.errors.length === 50);
    const logged = lines.filter((l) => l.msg === "request refused");
    expect(logged.length).toBeGreaterThanOrEqual(10);
    expect(logged.length).toBeLessThan(15);
  });
});

describe("identified connections keep the protocol's exact rules", () => {
  test("no lab spellings, no any-case names, no envelopes, no messageID", async () => {
    ctx = await startHub();
    const sub = await ctx.client("/caps", { clientId: "sub" });
    await sub.request("subscribe", { event: ["pickup", "getall"] });
    const c = await ctx.client("/caps", { clientId: "c" });
    expect(await c.request("subscribe", { event: "e", clientId: "other" })).toEqual(
      refused("IDENTITY_MISMATCH"),
    );
    expect(await c.request("publish", { event: "e", payload: 1, clientID: "c" })).toEqual(
      refused("INVALID_ARGUMENT"),
    );
    expect(await c.request("publish", { eventName: "e", payload: 1 })).toEqual(refused("INVALID_ARGUMENT"));
    expect(await c.request("getAll", "pickup")).toEqual(refused("INVALID_ARGUMENT"));
    expect(await c.request("subscribe", { eventName: "e" })).toEqual(refused("INVALID_ARGUMENT"));
    // `getall` is an ordinary event name here, and an envelope an ordinary payload.
    expect(await c.request("getall", { n: 1 })).toMatchObject({ ok: true, messageId: expect.any(String) });
    expect(await c.request("pickup", { clientID: "c", payload: 2 })).toMatchObject({ ok: true });
    await sub.received(2);
    expect(sub.messages.map((m) => [m.event, m.payload])).toEqual([
      ["getall", { n: 1 }],
      ["pickup", { clientID: "c", payload: 2 }],
    ]);
    expect(sub.messages[0]).not.toHaveProperty("messageID");
    // getAll { event } does not subscribe.
    expect(await c.request("getAll", { event: "x" })).toEqual({ ok: true, count: 0 });
    expect((await subscriptions()).filter((s) => s.clientId === "c")).toEqual([]);
  });
});
