// HubClient against a live hub: socket.io-client's options, on/off/once for deliveries and the
// connection's events, acks only after every handler resolved, redeliveries of handled ids
// dropped, deliveries parked until a handler exists, and tokens refreshed through a callback.
import { HubClient, type HubClientOptions, HubError } from "../src/clients/hub-client.js";
import type { HubSocket } from "../src/connection.js";
import type { Message } from "../src/protocol.js";
import { signToken } from "../src/token.js";
import { settle, startHub, type TestContext, waitUntil } from "./support/hub.js";

let ctx: TestContext;
const clients: HubClient[] = [];
const client = (clientId: string, options: Partial<HubClientOptions> = {}, hub = ctx) => {
  const c = new HubClient({ url: hub.url, namespace: "/caps", clientId, ...options });
  clients.push(c);
  return c;
};
/** The hub's side of a client's connection. */
const hubSocketOf = (c: HubClient, hub = ctx): HubSocket => {
  const socket = hub.hub.io.of("/caps").sockets.get(c.socket.id ?? "");
  if (!socket) throw new Error(`no hub socket for ${c.options.clientId}`);
  return socket as unknown as HubSocket;
};
const pending = (clientId: string, hub = ctx) => hub.hub.store.pending("/caps", clientId, Date.now());
/** Polls until the client's queue holds `n` entries (acks are batched, so they land a moment later). */
const untilPending = async (clientId: string, n: number, hub = ctx) => {
  let now = -1;
  for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
    now = await pending(clientId, hub);
    if (now === n) return;
    await settle(10);
  }
  expect(now).toBe(n);
};

beforeAll(async () => {
  ctx = await startHub();
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

afterAll(async () => {
  await ctx.close();
});

test("messages parked before subscribe([a, b]) are handled in arrival order, across events", async () => {
  const driver = client("driver");
  await driver.connect();
  const sent = ["in-transit", "delivered", "in-transit", "delivered", "in-transit", "delivered"];
  for (const [i, event] of sent.entries()) await driver.publish(event, { n: i }, { to: "vendor" });

  const vendor = client("vendor");
  let arrived = 0;
  vendor.socket.on("deliveries", (messages) => {
    arrived += messages.length;
  });
  await vendor.connect();
  // Everything has arrived before any handler exists: it is all parked.
  await waitUntil(
    () => arrived === sent.length,
    3000,
    () => `${arrived} of ${sent.length} arrived`,
  );

  const handled: string[] = [];
  await vendor.subscribe(["delivered", "in-transit"], (payload, message) => {
    handled.push(`${message.event} ${(payload as { n: number }).n}`);
  });
  await waitUntil(
    () => handled.length === sent.length,
    3000,
    () => handled.join(", "),
  );
  expect(handled).toEqual(sent.map((event, i) => `${event} ${i}`));
  // And each was acked after its handler: nothing stays pending.
  await untilPending("vendor", 0);
});

test("socket.io-client's options: default transports (polling, then the upgrade), query, path, auth object", async () => {
  const c = client("opts", { query: { app: "shop" }, auth: { locale: "fr", clientId: "not-this" } });
  const transports: string[] = [];
  c.socket.io.once("open", () => {
    const { engine } = c.socket.io;
    transports.push(engine.transport.name);
    engine.once("upgrade", (transport) => transports.push(transport.name));
  });
  await c.connect();
  await waitUntil(
    () => transports.length === 2,
    5000,
    () => transports.join(),
  );
  expect(transports).toEqual(["polling", "websocket"]);
  const { handshake } = hubSocketOf(c);
  expect(handshake.query.app).toBe("shop");
  // The caller's fields travel; the hub's own (clientId, batch) are the client's.
  expect(handshake.auth).toMatchObject({ locale: "fr", clientId: "opts", batch: true });

  const ws = client("opts-ws", { transports: ["websocket"], path: "/socket.io/" });
  await ws.connect();
  expect(ws.socket.io.engine.transport.name).toBe("websocket");
  const wrongPath = client("opts-path", { path: "/elsewhere", reconnection: false });
  const failed = new Promise<string>((resolve) =>
    wrongPath.once("connect_error", (err) => resolve(err.message)),
  );
  void wrongPath.connect().catch(() => {});
  expect(await failed).toMatch(/xhr poll error|websocket error/);
});

test("close() ends the requests still waiting for a reply (their timers would keep Node running)", async () => {
  const c = client("closing", { replyTimeoutMs: 120_000 });
  await c.connect();
  const publishing = c.publish("job", 1, { to: "nobody" });
  c.close();
  const err = await publishing.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(HubError);
  expect((err as HubError).code).toBe("CLOSED");
});

test("socket.io-client's auth callback supplies further handshake fields", async () => {
  let asked = 0;
  const c = client("auth-cb", {
    auth: (cb) => {
      asked++;
      cb({ device: `tab-${asked}` });
    },
  });
  await c.connect();
  expect(hubSocketOf(c).handshake.auth).toMatchObject({ device: "tab-1", clientId: "auth-cb" });
});

test("on, once and off for deliveries: every handler runs, the ack waits for all of them", async () => {
  const sender = client("sender");
  const receiver = client("receiver");
  await Promise.all([sender.connect(), receiver.connect()]);
  const seen: string[] = [];
  let release: () => void = () => {};
  const slow = (payload: unknown) =>
    new Promise<void>((resolve) => {
      seen.push(`slow ${payload}`);
      release = resolve;
    });
  const fast = (payload: unknown) => {
    seen.push(`fast ${payload}`);
  };
  const first = (payload: unknown) => {
    seen.push(`once ${payload}`);
  };
  receiver.on("note", slow).on("note", fast).once("note", first);

  await sender.publish("note", 1, { to: "receiver" });
  await waitUntil(
    () => seen.length === 3,
    3000,
    () => seen.join(),
  );
  expect(seen).toEqual(["slow 1", "fast 1", "once 1"]);
  // One handler has not resolved: the message is not acked.
  await settle(100);
  expect(await pending("receiver")).toBe(1);
  release();
  await untilPending("receiver", 0);

  // `once` ran once; `off` removes one handler, or all of an event's.
  receiver.off("note", slow);
  await sender.publish("note", 2, { to: "receiver" });
  await waitUntil(
    () => seen.length === 4,
    3000,
    () => seen.join(),
  );
  expect(seen.at(-1)).toBe("fast 2");
  receiver.off("note");
  await sender.publish("note", 3, { to: "receiver" });
  await settle(150);
  expect(seen).toHaveLength(4);
  // With no handler left, the message waits (parked, unacked) for the next one.
  expect(await pending("receiver")).toBe(1);
  receiver.on("note", fast);
  await waitUntil(
    () => seen.length === 5,
    3000,
    () => seen.join(),
  );
  expect(seen.at(-1)).toBe("fast 3");
  await untilPending("receiver", 0);
});

test("the same handler given twice (on, then subscribe on every reconnect) runs once per message", async () => {
  const sender = client("twice-src");
  const receiver = client("twice");
  await Promise.all([sender.connect(), receiver.connect()]);
  const seen: unknown[] = [];
  const handler = (payload: unknown) => {
    seen.push(payload);
  };
  receiver.on("job", handler);
  await receiver.subscribe("job", handler);
  await receiver.subscribe(["job"], handler);
  await sender.publish("job", 1, { to: "twice" });
  await waitUntil(() => seen.length >= 1, 3000);
  await settle(100);
  expect(seen).toEqual([1]);
});

test("a handler that throws leaves its message unacked; it comes again", async () => {
  const hub = await startHub({ ackTimeoutMs: 200 });
  try {
    const sender = client("thrower-src", {}, hub);
    const failing = client("thrower", {}, hub);
    const errors: string[] = [];
    let calls = 0;
    failing.on("error", (err) => errors.push(err.message));
    failing.on("job", () => {
      calls++;
      if (calls === 1) throw new Error("first try fails");
    });
    await Promise.all([sender.connect(), failing.connect()]);
    await sender.publish("job", "j", { to: "thrower" });
    await waitUntil(() => calls === 1, 3000);
    await settle(50);
    expect(await pending("thrower", hub)).toBe(1);
    // Redelivered after the ack timeout, handled, acked.
    await waitUntil(
      () => calls === 2,
      5000,
      () => `${calls} calls`,
    );
    await untilPending("thrower", 0, hub);
    expect(errors).toEqual(["first try fails"]);
  } finally {
    for (const c of clients.splice(0)) c.close();
    await hub.close();
  }
});

test("a redelivery of a message already handled is acked again, not handled twice", async () => {
  const sender = client("redo-src");
  const receiver = client("redo");
  const arrived: Message[] = [];
  receiver.socket.on("deliveries", (messages) => arrived.push(...messages));
  await Promise.all([sender.connect(), receiver.connect()]);
  const handled: unknown[] = [];
  receiver.on("job", (payload) => {
    handled.push(payload);
  });
  await sender.publish("job", "once", { to: "redo" });
  await waitUntil(() => handled.length === 1, 3000);
  await untilPending("redo", 0);
  // The hub sends it again (as after an ack lost with a connection): the client acks it again
  // and does not run the handler twice.
  const hubSide = hubSocketOf(receiver);
  const acks: unknown[] = [];
  hubSide.onAny((event: string, arg: unknown) => {
    if (event === "received") acks.push(arg);
  });
  const [message] = arrived;
  if (!message) throw new Error("no delivery seen");
  hubSide.emit("deliveries", [{ ...message, deliveries: 2 }]);
  await waitUntil(() => acks.length === 1, 3000);
  expect(acks).toEqual([{ messageIds: [message.messageId] }]);
  expect(handled).toEqual(["once"]);
});

test("on, once and off for the connection's events", async () => {
  const c = client("lifecycle");
  const events: string[] = [];
  const onConnect = () => events.push("connect");
  c.on("connect", onConnect)
    .once("connect", () => events.push("connect once"))
    .on("disconnect", (reason) => events.push(`disconnect ${reason}`));
  await c.connect();
  // Dropped once upgraded: a polling transport closed while a poll is pending keeps Engine.IO's
  // 30-second close timer alive after the test (jest then reports a worker that would not exit).
  const upgraded = () => hubSocketOf(c).conn.transport.name === "websocket";
  await waitUntil(upgraded, 5000, () => hubSocketOf(c).conn.transport.name);
  // The hub drops the transport: socket.io-client reconnects by itself.
  hubSocketOf(c).conn.close();
  await waitUntil(
    () => events.length === 4,
    5000,
    () => events.join(),
  );
  expect(events).toEqual(["connect", "connect once", "disconnect transport close", "connect"]);
  c.off("connect", onConnect);
  await waitUntil(upgraded, 5000, () => hubSocketOf(c).conn.transport.name);
  hubSocketOf(c).conn.close();
  await waitUntil(
    () => events.length === 5 && c.connected,
    5000,
    () => events.join(),
  );
  expect(events.at(-1)).toBe("disconnect transport close");
});

test("rooms: join, members, presence, a room publish reaches the others only, leave", async () => {
  const ada = client("room-ada");
  const grace = client("room-grace");
  const adaSaw: string[] = [];
  ada.on("presence", ({ room, clientId, online }) => adaSaw.push(`${room} ${clientId} ${online}`));
  const lines: { payload: unknown; room?: string; from: string | null }[] = [];
  const got = (payload: unknown, message: { room?: string; from: string | null }) => {
    lines.push({ payload, room: message.room, from: message.from });
  };
  ada.on("line", got);
  grace.on("line", got);
  await ada.connect();
  await ada.join("deck");
  await grace.connect();
  await grace.join("deck");
  await waitUntil(
    () => adaSaw.includes("deck room-grace true"),
    3000,
    () => adaSaw.join(),
  );
  expect(await ada.members("deck")).toEqual([
    { clientId: "room-ada", online: true },
    { clientId: "room-grace", online: true },
  ]);

  await ada.publish("line", "hello deck", { room: "deck" });
  await waitUntil(() => lines.length === 1, 3000);
  await settle(100);
  // Grace has it, with its room; Ada, who sent it, has no copy.
  expect(lines).toEqual([{ payload: "hello deck", room: "deck", from: "room-ada" }]);

  grace.close();
  await waitUntil(
    () => adaSaw.includes("deck room-grace false"),
    3000,
    () => adaSaw.join(),
  );
  await ada.leave("deck");
  await expect(ada.publish("line", "still here?", { room: "deck" })).rejects.toMatchObject({
    name: "HubError",
    code: "FORBIDDEN",
  });
});

test('hub:error reaches `on("hub:error")` for a request sent without a reply callback', async () => {
  const c = client("no-ack");
  const refusals: string[] = [];
  c.on("hub:error", (e) => refusals.push(`${e.event} ${e.code}`));
  await c.connect();
  c.socket.emit("publish", { event: "subscribe", payload: 1 });
  await waitUntil(() => refusals.length === 1, 3000);
  expect(refusals).toEqual(["publish INVALID_ARGUMENT"]);
});

describe("tokens from a callback", () => {
  const secret = "client-token-secret";
  let hub: TestContext;
  beforeAll(async () => {
    hub = await startHub({ secret });
  });
  afterAll(async () => {
    for (const c of clients.splice(0)) c.close();
    await hub.close();
  });

  test("a refused (expired) token is replaced through the callback, once", async () => {
    const tokens = [await signToken(secret, "tok", "-1s"), await signToken(secret, "tok", "1h")];
    let asked = 0;
    const c = client("tok", { token: () => tokens[asked++] ?? "" }, hub);
    const refusals: string[] = [];
    c.on("connect_error", (err) => refusals.push(err.message));
    await c.connect();
    expect({ asked, refusals }).toEqual({ asked: 2, refusals: ["unauthorized"] });
    expect(hubSocketOf(c, hub).handshake.auth.token).toBe(tokens[1]);

    // A callback that keeps giving bad tokens: the second refusal is final.
    const bad = client("tok", { token: () => "not a jwt" }, hub);
    await expect(bad.connect()).rejects.toMatchObject({ code: "CONNECT", message: "unauthorized" });
  });

  test("when the hub ends the connection for its token (hub:error UNAUTHORIZED), the client reconnects with a fresh one", async () => {
    let issued = 0;
    const c = client("renew", { token: () => signToken(secret, "renew", `${60 + issued++}s`) }, hub);
    const seen: string[] = [];
    c.on("hub:error", (e) => seen.push(`hub:error ${e.code}`)).on("disconnect", (reason) =>
      seen.push(`disconnect ${reason}`),
    );
    let delivered = 0;
    c.on("ping", () => {
      delivered++;
    });
    await c.connect();
    const first = hubSocketOf(c, hub);
    const firstToken = first.handshake.auth.token;
    // What the hub does when a token expires: says why, then ends the connection.
    first.emit("hub:error", { event: "connection", code: "UNAUTHORIZED", message: "token expired" });
    first.disconnect();
    await waitUntil(
      () => c.connected && issued === 2,
      5000,
      () => `${seen.join()}; issued ${issued}`,
    );
    expect(seen).toEqual(["hub:error UNAUTHORIZED", "disconnect io server disconnect"]);
    expect(hubSocketOf(c, hub).handshake.auth.token).not.toBe(firstToken);
    // And it works on the new connection.
    const other = client("renew-src", { token: () => signToken(secret, "renew-src", "1h") }, hub);
    await other.connect();
    await other.publish("ping", 1, { to: "renew" });
    await waitUntil(() => delivered === 1, 3000);

    // The hub's own expiry does the same: a 2-second token, then a fresh one from the callback.
    let renewed = 0;
    const short = client(
      "short",
      { token: () => signToken(secret, "short", renewed++ === 0 ? "2s" : "1h") },
      hub,
    );
    const shortSaw: string[] = [];
    short.on("hub:error", (e) => shortSaw.push(e.code));
    await short.connect();
    await waitUntil(
      () => renewed === 2 && short.connected,
      10_000,
      () => `${shortSaw.join()}; ${renewed}`,
    );
    expect(shortSaw).toEqual(["UNAUTHORIZED"]);

    // Without a token callback, the hub's goodbye is final, as in socket.io-client.
    const fixed = client("fixed", { token: await signToken(secret, "fixed", "1h") }, hub);
    await fixed.connect();
    const side = hubSocketOf(fixed, hub);
    side.emit("hub:error", { event: "connection", code: "UNAUTHORIZED", message: "token expired" });
    side.disconnect();
    await settle(300);
    expect(fixed.connected).toBe(false);
  });
});
