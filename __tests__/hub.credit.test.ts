// Credit flow, end to end: while the hub's delivery to an online consumer with room in its window
// lags, publish acks wait for it; a slow consumer (full window) or an offline one holds no one.

import { MemoryStore } from "../src/store/memory.js";
import type { ClaimRequest, ClaimResult, EnqueueRequest, EnqueueResult } from "../src/store/store.js";
import { settle, startHub, waitUntil } from "./support/hub.js";

/** A store whose claims can be held at a gate, to make the hub's delivery lag on purpose. */
class GatedStore extends MemoryStore {
  gated = false;
  claimsWaiting = 0;
  enqueued = 0;
  private open: (() => void)[] = [];
  override async claim(req: ClaimRequest): Promise<ClaimResult> {
    if (this.gated) {
      this.claimsWaiting++;
      await new Promise<void>((resolve) => this.open.push(resolve));
      this.claimsWaiting--;
    }
    return super.claim(req);
  }
  override async enqueue(req: EnqueueRequest): Promise<EnqueueResult> {
    const result = await super.enqueue(req);
    this.enqueued++;
    return result;
  }
  openGate() {
    this.gated = false;
    for (const resolve of this.open.splice(0)) resolve();
  }
}

type Hub = Awaited<ReturnType<typeof startHub>>;

/**
 * A subscriber `sub` that was away while `pub` published "queued while away" comes back with its
 * first claim (for that message) held at the store's gate: the hub's delivery to it lags.
 */
async function consumerReturnsLagging(ctx: Hub, store: GatedStore) {
  const first = await ctx.client("/", { clientId: "sub" });
  expect(await first.request("subscribe", { event: "tick" })).toMatchObject({ ok: true });
  first.close();
  const pub = await ctx.client("/", { clientId: "pub" });
  expect(await pub.request("tick", "queued while away")).toMatchObject({ ok: true });
  store.gated = true;
  const sub = await ctx.client("/", { clientId: "sub" });
  await waitUntil(
    () => store.claimsWaiting > 0,
    3000,
    () => "the returning consumer's claim",
  );
  return { pub, sub };
}

test("a publish ack waits while the hub's delivery to an online consumer lags, and comes after it", async () => {
  const store = new GatedStore();
  // A bound far beyond the test: only the delivery catching up may let the ack go.
  const ctx = await startHub({ creditWaitMs: 60_000 }, store);
  try {
    // The consumer comes back; its first claim (for the queued message) is held at the gate.
    const { pub, sub } = await consumerReturnsLagging(ctx, store);
    const order: string[] = [];
    sub.socket.on("tick", (m: { payload: unknown }) => order.push(`delivery ${String(m.payload)}`));
    const enqueued = store.enqueued;
    const acked = pub.request("tick", "fresh").then((reply) => {
      order.push("publish ack");
      return reply;
    });
    await waitUntil(
      () => store.enqueued > enqueued,
      3000,
      () => "the fresh publish stored",
    );
    // Stored, but the consumer (window free) has not got it: without credit flow the ack is out now.
    await settle(150);
    expect(order).toEqual([]);
    store.openGate();
    expect(await acked).toMatchObject({ ok: true });
    await sub.received(2);
    expect(order).toEqual(["delivery queued while away", "delivery fresh", "publish ack"]);
  } finally {
    await ctx.close();
  }
});

test("a consumer with a full window (slow) or an offline one holds no publisher", async () => {
  const store = new GatedStore();
  const ctx = await startHub({ prefetch: 2, creditWaitMs: 60_000 }, store);
  try {
    const slow = await ctx.client("/", { clientId: "slow" });
    expect(await slow.request("subscribe", { event: "tick" })).toMatchObject({ ok: true });
    const away = await ctx.client("/", { clientId: "away" });
    expect(await away.request("subscribe", { event: "tick" })).toMatchObject({ ok: true });
    away.close();
    const pub = await ctx.client("/", { clientId: "pub" });
    // Claims would never finish: only a full window or absence lets these acks through at once.
    const replies = [];
    for (let n = 0; n < 10; n++) replies.push(await pub.request("tick", n));
    expect(replies.every((r) => r.ok)).toBe(true);
    const got = await slow.received(2);
    expect(got.map((m) => m.payload)).toEqual([0, 1]);
    store.gated = true;
    for (let n = 10; n < 20; n++) expect(await pub.request("tick", n)).toMatchObject({ ok: true });
  } finally {
    store.openGate();
    await ctx.close();
  }
});

test("a consumer whose delivery never catches up holds a publish ack for HUB_CREDIT_WAIT_MS only", async () => {
  const store = new GatedStore();
  const ctx = await startHub({ creditWaitMs: 100 }, store);
  try {
    const { pub } = await consumerReturnsLagging(ctx, store);
    expect(await pub.request("tick", "fresh")).toMatchObject({ ok: true });
    expect(store.claimsWaiting).toBeGreaterThan(0);
  } finally {
    store.openGate();
    await ctx.close();
  }
});
