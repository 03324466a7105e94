// Bad input on every event gets a clear error with a contract code, changes nothing,
// and the hub keeps serving. Refused connections get the contract's connect_error.
import { signToken } from "../src/token.js";
import { connectError, settle, startHub, type TestContext } from "./support/hub.js";

let ctx: TestContext;
afterEach(async () => {
  await ctx?.close();
});

const BAD_INPUTS: [string, unknown[], string][] = [
  ["subscribe", [], "INVALID_ARGUMENT"],
  ["subscribe", ["pickup"], "INVALID_ARGUMENT"],
  ["subscribe", [{ event: 42 }], "INVALID_ARGUMENT"],
  ["subscribe", [{ event: "" }], "INVALID_ARGUMENT"],
  ["subscribe", [{ event: [] }], "INVALID_ARGUMENT"],
  ["subscribe", [{ event: "x".repeat(65) }], "INVALID_ARGUMENT"],
  ["subscribe", [{ event: "bad/name" }], "INVALID_ARGUMENT"],
  ["subscribe", [{ event: "subscribe" }], "INVALID_ARGUMENT"],
  ["subscribe", [{ event: "disconnect" }], "INVALID_ARGUMENT"],
  ["subscribe", [{ event: "ok", group: 7 }], "INVALID_ARGUMENT"],
  ["unsubscribe", [null], "INVALID_ARGUMENT"],
  ["unsubscribe", [{ event: ["ok", 1] }], "INVALID_ARGUMENT"],
  ["publish", [], "INVALID_ARGUMENT"],
  ["publish", ["pickup"], "INVALID_ARGUMENT"],
  ["publish", [{ payload: 1 }], "INVALID_ARGUMENT"],
  ["publish", [{ event: "getAll", payload: 1 }], "INVALID_ARGUMENT"],
  ["publish", [{ event: "bad/name", payload: 1 }], "INVALID_ARGUMENT"],
  ["publish", [{ event: "x".repeat(65), payload: 1 }], "INVALID_ARGUMENT"],
  ["publish", [{ event: ["ok"], payload: 1 }], "INVALID_ARGUMENT"],
  ["publish", [{ event: "ok", to: 5 }], "INVALID_ARGUMENT"],
  ["publish", [{ event: "ok", to: ["fine", "not/fine"] }], "INVALID_ARGUMENT"],
  ["publish", [{ event: "ok", key: "" }], "INVALID_ARGUMENT"],
  ["publish", [{ event: "ok", echo: "yes" }], "INVALID_ARGUMENT"],
  ["publish", [{ event: "ok", ttl: -1 }], "INVALID_ARGUMENT"],
  ["publish", [{ event: "ok", surprise: true }], "INVALID_ARGUMENT"],
  ["publish", [[]], "INVALID_ARGUMENT"],
  ["publish", [[{ event: "ok" }, { event: 3 }]], "INVALID_ARGUMENT"],
  ["publish", [[{ event: "ok", key: "a" }, { event: "ok" }]], "INVALID_ARGUMENT"],
  ["publish", [Array.from({ length: 6 }, () => ({ event: "ok" }))], "BATCH_TOO_LARGE"],
  ["publish", [{ event: "ok", payload: "x".repeat(2000) }], "PAYLOAD_TOO_LARGE"],
  ["received", [], "INVALID_ARGUMENT"],
  ["received", [{}], "INVALID_ARGUMENT"],
  ["received", [{ messageId: 12 }], "INVALID_ARGUMENT"],
  ["received", [{ messageIds: "abc" }], "INVALID_ARGUMENT"],
  ["received", [{ messageIds: [1, 2] }], "INVALID_ARGUMENT"],
  ["getAll", [{ event: 5 }], "INVALID_ARGUMENT"],
  ["getAll", ["everything"], "INVALID_ARGUMENT"],
  ["join", [], "INVALID_ARGUMENT"],
  ["join", [{ room: "x" }], "INVALID_ARGUMENT"],
  ["join", ["x".repeat(200)], "INVALID_ARGUMENT"],
  ["join", ["a/b"], "INVALID_ARGUMENT"],
  ["leave", [], "INVALID_ARGUMENT"],
  ["leave", [42], "INVALID_ARGUMENT"],
  ["members", [], "INVALID_ARGUMENT"],
  ["members", [{}], "INVALID_ARGUMENT"],
  ["members", [{ room: "a/b" }], "INVALID_ARGUMENT"],
  ["members", [{ room: "r", limit: 0 }], "INVALID_ARGUMENT"],
  ["members", [{ room: "r", limit: 1001 }], "INVALID_ARGUMENT"],
  ["members", [{ room: "r", cursor: "" }], "INVALID_ARGUMENT"],
  ["members", [{ room: "r", surprise: 1 }], "INVALID_ARGUMENT"],
  ["members", [{ room: "r" }], "FORBIDDEN"],
  ["publish", [{ event: "ok", room: "bad/room" }], "INVALID_ARGUMENT"],
  ["publish", [{ event: "ok", room: 7 }], "INVALID_ARGUMENT"],
  ["publish", [{ event: "ok", to: "a", room: "r" }], "INVALID_ARGUMENT"],
  ["publish", [[{ event: "ok" }, { event: "ok", to: ["a"], room: "r" }]], "INVALID_ARGUMENT"],
  ["publish", [{ event: "ok", room: "r" }], "FORBIDDEN"],
];

const CASES = BAD_INPUTS.map(
  ([event, args, code]) => [event, JSON.stringify(args).slice(0, 60), code, args] as const,
);

/** What a wrongly accepted request would change: subscriptions, queues, rooms. */
const storeState = async (hub: TestContext["hub"]) => ({
  subscriptions: (await hub.store.subscriptions({ limit: 100 })).items,
  queues: (await hub.store.stats({ limit: 100 })).items,
  rooms: (await hub.store.rooms("/caps", { limit: 100 })).items,
});

/**
 * Everyone a wrongly accepted request of the cases could reach: a subscriber of the events they
 * publish, the clients they address, and a member of the room they name.
 */
async function bystanders(hub: TestContext) {
  const subscriber = await hub.client("/caps", { clientId: "sub" });
  await subscriber.request("subscribe", { event: ["ok", "pickup"] });
  const member = await hub.client("/caps", { clientId: "member" });
  await member.request("join", "r");
  const a = await hub.client("/caps", { clientId: "a" });
  const fine = await hub.client("/caps", { clientId: "fine" });
  return { subscriber, member, a, fine, all: [subscriber, member, a, fine] };
}

test.each(CASES)("%s %s is refused with %s", async (event, _shown, code, args) => {
  ctx = await startHub({ maxBatch: 5, maxPayloadBytes: 1000 });
  const others = await bystanders(ctx);
  const before = await storeState(ctx.hub);
  const client = await ctx.client("/caps", { clientId: "c" });
  const reply = await client.request(event, ...args);
  expect(reply).toEqual({ ok: false, error: { code, message: expect.any(String) } });
  // The message names the request (and the item of a batch) once, then what is wrong.
  const { message } = (reply as { error: { message: string } }).error;
  expect(message).toMatch(new RegExp(`^${event}(\\[\\d+\\])?: \\S`));
  expect(message).not.toMatch(new RegExp(`^${event}(\\[\\d+\\])?: ${event}`));
  // Nothing changed: no subscription, nothing queued, no room joined, and nobody got anything.
  expect(await storeState(ctx.hub)).toEqual(before);
  await settle();
  for (const bystander of others.all) expect(bystander.messages).toEqual([]);
});

test("the bad-input cases' bystanders would see an accepted request", async () => {
  ctx = await startHub({ maxBatch: 5, maxPayloadBytes: 1000 });
  const others = await bystanders(ctx);
  const client = await ctx.client("/caps", { clientId: "c" });
  expect(await client.request("publish", { event: "ok", payload: "fan-out" })).toMatchObject({ ok: true });
  expect(await client.request("publish", { event: "x", payload: "to", to: ["a", "fine"] })).toMatchObject({
    ok: true,
  });
  expect(
    await others.member.request("publish", { event: "x", payload: "room", room: "r", echo: true }),
  ).toMatchObject({ ok: true });
  await others.subscriber.received(1);
  await others.a.received(1);
  await others.fine.received(1);
  await others.member.received(1);
});

test("error messages name the field", async () => {
  ctx = await startHub();
  const client = await ctx.client("/", { clientId: "c" });
  const reply = await client.request("publish", { event: "ok", to: 5 });
  expect(reply).toMatchObject({ ok: false, error: { message: expect.stringContaining("to") } });
});

test("after every kind of bad input the hub keeps serving", async () => {
  ctx = await startHub({ maxBatch: 5, maxPayloadBytes: 1000 });
  const bad = await ctx.client("/", { clientId: "bad" });
  const good = await ctx.client("/", { clientId: "good" });
  await good.request("subscribe", { event: "still" });
  for (const [event, args] of BAD_INPUTS) bad.socket.emit(event, ...args);
  bad.socket.emit("publish", { event: "ok" }, "two args", () => undefined);
  bad.socket.emit("received", undefined, undefined);
  bad.socket.emit("bad/event name", 1);
  expect(await bad.request("bad/event name", 1)).toMatchObject({
    ok: false,
    error: { code: "INVALID_ARGUMENT" },
  });
  expect(await bad.request("publish", { event: "still", payload: "alive" })).toMatchObject({ ok: true });
  await good.received(1);
  expect(good.payloads()).toEqual(["alive"]);
});

test("an event without an ack callback is processed silently", async () => {
  ctx = await startHub();
  const sub = await ctx.client("/", { clientId: "sub" });
  await sub.request("subscribe", { event: "e" });
  const pub = await ctx.client("/", { clientId: "pub" });
  pub.socket.emit("e", "no ack wanted");
  await sub.received(1);
  expect(sub.payloads()).toEqual(["no ack wanted"]);
});

describe("connecting", () => {
  test("a clientId outside the allowed characters is refused", async () => {
    ctx = await startHub();
    expect(await connectError(`${ctx.url}/caps`, { clientId: "" })).toBe("invalid clientId");
    expect(await connectError(`${ctx.url}/caps`, { clientId: "a/b" })).toBe("invalid clientId");
    expect(await connectError(`${ctx.url}/caps`, { clientId: 42 })).toBe("invalid clientId");
    expect(await connectError(`${ctx.url}/caps`, { clientId: "x".repeat(129) })).toBe("invalid clientId");
  });

  test("namespaces outside HUB_NAMESPACES or the pattern are refused by Socket.IO", async () => {
    ctx = await startHub({ namespaces: ["/caps"] });
    const created: string[] = [];
    ctx.hub.io.on("new_namespace", (nsp) => created.push(nsp.name));
    expect(await connectError(`${ctx.url}/orders`, { clientId: "a" })).toBe("Invalid namespace");
    expect(await connectError(`${ctx.url}/Bad.Name`, { clientId: "a" })).toBe("Invalid namespace");
    await ctx.client("/caps", { clientId: "a" });
    await ctx.client("/", { clientId: "a" });
    // Refused names keep no per-name state: Socket.IO made no namespace for them.
    expect(created).toEqual([]);
  });

  test("with a secret, a token whose sub is the clientId is required", async () => {
    const secret = "s3cret-for-tests";
    ctx = await startHub({ secret });
    const token = await signToken(secret, "acme");
    expect(await connectError(`${ctx.url}/caps`, null)).toBe("clientId required");
    expect(await connectError(`${ctx.url}/caps`, { token })).toBe("clientId required");
    expect(await connectError(`${ctx.url}/caps`, { clientId: "acme" })).toBe("unauthorized");
    expect(await connectError(`${ctx.url}/caps`, { clientId: "other", token })).toBe("unauthorized");
    const forged = await signToken("wrong-secret", "acme");
    expect(await connectError(`${ctx.url}/caps`, { clientId: "acme", token: forged })).toBe("unauthorized");
    const expired = await signToken(secret, "acme", "-1m");
    expect(await connectError(`${ctx.url}/caps`, { clientId: "acme", token: expired })).toBe("unauthorized");
    const ok = await ctx.client("/caps", { clientId: "acme", token });
    expect(await ok.request("subscribe", { event: "e" })).toMatchObject({ ok: true });
  });
});

describe("limits", () => {
  test("a client over HUB_RATE_LIMIT gets RATE_LIMITED and nothing is stored", async () => {
    ctx = await startHub({ rateLimit: 5 });
    const sub = await ctx.client("/", { clientId: "sub" });
    await sub.request("subscribe", { event: "e" });
    const pub = await ctx.client("/", { clientId: "pub" });
    const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => pub.request("e", i)));
    expect(replies.filter((r) => r.ok)).toHaveLength(5);
    expect(replies.filter((r) => !r.ok)).toEqual(
      Array(3).fill({ ok: false, error: { code: "RATE_LIMITED", message: expect.any(String) } }),
    );
    await sub.received(5);
    await settle();
    expect(sub.messages).toHaveLength(5);
    // Another client has its own budget.
    const other = await ctx.client("/", { clientId: "other" });
    expect(await other.request("e", "x")).toMatchObject({ ok: true });
  });
});
