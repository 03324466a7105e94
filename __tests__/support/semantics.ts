// The delivery semantics of the contract, over real sockets. Run against every way of
// running the hub (memory store, SQLite store, a cluster), like the store conformance suite.
import type { HubConfig } from "../../src/config.js";
import type { Message, PresenceEvent } from "../../src/protocol.js";
import { settle, type TestClient, type TestContext, waitUntil } from "./hub.js";

export type HubFactory = (overrides?: Partial<HubConfig>) => Promise<TestContext>;

const ids = (messages: Message[]) => messages.map((m) => m.messageId);

async function waitFor(check: () => Promise<boolean>, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function deliverySemantics(name: string, start: HubFactory) {
  describe(`delivery semantics: ${name}`, () => {
    let ctx: TestContext;
    afterEach(async () => {
      await ctx?.close();
    });

    test("CAPS flow: pickup fans out to drivers, delivered goes back to the vendor only", async () => {
      ctx = await start();
      const driver = await ctx.client("/caps", { clientId: "driver-1" });
      const other = await ctx.client("/caps", { clientId: "driver-2" });
      const vendor = await ctx.client("/caps", { clientId: "acme-widgets" });
      expect(await driver.request("subscribe", { event: "pickup" })).toEqual({
        ok: true,
        events: ["pickup"],
      });
      await other.request("subscribe", { event: ["pickup"] });
      const published = await vendor.request("pickup", { orderId: "o-1", store: "acme-widgets" });
      expect(published).toEqual({ ok: true, messageId: expect.any(String) });
      const [pickup] = await driver.received(1);
      await other.received(1);
      expect(pickup).toEqual({
        messageId: published.messageId,
        event: "pickup",
        payload: { orderId: "o-1", store: "acme-widgets" },
        publishedAt: expect.any(Number),
        from: "acme-widgets",
        deliveries: 1,
      });
      expect(await driver.request("received", { messageId: pickup?.messageId })).toEqual({
        ok: true,
        removed: 1,
      });
      await driver.request("publish", {
        event: "in-transit",
        payload: { orderId: "o-1" },
        to: "acme-widgets",
      });
      await driver.request("publish", {
        event: "delivered",
        payload: { orderId: "o-1" },
        to: ["acme-widgets"],
      });
      const got = await vendor.received(2);
      expect(got.map((m) => [m.event, m.from])).toEqual([
        ["in-transit", "driver-1"],
        ["delivered", "driver-1"],
      ]);
      await settle();
      expect(other.messages).toHaveLength(1);
      expect(vendor.messages).toHaveLength(2);
    });

    test("an offline subscriber catches up in order; acked messages are never replayed", async () => {
      ctx = await start();
      const sub = await ctx.client("/caps", { clientId: "vendor" });
      await sub.request("subscribe", { event: ["delivered", "in-transit"] });
      sub.close();
      const pub = await ctx.client("/caps", { clientId: "driver" });
      for (let i = 0; i < 10; i++) {
        await pub.request("publish", { event: i % 2 ? "delivered" : "in-transit", payload: i });
      }
      const back = await ctx.client("/caps", { clientId: "vendor" });
      await back.received(10);
      expect(back.payloads()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(back.messages.every((m) => m.deliveries === 1)).toBe(true);
      expect(await back.ackAll()).toBe(10);
      expect(await back.request("getAll", {})).toEqual({ ok: true, count: 0 });
      back.close();
      const again = await ctx.client("/caps", { clientId: "vendor" });
      expect(await again.request("getAll")).toEqual({ ok: true, count: 0 });
      await settle();
      expect(again.messages).toEqual([]);
    });

    test("unacked deliveries come again on the next connection, counted", async () => {
      ctx = await start();
      const sub = await ctx.client("/", { clientId: "sub" });
      await sub.request("subscribe", { event: "job" });
      const pub = await ctx.client("/", { clientId: "pub" });
      await pub.request("publish", [
        { event: "job", payload: "a" },
        { event: "job", payload: "b" },
      ]);
      const [a] = await sub.received(2);
      await sub.request("received", { messageId: a?.messageId });
      sub.close();
      const back = await ctx.client("/", { clientId: "sub" });
      const [b] = await back.received(1);
      expect(b).toMatchObject({ payload: "b", deliveries: 2 });
      await settle();
      expect(back.messages).toHaveLength(1);
    });

    test("getAll counts what is pending and never duplicates what is in flight", async () => {
      ctx = await start();
      const sub = await ctx.client("/", { clientId: "sub" });
      await sub.request("subscribe", { event: ["x", "y"] });
      const pub = await ctx.client("/", { clientId: "pub" });
      await pub.request("publish", [
        { event: "x", payload: 1 },
        { event: "y", payload: 2 },
        { event: "x", payload: 3 },
      ]);
      await sub.received(3);
      expect(await sub.request("getAll", {})).toEqual({ ok: true, count: 3 });
      expect(await sub.request("getAll", { event: "x" })).toEqual({ ok: true, count: 2 });
      await settle();
      expect(sub.messages).toHaveLength(3);
    });

    test("`to` reaches a client that never connected; fan-out skips the publisher unless echo", async () => {
      ctx = await start();
      const a = await ctx.client("/", { clientId: "a" });
      await a.request("subscribe", { event: "chat" });
      await a.request("publish", { event: "chat", payload: "no echo" });
      await a.request("publish", { event: "chat", payload: "echo", echo: true });
      await a.request("publish", { event: "note", payload: "for later", to: "never-seen" });
      await a.received(1);
      await settle();
      expect(a.payloads()).toEqual(["echo"]);
      const late = await ctx.client("/", { clientId: "never-seen" });
      await late.received(1);
      expect(late.messages[0]).toMatchObject({ event: "note", payload: "for later", from: "a" });
    });

    test("subscribing starts now: earlier messages are not back-filled; unsubscribe drops the queue", async () => {
      ctx = await start();
      const pub = await ctx.client("/", { clientId: "pub" });
      await pub.request("publish", { event: "news", payload: "before" });
      const sub = await ctx.client("/", { clientId: "sub" });
      await sub.request("subscribe", { event: "news" });
      expect(await sub.request("subscribe", { event: "news" })).toEqual({ ok: true, events: ["news"] });
      await pub.request("publish", { event: "news", payload: "after" });
      await sub.received(1);
      expect(sub.payloads()).toEqual(["after"]);
      sub.close();
      await pub.request("publish", { event: "news", payload: "while away" });
      const back = await ctx.client("/", { clientId: "sub" });
      expect(await back.request("unsubscribe", { event: "news" })).toEqual({ ok: true });
      await pub.request("publish", { event: "news", payload: "after unsubscribe" });
      // The redelivered entries may already be on the way; none may come after the unsubscribe.
      await settle();
      expect(back.payloads().filter((p) => p === "after unsubscribe")).toEqual([]);
      expect(await back.request("getAll", {})).toEqual({ ok: true, count: 0 });
    });

    test("a repeated publish key stores once and returns the first id", async () => {
      ctx = await start();
      const sub = await ctx.client("/", { clientId: "sub" });
      await sub.request("subscribe", { event: "pay" });
      const pub = await ctx.client("/", { clientId: "pub" });
      const first = await pub.request("publish", { event: "pay", payload: 1, key: "k-1" });
      const again = await pub.request("publish", { event: "pay", payload: 1, key: "k-1" });
      expect(again).toEqual(first);
      await sub.received(1);
      await settle();
      expect(sub.messages).toHaveLength(1);
    });

    test("batch clients get arrays; the in-flight window holds back the rest until acks", async () => {
      ctx = await start({ prefetch: 4 });
      const sub = await ctx.client("/", { clientId: "sub", batch: true });
      await sub.request("subscribe", { event: "t" });
      const pub = await ctx.client("/", { clientId: "pub" });
      const items = Array.from({ length: 10 }, (_, i) => ({ event: "t", payload: i }));
      const reply = await pub.request("publish", items);
      expect(reply).toEqual({ ok: true, messageIds: expect.any(Array) });
      await sub.received(4);
      await settle();
      expect(sub.payloads()).toEqual([0, 1, 2, 3]);
      await sub.request("received", { messageIds: ids(sub.messages.slice(0, 2)) });
      await sub.received(6);
      await settle();
      expect(sub.payloads()).toEqual([0, 1, 2, 3, 4, 5]);
      for (let acked = 2; acked < 10; acked += 2) {
        await sub.request("received", { messageIds: ids(sub.messages.slice(acked, acked + 2)) });
        await sub.received(Math.min(10, acked + 6));
      }
      expect(sub.payloads()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    });

    test("the newest connection of a client takes over, and the old one's acks still count", async () => {
      ctx = await start();
      const first = await ctx.client("/", { clientId: "sub" });
      await first.request("subscribe", { event: "e" });
      const pub = await ctx.client("/", { clientId: "pub" });
      await pub.request("publish", { event: "e", payload: 1 });
      await first.received(1);
      const second = await ctx.client("/", { clientId: "sub" });
      const [resent] = await second.received(1);
      expect(resent).toMatchObject({ payload: 1, deliveries: 2 });
      await pub.request("publish", { event: "e", payload: 2 });
      await second.received(2);
      await settle();
      expect(first.payloads()).toEqual([1]);
      expect(await first.request("received", { messageId: resent?.messageId })).toEqual({
        ok: true,
        removed: 1,
      });
      expect(await second.request("getAll", {})).toEqual({ ok: true, count: 1 });
    });

    test("one client can neither ack nor receive another's messages", async () => {
      ctx = await start();
      const victim = await ctx.client("/", { clientId: "victim" });
      await victim.request("subscribe", { event: "secret" });
      const pub = await ctx.client("/", { clientId: "pub" });
      const { messageId } = await pub.request("publish", { event: "secret", payload: "s" });
      await victim.received(1);
      const thief = await ctx.client("/", { clientId: "thief" });
      expect(await thief.request("received", { messageId })).toEqual({ ok: true, removed: 0 });
      expect(await thief.request("received", { messageIds: [messageId, "not-an-id"] })).toEqual({
        ok: true,
        removed: 0,
      });
      expect(await thief.request("getAll", {})).toEqual({ ok: true, count: 0 });
      expect(await thief.request("join", "victim")).toEqual({ ok: true });
      await pub.request("publish", { event: "secret", payload: "s2" });
      await victim.received(2);
      await settle();
      expect(thief.messages).toEqual([]);
      expect(await victim.request("getAll", {})).toEqual({ ok: true, count: 2 });
    });

    test("another client's acks of my in-flight ids leave my window full", async () => {
      ctx = await start({ prefetch: 2 });
      const victim = await ctx.client("/", { clientId: "victim" });
      await victim.request("subscribe", { event: "job" });
      const pub = await ctx.client("/", { clientId: "pub" });
      await pub.request(
        "publish",
        Array.from({ length: 5 }, (_, i) => ({ event: "job", payload: i })),
      );
      await victim.received(2);
      const inFlight = ids(victim.messages);
      const thief = await ctx.client("/", { clientId: "thief" });
      expect(await thief.request("received", { messageIds: inFlight })).toEqual({ ok: true, removed: 0 });
      // The acks were not the victim's: its window stays full, nothing more is sent to it.
      await settle();
      expect(victim.payloads()).toEqual([0, 1]);
      // Its own acks free it.
      expect(await victim.request("received", { messageIds: inFlight })).toEqual({ ok: true, removed: 2 });
      await victim.received(4);
      await settle();
      expect(victim.payloads()).toEqual([0, 1, 2, 3]);
    });

    test("classroom clients name themselves by join, and keep that name", async () => {
      ctx = await start();
      const vendor = await ctx.client("/caps");
      expect(await vendor.request("subscribe", { event: "delivered" })).toMatchObject({
        ok: false,
        error: { code: "IDENTITY_REQUIRED" },
      });
      // join then publish, sent back to back, are processed in order.
      const [joined, published] = await Promise.all([
        vendor.request("join", "acme"),
        vendor.request("pickup", { order: 1 }),
      ]);
      expect(joined).toEqual({ ok: true });
      expect(published).toMatchObject({ ok: true });
      expect(await vendor.request("join", "another-room")).toEqual({ ok: true });
      expect(
        await vendor.request("subscribe", { event: "delivered", clientId: "someone-else" }),
      ).toMatchObject({
        ok: false,
        error: { code: "IDENTITY_MISMATCH" },
      });
      expect(await vendor.request("subscribe", { event: "delivered", clientId: "acme" })).toMatchObject({
        ok: true,
      });
      const driver = await ctx.client("/caps");
      // Classroom getAll { clientId, event } names the connection and subscribes it.
      expect(await driver.request("getAll", { clientId: "driver", event: "pickup" })).toEqual({
        ok: true,
        count: 0,
      });
      await vendor.request("pickup", { order: 2 });
      const [pickup] = await driver.received(1);
      expect(pickup).toMatchObject({ payload: { order: 2 }, from: "acme" });
      expect(
        await driver.request("received", {
          clientId: "driver",
          event: "pickup",
          messageID: pickup?.messageId,
        }),
      ).toEqual({ ok: true, removed: 1 });
      expect(
        await driver.request("received", { clientId: "acme", messageId: pickup?.messageId }),
      ).toMatchObject({
        ok: false,
        error: { code: "IDENTITY_MISMATCH" },
      });
      await driver.request("publish", { event: "delivered", payload: { order: 2 }, to: "acme" });
      await vendor.received(1);
      expect(vendor.messages[0]).toMatchObject({ event: "delivered", from: "driver" });
    });

    test("namespaces are separate queues", async () => {
      ctx = await start();
      const caps = await ctx.client("/caps", { clientId: "c" });
      const other = await ctx.client("/orders", { clientId: "c" });
      await caps.request("subscribe", { event: "e" });
      await other.request("subscribe", { event: "e" });
      const pub = await ctx.client("/caps", { clientId: "p" });
      await pub.request("publish", { event: "e", payload: "caps only" });
      await caps.received(1);
      await settle();
      expect(other.messages).toEqual([]);
      expect(await other.request("getAll", {})).toEqual({ ok: true, count: 0 });
    });

    test("an unacked delivery is sent again after the ack timeout, counted", async () => {
      ctx = await start({ ackTimeoutMs: 150 });
      const sub = await ctx.client("/", { clientId: "slow" });
      await sub.request("subscribe", { event: "e" });
      const pub = await ctx.client("/", { clientId: "pub" });
      await pub.request("e", "again");
      await sub.received(2, 3000);
      expect(sub.messages.map((m) => [m.payload, m.deliveries])).toEqual([
        ["again", 1],
        ["again", 2],
      ]);
      await sub.request("received", { messageId: sub.messages[0]?.messageId });
      await settle(400);
      expect(sub.messages).toHaveLength(2);
    });

    test("after maxDeliveries a message moves to dead letters, where an operator can requeue or drop it", async () => {
      ctx = await start({ ackTimeoutMs: 100, maxDeliveries: 2 });
      const sub = await ctx.client("/caps", { clientId: "flaky" });
      await sub.request("subscribe", { event: "e" });
      const pub = await ctx.client("/caps", { clientId: "pub" });
      const { messageId } = await pub.request("e", "poison");
      await sub.received(2, 3000);
      const dead = async () => (await (await fetch(`${ctx.url}/dead-letters?ns=caps`)).json()).deadLetters;
      await waitFor(async () => (await dead()).length === 1);
      expect((await dead())[0]).toMatchObject({ messageId, queue: "c:flaky", reason: "max-deliveries" });
      expect(await sub.request("getAll", {})).toEqual({ ok: true, count: 0 });
      const requeue = await fetch(`${ctx.url}/dead-letters/requeue?ns=caps`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messageIds: [messageId] }),
      });
      expect(await requeue.json()).toEqual({ ok: true, queues: ["c:flaky"] });
      await sub.received(3, 3000);
      expect(sub.messages[2]).toMatchObject({ messageId, deliveries: 1 });
      await sub.request("received", { messageId });
      await pub.request("e", "poison again");
      await waitFor(async () => (await dead()).length === 1, 5000);
      const [letter] = await dead();
      const drop = await fetch(`${ctx.url}/dead-letters/drop?ns=caps`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messageIds: [letter.messageId] }),
      });
      expect(await drop.json()).toEqual({ ok: true, dropped: 1 });
      expect(await dead()).toEqual([]);
    });

    test("a message past its TTL is never delivered", async () => {
      ctx = await start({ messageTtlMs: 60_000 });
      const pub = await ctx.client("/", { clientId: "pub" });
      const sub = await ctx.client("/", { clientId: "sub" });
      await sub.request("subscribe", { event: "e" });
      sub.close();
      await pub.request("publish", { event: "e", payload: "short", ttl: 50 });
      await pub.request("publish", { event: "e", payload: "default ttl" });
      await settle(120);
      const back = await ctx.client("/", { clientId: "sub" });
      await back.received(1);
      await settle();
      expect(back.payloads()).toEqual(["default ttl"]);
    });

    test("a full queue refuses the whole publish (reject), or drops its oldest (drop-oldest)", async () => {
      ctx = await start({ maxQueueLength: 2 });
      const pub = await ctx.client("/", { clientId: "pub" });
      for (const id of ["a", "b"]) {
        const c = await ctx.client("/", { clientId: id });
        await c.request("subscribe", { event: "e" });
        c.close();
      }
      await pub.request("publish", { event: "e", payload: 1, to: "a" });
      await pub.request("publish", { event: "e", payload: 2, to: "a" });
      expect(await pub.request("e", 3)).toMatchObject({ ok: false, error: { code: "QUEUE_FULL" } });
      // All or nothing: b had room, but got nothing either.
      const b = await ctx.client("/", { clientId: "b" });
      expect(await b.request("getAll", {})).toEqual({ ok: true, count: 0 });
      await ctx.close();

      ctx = await start({ maxQueueLength: 2, overflow: "drop-oldest" });
      const pub2 = await ctx.client("/", { clientId: "pub" });
      for (const n of [1, 2, 3]) await pub2.request("publish", { event: "e", payload: n, to: "a" });
      const a = await ctx.client("/", { clientId: "a" });
      await a.received(2);
      expect(a.payloads()).toEqual([2, 3]);
      const dead = await (await fetch(`${ctx.url}/dead-letters`)).json();
      expect(dead.deadLetters).toMatchObject([{ payload: 1, reason: "overflow" }]);
    });

    test("a group shares one queue: each message to one member, handed on when its holder leaves", async () => {
      ctx = await start({ prefetch: 1 });
      const m1 = await ctx.client("/caps", { clientId: "driver-1" });
      const m2 = await ctx.client("/caps", { clientId: "driver-2" });
      await m1.request("subscribe", { event: "pickup", group: "drivers" });
      await m2.request("subscribe", { event: "pickup", group: "drivers" });
      const pub = await ctx.client("/caps", { clientId: "vendor" });
      await pub.request("publish", [
        { event: "pickup", payload: 1 },
        { event: "pickup", payload: 2 },
      ]);
      await waitUntil(() => m1.messages.length + m2.messages.length === 2);
      expect([...m1.payloads(), ...m2.payloads()].sort()).toEqual([1, 2]);
      expect(m1.messages).toHaveLength(1);
      // driver-1 leaves without acking: its order goes to driver-2 once driver-2 has room.
      const held = m1.messages[0];
      m1.close();
      await m2.request("received", { messageIds: m2.messages.map((m) => m.messageId) });
      await waitUntil(() => m2.messages.some((m) => m.messageId === held?.messageId));
      await m2.request("received", { messageId: held?.messageId });
      // Nobody on: the group's backlog waits for the next member.
      m2.close();
      await pub.request("pickup", 3);
      const m3 = await ctx.client("/caps", { clientId: "driver-1" });
      const [late] = await m3.received(1);
      expect(late).toMatchObject({ payload: 3 });
      // A member cannot ack a group message it does not hold.
      const m4 = await ctx.client("/caps", { clientId: "driver-2" });
      expect(await m4.request("received", { messageId: late?.messageId })).toEqual({ ok: true, removed: 0 });
      expect(await m3.request("received", { messageId: late?.messageId })).toEqual({ ok: true, removed: 1 });
    });

    test("a group spreads a burst over its members in turn", async () => {
      ctx = await start();
      const members = [
        await ctx.client("/caps", { clientId: "driver-1" }),
        await ctx.client("/caps", { clientId: "driver-2" }),
      ];
      for (const m of members) await m.request("subscribe", { event: "pickup", group: "drivers" });
      const pub = await ctx.client("/caps", { clientId: "vendor" });
      await pub.request(
        "publish",
        Array.from({ length: 20 }, (_, i) => ({ event: "pickup", payload: i })),
      );
      for (let i = 20; i < 24; i++) await pub.request("pickup", i);
      await waitUntil(() => members.reduce((n, m) => n + m.messages.length, 0) === 24);
      // Each gets a fair part (12 on one hub; across hubs the one that hears first starts ahead).
      for (const m of members) expect(m.messages.length).toBeGreaterThanOrEqual(4);
      const all = members.flatMap((m) => m.payloads()).sort((a, b) => Number(a) - Number(b));
      expect(all).toEqual(Array.from({ length: 24 }, (_, i) => i));
    });

    describe("rooms", () => {
      /** Presence events a client got, as `clientId:online` strings, in arrival order. */
      const presence = (client: TestClient) => {
        const seen: string[] = [];
        client.socket.on("presence", (p: PresenceEvent) => seen.push(`${p.room}:${p.clientId}:${p.online}`));
        return seen;
      };

      test("a room publish reaches every other member, in order with the rest of its queue, carrying room", async () => {
        ctx = await start();
        const alice = await ctx.client("/chat", { clientId: "alice" });
        const bob = await ctx.client("/chat", { clientId: "bob" });
        const carol = await ctx.client("/chat", { clientId: "carol" });
        expect(await alice.request("join", "lobby")).toEqual({ ok: true });
        expect(await bob.request("join", "lobby")).toEqual({ ok: true });
        await bob.request("subscribe", { event: "news" });
        await carol.request("publish", { event: "news", payload: "n1" });
        const said = await alice.request("publish", { event: "chat", payload: "hi", room: "lobby" });
        expect(said).toEqual({ ok: true, messageId: expect.any(String) });
        await carol.request("publish", { event: "news", payload: "n2" });
        await bob.received(3);
        expect(bob.messages.map((m) => [m.event, m.payload, m.room])).toEqual([
          ["news", "n1", undefined],
          ["chat", "hi", "lobby"],
          ["news", "n2", undefined],
        ]);
        expect(bob.messages[1]).toEqual({
          messageId: said.messageId,
          event: "chat",
          payload: "hi",
          publishedAt: expect.any(Number),
          from: "alice",
          deliveries: 1,
          room: "lobby",
        });
        // The publisher gets its own line only with echo; a non-member never.
        await alice.request("publish", { event: "chat", payload: "echoed", room: "lobby", echo: true });
        await alice.received(1);
        await bob.received(4);
        await settle();
        expect(alice.payloads()).toEqual(["echoed"]);
        expect(carol.messages).toEqual([]);
      });

      test("a member who was offline catches up on its rooms, once; leave keeps what is queued", async () => {
        ctx = await start();
        const alice = await ctx.client("/chat", { clientId: "alice" });
        const bob = await ctx.client("/chat", { clientId: "bob" });
        await alice.request("join", "lobby");
        await bob.request("join", "lobby");
        bob.close();
        await alice.request("publish", [
          { event: "chat", payload: 1, room: "lobby" },
          { event: "chat", payload: 2, room: "lobby" },
        ]);
        await alice.request("publish", { event: "chat", payload: 3, room: "lobby" });
        const back = await ctx.client("/chat", { clientId: "bob" });
        await back.received(3);
        expect(back.messages.map((m) => [m.payload, m.room, m.deliveries])).toEqual([
          [1, "lobby", 1],
          [2, "lobby", 1],
          [3, "lobby", 1],
        ]);
        expect(await back.ackAll()).toBe(3);
        back.close();
        await alice.request("publish", { event: "chat", payload: 4, room: "lobby" });
        const again = await ctx.client("/chat", { clientId: "bob" });
        expect(await again.request("leave", "lobby")).toEqual({ ok: true });
        await again.received(1);
        await alice.request("publish", { event: "chat", payload: 5, room: "lobby" });
        await settle();
        expect(again.payloads()).toEqual([4]);
        expect(await again.request("members", { room: "lobby" })).toMatchObject({
          ok: false,
          error: { code: "FORBIDDEN" },
        });
      });

      test("members and presence: first connection online, last one offline, leave offline; live only", async () => {
        ctx = await start();
        const alice = await ctx.client("/chat", { clientId: "alice" });
        const seen = presence(alice);
        await alice.request("join", "lobby");
        const bob = await ctx.client("/chat", { clientId: "bob" });
        const bobSeen = presence(bob);
        await bob.request("join", "lobby");
        await waitUntil(
          () => seen.length === 1,
          5000,
          () => seen.join(),
        );
        expect(seen).toEqual(["lobby:bob:true"]);
        expect(await alice.request("members", { room: "lobby" })).toEqual({
          ok: true,
          members: [
            { clientId: "alice", online: true },
            { clientId: "bob", online: true },
          ],
          next: null,
        });
        // A second connection of bob is not news; closing one of two is not either.
        const bob2 = await ctx.client("/chat", { clientId: "bob" });
        // Its members request is answered once it has joined its rooms' presence.
        expect(await bob2.request("members", { room: "lobby", limit: 1 })).toMatchObject({ ok: true });
        bob2.close();
        bob.close();
        await waitUntil(
          () => seen.length === 2,
          5000,
          () => seen.join(),
        );
        expect(seen).toEqual(["lobby:bob:true", "lobby:bob:false"]);
        const offline = await alice.request("members", { room: "lobby", limit: 1 });
        expect(offline).toEqual({
          ok: true,
          members: [{ clientId: "alice", online: true }],
          next: expect.any(String),
        });
        expect(await alice.request("members", { room: "lobby", limit: 1, cursor: offline.next })).toEqual({
          ok: true,
          members: [{ clientId: "bob", online: false }],
          next: null,
        });
        const back = await ctx.client("/chat", { clientId: "bob" });
        await waitUntil(
          () => seen.length === 3,
          5000,
          () => seen.join(),
        );
        expect(await back.request("leave", "lobby")).toEqual({ ok: true });
        await waitUntil(
          () => seen.length === 4,
          5000,
          () => seen.join(),
        );
        expect(seen).toEqual(["lobby:bob:true", "lobby:bob:false", "lobby:bob:true", "lobby:bob:false"]);
        // Nobody hears of themselves; and presence is never queued.
        expect(bobSeen).toEqual([]);
        expect(await back.request("getAll", {})).toEqual({ ok: true, count: 0 });
      });

      test("a member's later connections hear its rooms' presence, and only theirs", async () => {
        ctx = await start();
        const alice = await ctx.client("/chat", { clientId: "alice" });
        const bob = await ctx.client("/chat", { clientId: "bob" });
        await alice.request("join", "lobby");
        await bob.request("join", "lobby");
        await bob.request("join", "kitchen");
        alice.close();
        bob.close();
        const back = await ctx.client("/chat", { clientId: "alice" });
        const seen = presence(back);
        await back.request("members", { room: "lobby" });
        await ctx.client("/chat", { clientId: "bob" });
        await waitUntil(() => seen.length === 1, 5000);
        await settle();
        expect(seen).toEqual(["lobby:bob:true"]);
      });

      test("non-members may neither publish to nor list a room", async () => {
        ctx = await start();
        const alice = await ctx.client("/chat", { clientId: "alice" });
        await alice.request("join", "lobby");
        const mallory = await ctx.client("/chat", { clientId: "mallory" });
        const forbidden = { ok: false, error: { code: "FORBIDDEN", message: expect.any(String) } };
        expect(await mallory.request("publish", { event: "chat", payload: "x", room: "lobby" })).toEqual(
          forbidden,
        );
        expect(
          await mallory.request("publish", [
            { event: "chat", payload: "y" },
            { event: "chat", payload: "z", room: "lobby" },
          ]),
        ).toEqual(forbidden);
        expect(await mallory.request("members", { room: "lobby" })).toEqual(forbidden);
        await settle();
        expect(await alice.request("getAll", {})).toEqual({ ok: true, count: 0 });
      });

      test("a room publish takes key, TTL and queue limits as a publish with `to` does", async () => {
        ctx = await start({ maxQueueLength: 2 });
        const alice = await ctx.client("/chat", { clientId: "alice" });
        const bob = await ctx.client("/chat", { clientId: "bob" });
        await alice.request("join", "lobby");
        await bob.request("join", "lobby");
        bob.close();
        const line = { event: "chat", payload: "once", room: "lobby", key: "line-1" };
        const first = await alice.request("publish", line);
        expect(await alice.request("publish", line)).toEqual(first);
        await alice.request("publish", { event: "chat", payload: "brief", room: "lobby", ttl: 1 });
        expect(
          await alice.request("publish", { event: "chat", payload: "over", room: "lobby" }),
        ).toMatchObject({
          ok: false,
          error: { code: "QUEUE_FULL" },
        });
        await settle(50);
        const back = await ctx.client("/chat", { clientId: "bob" });
        await back.received(1);
        await settle();
        expect(back.payloads()).toEqual(["once"]);
      });
    });
  });
}
