// Attacks through publishing, against a live hub on port 0: squatting on another publisher's
// idempotency key, getting round the rate limit with more namespaces or over HTTP, and bad input
// (too-deep JSON, malformed paths, an empty `?to=`).
import { io, type Socket } from "socket.io-client";
import { signToken } from "../src/token.js";
import { settle, startHub, type TestContext } from "./support/hub.js";

let ctx: TestContext;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await ctx?.close();
});

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });

describe("idempotency keys belong to their publisher", () => {
  test("socket: a squatter who uses the victim's key first does not swallow the victim's publish", async () => {
    ctx = await startHub();
    const store = await ctx.client("/caps", { clientId: "store" });
    await store.request("subscribe", { event: "pickup" });
    const squatter = await ctx.client("/caps", { clientId: "squatter" });
    const victim = await ctx.client("/caps", { clientId: "vendor" });
    const taken = await squatter.request("publish", { event: "noise", payload: 0, key: "order-42" });
    const reply = await victim.request("publish", { event: "pickup", payload: "order-42", key: "order-42" });
    expect(reply).toEqual({ ok: true, messageId: expect.any(String) });
    expect(reply.messageId).not.toBe(taken.messageId);
    await store.received(1);
    expect(store.payloads()).toEqual(["order-42"]);
    // The victim's own retry is still answered from its key.
    expect(
      await victim.request("publish", { event: "pickup", payload: "order-42", key: "order-42" }),
    ).toEqual(reply);
    await settle();
    expect(store.messages).toHaveLength(1);
  });

  test("HTTP with a secret: keys are the token's sub's", async () => {
    const secret = "keys-secret";
    ctx = await startHub({ secret });
    const store = await ctx.client("/caps", { clientId: "store", token: await signToken(secret, "store") });
    await store.request("subscribe", { event: "pickup" });
    const as = async (sub: string) => ({
      authorization: `Bearer ${await signToken(secret, sub)}`,
      "idempotency-key": "order-7",
    });
    const taken = await (await post(`${ctx.url}/publish/caps/noise`, "0", await as("squatter"))).json();
    const reply = await (
      await post(`${ctx.url}/publish/caps/pickup`, '"order-7"', await as("vendor"))
    ).json();
    expect(reply).toEqual({ ok: true, messageId: expect.any(String) });
    expect(reply.messageId).not.toBe(taken.messageId);
    const [m] = await store.received(1);
    // Over HTTP the publisher is the token's sub.
    expect(m).toMatchObject({ payload: "order-7", from: "vendor" });
  });

  test("HTTP in open mode: keys are the remote address's (behind a trusted proxy, X-Forwarded-For's)", async () => {
    ctx = await startHub({ trustedProxies: ["127.0.0.1"] });
    const store = await ctx.client("/caps", { clientId: "store" });
    await store.request("subscribe", { event: "pickup" });
    const from = (address: string) => ({ "x-forwarded-for": address, "idempotency-key": "order-9" });
    const taken = await (await post(`${ctx.url}/publish/caps/noise`, "0", from("198.51.100.7"))).json();
    const reply = await (
      await post(`${ctx.url}/publish/caps/pickup`, '"order-9"', from("203.0.113.5"))
    ).json();
    expect(reply.messageId).not.toBe(taken.messageId);
    const [m] = await store.received(1);
    expect(m).toMatchObject({ payload: "order-9", from: null });
    // The same address again: its own retry, answered from its key.
    const again = await (
      await post(`${ctx.url}/publish/caps/pickup`, '"order-9"', from("203.0.113.5"))
    ).json();
    expect(again).toEqual(reply);
  });

  test("unnamed classroom publishers: keys are their address's, behind a trusted proxy X-Forwarded-For's", async () => {
    ctx = await startHub({ trustedProxies: ["127.0.0.1"] });
    const store = await ctx.client("/caps", { clientId: "store" });
    await store.request("subscribe", { event: "pickup" });
    const publisher = async (address: string) => {
      const socket = io(`${ctx.url}/caps`, {
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
        extraHeaders: { "x-forwarded-for": address },
      });
      sockets.push(socket);
      await new Promise((resolve) => socket.once("connect", () => resolve(null)));
      return socket;
    };
    const squatter = await publisher("198.51.100.7");
    const victim = await publisher("203.0.113.5");
    const publish = (s: Socket, event: string, payload: string) =>
      s.timeout(3000).emitWithAck("publish", { event, payload, key: "lab-order-1" });
    const taken = await publish(squatter, "noise", "0");
    const reply = await publish(victim, "pickup", "order-1");
    expect(reply.messageId).not.toBe(taken.messageId);
    const [m] = await store.received(1);
    expect(m).toMatchObject({ payload: "order-1", from: null });
  });
});

describe("the rate limit", () => {
  test("is one budget per clientId across namespaces", async () => {
    ctx = await startHub({ rateLimit: 6 });
    const clients = await Promise.all(
      ["/", "/caps", "/orders"].map((ns) => ctx.client(ns, { clientId: "flooder" })),
    );
    const replies = await Promise.all(clients.flatMap((c) => [1, 2, 3].map((i) => c.request("e", i))));
    expect(replies.filter((r) => r.ok)).toHaveLength(6);
    expect(replies.filter((r) => !r.ok).map((r) => (r.ok ? null : r.error.code))).toEqual(
      Array(3).fill("RATE_LIMITED"),
    );
  });

  test("over HTTP, per token", async () => {
    const secret = "rate-secret";
    ctx = await startHub({ secret, rateLimit: 4 });
    const headers = { authorization: `Bearer ${await signToken(secret, "api")}` };
    const statuses = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        post(`${ctx.url}/publish/caps/e`, String(i), headers).then((r) => r.status),
      ),
    );
    expect(statuses.sort()).toEqual([200, 200, 200, 200, 429, 429]);
    const other = { authorization: `Bearer ${await signToken(secret, "other")}` };
    expect((await post(`${ctx.url}/publish/caps/e`, "1", other)).status).toBe(200);
  });

  test("over HTTP in open mode, per address", async () => {
    ctx = await startHub({ rateLimit: 4, trustedProxies: ["127.0.0.1"] });
    const from = (address: string) => ({ "x-forwarded-for": address });
    const statuses = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        post(`${ctx.url}/publish/e`, String(i), from("198.51.100.7")).then((r) => r.status),
      ),
    );
    expect(statuses.sort()).toEqual([200, 200, 200, 200, 429, 429]);
    const res = await post(`${ctx.url}/publish/e`, "1", from("198.51.100.7"));
    expect(await res.json()).toMatchObject({ error: { code: "RATE_LIMITED" } });
    expect((await post(`${ctx.url}/publish/e`, "1", from("203.0.113.5"))).status).toBe(200);
  });
});

describe("bad input", () => {
  const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;

  test("too-deep JSON is INVALID_ARGUMENT naming the depth limit, over a socket and over HTTP", async () => {
    ctx = await startHub();
    const sub = await ctx.client("/", { clientId: "sub" });
    await sub.request("subscribe", { event: "e" });
    const pub = await ctx.client("/", { clientId: "pub" });
    // Sent as raw text: socket.io-client itself cannot encode such an argument.
    const viaSocket = await new Promise((resolve) => {
      (pub.socket.io.engine as unknown as { send(s: string): void }).send(
        `21["publish",{"event":"e","payload":${nested(6000)}}]`,
      );
      pub.socket.io.engine.once("message", (m: unknown) => resolve(m));
    });
    expect(String(viaSocket)).toMatch(
      /^31\[\{"ok":false,"error":\{"code":"INVALID_ARGUMENT","message":".*64 levels/,
    );
    const res = await post(`${ctx.url}/publish/e`, nested(6000));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      ok: false,
      error: { code: "INVALID_ARGUMENT", message: expect.stringContaining("64 levels") },
    });
    // The limit itself passes; one level more is refused, on the shorthand too.
    expect((await post(`${ctx.url}/publish/e`, nested(64))).status).toBe(200);
    expect(await pub.request("e", JSON.parse(nested(64)))).toMatchObject({ ok: true });
    expect(await pub.request("e", JSON.parse(nested(65)))).toMatchObject({
      ok: false,
      error: { code: "INVALID_ARGUMENT", message: expect.stringContaining("64 levels") },
    });
    await sub.received(2);
    await settle();
    expect(sub.messages).toHaveLength(2);
  });

  test("a malformed %-escape in a path is 400, not 500", async () => {
    ctx = await startHub();
    for (const path of ["/publish/caps/%E0%A4%A", "/publish/%zz", "/dead-letters/%/drop"]) {
      const res = await post(`${ctx.url}${path}`, "1");
      expect([path, res.status]).toEqual([path, 400]);
      expect(await res.json()).toMatchObject({ ok: false, error: { code: "INVALID_ARGUMENT" } });
    }
  });

  test("an empty ?to= is 400 and reaches nobody, never a broadcast", async () => {
    ctx = await startHub();
    const sub = await ctx.client("/caps", { clientId: "sub" });
    await sub.request("subscribe", { event: "pickup" });
    for (const query of ["?to=", "?to=,", "?to=,,"]) {
      const res = await post(`${ctx.url}/publish/caps/pickup${query}`, "1");
      expect([query, res.status]).toEqual([query, 400]);
      expect(await res.json()).toMatchObject({ ok: false, error: { code: "INVALID_ARGUMENT" } });
    }
    await settle();
    expect(sub.messages).toEqual([]);
    expect((await ctx.hub.store.stats({ limit: 10 })).items).toEqual([]);
  });
});
