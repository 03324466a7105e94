import { MemoryStore } from "../src/store/memory.js";
import { StoreError } from "../src/store/store.js";
import { startHub } from "./support/hub.js";
import { deliverySemantics } from "./support/semantics.js";

deliverySemantics("one hub, memory store", (overrides) => startHub(overrides));

// An ack frees the window before the store has it (so the next claim shares the ack's commit):
// when the store then refuses the ack, the messages must still come back after the ack timeout.
test("an ack the store refuses puts the messages back in flight: redelivered after the ack timeout", async () => {
  const store = new (class extends MemoryStore {
    refuse = true;
    override async ack(ns: string, clientId: string, messageIds: string[]) {
      if (this.refuse) throw new StoreError("UNAVAILABLE", "store down (test)");
      return super.ack(ns, clientId, messageIds);
    }
  })();
  const ctx = await startHub({ ackTimeoutMs: 300 }, store);
  try {
    const sub = await ctx.client("/", { clientId: "sub" });
    await sub.request("subscribe", { event: "e" });
    const pub = await ctx.client("/", { clientId: "pub" });
    await pub.request("e", "once");
    const [first] = await sub.received(1);
    expect(await sub.request("received", { messageId: first?.messageId })).toMatchObject({
      ok: false,
      error: { code: "UNAVAILABLE" },
    });
    store.refuse = false;
    const [, again] = await sub.received(2);
    expect(again).toMatchObject({ messageId: first?.messageId, deliveries: 2 });
    expect(await sub.request("received", { messageId: first?.messageId })).toEqual({ ok: true, removed: 1 });
  } finally {
    await ctx.close();
  }
});
