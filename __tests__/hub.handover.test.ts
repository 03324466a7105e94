// Fresh-message handover, end to end: a publish for a consumer online here with room in its
// window is leased to it in the publish's own store write and sent from memory, with no claim.

import { MemoryStore } from "../src/store/memory.js";
import { SqliteStore } from "../src/store/sqlite/index.js";
import type { ClaimRequest } from "../src/store/store.js";
import { startHub, type TestContext } from "./support/hub.js";

/** A store that counts its claims. */
function counting<S extends MemoryStore | SqliteStore>(store: S): S & { claims: number } {
  const counted = Object.assign(store, { claims: 0 });
  const claim = store.claim.bind(store);
  counted.claim = (req: ClaimRequest) => {
    counted.claims++;
    return claim(req);
  };
  return counted;
}

/** A subscriber of "tick" and a publisher, the first tick (-1) delivered: the handover's steady state. */
async function subscribedAndFirstDelivered(ctx: TestContext) {
  const sub = await ctx.client("/", { clientId: "sub" });
  expect(await sub.request("subscribe", { event: "tick" })).toMatchObject({ ok: true });
  const pub = await ctx.client("/", { clientId: "pub" });
  expect(await pub.request("tick", -1)).toMatchObject({ ok: true });
  await sub.received(1);
  return { sub, pub };
}

describe.each([
  ["memory", () => new MemoryStore()],
  ["sqlite", () => SqliteStore.open({ file: ":memory:", sync: "normal" })],
])("handover, %s store", (_kind, open) => {
  test("publishes for an online consumer go out without a claim, in order, each its first delivery", async () => {
    const store = counting(open());
    const ctx = await startHub({}, store);
    try {
      const { sub, pub } = await subscribedAndFirstDelivered(ctx);
      const claims = store.claims;
      for (let n = 0; n < 30; n++) expect(await pub.request("tick", n)).toMatchObject({ ok: true });
      const got = (await sub.received(31)).slice(1);
      expect(got.map((m) => m.payload)).toEqual(Array.from({ length: 30 }, (_, n) => n));
      expect(got.every((m) => m.deliveries === 1)).toBe(true);
      // Without the handover every publish wakes the consumer, whose pump claims it.
      expect(store.claims).toBe(claims);
      const ids = [...sub.messages.map((m) => m.messageId)];
      expect(await sub.request("received", { messageIds: ids })).toEqual({ ok: true, removed: 31 });
    } finally {
      await ctx.close();
    }
  });

  test("acks of handed-over messages make no claim; once the window was full, acks claim the rest", async () => {
    const store = counting(open());
    const ctx = await startHub({ prefetch: 5, creditWaitMs: 0 }, store);
    try {
      const { sub, pub } = await subscribedAndFirstDelivered(ctx);
      const ack = async (from: number) => {
        const ids = sub.messages.slice(from).map((m) => m.messageId);
        expect(await sub.request("received", { messageIds: ids })).toEqual({ ok: true, removed: ids.length });
      };
      await ack(0);
      const claims = store.claims;
      // Publish and ack in turn: every message is handed over; the acks find nothing to claim.
      for (let n = 0; n < 12; n++) {
        expect(await pub.request("tick", n)).toMatchObject({ ok: true });
        await sub.received(n + 2);
        await ack(n + 1);
      }
      expect(store.claims).toBe(claims);
      // Eight at once for a window of five: three wait in the store, and the acks claim them.
      const burst = Array.from({ length: 8 }, (_, n) => ({ event: "tick", payload: 100 + n }));
      expect(await pub.request("publish", burst)).toMatchObject({ ok: true });
      await sub.received(13 + 5);
      await ack(13);
      const got = await sub.received(13 + 8);
      expect(got.slice(13).map((m) => m.payload)).toEqual(burst.map((m) => m.payload));
      expect(store.claims).toBeGreaterThan(claims);
    } finally {
      await ctx.close();
    }
  });

  test("a message queued while the consumer was away is delivered before newer ones", async () => {
    const store = open();
    const ctx = await startHub({}, store);
    try {
      const sub = await ctx.client("/", { clientId: "sub" });
      expect(await sub.request("subscribe", { event: "tick" })).toMatchObject({ ok: true });
      sub.close();
      const pub = await ctx.client("/", { clientId: "pub" });
      expect(await pub.request("tick", "while away")).toMatchObject({ ok: true });
      const back = await ctx.client("/", { clientId: "sub" });
      const sent = Promise.all([0, 1, 2].map((n) => pub.request("tick", n)));
      await sent;
      const got = await back.received(4);
      expect(got.map((m) => m.payload)).toEqual(["while away", 0, 1, 2]);
    } finally {
      await ctx.close();
    }
  });
});
