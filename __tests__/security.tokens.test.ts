// Attacks on a hub with a secret, each against a live hub on port 0: a client's token against the
// operator views, tokens outside their claims (namespaces, groups), a connection outliving its
// token, tokens without `exp`. And `npm run token`, which mints them.
import { spawnSync } from "node:child_process";
import { signToken, TokenVerifier } from "../src/token.js";
import {
  connectRefusal,
  settle,
  startHub,
  type TestClient,
  type TestContext,
  waitUntil,
} from "./support/hub.js";
import { built } from "./support/process.js";

const SECRET = "tokens-test-secret";
let ctx: TestContext;
afterEach(async () => {
  await ctx?.close();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const post = (url: string, body: unknown, token: string) =>
  fetch(url, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json", ...bearer(token) },
  });

async function connect(ns: string, clientId: string, token: string): Promise<TestClient> {
  return ctx.client(ns, { clientId, token });
}

describe("the operator role", () => {
  const VIEWS = [
    "/namespaces",
    "/queues",
    "/subscriptions",
    "/clients",
    "/rooms",
    "/dead-letters?ns=caps",
    "/queues?ns=caps",
  ];

  test("a client's token gets 403 FORBIDDEN on every view and dead-letter action; nothing is dropped", async () => {
    // A victim whose queue overflows: its oldest message goes to dead letters (drop-oldest).
    ctx = await startHub({ secret: SECRET, maxQueueLength: 1, overflow: "drop-oldest" });
    const publisher = await signToken(SECRET, "vendor");
    for (const order of ["order-1", "order-2"]) {
      const res = await post(`${ctx.url}/publish/caps/secret-order?to=victim`, order, publisher);
      expect(res.status).toBe(200);
    }
    const [dead] = (await ctx.hub.store.listDead("/caps", { limit: 10 })).items;
    expect(dead?.payload).toBe("order-1");

    const attacker = await signToken(SECRET, "attacker");
    for (const view of VIEWS) {
      const res = await fetch(`${ctx.url}${view}`, { headers: bearer(attacker) });
      expect([view, res.status]).toEqual([view, 403]);
      expect(await res.json()).toEqual({
        ok: false,
        error: { code: "FORBIDDEN", message: expect.any(String) },
      });
    }
    for (const action of ["drop", "requeue"]) {
      const res = await post(
        `${ctx.url}/dead-letters/${action}?ns=caps`,
        { messageIds: [dead?.messageId] },
        attacker,
      );
      expect([action, res.status]).toEqual([action, 403]);
    }
    expect((await ctx.hub.store.listDead("/caps", { limit: 10 })).items).toHaveLength(1);

    // The operator's token reads and acts.
    const operator = await signToken(SECRET, "ops", { role: "operator" });
    for (const view of VIEWS) {
      const res = await fetch(`${ctx.url}${view}`, { headers: bearer(operator) });
      expect([view, res.status]).toEqual([view, 200]);
    }
    const listed = await (
      await fetch(`${ctx.url}/dead-letters?ns=caps`, { headers: bearer(operator) })
    ).json();
    expect(listed.deadLetters).toEqual([expect.objectContaining({ payload: "order-1" })]);
    const dropped = await post(
      `${ctx.url}/dead-letters/drop?ns=caps`,
      { messageIds: [dead?.messageId] },
      operator,
    );
    expect(await dropped.json()).toEqual({ ok: true, dropped: 1 });
  });

  test("without a token the views are 401, and a client's token still publishes", async () => {
    ctx = await startHub({ secret: SECRET });
    const res = await fetch(`${ctx.url}/queues`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ ok: false, error: { code: "UNAUTHORIZED" } });
    const client = await signToken(SECRET, "vendor");
    expect((await post(`${ctx.url}/publish/caps/pickup`, 1, client)).status).toBe(200);
  });
});

describe("claims", () => {
  test("ns: a namespace outside the claim is refused (connect_error unauthorized, data FORBIDDEN; HTTP 403)", async () => {
    ctx = await startHub({ secret: SECRET });
    const token = await signToken(SECRET, "driver-1", { ns: ["/caps"] });
    expect(await connectRefusal(`${ctx.url}/orders`, { clientId: "driver-1", token })).toEqual({
      message: "unauthorized",
      data: { code: "FORBIDDEN" },
    });
    expect(await connectRefusal(`${ctx.url}/`, { clientId: "driver-1", token })).toEqual({
      message: "unauthorized",
      data: { code: "FORBIDDEN" },
    });
    await connect("/caps", "driver-1", token);

    const sub = await connect("/orders", "sub", await signToken(SECRET, "sub"));
    await sub.request("subscribe", { event: "pickup" });
    const denied = await post(`${ctx.url}/publish/orders/pickup`, 1, token);
    expect(denied.status).toBe(403);
    expect(await denied.json()).toMatchObject({ ok: false, error: { code: "FORBIDDEN" } });
    expect((await post(`${ctx.url}/publish/caps/pickup`, 1, token)).status).toBe(200);
    await settle();
    expect(sub.messages).toEqual([]);
  });

  test("groups: an outsider cannot join a competing-consumer group and take its orders", async () => {
    ctx = await startHub({ secret: SECRET });
    const driver = await connect(
      "/caps",
      "driver-1",
      await signToken(SECRET, "driver-1", { groups: ["drivers"] }),
    );
    expect(await driver.request("subscribe", { event: "pickup", group: "drivers" })).toMatchObject({
      ok: true,
    });
    const outsider = await connect(
      "/caps",
      "outsider",
      await signToken(SECRET, "outsider", { groups: ["riders"] }),
    );
    expect(await outsider.request("subscribe", { event: "pickup", group: "drivers" })).toEqual({
      ok: false,
      error: { code: "FORBIDDEN", message: expect.stringContaining("drivers") },
    });
    const vendor = await connect("/caps", "vendor", await signToken(SECRET, "vendor"));
    for (let i = 0; i < 20; i++)
      expect(await vendor.request("pickup", { order: i })).toMatchObject({ ok: true });
    await driver.received(20);
    await settle();
    expect(outsider.messages).toEqual([]);
  });
  test("rooms: a room outside the claim cannot be joined", async () => {
    ctx = await startHub({ secret: SECRET });
    const guest = await connect("/", "guest", await signToken(SECRET, "guest", { rooms: ["lobby"] }));
    expect(await guest.request("join", "staff")).toEqual({
      ok: false,
      error: { code: "FORBIDDEN", message: expect.stringContaining("staff") },
    });
    expect(await guest.request("join", "lobby")).toEqual({ ok: true });
  });

  test("rooms: a member whose token leaves the room out can neither publish to it nor list it; a claim naming it can", async () => {
    ctx = await startHub({ secret: SECRET });
    const alice = await connect("/chat", "alice", await signToken(SECRET, "alice"));
    await alice.request("join", "staff");
    // Bob joined with an earlier token; his token now names only the lobby.
    const before = await connect("/chat", "bob", await signToken(SECRET, "bob"));
    await before.request("join", "staff");
    before.close();
    const bob = await connect("/chat", "bob", await signToken(SECRET, "bob", { rooms: ["lobby"] }));
    const forbidden = { ok: false, error: { code: "FORBIDDEN", message: expect.stringContaining("staff") } };
    expect(await bob.request("publish", { event: "say", payload: "hi", room: "staff" })).toEqual(forbidden);
    expect(await bob.request("members", { room: "staff" })).toEqual(forbidden);
    const http = await post(
      `${ctx.url}/publish/chat/say?room=staff`,
      "hi",
      await signToken(SECRET, "bob", { rooms: ["lobby"] }),
    );
    expect(http.status).toBe(403);
    await settle();
    expect(alice.messages).toEqual([]);
    // A service whose claim names the room may post to it without being a member.
    const bot = await signToken(SECRET, "announcer", { rooms: ["staff"] });
    expect((await post(`${ctx.url}/publish/chat/say?room=staff`, "meeting at 3", bot)).status).toBe(200);
    const [m] = await alice.received(1);
    expect(m).toMatchObject({ payload: "meeting at 3", room: "staff", from: "announcer" });
  });
});

describe("expiry", () => {
  test("a connection is closed when its token expires, with hub:error UNAUTHORIZED first", async () => {
    ctx = await startHub({ secret: SECRET });
    const token = await signToken(SECRET, "short", { expiresIn: "2s" });
    const client = await connect("/caps", "short", token);
    const events: string[] = [];
    client.socket.on("hub:error", (e: { code: string }) => events.push(`hub:error ${e.code}`));
    client.socket.on("disconnect", (reason) => events.push(`disconnect ${reason}`));
    await waitUntil(
      () => events.length === 2,
      6000,
      () => events.join(", "),
    );
    expect(events).toEqual(["hub:error UNAUTHORIZED", "disconnect io server disconnect"]);
  });

  test("tokens without exp are refused unless HUB_REQUIRE_EXP=false", async () => {
    const forever = await signToken(SECRET, "old-app", { expiresIn: null });
    ctx = await startHub({ secret: SECRET });
    expect((await connectRefusal(`${ctx.url}/caps`, { clientId: "old-app", token: forever })).message).toBe(
      "unauthorized",
    );
    const res = await post(`${ctx.url}/publish/caps/pickup`, 1, forever);
    expect(res.status).toBe(401);
    expect((await res.json()).error.message).toContain("no exp");
    await ctx.close();

    ctx = await startHub({ secret: SECRET, requireExp: false });
    const client = await connect("/caps", "old-app", forever);
    expect(await client.request("subscribe", { event: "e" })).toMatchObject({ ok: true });
    expect((await post(`${ctx.url}/publish/caps/pickup`, 1, forever)).status).toBe(200);
  });
});

describe("npm run token", () => {
  const mint = (args: string[], env: Record<string, string> = { HUB_SECRET: SECRET }) =>
    spawnSync(process.execPath, [built("clients/token.js"), ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
      encoding: "utf8",
      timeout: 15_000,
    });

  test("mints a token the hub accepts, with the claims asked for", async () => {
    const run = mint([
      "--sub",
      "ops",
      "--role",
      "operator",
      "--ns",
      "caps,/orders",
      "--groups",
      "drivers",
      "--expires",
      "2h",
    ]);
    expect(run.status).toBe(0);
    const claims = await new TokenVerifier(SECRET).verify(run.stdout.trim());
    expect(claims).toEqual({
      sub: "ops",
      role: "operator",
      ns: ["/caps", "/orders"],
      groups: ["drivers"],
      rooms: null,
      expiresAt: expect.any(Number),
    });
    const left = ("expiresAt" in claims ? (claims.expiresAt ?? 0) : 0) - Date.now();
    expect(left).toBeGreaterThan(7_100_000);
    expect(left).toBeLessThanOrEqual(7_200_000);
  });

  test("--help, and errors that say what to do", () => {
    expect(mint(["--help"]).stdout).toContain("Usage: queuehub-token --sub <clientId>");
    const noSecret = mint(["--sub", "a"], {});
    expect(noSecret.status).toBe(2);
    expect(noSecret.stderr).toContain("HUB_SECRET");
    expect(mint([]).stderr).toContain("--sub is required");
    expect(mint(["--sub", "a", "--expires", "soon"]).stderr).toContain("--expires");
    expect(mint(["--sub", "a", "--ns", "Bad Name"]).stderr).toContain("--ns");
  });
});
