// Durable rooms on one hub, beyond the semantics every way of running the hub shares
// (support/semantics.ts): the cap on rooms per client, rooms against the lab's live rooms, order,
// HTTP room publishes, the rooms view, and bad cursors.
import { signToken } from "../src/token.js";
import { settle, startHub, type TestContext } from "./support/hub.js";

let ctx: TestContext;
afterEach(async () => {
  await ctx?.close();
});

const refused = (code: string) => ({ ok: false, error: { code, message: expect.any(String) } });
const clientRooms = (ns: string, clientId: string) => ctx.hub.store.clientRooms(ns, clientId);

test("a client is in at most HUB_MAX_ROOMS_PER_CLIENT rooms; the refusal says so, counted and logged", async () => {
  ctx = await startHub({ maxRoomsPerClient: 2 });
  const alice = await ctx.client("/chat", { clientId: "alice" });
  expect(await alice.request("join", "a")).toEqual({ ok: true });
  expect(await alice.request("join", "b")).toEqual({ ok: true });
  const over = await alice.request("join", "c");
  expect(over).toEqual(refused("FORBIDDEN"));
  expect(JSON.stringify(over)).toContain("HUB_MAX_ROOMS_PER_CLIENT");
  // Joining a room again is no new room; after a leave there is room for another.
  expect(await alice.request("join", "a")).toEqual({ ok: true });
  expect(await alice.request("leave", "a")).toEqual({ ok: true });
  expect(await alice.request("join", "c")).toEqual({ ok: true });
  expect(await clientRooms("/chat", "alice")).toEqual(["b", "c"]);
  const metrics = await (await fetch(`${ctx.url}/metrics`)).text();
  expect(metrics).toContain('queuehub_refused_total{code="FORBIDDEN"} 1');
});

test("an identified join is durable and joins no Socket.IO room a client could name", async () => {
  ctx = await startHub();
  const alice = await ctx.client("/chat", { clientId: "alice" });
  await alice.request("join", "lobby");
  expect(await clientRooms("/chat", "alice")).toEqual(["lobby"]);
  expect(await ctx.hub.io.of("/chat").in("lobby").fetchSockets()).toEqual([]);
  alice.close();
  const back = await ctx.client("/chat", { clientId: "alice" });
  expect(await back.request("members", { room: "lobby" })).toEqual({
    ok: true,
    members: [{ clientId: "alice", online: true }],
    next: null,
  });
  // The hub's own presence rooms hold characters no room name may.
  const lab = await ctx.client("/chat");
  expect(await lab.request("join", "#client:alice")).toEqual(refused("INVALID_ARGUMENT"));
  expect(await lab.request("join", "#room:lobby")).toEqual(refused("INVALID_ARGUMENT"));
});

test("a classroom connection's rooms stay the lab's live ones: no durable membership, members or room publish", async () => {
  ctx = await startHub();
  const alice = await ctx.client("/chat", { clientId: "alice" });
  await alice.request("join", "lobby");
  const lab = await ctx.client("/chat");
  expect(await lab.request("join", "alice")).toEqual({ ok: true });
  expect(await lab.request("join", "lobby")).toEqual({ ok: true });
  expect(await clientRooms("/chat", "alice")).toEqual(["lobby"]);
  expect((await ctx.hub.io.of("/chat").in("lobby").fetchSockets()).length).toBe(1);
  expect(await lab.request("members", { room: "lobby" })).toEqual(refused("FORBIDDEN"));
  expect(await lab.request("publish", { event: "chat", payload: "x", room: "lobby" })).toEqual(
    refused("FORBIDDEN"),
  );
  expect(await lab.request("leave", "lobby")).toEqual({ ok: true });
  expect(await ctx.hub.io.of("/chat").in("lobby").fetchSockets()).toEqual([]);
  expect(await clientRooms("/chat", "alice")).toEqual(["lobby"]);
});

test("join then publish to the room, sent back to back, are processed in order", async () => {
  ctx = await startHub();
  const bob = await ctx.client("/chat", { clientId: "bob" });
  await bob.request("join", "lobby");
  const alice = await ctx.client("/chat", { clientId: "alice" });
  const replies = await Promise.all([
    alice.request("join", "lobby"),
    alice.request("publish", { event: "chat", payload: 1, room: "lobby" }),
    alice.request("publish", { event: "chat", payload: 2, to: "bob" }),
    alice.request("publish", { event: "chat", payload: 3, room: "lobby" }),
    alice.request("members", { room: "lobby" }),
  ]);
  expect(replies.map((r) => r.ok)).toEqual([true, true, true, true, true]);
  await bob.received(3);
  expect(bob.payloads()).toEqual([1, 2, 3]);
});

test("rooms are per namespace, presence too", async () => {
  ctx = await startHub();
  const alice = await ctx.client("/chat", { clientId: "alice" });
  const heard: unknown[] = [];
  alice.socket.on("presence", (p: unknown) => heard.push(p));
  await alice.request("join", "lobby");
  const bob = await ctx.client("/other", { clientId: "bob" });
  await bob.request("join", "lobby");
  expect(await bob.request("publish", { event: "chat", payload: "x", room: "lobby" })).toMatchObject({
    ok: true,
  });
  expect(await alice.request("members", { room: "lobby" })).toMatchObject({
    members: [{ clientId: "alice", online: true }],
  });
  await settle();
  expect(heard).toEqual([]);
  expect(alice.messages).toEqual([]);
});

test("a bad cursor is refused with INVALID_ARGUMENT", async () => {
  ctx = await startHub();
  const alice = await ctx.client("/chat", { clientId: "alice" });
  await alice.request("join", "lobby");
  expect(await alice.request("members", { room: "lobby", cursor: "not-a-cursor" })).toEqual(
    refused("INVALID_ARGUMENT"),
  );
});

describe("over HTTP", () => {
  const post = (path: string, body: unknown, token?: string) =>
    fetch(`${ctx.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });

  test("POST /publish/:ns/:event?room= reaches the room's members, carrying room; the rooms view counts them", async () => {
    ctx = await startHub();
    const alice = await ctx.client("/chat", { clientId: "alice" });
    const bob = await ctx.client("/chat", { clientId: "bob" });
    await alice.request("join", "lobby");
    await bob.request("join", "lobby");
    const res = await post("/publish/chat/chat?room=lobby", { text: "from the server" });
    expect(res.status).toBe(200);
    await alice.received(1);
    await bob.received(1);
    expect(alice.messages[0]).toMatchObject({
      payload: { text: "from the server" },
      room: "lobby",
      from: null,
    });
    expect((await post("/publish/chat/chat?room=bad/room", 1)).status).toBe(400);
    expect((await post("/publish/chat/chat?room=lobby&to=alice", 1)).status).toBe(400);
    const view = await (await fetch(`${ctx.url}/rooms?ns=chat`)).json();
    expect(view).toMatchObject({ ok: true, rooms: [{ ns: "/chat", room: "lobby", members: 2 }], next: null });
  });

  test("with a secret, only a member's token may publish to a room", async () => {
    const secret = "s3cret-for-tests";
    ctx = await startHub({ secret });
    const alice = await ctx.client("/chat", { clientId: "alice", token: await signToken(secret, "alice") });
    await alice.request("join", "lobby");
    const stranger = await post("/publish/chat/chat?room=lobby", 1, await signToken(secret, "mallory"));
    expect(stranger.status).toBe(403);
    expect(await stranger.json()).toEqual(refused("FORBIDDEN"));
    const member = await post("/publish/chat/chat?room=lobby", 2, await signToken(secret, "alice"));
    expect(member.status).toBe(200);
  });
});
