// Property: the SQLite store, with its caches squeezed so that segments are evicted and read back
// all the time (and now and then reopened from the file), answers every operation exactly as the
// memory store does, over random sequences of publishes, claims, acks, releases, sweeps and counts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { MemoryStore } from "../src/store/memory.js";
import { SqliteStore } from "../src/store/sqlite/index.js";
import {
  clientQueue,
  type DeadLetter,
  groupQueue,
  type NewMessage,
  type QueueStore,
} from "../src/store/store.js";

const NS = "/";
const CLIENTS = ["c1", "c2", "c3", "c4"] as const;
const EVENTS = ["a", "b"] as const;
const LEASE = 100;
// c1, c2: own subscriptions to a and b; c3, c4: the group g for a, and c3 its own for b.
const QUEUES = [clientQueue("c1"), clientQueue("c2"), clientQueue("c3"), clientQueue("c4"), groupQueue("g")];

type Step =
  | { kind: "publish"; events: number[]; to: number[] | null; ttl: number | null; key: number | null }
  | {
      kind: "claim";
      queue: number;
      consumer: number;
      limit: number;
      event: number | null;
      maxDeliveries: number;
    }
  | { kind: "ack"; client: number; picks: number[] }
  | { kind: "release"; queue: number; consumer: number; picks: number[] | null }
  | { kind: "sweep" }
  | { kind: "requeue"; picks: number[] }
  | { kind: "count"; client: number; event: number | null }
  | { kind: "tick"; ms: number }
  | { kind: "reopen" };

const index = (n: number) => fc.nat({ max: n - 1 });
/** null three times in four, else a value. */
const sometimes = <T>(arbitrary: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("publish" as const),
      events: fc.array(index(EVENTS.length), { minLength: 1, maxLength: 6 }),
      to: sometimes(fc.uniqueArray(index(CLIENTS.length), { minLength: 1, maxLength: 3 })),
      ttl: sometimes(fc.integer({ min: 1, max: 300 })),
      key: sometimes(fc.nat({ max: 3 })),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("claim" as const),
      queue: index(QUEUES.length),
      consumer: index(CLIENTS.length),
      limit: fc.integer({ min: 1, max: 8 }),
      event: sometimes(index(EVENTS.length)),
      maxDeliveries: fc.constantFrom(0, 0, 2),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("ack" as const),
      client: index(CLIENTS.length),
      picks: fc.array(fc.nat(), { maxLength: 8 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("release" as const),
      queue: index(QUEUES.length),
      consumer: index(CLIENTS.length),
      picks: sometimes(fc.array(fc.nat(), { maxLength: 4 })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("sweep" as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("requeue" as const),
      picks: fc.array(fc.nat(), { maxLength: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("count" as const),
      client: index(CLIENTS.length),
      event: sometimes(index(EVENTS.length)),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("tick" as const), ms: fc.integer({ min: 1, max: 150 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("reopen" as const) }) },
);

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function run(steps: Step[]) {
  const dir = mkdtempSync(join(tmpdir(), "queuehub-diff-"));
  dirs.push(dir);
  const file = join(dir, "hub.db");
  const open = () => SqliteStore.open({ file, sync: "off", cacheMessages: 3 });
  let sqlite = open();
  const memory = new MemoryStore();
  const both = async <T>(what: string, op: (store: QueueStore) => Promise<T>) => {
    const [expected, actual] = await Promise.allSettled([op(memory), op(sqlite)]);
    const settled = (r: PromiseSettledResult<T>) =>
      r.status === "fulfilled"
        ? { ok: r.value }
        : { error: (r.reason as { code?: string }).code ?? String(r.reason) };
    expect({ what, result: settled(actual) }).toEqual({ what, result: settled(expected) });
    return expected.status === "fulfilled" ? expected.value : undefined;
  };
  try {
    for (const [i, c] of CLIENTS.entries()) {
      await both("subscribe", (s) => s.subscribe(NS, c, ["a", "b"], i < 2 ? null : i === 2 ? null : "g"));
    }
    await both("subscribe", (s) => s.subscribe(NS, "c3", ["a"], "g"));
    let now = 1_000;
    let n = 0;
    const ids: string[] = [];
    const pick = (picks: number[]) =>
      picks.map((p) => (p % 5 === 4 ? `unknown-${p}` : (ids[p % Math.max(1, ids.length)] ?? "none")));
    for (const s of steps) {
      switch (s.kind) {
        case "publish": {
          const messages: NewMessage[] = s.events.map((e) => {
            const messageId = `0190${String(++n).padStart(8, "0")}`;
            ids.push(messageId);
            return {
              messageId,
              event: EVENTS[e] as string,
              payload: { n },
              publishedAt: now,
              from: "c1",
              expiresAt: s.ttl === null ? null : now + s.ttl,
              ...(s.to ? { to: s.to.map((t) => CLIENTS[t] as string) } : {}),
            };
          });
          await both("enqueue", (store) =>
            store.enqueue({
              ns: NS,
              messages,
              ...(s.key === null ? {} : { key: { scope: "id:c1", key: `k${s.key}` } }),
              now,
              dedupWindowMs: 200,
              maxQueueLength: 12,
              overflow: n % 2 ? "drop-oldest" : "reject",
            }),
          );
          break;
        }
        case "claim":
          await both("claim", (store) =>
            store.claim({
              ns: NS,
              queue: QUEUES[s.queue] as string,
              consumer: CLIENTS[s.consumer] as string,
              limit: s.limit,
              now,
              leaseMs: LEASE,
              maxDeliveries: s.maxDeliveries,
              ...(s.event === null ? {} : { event: EVENTS[s.event] }),
            }),
          );
          break;
        case "ack":
          await both("ack", (store) => store.ack(NS, CLIENTS[s.client] as string, pick(s.picks)));
          break;
        case "release":
          await both("release", (store) =>
            store.release(
              NS,
              QUEUES[s.queue] as string,
              CLIENTS[s.consumer] as string,
              s.picks === null ? undefined : pick(s.picks),
            ),
          );
          break;
        case "requeue": {
          const dead = (await memory.listDead(NS, { limit: 1000 })).items.map((d) => d.messageId);
          const chosen = s.picks.map((p) => dead[p % Math.max(1, dead.length)] ?? "none");
          await both("requeue", async (store) => (await store.requeueDead(NS, chosen)).sort());
          break;
        }
        case "sweep":
          await both("sweep", (store) => store.sweep(now));
          break;
        case "count":
          await both("pending", (store) =>
            store.pending(
              NS,
              CLIENTS[s.client] as string,
              now,
              s.event === null ? undefined : EVENTS[s.event],
            ),
          );
          break;
        case "tick":
          now += s.ms;
          break;
        case "reopen":
          await sqlite.close();
          sqlite = open();
          break;
      }
    }
    // Everything left, queue by queue: a claim far in the future sees every entry.
    for (const queue of QUEUES) {
      await both("drain", (store) =>
        store.claim({
          ns: NS,
          queue,
          consumer: "drain",
          limit: 10_000,
          now: now + 10 * LEASE,
          leaseMs: LEASE,
          maxDeliveries: 0,
        }),
      );
    }
    // Dead letters of one operation may come in either order: compare them sorted.
    const key = (d: DeadLetter) => `${String(d.deadAt).padStart(15, "0")} ${d.messageId} ${d.queue}`;
    await both("dead", async (store) =>
      (await store.listDead(NS, { limit: 1000 })).items.sort((x, y) => key(x).localeCompare(key(y))),
    );
  } finally {
    await sqlite.close();
    await memory.close();
  }
}

test("the SQLite store answers every operation as the memory store does", async () => {
  await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 60 }), run), { numRuns: 60 });
}, 60_000);
