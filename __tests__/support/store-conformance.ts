// The store conformance suite: every QueueStore (memory, SQLite, Redis) runs these same
// tests against the contract in src/store/store.ts (after aedes-persistence's abstract.js).
// Each test gets a fresh store from the factory; time is passed explicitly (never slept).
//
//   storeConformance("MemoryStore", async () => {
//     const store = new MemoryStore();
//     return { store, cleanup: () => store.close() };
//   });
import type { Message } from "../../src/protocol.js";
import {
  type ClaimRequest,
  clientQueue,
  type EnqueueRequest,
  groupQueue,
  type NewMessage,
  type Page,
  type PageRequest,
  publisherScope,
  type QueueName,
  type QueueStore,
  StoreError,
} from "../../src/store/store.js";

export interface StoreHarness {
  store: QueueStore;
  /** Closes the store (the latest one, after reopen) and deletes its data. */
  cleanup(): Promise<void>;
  /** persistent stores: close and open the same data again */
  reopen?(): Promise<QueueStore>;
}

const NS = "/";
const OTHER_NS = "/caps";
const WINDOW = 120_000;
const LEASE = 30_000;

export function storeConformance(name: string, factory: () => Promise<StoreHarness>): void {
  describe(name, () => {
    let h: StoreHarness;
    let store: QueueStore;
    /** Close to real time, so that stats() (which has no `now`) sees leases taken at T0 as live. */
    let T0: number;
    let seq: number;

    beforeEach(async () => {
      h = await factory();
      store = h.store;
      T0 = Date.now();
      seq = 0;
    });

    afterEach(async () => {
      await h.cleanup();
    });

    // ---- helpers -------------------------------------------------------------------------

    /** A new message; ids sort in creation order like UUIDv7s do. */
    function msg(event: string, extra: Partial<NewMessage> = {}): NewMessage {
      seq++;
      return {
        messageId: `0190000${String(seq).padStart(5, "0")}-${event}`,
        event,
        payload: { n: seq },
        publishedAt: T0,
        from: "publisher",
        expiresAt: null,
        ...extra,
      };
    }

    function enqueue(messages: NewMessage[], extra: Partial<EnqueueRequest> = {}) {
      return store.enqueue({
        ns: NS,
        messages,
        now: T0,
        dedupWindowMs: WINDOW,
        maxQueueLength: 0,
        overflow: "reject",
        ...extra,
      });
    }

    async function publish(
      event: string,
      extra: Partial<NewMessage> = {},
      req: Partial<EnqueueRequest> = {},
    ) {
      const m = msg(event, extra);
      await enqueue([m], req);
      return m.messageId;
    }

    function claimReq(queue: QueueName, consumer: string, extra: Partial<ClaimRequest> = {}): ClaimRequest {
      return {
        ns: NS,
        queue,
        consumer,
        limit: 100,
        now: T0,
        leaseMs: LEASE,
        maxDeliveries: 0,
        ...extra,
      };
    }

    async function claimIds(queue: QueueName, consumer: string, extra: Partial<ClaimRequest> = {}) {
      const r = await store.claim(claimReq(queue, consumer, extra));
      return r.messages.map((m) => m.messageId);
    }

    /**
     * Every id in a queue, oldest first. The contract has no peek, so this claims everything
     * (as if at T0 + 10 leases) and releases it: it counts a delivery and clears others' leases.
     */
    async function queueIds(queue: QueueName, ns = NS) {
      const r = await store.claim(claimReq(queue, "__peek__", { ns, limit: 10_000, now: T0 + 10 * LEASE }));
      await store.release(ns, queue, "__peek__");
      return r.messages.map((m) => m.messageId);
    }

    /** Every item of a view, page after page (small pages, to exercise the cursors). */
    async function everything<T>(view: (page: PageRequest) => Promise<Page<T>>, limit = 2): Promise<T[]> {
      const items: T[] = [];
      let after: string | null = null;
      for (let pages = 0; pages < 10_000; pages++) {
        const page: Page<T> = await view({ limit, after });
        items.push(...page.items);
        if (page.next === null) return items;
        after = page.next;
      }
      throw new Error("a view that never ends");
    }
    const allStats = (ns?: string) => everything((page) => store.stats(page, ns));
    const allSubs = (ns?: string) => everything((page) => store.subscriptions(page, ns));
    const deadOf = async (ns: string, limit: number) => (await store.listDead(ns, { limit })).items;
    /** An idempotency key of the one publisher these tests use. */
    const k = (key: string, scope = publisherScope.identity("publisher")) => ({ scope, key });

    async function statsOf(queue: QueueName, ns = NS) {
      const s = (await allStats(ns)).find((q) => q.queue === queue && q.ns === ns);
      return { pending: s?.pending ?? 0, inFlight: s?.inFlight ?? 0 };
    }

    async function expectStoreError(p: Promise<unknown>, code: StoreError["code"]) {
      let caught: unknown;
      try {
        await p;
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(StoreError);
      expect((caught as StoreError).code).toBe(code);
    }

    const sortSubs = (subs: { ns: string; clientId: string; event: string; group: string | null }[]) =>
      [...subs].sort((a, b) =>
        `${a.ns}|${a.clientId}|${a.event}`.localeCompare(`${b.ns}|${b.clientId}|${b.event}`),
      );

    // ---- subscriptions ---------------------------------------------------------------------

    describe("subscribe / subscriptions / consumerQueues", () => {
      it("records durable subscriptions, filtered by namespace", async () => {
        await store.subscribe(NS, "a", ["x", "y"], null);
        await store.subscribe(NS, "b", ["x"], "g");
        await store.subscribe(OTHER_NS, "a", ["x"], null);
        expect(sortSubs(await allSubs(NS))).toEqual([
          { ns: NS, clientId: "a", event: "x", group: null },
          { ns: NS, clientId: "a", event: "y", group: null },
          { ns: NS, clientId: "b", event: "x", group: "g" },
        ]);
        expect(await allSubs(OTHER_NS)).toEqual([{ ns: OTHER_NS, clientId: "a", event: "x", group: null }]);
        expect(await allSubs()).toHaveLength(4);
      });

      it("is idempotent: subscribing twice keeps one subscription and leaves the queue untouched", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const id = await publish("x");
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(NS, "a", ["x", "x"], null);
        expect(await allSubs(NS)).toEqual([{ ns: NS, clientId: "a", event: "x", group: null }]);
        expect(await queueIds(clientQueue("a"))).toEqual([id]);
        // still one copy per publish after re-subscribing
        const id2 = await publish("x");
        expect(await queueIds(clientQueue("a"))).toEqual([id, id2]);
      });

      it("a new group replaces the old one", async () => {
        await store.subscribe(NS, "a", ["x"], "g1");
        await store.subscribe(NS, "a", ["x"], "g2");
        expect(await allSubs(NS)).toEqual([{ ns: NS, clientId: "a", event: "x", group: "g2" }]);
        expect(await store.consumerQueues(NS, "a")).toEqual([clientQueue("a"), groupQueue("g2")]);
        const r = await enqueue([msg("x")]);
        expect(r.queues).toEqual([groupQueue("g2")]);
        expect(await queueIds(groupQueue("g1"))).toEqual([]);

        await store.subscribe(NS, "a", ["x"], null);
        expect(await allSubs(NS)).toEqual([{ ns: NS, clientId: "a", event: "x", group: null }]);
        expect(await store.consumerQueues(NS, "a")).toEqual([clientQueue("a")]);
        const r2 = await enqueue([msg("x")]);
        expect(r2.queues).toEqual([clientQueue("a")]);
      });

      it("consumerQueues: the client's own queue first, then its groups', per namespace", async () => {
        expect(await store.consumerQueues(NS, "nobody")).toEqual([clientQueue("nobody")]);
        await store.subscribe(NS, "a", ["x"], "g1");
        await store.subscribe(NS, "a", ["y"], "g2");
        await store.subscribe(NS, "a", ["z"], "g1");
        await store.subscribe(NS, "a", ["w"], null);
        await store.subscribe(OTHER_NS, "a", ["x"], "g3");
        const queues = await store.consumerQueues(NS, "a");
        expect(queues[0]).toBe(clientQueue("a"));
        expect([...queues.slice(1)].sort()).toEqual([groupQueue("g1"), groupQueue("g2")]);
        expect(await store.consumerQueues(OTHER_NS, "a")).toEqual([clientQueue("a"), groupQueue("g3")]);
        expect(await store.consumerQueues(NS, "b")).toEqual([clientQueue("b")]);
      });
    });

    describe("unsubscribe", () => {
      it("ends the subscriptions and drops the client's queued entries of those events only", async () => {
        await store.subscribe(NS, "a", ["x", "y"], null);
        await store.subscribe(NS, "b", ["x"], null);
        const x1 = await publish("x");
        const y1 = await publish("y");
        const x2 = await publish("x");
        await claimIds(clientQueue("a"), "a", { limit: 1 }); // x1 in flight: dropped too
        expect(await store.unsubscribe(NS, "a", ["x"])).toBe(2);
        expect(await queueIds(clientQueue("a"))).toEqual([y1]);
        expect(await queueIds(clientQueue("b"))).toEqual([x1, x2]);
        expect(await allSubs(NS)).toEqual(
          expect.arrayContaining([
            { ns: NS, clientId: "a", event: "y", group: null },
            { ns: NS, clientId: "b", event: "x", group: null },
          ]),
        );
        expect(await allSubs(NS)).toHaveLength(2);
        // no longer receives x
        const r = await enqueue([msg("x")]);
        expect(r.queues).toEqual([clientQueue("b")]);
        expect(await store.unsubscribe(NS, "a", ["x"])).toBe(0);
        expect(await store.unsubscribe(NS, "nobody", ["x"])).toBe(0);
      });

      it("drops a group's entries of an event only when its last member for that event leaves", async () => {
        await store.subscribe(NS, "a", ["x", "y"], "g");
        await store.subscribe(NS, "b", ["x"], "g");
        const x1 = await publish("x");
        const y1 = await publish("y");
        expect(await store.unsubscribe(NS, "a", ["x"])).toBe(0);
        expect(await queueIds(groupQueue("g"))).toEqual([x1, y1]);
        expect(await store.unsubscribe(NS, "b", ["x"])).toBe(1);
        expect(await queueIds(groupQueue("g"))).toEqual([y1]);
        expect(await store.consumerQueues(NS, "b")).toEqual([clientQueue("b")]);
        expect(await store.consumerQueues(NS, "a")).toEqual([clientQueue("a"), groupQueue("g")]);
      });

      it("is scoped to the namespace", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(OTHER_NS, "a", ["x"], null);
        const id = await publish("x");
        const other = msg("x");
        await enqueue([other], { ns: OTHER_NS });
        expect(await store.unsubscribe(OTHER_NS, "a", ["x"])).toBe(1);
        expect(await queueIds(clientQueue("a"))).toEqual([id]);
        expect(await allSubs(NS)).toHaveLength(1);
      });
    });

    // ---- enqueue -----------------------------------------------------------------------------

    describe("enqueue", () => {
      it("fans out to every subscriber of the event, and only to them", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(NS, "b", ["x", "y"], null);
        await store.subscribe(NS, "c", ["y"], null);
        await store.subscribe(OTHER_NS, "d", ["x"], null);
        const m = msg("x");
        const r = await enqueue([m]);
        expect(r.duplicate).toBe(false);
        expect(r.messageIds).toEqual([m.messageId]);
        expect(r.dropped).toBe(0);
        expect([...r.queues].sort()).toEqual([clientQueue("a"), clientQueue("b")]);
        expect(await queueIds(clientQueue("a"))).toEqual([m.messageId]);
        expect(await queueIds(clientQueue("b"))).toEqual([m.messageId]);
        expect(await queueIds(clientQueue("c"))).toEqual([]);
        expect(await queueIds(clientQueue("d"), OTHER_NS)).toEqual([]);
      });

      it("with no subscribers stores nothing and still returns the ids", async () => {
        const m = msg("x");
        const r = await enqueue([m]);
        expect(r).toEqual({ duplicate: false, messageIds: [m.messageId], queues: [], dropped: 0 });
        expect(await allStats(NS)).toEqual([]);
      });

      it("skips the publisher's own subscription unless echo", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(NS, "b", ["x"], null);
        const r1 = await enqueue([msg("x", { from: "a" })]);
        expect(r1.queues).toEqual([clientQueue("b")]);
        expect(await queueIds(clientQueue("a"))).toEqual([]);
        const m2 = msg("x", { from: "a", echo: true });
        const r2 = await enqueue([m2]);
        expect([...r2.queues].sort()).toEqual([clientQueue("a"), clientQueue("b")]);
        expect(await queueIds(clientQueue("a"))).toEqual([m2.messageId]);
      });

      it("groups always receive, even when the publisher is a member; one copy per group", async () => {
        await store.subscribe(NS, "a", ["x"], "g");
        await store.subscribe(NS, "b", ["x"], "g");
        await store.subscribe(NS, "c", ["x"], "h");
        const m = msg("x", { from: "a" });
        const r = await enqueue([m]);
        expect([...r.queues].sort()).toEqual([groupQueue("g"), groupQueue("h")]);
        expect(await queueIds(groupQueue("g"))).toEqual([m.messageId]);
        expect(await queueIds(groupQueue("h"))).toEqual([m.messageId]);
        expect(await queueIds(clientQueue("a"))).toEqual([]);
        expect(await queueIds(clientQueue("b"))).toEqual([]);
      });

      it("`to` targets only the named clients' own queues, subscribed or not", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(NS, "g1", ["x"], "g");
        const m = msg("x", { to: ["never-connected", "b", "b"], from: "b" });
        const r = await enqueue([m]);
        expect([...r.queues].sort()).toEqual([clientQueue("b"), clientQueue("never-connected")]);
        expect(await queueIds(clientQueue("never-connected"))).toEqual([m.messageId]);
        expect(await queueIds(clientQueue("b"))).toEqual([m.messageId]);
        expect(await queueIds(clientQueue("a"))).toEqual([]);
        expect(await queueIds(groupQueue("g"))).toEqual([]);
        expect(await store.pending(NS, "never-connected", T0)).toBe(1);
      });

      it("is scoped to the namespace", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(OTHER_NS, "a", ["x"], null);
        const m = msg("x");
        await enqueue([m], { ns: OTHER_NS });
        expect(await queueIds(clientQueue("a"), OTHER_NS)).toEqual([m.messageId]);
        expect(await queueIds(clientQueue("a"))).toEqual([]);
      });

      it("stores a batch in order: FIFO across events per queue", async () => {
        await store.subscribe(NS, "a", ["x", "y"], null);
        await store.subscribe(NS, "b", ["y"], null);
        const batch = [msg("x"), msg("y"), msg("x"), msg("y", { to: ["a"] }), msg("x")];
        const r = await enqueue(batch);
        expect(r.messageIds).toEqual(batch.map((m) => m.messageId));
        expect(await queueIds(clientQueue("a"))).toEqual(batch.map((m) => m.messageId));
        expect(await queueIds(clientQueue("b"))).toEqual([batch[1]?.messageId]);
        const later = await publish("y");
        expect(await queueIds(clientQueue("a"))).toEqual([...batch.map((m) => m.messageId), later]);
      });

      it("keeps FIFO by store order over many single publishes", async () => {
        await store.subscribe(NS, "a", ["x", "y", "z"], null);
        const ids: string[] = [];
        for (let i = 0; i < 30; i++) ids.push(await publish(["x", "y", "z"][i % 3] as string));
        expect(await queueIds(clientQueue("a"))).toEqual(ids);
      });

      it("keeps every message field through the store", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const payloads: unknown[] = [
          { deep: { list: [1, "two", null, true] } },
          "text",
          42,
          null,
          [],
          "ünïcødé ✓",
        ];
        const sent = payloads.map((payload, i) =>
          msg("x", { payload, from: i % 2 ? null : "pub", publishedAt: T0 - i }),
        );
        await enqueue(sent);
        const r = await store.claim(claimReq(clientQueue("a"), "a"));
        expect(r.messages).toEqual(
          sent.map(
            (m): Message => ({
              messageId: m.messageId,
              event: m.event,
              payload: m.payload,
              publishedAt: m.publishedAt,
              from: m.from,
              deliveries: 1,
            }),
          ),
        );
      });

      it("a key seen inside the window returns the first ids and stores nothing", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const first = [msg("x"), msg("x")];
        const r1 = await enqueue(first, { key: k("k1") });
        expect(r1.duplicate).toBe(false);
        const r2 = await enqueue([msg("x")], { key: k("k1"), now: T0 + WINDOW - 1 });
        expect(r2.duplicate).toBe(true);
        expect(r2.messageIds).toEqual(first.map((m) => m.messageId));
        expect(r2.queues).toEqual([]);
        expect(r2.dropped).toBe(0);
        expect(await queueIds(clientQueue("a"))).toEqual(first.map((m) => m.messageId));
        // other keys and other namespaces are independent
        expect((await enqueue([msg("x")], { key: k("k2") })).duplicate).toBe(false);
        await store.subscribe(OTHER_NS, "a", ["x"], null);
        const otherNs = await enqueue([msg("x")], { key: k("k1"), ns: OTHER_NS });
        expect(otherNs.duplicate).toBe(false);
        expect(await queueIds(clientQueue("a"), OTHER_NS)).toHaveLength(1);
      });

      it("after the window the key stores again", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await enqueue([msg("x")], { key: k("k") });
        const again = msg("x");
        const r = await enqueue([again], { key: k("k"), now: T0 + WINDOW });
        expect(r.duplicate).toBe(false);
        expect(r.messageIds).toEqual([again.messageId]);
        expect(await queueIds(clientQueue("a"))).toHaveLength(2);
        // and the new publish starts a new window
        const r2 = await enqueue([msg("x")], { key: k("k"), now: T0 + WINDOW + 1 });
        expect(r2.duplicate).toBe(true);
        expect(r2.messageIds).toEqual([again.messageId]);
      });

      it("sweep forgets dedup keys whose window passed, and keeps the others", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const first = msg("x");
        await enqueue([first], { key: k("old") });
        await enqueue([msg("x")], { key: k("young"), now: T0 + WINDOW / 2 });
        await store.sweep(T0 + WINDOW);
        expect((await enqueue([msg("x")], { key: k("old"), now: T0 + WINDOW })).duplicate).toBe(false);
        expect((await enqueue([msg("x")], { key: k("young"), now: T0 + WINDOW })).duplicate).toBe(true);
      });

      it("maxQueueLength with reject: QUEUE_FULL, and nothing is stored for anyone", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(NS, "b", ["x"], null);
        await enqueue([msg("x", { to: ["a"] }), msg("x", { to: ["a"] })]);
        const limits = { maxQueueLength: 3, overflow: "reject" as const };
        const ok = await publish("x", {}, limits); // a: 3, b: 1
        await expectStoreError(enqueue([msg("x")], { ...limits, key: k("k") }), "QUEUE_FULL");
        expect(await queueIds(clientQueue("a"))).toHaveLength(3);
        expect(await queueIds(clientQueue("b"))).toEqual([ok]);
        // a batch that fits b but not a: all or nothing
        await expectStoreError(enqueue([msg("x", { to: ["b"] }), msg("x")], limits), "QUEUE_FULL");
        expect(await queueIds(clientQueue("b"))).toEqual([ok]);
        // a batch that overflows b only on its last message
        await expectStoreError(
          enqueue([msg("x", { to: ["b"] }), msg("x", { to: ["b"] }), msg("x", { to: ["b"] })], limits),
          "QUEUE_FULL",
        );
        expect(await queueIds(clientQueue("b"))).toEqual([ok]);
        // the refused key was not remembered: after an ack the retry stores
        const [oldest] = await queueIds(clientQueue("a"));
        expect(await store.ack(NS, "a", [oldest as string])).toEqual([oldest]);
        const retry = await enqueue([msg("x")], { ...limits, key: k("k") });
        expect(retry.duplicate).toBe(false);
        expect(await queueIds(clientQueue("a"))).toHaveLength(3);
        expect(await queueIds(clientQueue("b"))).toHaveLength(2);
      });

      it("maxQueueLength with drop-oldest dead-letters the oldest (reason overflow) and reports dropped", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(NS, "b", ["x"], null);
        const limits = { maxQueueLength: 2, overflow: "drop-oldest" as const };
        const m1 = await publish("x", { to: ["a"] }, limits);
        const m2 = await publish("x", {}, limits);
        const m3 = msg("x");
        const r = await enqueue([m3], { ...limits, now: T0 + 5 });
        expect(r.dropped).toBe(1);
        expect([...r.queues].sort()).toEqual([clientQueue("a"), clientQueue("b")]);
        expect(await queueIds(clientQueue("a"))).toEqual([m2, m3.messageId]);
        expect(await queueIds(clientQueue("b"))).toEqual([m2, m3.messageId]);
        const dead = await deadOf(NS, 10);
        expect(dead).toHaveLength(1);
        expect(dead[0]).toMatchObject({
          ns: NS,
          queue: clientQueue("a"),
          messageId: m1,
          event: "x",
          reason: "overflow",
          deadAt: T0 + 5,
          deliveries: 0,
        });
        // a batch larger than the limit keeps only its newest entries
        const batch = [msg("x", { to: ["b"] }), msg("x", { to: ["b"] }), msg("x", { to: ["b"] })];
        const r2 = await enqueue(batch, limits);
        expect(r2.dropped).toBe(3);
        expect(await queueIds(clientQueue("b"))).toEqual([batch[1]?.messageId, batch[2]?.messageId]);
        expect(await deadOf(NS, 10)).toHaveLength(4);
      });

      it("maxQueueLength 0 is unlimited", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await enqueue(
          Array.from({ length: 50 }, () => msg("x")),
          { maxQueueLength: 0, overflow: "reject" },
        );
        expect(await store.pending(NS, "a", T0)).toBe(50);
      });
    });

    // ---- claim / release -----------------------------------------------------------------------

    describe("claim", () => {
      it("leases entries oldest first, up to limit, counting this delivery", async () => {
        await store.subscribe(NS, "a", ["x", "y"], null);
        const batch = [msg("x"), msg("y"), msg("x"), msg("y"), msg("x")];
        await enqueue(batch);
        const ids = batch.map((m) => m.messageId);
        const r = await store.claim(claimReq(clientQueue("a"), "a", { limit: 2 }));
        expect(r.messages.map((m) => m.messageId)).toEqual(ids.slice(0, 2));
        expect(r.messages.map((m) => m.deliveries)).toEqual([1, 1]);
        expect(r.expired).toBe(0);
        expect(r.deadLettered).toBe(0);
        // leased entries are not claimed again while the lease lasts
        expect(await claimIds(clientQueue("a"), "a", { limit: 2, now: T0 + 1 })).toEqual(ids.slice(2, 4));
        expect(await claimIds(clientQueue("a"), "a", { now: T0 + 2 })).toEqual(ids.slice(4));
        expect(await claimIds(clientQueue("a"), "a", { now: T0 + LEASE - 1 })).toEqual([]);
      });

      it("returns nothing from an empty or unknown queue", async () => {
        expect(await store.claim(claimReq(clientQueue("nobody"), "nobody"))).toEqual({
          messages: [],
          deadLettered: 0,
          expired: 0,
        });
      });

      it("an expired lease makes the entry claimable again, with deliveries counting every claim", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const id = await publish("x");
        const later = await publish("x");
        await claimIds(clientQueue("a"), "a", { limit: 1 });
        const r = await store.claim(claimReq(clientQueue("a"), "a", { now: T0 + LEASE }));
        expect(r.messages.map((m) => [m.messageId, m.deliveries])).toEqual([
          [id, 2],
          [later, 1],
        ]);
        const r3 = await store.claim(claimReq(clientQueue("a"), "other", { now: T0 + 2 * LEASE }));
        expect(r3.messages.map((m) => [m.messageId, m.deliveries])).toEqual([
          [id, 3],
          [later, 2],
        ]);
      });

      it("two consumers of a group queue never get the same entry", async () => {
        await store.subscribe(NS, "a", ["x"], "g");
        await store.subscribe(NS, "b", ["x"], "g");
        const ids: string[] = [];
        for (let i = 0; i < 6; i++) ids.push(await publish("x"));
        expect(await claimIds(groupQueue("g"), "a", { limit: 2 })).toEqual(ids.slice(0, 2));
        expect(await claimIds(groupQueue("g"), "b", { limit: 2 })).toEqual(ids.slice(2, 4));
        // concurrent claims: every entry handed out once
        const more: string[] = [];
        for (let i = 0; i < 20; i++) more.push(await publish("x"));
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) => claimIds(groupQueue("g"), `c${i}`, { limit: 3, now: T0 + 1 })),
        );
        const got = results.flat();
        expect(new Set(got).size).toBe(got.length);
        expect([...got].sort()).toEqual([...ids.slice(4), ...more].sort());
      });

      it("removes entries whose TTL passed, counts them, and never delivers them", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const gone1 = await publish("x", { expiresAt: T0 + 10 });
        const keep = await publish("x", { expiresAt: T0 + 1000 });
        const gone2 = await publish("x", { expiresAt: T0 + 100 });
        const forever = await publish("x");
        const r = await store.claim(claimReq(clientQueue("a"), "a", { now: T0 + 100 }));
        expect(r.messages.map((m) => m.messageId)).toEqual([keep, forever]);
        expect(r.expired).toBe(2);
        await store.release(NS, clientQueue("a"), "a");
        const again = await store.claim(claimReq(clientQueue("a"), "a", { now: T0 + 100 }));
        expect(again.messages.map((m) => m.messageId)).toEqual([keep, forever]);
        expect(again.expired).toBe(0);
        expect(await store.ack(NS, "a", [gone1, gone2])).toEqual([]);
        expect(await store.pending(NS, "a", T0 + 100)).toBe(2);
      });

      it("moves entries that reached maxDeliveries to dead letters (reason max-deliveries)", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const id = await publish("x");
        const other = await publish("x", { to: ["a"] });
        await claimIds(clientQueue("a"), "a", { limit: 1, maxDeliveries: 2 });
        await claimIds(clientQueue("a"), "a", { limit: 1, maxDeliveries: 2, now: T0 + LEASE });
        const r = await store.claim(
          claimReq(clientQueue("a"), "a", { maxDeliveries: 2, now: T0 + 2 * LEASE }),
        );
        expect(r.deadLettered).toBe(1);
        expect(r.messages.map((m) => [m.messageId, m.deliveries])).toEqual([[other, 1]]);
        const dead = await deadOf(NS, 10);
        expect(dead).toEqual([
          {
            ns: NS,
            queue: clientQueue("a"),
            messageId: id,
            event: "x",
            payload: expect.anything(),
            publishedAt: T0,
            from: "publisher",
            deliveries: 2,
            reason: "max-deliveries",
            deadAt: T0 + 2 * LEASE,
          },
        ]);
        expect(await store.pending(NS, "a", T0 + 2 * LEASE)).toBe(1);
        // maxDeliveries 0 means never
        for (let i = 3; i < 8; i++) {
          expect(await claimIds(clientQueue("a"), "a", { maxDeliveries: 0, now: T0 + i * LEASE })).toEqual([
            other,
          ]);
        }
      });

      it("filters by event and leaves the other entries in place", async () => {
        await store.subscribe(NS, "a", ["x", "y"], null);
        const batch = [msg("x"), msg("y"), msg("x"), msg("y")];
        await enqueue(batch);
        const ids = batch.map((m) => m.messageId);
        expect(await claimIds(clientQueue("a"), "a", { event: "y" })).toEqual([ids[1], ids[3]]);
        expect(await claimIds(clientQueue("a"), "a", { event: "y" })).toEqual([]);
        expect(await claimIds(clientQueue("a"), "a", { limit: 1, event: "x" })).toEqual([ids[0]]);
        expect(await claimIds(clientQueue("a"), "a")).toEqual([ids[2]]);
      });

      it("reads past leased entries to fill the limit", async () => {
        await store.subscribe(NS, "a", ["x"], "g");
        const ids: string[] = [];
        for (let i = 0; i < 10; i++) ids.push(await publish("x"));
        expect(await claimIds(groupQueue("g"), "a", { limit: 4 })).toEqual(ids.slice(0, 4));
        expect(await claimIds(groupQueue("g"), "b", { limit: 4 })).toEqual(ids.slice(4, 8));
        await store.release(NS, groupQueue("g"), "a", [ids[1] as string]);
        expect(await claimIds(groupQueue("g"), "c", { limit: 4 })).toEqual([ids[1], ids[8], ids[9]]);
      });
    });

    describe("handover (fresh entries leased as they are stored)", () => {
      /** A handover that offers every client queue to its own client, recording what it was asked. */
      function offerToOwners(limit = 100) {
        const asked: [QueueName, number][] = [];
        const handover = (queue: QueueName, count: number) => {
          asked.push([queue, count]);
          return queue.startsWith("c:") ? { consumer: queue.slice(2), limit, leaseMs: LEASE } : undefined;
        };
        return { asked, handover };
      }
      const handedIds = (r: { handedOver?: { queue: QueueName; messages: Message[] }[] }, queue: QueueName) =>
        (r.handedOver ?? [])
          .filter((h) => h.queue === queue)
          .flatMap((h) => h.messages.map((m) => m.messageId));

      it("leases the first `limit` new entries of an empty queue to the consumer, as a claim would", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const batch = [msg("x"), msg("x", { payload: { deep: [1, "two"] } }), msg("x")];
        const ids = batch.map((m) => m.messageId);
        const { asked, handover } = offerToOwners(2);
        const r = await enqueue(batch, { handover });
        expect(asked).toEqual([[clientQueue("a"), 3]]);
        expect(r.handedOver).toEqual([
          {
            queue: clientQueue("a"),
            consumer: "a",
            messages: batch.slice(0, 2).map((m) => ({
              messageId: m.messageId,
              event: "x",
              payload: m.payload,
              publishedAt: T0,
              from: "publisher",
              deliveries: 1,
            })),
          },
        ]);
        // The third waits for a claim; the two handed over are leased like claimed ones.
        expect(await claimIds(clientQueue("a"), "a", { now: T0 + 1 })).toEqual([ids[2]]);
        const again = await store.claim(claimReq(clientQueue("a"), "a", { now: T0 + LEASE }));
        expect(again.messages.map((m) => [m.messageId, m.deliveries])).toEqual([
          [ids[0], 2],
          [ids[1], 2],
        ]);
        expect(await store.ack(NS, "a", [ids[0] as string, ids[1] as string])).toEqual([ids[0], ids[1]]);
      });

      it("hands nothing over while the queue holds an older entry the consumer could claim", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const older = await publish("x");
        const r = await enqueue([msg("x")], { handover: offerToOwners().handover });
        expect(r.handedOver ?? []).toEqual([]);
        expect(await claimIds(clientQueue("a"), "a")).toEqual([older, r.messageIds[0]]);
      });

      it("hands over behind entries under live leases, not once one of those leases ran out", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const first = await publish("x");
        expect(await claimIds(clientQueue("a"), "a")).toEqual([first]);
        const { handover } = offerToOwners();
        const second = await enqueue([msg("x")], { handover, now: T0 + 1 });
        expect(handedIds(second, clientQueue("a"))).toEqual(second.messageIds);
        // first's lease ends at T0 + LEASE: from then on it is claimable, and comes first.
        const third = await enqueue([msg("x")], { handover, now: T0 + LEASE });
        expect(handedIds(third, clientQueue("a"))).toEqual([]);
        expect(await claimIds(clientQueue("a"), "a", { now: T0 + LEASE })).toEqual([
          first,
          third.messageIds[0],
        ]);
      });

      it("after a release the released entries come first: nothing is handed over past them", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const { handover } = offerToOwners();
        const first = await enqueue([msg("x")], { handover });
        expect(handedIds(first, clientQueue("a"))).toEqual(first.messageIds);
        expect(await store.release(NS, clientQueue("a"), "a")).toBe(1);
        const second = await enqueue([msg("x")], { handover, now: T0 + 1 });
        expect(handedIds(second, clientQueue("a"))).toEqual([]);
        expect(await claimIds(clientQueue("a"), "a", { now: T0 + 1 })).toEqual([
          first.messageIds[0],
          second.messageIds[0],
        ]);
      });

      it("asks once per target queue; queues not offered keep their entries free for claims", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(NS, "b", ["x"], null);
        await store.subscribe(NS, "c", ["x"], "g");
        const asked: [QueueName, number][] = [];
        const r = await enqueue([msg("x"), msg("x")], {
          handover: (queue, count) => {
            asked.push([queue, count]);
            return queue === clientQueue("a") ? { consumer: "a", limit: 10, leaseMs: LEASE } : undefined;
          },
        });
        expect(asked.sort()).toEqual(
          [
            [clientQueue("a"), 2],
            [clientQueue("b"), 2],
            [groupQueue("g"), 2],
          ].sort(),
        );
        expect(handedIds(r, clientQueue("a"))).toEqual(r.messageIds);
        expect(await claimIds(clientQueue("a"), "a", { now: T0 + 1 })).toEqual([]);
        expect(await claimIds(clientQueue("b"), "b")).toEqual(r.messageIds);
        expect(await claimIds(groupQueue("g"), "c")).toEqual(r.messageIds);
      });

      it("a duplicate publish (idempotency key) hands nothing over", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await enqueue([msg("x")], { key: k("once") });
        const { asked, handover } = offerToOwners();
        const dup = await enqueue([msg("x")], { key: k("once"), handover, now: T0 + 1 });
        expect(dup.duplicate).toBe(true);
        expect(dup.handedOver ?? []).toEqual([]);
        expect(asked).toEqual([]);
      });
    });

    describe("release", () => {
      it("clears all of the consumer's leases, or those ids, and only the consumer's", async () => {
        await store.subscribe(NS, "a", ["x"], "g");
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push(await publish("x"));
        const q = groupQueue("g");
        await claimIds(q, "a", { limit: 2 });
        await claimIds(q, "b", { limit: 2 });
        expect(await store.release(NS, q, "b", [ids[0] as string, "unknown"])).toBe(0);
        expect(await store.release(NS, q, "a", [ids[1] as string, ids[1] as string])).toBe(1);
        expect(await claimIds(q, "c", { now: T0 + 1 })).toEqual([ids[1], ids[4]]);
        expect(await store.release(NS, q, "b")).toBe(2);
        expect(await store.release(NS, q, "b")).toBe(0);
        // released entries are claimable again at once, deliveries still counted
        const r = await store.claim(claimReq(q, "d", { now: T0 + 2 }));
        expect(r.messages.map((m) => [m.messageId, m.deliveries])).toEqual([
          [ids[2], 2],
          [ids[3], 2],
        ]);
        expect(await store.release(NS, q, "a")).toBe(1);
        expect(await claimIds(q, "d", { now: T0 + 3 })).toEqual([ids[0]]);
        expect(await store.release(NS, clientQueue("nobody"), "nobody")).toBe(0);
      });
    });

    // ---- ack -----------------------------------------------------------------------------------

    describe("ack", () => {
      it("removes entries from the client's own queue, in flight or not yet sent", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const ids: string[] = [];
        for (let i = 0; i < 4; i++) ids.push(await publish("x"));
        await claimIds(clientQueue("a"), "a", { limit: 1 });
        const removed = await store.ack(NS, "a", [ids[0] as string, ids[2] as string]);
        expect([...removed].sort()).toEqual([ids[0], ids[2]].sort());
        expect(await queueIds(clientQueue("a"))).toEqual([ids[1], ids[3]]);
      });

      it("ignores unknown ids and other clients' ids, and counts duplicates once", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(NS, "b", ["y"], null);
        const x = await publish("x");
        const y = await publish("y");
        expect(await store.ack(NS, "a", [y, "unknown"])).toEqual([]);
        expect(await queueIds(clientQueue("b"))).toEqual([y]);
        expect(await store.ack(NS, "a", [x, x, x])).toEqual([x]);
        expect(await store.ack(NS, "a", [x])).toEqual([]);
        expect(await store.ack(NS, "a", [])).toEqual([]);
        // same id in two clients' queues: each ack removes only the acker's copy
        await store.subscribe(NS, "a", ["z"], null);
        await store.subscribe(NS, "b", ["z"], null);
        const z = await publish("z");
        expect(await store.ack(NS, "a", [z])).toEqual([z]);
        expect(await queueIds(clientQueue("b"))).toEqual([y, z]);
      });

      it("is scoped to the namespace", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(OTHER_NS, "a", ["x"], null);
        const m = msg("x");
        await enqueue([m]);
        await enqueue([m], { ns: OTHER_NS });
        expect(await store.ack(OTHER_NS, "a", [m.messageId])).toEqual([m.messageId]);
        expect(await queueIds(clientQueue("a"))).toEqual([m.messageId]);
      });

      it("removes a group's entry only where this client holds the lease", async () => {
        await store.subscribe(NS, "a", ["x"], "g");
        await store.subscribe(NS, "b", ["x"], "g");
        const m1 = await publish("x");
        const m2 = await publish("x");
        // not leased yet: no member may ack it
        expect(await store.ack(NS, "a", [m1])).toEqual([]);
        await claimIds(groupQueue("g"), "a", { limit: 1 });
        await claimIds(groupQueue("g"), "b", { limit: 1 });
        expect(await store.ack(NS, "a", [m2])).toEqual([]);
        expect(await store.ack(NS, "b", [m1])).toEqual([]);
        expect(await store.ack(NS, "outsider", [m1, m2])).toEqual([]);
        expect([...(await store.ack(NS, "a", [m1, m2]))]).toEqual([m1]);
        expect(await store.ack(NS, "b", [m2])).toEqual([m2]);
        expect(await queueIds(groupQueue("g"))).toEqual([]);
      });
    });

    // ---- pending / sweep -------------------------------------------------------------------------

    describe("pending", () => {
      it("counts the client's own entries plus its groups' entries not leased by others", async () => {
        await store.subscribe(NS, "a", ["x", "y"], null);
        await store.subscribe(NS, "a", ["z"], "g");
        await store.subscribe(NS, "b", ["z"], "g");
        await publish("x");
        await publish("y");
        await publish("x");
        for (let i = 0; i < 4; i++) await publish("z");
        expect(await store.pending(NS, "a", T0)).toBe(7);
        await claimIds(clientQueue("a"), "a", { limit: 1 }); // own in flight: still pending
        await claimIds(groupQueue("g"), "a", { limit: 1 }); // leased by a: counts for a
        await claimIds(groupQueue("g"), "b", { limit: 2 }); // leased by b: not for a
        expect(await store.pending(NS, "a", T0)).toBe(5);
        expect(await store.pending(NS, "b", T0)).toBe(3);
        expect(await store.pending(NS, "a", T0, "x")).toBe(2);
        expect(await store.pending(NS, "a", T0, "z")).toBe(2);
        expect(await store.pending(NS, "a", T0, "nothing")).toBe(0);
        // once b's leases expire they count for a again
        expect(await store.pending(NS, "a", T0 + LEASE)).toBe(7);
        expect(await store.pending(NS, "nobody", T0)).toBe(0);
        expect(await store.pending(OTHER_NS, "a", T0)).toBe(0);
      });
    });

    describe("sweep", () => {
      it("removes entries whose TTL passed, in every queue and namespace", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(NS, "b", ["x"], "g");
        await store.subscribe(OTHER_NS, "a", ["x"], null);
        await publish("x", { expiresAt: T0 + 10 }); // a + g
        const keep = await publish("x", { expiresAt: T0 + 20 * LEASE });
        const forever = await publish("x");
        await claimIds(clientQueue("a"), "a", { limit: 1 }); // leased entries expire too
        await enqueue([msg("x", { expiresAt: T0 + 10 })], { ns: OTHER_NS });
        expect(await store.sweep(T0 + 9)).toBe(0);
        expect(await store.sweep(T0 + 10)).toBe(3);
        expect(await store.sweep(T0 + 10)).toBe(0);
        expect(await queueIds(clientQueue("a"))).toEqual([keep, forever]);
        expect(await queueIds(groupQueue("g"))).toEqual([keep, forever]);
        expect(await queueIds(clientQueue("a"), OTHER_NS)).toEqual([]);
      });
    });

    // ---- dead letters -----------------------------------------------------------------------------

    describe("dead letters", () => {
      /** Dead-letters the first `n` entries of a's queue (max-deliveries 1). */
      async function kill(n: number, at = T0 + LEASE) {
        await claimIds(clientQueue("a"), "a", { limit: n, maxDeliveries: 1 });
        const r = await store.claim(claimReq(clientQueue("a"), "a", { limit: n, maxDeliveries: 1, now: at }));
        return r.deadLettered;
      }

      it("listDead is per namespace and honours limit", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        for (let i = 0; i < 3; i++) await publish("x");
        expect(await kill(3)).toBe(3);
        expect(await deadOf(NS, 10)).toHaveLength(3);
        expect(await deadOf(NS, 2)).toHaveLength(2);
        expect(await deadOf(OTHER_NS, 10)).toEqual([]);
      });

      it("requeueDead puts them back at the tail with deliveries reset, claimable again", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const d1 = await publish("x");
        const d2 = await publish("x");
        expect(await kill(2)).toBe(2);
        const live = await publish("x");
        expect(await store.requeueDead(NS, [d2, "unknown"])).toEqual([clientQueue("a")]);
        expect((await deadOf(NS, 10)).map((d) => d.messageId)).toEqual([d1]);
        const r = await store.claim(
          claimReq(clientQueue("a"), "a", { now: T0 + 3 * LEASE, maxDeliveries: 1 }),
        );
        expect(r.messages.map((m) => [m.messageId, m.deliveries])).toEqual([
          [live, 1],
          [d2, 1],
        ]);
        expect(r.messages[1]?.payload).toEqual({ n: 2 });
        expect(await store.ack(NS, "a", [d2])).toEqual([d2]);
        expect(await store.requeueDead(NS, [])).toEqual([]);
        expect(await store.requeueDead(OTHER_NS, [d1])).toEqual([]);
      });

      it("requeueDead restores group and overflow dead letters to their own queues", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(NS, "b", ["x"], "g");
        const limits = { maxQueueLength: 1, overflow: "drop-oldest" as const };
        const first = await publish("x", {}, limits);
        const second = await publish("x", {}, limits);
        const dead = await deadOf(NS, 10);
        expect(dead.map((d) => [d.queue, d.messageId, d.reason]).sort()).toEqual(
          [
            [clientQueue("a"), first, "overflow"],
            [groupQueue("g"), first, "overflow"],
          ].sort(),
        );
        expect([...(await store.requeueDead(NS, [first]))].sort()).toEqual([
          clientQueue("a"),
          groupQueue("g"),
        ]);
        expect(await queueIds(clientQueue("a"))).toEqual([second, first]);
        expect(await queueIds(groupQueue("g"))).toEqual([second, first]);
        expect(await deadOf(NS, 10)).toEqual([]);
      });

      it("dropDead deletes them for good", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const d1 = await publish("x");
        const d2 = await publish("x");
        expect(await kill(2)).toBe(2);
        expect(await store.dropDead(OTHER_NS, [d1])).toBe(0);
        expect(await store.dropDead(NS, [d1, "unknown", d1])).toBe(1);
        expect((await deadOf(NS, 10)).map((d) => d.messageId)).toEqual([d2]);
        expect(await store.requeueDead(NS, [d1])).toEqual([]);
        expect(await store.dropDead(NS, [d2])).toBe(1);
        expect(await deadOf(NS, 10)).toEqual([]);
        expect(await store.pending(NS, "a", T0)).toBe(0);
      });
    });

    // ---- rooms ---------------------------------------------------------------------------------

    describe("rooms", () => {
      const roomMsg = (room: string, extra: Partial<NewMessage> = {}) => msg("chat", { room, ...extra });
      const allMembers = (room: string, ns = NS) => everything((page) => store.roomMembers(ns, room, page));
      const allRooms = (ns = NS) => everything((page) => store.rooms(ns, page));

      it("join is idempotent and says whether it was new; leave says whether it was a member", async () => {
        expect(await store.joinRoom(NS, "r1", "a")).toBe(true);
        expect(await store.joinRoom(NS, "r1", "a")).toBe(false);
        expect(await store.joinRoom(NS, "r1", "b")).toBe(true);
        expect(await store.joinRoom(NS, "r2", "a")).toBe(true);
        expect(await store.joinRoom(OTHER_NS, "r1", "c")).toBe(true);
        expect(await store.isMember(NS, "r1", "a")).toBe(true);
        expect(await store.isMember(NS, "r1", "c")).toBe(false);
        expect(await store.isMember(OTHER_NS, "r1", "c")).toBe(true);
        expect(await store.clientRooms(NS, "a")).toEqual(["r1", "r2"]);
        expect(await store.clientRooms(NS, "c")).toEqual([]);
        expect(await allMembers("r1")).toEqual(["a", "b"]);
        expect(await allRooms()).toEqual([
          { ns: NS, room: "r1", members: 2 },
          { ns: NS, room: "r2", members: 1 },
        ]);
        expect(await store.leaveRoom(NS, "r1", "a")).toBe(true);
        expect(await store.leaveRoom(NS, "r1", "a")).toBe(false);
        expect(await store.leaveRoom(NS, "nowhere", "a")).toBe(false);
        expect(await store.isMember(NS, "r1", "a")).toBe(false);
        expect(await store.clientRooms(NS, "a")).toEqual(["r2"]);
        expect(await store.leaveRoom(NS, "r2", "a")).toBe(true);
        // a room without members is gone from the views
        expect(await allRooms()).toEqual([{ ns: NS, room: "r1", members: 1 }]);
        expect(await allMembers("r2")).toEqual([]);
      });

      it("a room publish goes to every member's own queue except the publisher's, and carries `room`", async () => {
        for (const c of ["a", "b", "c"]) await store.joinRoom(NS, "r", c);
        await store.joinRoom(NS, "elsewhere", "d");
        await store.subscribe(NS, "e", ["chat"], null); // a subscriber of the event is no member
        await store.joinRoom(OTHER_NS, "r", "f");
        const m = roomMsg("r", { from: "a" });
        const r = await enqueue([m]);
        expect([...r.queues].sort()).toEqual([clientQueue("b"), clientQueue("c")]);
        const got = await store.claim(claimReq(clientQueue("b"), "b"));
        expect(got.messages).toEqual([
          {
            messageId: m.messageId,
            event: "chat",
            payload: m.payload,
            publishedAt: T0,
            from: "a",
            deliveries: 1,
            room: "r",
          },
        ]);
        for (const other of ["a", "d", "e"]) expect(await queueIds(clientQueue(other))).toEqual([]);
        expect(await queueIds(clientQueue("f"), OTHER_NS)).toEqual([]);
        // echo: the publisher too; a publisher that is no member publishes to all members
        const echoed = await enqueue([roomMsg("r", { from: "a", echo: true })]);
        expect([...echoed.queues].sort()).toEqual([clientQueue("a"), clientQueue("b"), clientQueue("c")]);
        const outside = await enqueue([roomMsg("r", { from: "zed" })]);
        expect(outside.queues).toHaveLength(3);
        // an empty room stores nothing
        expect((await enqueue([roomMsg("empty")])).queues).toEqual([]);
      });

      it("room messages keep their order in each member's queue, beside the member's other messages", async () => {
        await store.joinRoom(NS, "r", "a");
        await store.subscribe(NS, "a", ["x"], null);
        const ids = [
          await publish("chat", { room: "r" }),
          await publish("x"),
          await publish("chat", { room: "r" }),
          await publish("x", { to: ["a"] }),
        ];
        expect(await queueIds(clientQueue("a"))).toEqual(ids);
      });

      it("leaving keeps the queued room messages; a later room publish misses the former member", async () => {
        await store.joinRoom(NS, "r", "a");
        await store.joinRoom(NS, "r", "b");
        const kept = await publish("chat", { room: "r" });
        expect(await store.leaveRoom(NS, "r", "a")).toBe(true);
        await publish("chat", { room: "r" });
        expect(await queueIds(clientQueue("a"))).toEqual([kept]);
        expect(await queueIds(clientQueue("b"))).toHaveLength(2);
      });

      it("`to` wins over `room`, and then the delivery carries no room", async () => {
        await store.joinRoom(NS, "r", "a");
        const m = msg("chat", { to: ["b"], room: "r" });
        expect((await enqueue([m])).queues).toEqual([clientQueue("b")]);
        const got = await store.claim(claimReq(clientQueue("b"), "b"));
        expect(got.messages[0]?.room).toBeUndefined();
      });

      it("limits apply per member: reject refuses the whole batch, drop-oldest dead-letters with the room kept", async () => {
        await store.joinRoom(NS, "r", "a");
        await store.joinRoom(NS, "r", "b");
        await enqueue([msg("x", { to: ["a"] }), msg("x", { to: ["a"] })]);
        const reject = { maxQueueLength: 2, overflow: "reject" as const };
        await expectStoreError(enqueue([roomMsg("r")], { ...reject, key: k("room-1") }), "QUEUE_FULL");
        expect(await queueIds(clientQueue("b"))).toEqual([]); // all or nothing
        const first = roomMsg("r");
        const second = roomMsg("r");
        const drop = { maxQueueLength: 2, overflow: "drop-oldest" as const };
        const r = await enqueue([first, second], drop);
        expect(r.dropped).toBe(2); // a's two `to` messages
        expect(await queueIds(clientQueue("a"))).toEqual([first.messageId, second.messageId]);
        const r2 = await enqueue([roomMsg("r")], { ...drop, now: T0 + 7 });
        expect(r2.dropped).toBe(2); // `first` in a's queue and in b's
        const dead = await deadOf(NS, 10);
        expect(dead.filter((d) => d.messageId === first.messageId)).toEqual([
          expect.objectContaining({ queue: clientQueue("a"), room: "r", reason: "overflow", deadAt: T0 + 7 }),
          expect.objectContaining({ queue: clientQueue("b"), room: "r", reason: "overflow", deadAt: T0 + 7 }),
        ]);
        // requeued, the message still carries its room
        await store.requeueDead(NS, [first.messageId]);
        const claimed = await store.claim(claimReq(clientQueue("b"), "b", { now: T0 + 8 }));
        expect(claimed.messages.find((m) => m.messageId === first.messageId)?.room).toBe("r");
      });

      it("a key makes a room publish idempotent, TTL and max deliveries apply as to any message", async () => {
        await store.joinRoom(NS, "r", "a");
        const once = roomMsg("r", { expiresAt: T0 + 10 });
        await enqueue([once], { key: k("chat-1") });
        const again = await enqueue([roomMsg("r")], { key: k("chat-1") });
        expect(again).toMatchObject({ duplicate: true, messageIds: [once.messageId], queues: [] });
        const dying = await publish("chat", { room: "r" });
        const r = await store.claim(claimReq(clientQueue("a"), "a", { now: T0 + 10, maxDeliveries: 1 }));
        expect(r.expired).toBe(1);
        expect(r.messages.map((m) => [m.messageId, m.room])).toEqual([[dying, "r"]]);
        const r2 = await store.claim(
          claimReq(clientQueue("a"), "a", { now: T0 + 10 + LEASE, maxDeliveries: 1 }),
        );
        expect(r2.deadLettered).toBe(1);
        expect((await deadOf(NS, 10))[0]).toMatchObject({ messageId: dying, room: "r", deliveries: 1 });
      });

      it("members and rooms are listed in pages, by name", async () => {
        const names = Array.from({ length: 7 }, (_, i) => `m${i}`);
        for (const c of [...names].reverse()) await store.joinRoom(NS, "big", c);
        for (const room of ["z", "b", "k"]) await store.joinRoom(NS, room, "m0");
        expect(await allMembers("big")).toEqual(names);
        const first = await store.roomMembers(NS, "big", { limit: 3 });
        expect(first.items).toEqual(["m0", "m1", "m2"]);
        expect(first.next).not.toBeNull();
        expect((await store.roomMembers(NS, "big", { limit: 3, after: first.next })).items).toEqual([
          "m3",
          "m4",
          "m5",
        ]);
        expect((await allRooms()).map((r) => [r.room, r.members])).toEqual([
          ["b", 1],
          ["big", 7],
          ["k", 1],
          ["z", 1],
        ]);
      });
    });

    // ---- routing by payload ----------------------------------------------------------------------

    describe("route", () => {
      it("goes only to the routed client's own queue when it subscribes to the event", async () => {
        await store.subscribe(NS, "acme", ["delivered"], null);
        await store.subscribe(NS, "other", ["delivered"], null);
        await store.subscribe(NS, "d1", ["delivered"], "drivers");
        const m = msg("delivered", { route: "acme", from: "driver" });
        expect((await enqueue([m])).queues).toEqual([clientQueue("acme")]);
        expect(await queueIds(clientQueue("other"))).toEqual([]);
        expect(await queueIds(groupQueue("drivers"))).toEqual([]);
      });

      it("fans out as usual when the routed client does not subscribe, or is the publisher", async () => {
        await store.subscribe(NS, "d1", ["pickup"], null);
        await store.subscribe(NS, "d2", ["pickup"], null);
        await store.subscribe(NS, "acme", ["delivered"], null);
        const notSubscribed = await enqueue([msg("pickup", { route: "acme", from: "acme" })]);
        expect([...notSubscribed.queues].sort()).toEqual([clientQueue("d1"), clientQueue("d2")]);
        const unknown = await enqueue([msg("pickup", { route: "nobody" })]);
        expect(unknown.queues).toHaveLength(2);
        const self = await enqueue([msg("pickup", { route: "d1", from: "d1" })]);
        expect(self.queues).toEqual([clientQueue("d2")]);
        await store.subscribe(OTHER_NS, "acme", ["pickup"], null); // another namespace's subscription counts not
        expect((await enqueue([msg("pickup", { route: "acme" })])).queues).toHaveLength(2);
      });

      it("a group member's subscription routes to its own queue", async () => {
        await store.subscribe(NS, "acme", ["delivered"], "stores");
        await store.subscribe(NS, "bolt", ["delivered"], "stores");
        const m = msg("delivered", { route: "bolt" });
        expect((await enqueue([m])).queues).toEqual([clientQueue("bolt")]);
        expect(await queueIds(clientQueue("bolt"))).toEqual([m.messageId]);
        expect(await queueIds(groupQueue("stores"))).toEqual([]);
      });
    });

    // ---- idempotency scopes --------------------------------------------------------------------

    describe("idempotency keys per publisher", () => {
      it("one publisher's key never answers another's publish", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const victim = publisherScope.identity("victim");
        const squatter = publisherScope.identity("squatter");
        const squat = await enqueue([msg("x")], { key: k("order-1", squatter) });
        const real = msg("x");
        const r = await enqueue([real], { key: k("order-1", victim) });
        expect(r).toMatchObject({ duplicate: false, messageIds: [real.messageId] });
        expect(await queueIds(clientQueue("a"))).toEqual([squat.messageIds[0], real.messageId]);
        // the same publisher's retry is still a duplicate; an address scope is another publisher again
        expect((await enqueue([msg("x")], { key: k("order-1", victim) })).messageIds).toEqual([
          real.messageId,
        ]);
        const byAddress = await enqueue([msg("x")], { key: k("order-1", publisherScope.address("victim")) });
        expect(byAddress.duplicate).toBe(false);
      });
    });

    // ---- views -------------------------------------------------------------------------------------

    describe("paged views", () => {
      it("namespaces: every namespace holding anything, by name, with its counts", async () => {
        await store.subscribe(NS, "a", ["x", "y"], null);
        await store.subscribe(NS, "b", ["x"], "g");
        await store.joinRoom(NS, "r", "a");
        await store.joinRoom(NS, "r", "b");
        await store.joinRoom(NS, "s", "a");
        await store.subscribe("/quiet", "q", ["x"], null);
        await store.joinRoom("/rooms-only", "r", "a");
        await publish("x"); // a and g
        await publish("y"); // a
        await publish("x", { to: ["c"] });
        await enqueue([msg("x", { to: ["z"] })], { ns: OTHER_NS });
        await store.claim(claimReq(clientQueue("c"), "c", { maxDeliveries: 1 }));
        await store.claim(claimReq(clientQueue("c"), "c", { maxDeliveries: 1, now: T0 + LEASE })); // dead
        const all = await everything((page) => store.namespaces(page), 2);
        expect(all).toEqual([
          { ns: NS, queues: 2, pending: 3, subscriptions: 3, rooms: 2, deadLetters: 1 },
          { ns: OTHER_NS, queues: 1, pending: 1, subscriptions: 0, rooms: 0, deadLetters: 0 },
          { ns: "/quiet", queues: 0, pending: 0, subscriptions: 1, rooms: 0, deadLetters: 0 },
          { ns: "/rooms-only", queues: 0, pending: 0, subscriptions: 0, rooms: 1, deadLetters: 0 },
        ]);
        // counts follow acks, unsubscribes, leaves and drops
        await store.ack(NS, "a", await queueIds(clientQueue("a")));
        await store.unsubscribe(NS, "a", ["y"]);
        await store.leaveRoom(NS, "s", "a");
        await store.dropDead(
          NS,
          (await deadOf(NS, 10)).map((d) => d.messageId),
        );
        expect((await store.namespaces({ limit: 1 })).items).toEqual([
          { ns: NS, queues: 1, pending: 1, subscriptions: 2, rooms: 1, deadLetters: 0 },
        ]);
      });

      it("each view pages in a stable order, every item once, and its last page has no next", async () => {
        for (let i = 0; i < 9; i++) await store.subscribe(NS, `c${i}`, ["x", "y"], i % 3 ? null : "g");
        for (let i = 0; i < 5; i++) await store.subscribe(OTHER_NS, `c${i}`, ["x"], null);
        for (let i = 0; i < 4; i++) await publish("x");
        for (const c of ["c1", "c2", "c4"]) {
          await store.claim(claimReq(clientQueue(c), c, { maxDeliveries: 1 }));
          await store.claim(claimReq(clientQueue(c), c, { maxDeliveries: 1, now: T0 + LEASE }));
        }
        const views: [string, (page: PageRequest) => Promise<Page<unknown>>, number][] = [
          ["subscriptions", (page) => store.subscriptions(page), 23],
          ["subscriptions of a namespace", (page) => store.subscriptions(page, NS), 18],
          ["stats", (page) => store.stats(page), 4], // c5, c7, c8 and g's: c1, c2 and c4's went dead
          ["stats of a namespace", (page) => store.stats(page, NS), 4],
          ["dead letters", (page) => store.listDead(NS, page), 12],
        ];
        for (const [name, view, count] of views) {
          const big = await everything(view, 1000);
          for (const limit of [1, 2, 5]) {
            expect([name, limit, await everything(view, limit)]).toEqual([name, limit, big]);
          }
          expect([name, big.length]).toEqual([name, count]);
          expect([name, new Set(big.map((x) => JSON.stringify(x))).size]).toEqual([name, big.length]);
        }
        const subsPage = await store.subscriptions({ limit: 5 }, NS);
        expect(subsPage.items).toHaveLength(5);
        expect(subsPage.next).toEqual(expect.any(String));
        const last = await store.subscriptions({ limit: 100 }, OTHER_NS);
        expect(last.items).toHaveLength(5);
        expect(last.next).toBeNull();
        // an item added after the cursor's position shows up on a later page, none is repeated
        const before = await store.subscriptions({ limit: 3 }, OTHER_NS);
        await store.subscribe(OTHER_NS, "zz-late", ["x"], null);
        const restAfter = await everything((page) =>
          store.subscriptions({ ...page, after: page.after ?? before.next }, OTHER_NS),
        );
        expect([...before.items, ...restAfter].map((s) => s.clientId).sort()).toEqual([
          "c0",
          "c1",
          "c2",
          "c3",
          "c4",
          "zz-late",
        ]);
      });

      it("a cursor that is not one of the view's is refused with INVALID_ARGUMENT", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        for (const after of ["not a cursor", "e30", Buffer.from("[1,2,3]").toString("base64url")]) {
          await expectStoreError(store.subscriptions({ limit: 10, after }), "INVALID_ARGUMENT");
          await expectStoreError(store.stats({ limit: 10, after }), "INVALID_ARGUMENT");
          await expectStoreError(store.listDead(NS, { limit: 10, after }), "INVALID_ARGUMENT");
          await expectStoreError(store.namespaces({ limit: 10, after }), "INVALID_ARGUMENT");
        }
      });

      it("a page holds at most 1000 items, whatever the limit asked", async () => {
        const clients = Array.from({ length: 1005 }, (_, i) => `c${String(i).padStart(4, "0")}`);
        for (let i = 0; i < clients.length; i += 100) {
          await Promise.all(clients.slice(i, i + 100).map((c) => store.joinRoom(NS, "crowd", c)));
        }
        const page = await store.roomMembers(NS, "crowd", { limit: 5000 });
        expect(page.items).toHaveLength(1000);
        const rest = await store.roomMembers(NS, "crowd", { limit: 5000, after: page.next });
        expect(rest.items).toHaveLength(5);
        expect(rest.next).toBeNull();
      });
    });

    // ---- long operations, in steps ---------------------------------------------------------------

    describe("long operations", () => {
      it("unsubscribe over a long queue drops exactly that event's entries, and keeps later ones", async () => {
        await store.subscribe(NS, "a", ["x", "y"], null);
        const keep: string[] = [];
        for (let i = 0; i < 30; i++) {
          const batch = Array.from({ length: 100 }, (_, j) => msg(j % 10 === 0 ? "y" : "x"));
          await enqueue(batch);
          keep.push(...batch.filter((m) => m.event === "y").map((m) => m.messageId));
        }
        const dropping = store.unsubscribe(NS, "a", ["x"]);
        const late = msg("x", { to: ["a"] }); // stored while the unsubscribe runs: not its to drop
        await enqueue([late]);
        expect(await dropping).toBe(2700);
        const left = await everything((page) => store.stats(page, NS), 10);
        expect(left).toEqual([{ ns: NS, queue: clientQueue("a"), pending: 301, inFlight: 0 }]);
        expect(await store.pending(NS, "a", T0, "y")).toBe(300);
        expect(await store.pending(NS, "a", T0, "x")).toBe(1);
        expect((await queueIds(clientQueue("a"))).slice(0, 300)).toEqual(keep);
      });

      it("drop-oldest after a lowered limit cuts a long backlog back to it, oldest first", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        const ids: string[] = [];
        for (let i = 0; i < 25; i++) {
          const batch = Array.from({ length: 100 }, () => msg("x"));
          await enqueue(batch);
          ids.push(...batch.map((m) => m.messageId));
        }
        const newest = msg("x");
        const r = await enqueue([newest], { maxQueueLength: 10, overflow: "drop-oldest" });
        expect(r.dropped).toBe(2491);
        expect(await queueIds(clientQueue("a"))).toEqual([...ids.slice(-9), newest.messageId]);
        const dead = await everything((page) => store.listDead(NS, page), 1000);
        expect(dead.map((d) => d.messageId)).toEqual(ids.slice(0, 2491));
        expect((await store.namespaces({ limit: 10 })).items[0]).toMatchObject({
          pending: 10,
          deadLetters: 2491,
        });
      });
    });

    // ---- stats / health / close ---------------------------------------------------------------------

    describe("stats", () => {
      it("reports entries stored and under a live lease, per queue and namespace", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.subscribe(NS, "b", ["x"], "g");
        await store.subscribe(OTHER_NS, "a", ["x"], null);
        for (let i = 0; i < 3; i++) await publish("x");
        await enqueue([msg("x")], { ns: OTHER_NS });
        await claimIds(clientQueue("a"), "a", { limit: 2, now: Date.now(), leaseMs: 60_000 });
        await claimIds(groupQueue("g"), "b", { limit: 1, now: Date.now() - 120_000, leaseMs: 1 }); // expired
        expect(await statsOf(clientQueue("a"))).toEqual({ pending: 3, inFlight: 2 });
        expect(await statsOf(groupQueue("g"))).toEqual({ pending: 3, inFlight: 0 });
        expect(await statsOf(clientQueue("a"), OTHER_NS)).toEqual({ pending: 1, inFlight: 0 });
        const ns = await allStats(NS);
        expect(ns.every((s) => s.ns === NS)).toBe(true);
        const all = await allStats();
        expect(all.filter((s) => s.pending > 0)).toHaveLength(3);
        await store.ack(NS, "a", await queueIds(clientQueue("a")));
        expect(await statsOf(clientQueue("a"))).toEqual({ pending: 0, inFlight: 0 });
      });
    });

    describe("health and close", () => {
      it("is healthy while open", async () => {
        expect(await store.healthy()).toBe(true);
      });

      it("after close, healthy() is false and operations reject with UNAVAILABLE", async () => {
        await store.subscribe(NS, "a", ["x"], null);
        await store.close();
        expect(await store.healthy()).toBe(false);
        const q = clientQueue("a");
        const ops: [string, () => Promise<unknown>][] = [
          ["subscribe", () => store.subscribe(NS, "a", ["y"], null)],
          ["unsubscribe", () => store.unsubscribe(NS, "a", ["x"])],
          ["consumerQueues", () => store.consumerQueues(NS, "a")],
          ["enqueue", () => enqueue([msg("x")])],
          ["claim", () => store.claim(claimReq(q, "a"))],
          ["release", () => store.release(NS, q, "a")],
          ["ack", () => store.ack(NS, "a", ["id"])],
          ["pending", () => store.pending(NS, "a", T0)],
          ["sweep", () => store.sweep(T0)],
          ["listDead", () => store.listDead(NS, { limit: 10 })],
          ["requeueDead", () => store.requeueDead(NS, ["id"])],
          ["dropDead", () => store.dropDead(NS, ["id"])],
          ["stats", () => store.stats({ limit: 10 })],
          ["subscriptions", () => store.subscriptions({ limit: 10 })],
          ["namespaces", () => store.namespaces({ limit: 10 })],
          ["rooms", () => store.rooms(NS, { limit: 10 })],
          ["joinRoom", () => store.joinRoom(NS, "r", "a")],
          ["leaveRoom", () => store.leaveRoom(NS, "r", "a")],
          ["isMember", () => store.isMember(NS, "r", "a")],
          ["clientRooms", () => store.clientRooms(NS, "a")],
          ["roomMembers", () => store.roomMembers(NS, "r", { limit: 10 })],
        ];
        for (const [opName, op] of ops) {
          let caught: unknown;
          try {
            await op();
          } catch (err) {
            caught = err;
          }
          expect([opName, caught instanceof StoreError && caught.code]).toEqual([opName, "UNAVAILABLE"]);
        }
        await store.close(); // closing twice is harmless
      });
    });

    // ---- persistence -----------------------------------------------------------------------------------

    describe("reopen (persistent stores only; passes trivially without reopen)", () => {
      it("keeps subscriptions, queue order, deliveries, leases, dead letters and dedup keys", async () => {
        if (!h.reopen) return; // in-memory stores have nothing to reopen
        await store.subscribe(NS, "a", ["x", "y"], null);
        await store.subscribe(NS, "b", ["x"], "g");
        await store.subscribe(OTHER_NS, "c", ["z"], null);
        const batch = [msg("x"), msg("y"), msg("x"), msg("y"), msg("x")];
        await enqueue(batch, { key: k("k") });
        const ids = batch.map((m) => m.messageId);
        await claimIds(clientQueue("a"), "a", { limit: 1, maxDeliveries: 1 }); // ids[0], will die
        await claimIds(clientQueue("a"), "a", { limit: 1, maxDeliveries: 1, now: T0 + 1 }); // ids[1]
        expect(
          (
            await store.claim(
              claimReq(clientQueue("a"), "a", { limit: 1, now: T0 + LEASE, maxDeliveries: 1 }),
            )
          ).deadLettered,
        ).toBe(1); // ids[0] dead, ids[2] leased until T0 + 2 * LEASE
        await claimIds(groupQueue("g"), "b", { limit: 1, now: T0 + LEASE }); // ids[0] leased to b
        const subsBefore = sortSubs(await allSubs());
        const deadBefore = await deadOf(NS, 10);

        store = await h.reopen();

        expect(sortSubs(await allSubs())).toEqual(subsBefore);
        expect(await deadOf(NS, 10)).toEqual(deadBefore);
        expect(await store.consumerQueues(NS, "b")).toEqual([clientQueue("b"), groupQueue("g")]);
        // leases survive: ids[1] (expired at T0 + 1 + LEASE) is free, ids[2] is still leased
        const r = await store.claim(claimReq(clientQueue("a"), "a", { now: T0 + LEASE + 1 }));
        expect(r.messages.map((m) => [m.messageId, m.deliveries])).toEqual([
          [ids[1], 2],
          [ids[3], 1],
          [ids[4], 1],
        ]);
        expect(await store.ack(NS, "b", [ids[0] as string])).toEqual([ids[0]]);
        expect(await claimIds(groupQueue("g"), "b", { now: T0 + LEASE + 1 })).toEqual([ids[2], ids[4]]);
        // dedup key survives
        const dup = await enqueue([msg("x")], { key: k("k"), now: T0 + 10 });
        expect(dup.duplicate).toBe(true);
        expect(dup.messageIds).toEqual(ids);
        // queue order survives, and new entries go after the old ones
        const after = await publish("x");
        expect(await queueIds(clientQueue("a"))).toEqual([ids[1], ids[2], ids[3], ids[4], after]);
        // dead letters requeue after reopen
        expect(await store.requeueDead(NS, [ids[0] as string])).toEqual([clientQueue("a")]);
        expect(await queueIds(clientQueue("a"))).toEqual([ids[1], ids[2], ids[3], ids[4], after, ids[0]]);
      });
    });
  });
}
