// A load process: the clients of one run (subscribers, a publisher, or idle connections), in a
// process of their own so that neither the server under test nor the controller shares an event
// loop with them. Driven by bench/run.ts over the IPC channel: requests `{ id, method, params }`,
// replies `{ type: "reply", id, ok, result | error }`, plus unsolicited `{ type: "progress" }`.

import { setTimeout as sleep, setImmediate as yieldToLoop } from "node:timers/promises";
import { makePayload, now } from "./payload.js";
import { Histogram, type HistogramJSON } from "./stats.js";
import { loadSystem } from "./systems/index.js";
import type { ClientDriver, Closeable, Endpoint, Publisher, RunPlan, Stamp } from "./types.js";

export interface SubscriberStats {
  /** Messages received, duplicates included. */
  received: number;
  /** Distinct (subscriber, seq) pairs received. */
  unique: number;
  duplicates: number;
  /** Deliveries the subscribers of this process expect in all. */
  expected: number;
  /** When the last `subscribe` call started (the drain start in the backlog scenario). */
  startedAt: number;
  firstAt: number;
  lastAt: number;
  latency: HistogramJSON;
  /** Per phase of a sweep (seq ranges given to `subscribe`): latency and last arrival. */
  phases: { latency: HistogramJSON; lastAt: number }[];
}

export interface PublishStats {
  published: number;
  firstAt: number;
  lastAckAt: number;
}

/** What to publish: `count` messages from sequence number `from`, paced at `rate` msg/s if given. */
export interface PublishRequest {
  from?: number;
  count?: number;
  rate?: number;
}

export interface IdleStats {
  connected: number;
  failed: number;
  firstError?: string;
  ms: number;
}

const MAX_FAILURES_IN_A_ROW = 50;

interface Request {
  id: number;
  method: string;
  params: Record<string, unknown>;
}

let driver: ClientDriver | undefined;
let plan: RunPlan | undefined;

// Subscribers
let subscribers: Closeable[] = [];
let seen: Uint8Array[] = [];
let latency = new Histogram();
/** Sweep phases: the first seq after each phase, and each phase's latency and last arrival. */
let phaseEnds: number[] = [];
let phaseLatency: Histogram[] = [];
let phaseLastAt: number[] = [];
let received = 0;
let unique = 0;
let startedAt = 0;
let firstAt = 0;
let lastAt = 0;
let expected = 0;
let waiters: { count: number; wake: () => void }[] = [];

// Publisher and idle clients
let publisher: Publisher | undefined;
let published = 0;
let idle: Closeable[] = [];

/** Back to a fresh process's state, so that the controller can reuse this process for another run. */
function resetState(): void {
  driver = undefined;
  plan = undefined;
  subscribers = [];
  seen = [];
  latency = new Histogram();
  phaseEnds = [];
  phaseLatency = [];
  phaseLastAt = [];
  received = unique = startedAt = firstAt = lastAt = expected = 0;
  waiters = [];
  publisher = undefined;
  published = 0;
  idle = [];
}

function requireDriver(): { driver: ClientDriver; plan: RunPlan } {
  if (!driver || !plan) throw new Error("init first");
  return { driver, plan };
}

function onMessage(index: number, stamp: Stamp): void {
  const at = now();
  if (received === 0) firstAt = at;
  lastAt = at;
  received++;
  const marks = seen[index];
  if (marks && stamp.seq >= 0 && stamp.seq < marks.length) {
    if (marks[stamp.seq] === 0) {
      marks[stamp.seq] = 1;
      unique++;
      latency.record(at - stamp.t);
      if (phaseEnds.length) {
        let phase = 0;
        while (phase < phaseEnds.length - 1 && stamp.seq >= (phaseEnds[phase] ?? 0)) phase++;
        phaseLatency[phase]?.record(at - stamp.t);
        phaseLastAt[phase] = at;
      }
    }
  }
  if (waiters.length > 0) wakeWaiters();
}

function wakeWaiters(): void {
  const still: typeof waiters = [];
  for (const w of waiters) {
    if (unique >= w.count) w.wake();
    else still.push(w);
  }
  waiters = still;
}

function subscriberStats(): SubscriberStats {
  return {
    received,
    unique,
    duplicates: received - unique,
    expected,
    startedAt,
    firstAt,
    lastAt,
    latency: latency.toJSON(),
    phases: phaseLatency.map((h, i) => ({ latency: h.toJSON(), lastAt: phaseLastAt[i] ?? 0 })),
  };
}

async function publishAll(pub: Publisher, p: RunPlan, req: PublishRequest): Promise<PublishStats> {
  const from = req.from ?? 0;
  const end = from + (req.count ?? p.messages - from);
  const batchSize = req.rate ? 1 : Math.max(1, Math.min(pub.maxBatch, p.batch));
  const window = Math.max(p.window, batchSize);
  let inflight = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const firstSendAt = now();
  let seq = from;
  let sinceYield = 0;
  const settle = (n: number) => {
    inflight -= n;
    published += n;
    const w = wake;
    wake = undefined;
    w?.();
  };
  const send = (n: number, t: number) => {
    const batch = new Array(n);
    for (let i = 0; i < n; i++) batch[i] = makePayload(seq++, p.payloadBytes, t);
    inflight += n;
    pub.publish(batch).then(
      () => settle(n),
      (err: unknown) => {
        failure = err;
        settle(n);
      },
    );
  };
  // Waits only when the window is full: with room, the loop goes on without yielding, so the
  // publishes that the acks of one read made room for go out together, and client libraries that
  // flush once per tick (nats.js) or per write (most others) are not held to one message per turn.
  const roomFor = async (n: number) => {
    while (inflight + n > window && !failure) await new Promise<void>((resolve) => (wake = resolve));
    if (failure) throw failure;
  };
  const full = (n: number) => inflight + n > window || failure !== undefined;
  if (req.rate) {
    // Paced: message i is due at start + i / rate. Each is stamped with the time it was due, not
    // the time it left, so a system that pushes back (a full window) is charged for the wait:
    // no coordinated omission. The pacer wakes about every millisecond and sends what is due.
    const intervalMs = 1000 / req.rate;
    while (seq < end) {
      if (failure) throw failure;
      const due = firstSendAt + (seq - from) * intervalMs;
      const wait = due - now();
      if (wait > 0) {
        await sleep(wait);
        continue;
      }
      if (full(1)) await roomFor(1);
      send(1, due);
    }
  } else {
    while (seq < end) {
      if (failure) throw failure;
      const n = Math.min(batchSize, end - seq);
      if (full(n)) await roomFor(n);
      send(n, now());
      sinceYield += n;
      if (sinceYield >= window) {
        // Let I/O in (acks, socket drain) even when every publish resolves at once.
        sinceYield = 0;
        await yieldToLoop();
      }
    }
  }
  while (inflight > 0 && !failure) await new Promise<void>((resolve) => (wake = resolve));
  if (failure) throw failure;
  return { published: end - from, firstAt: firstSendAt, lastAckAt: now() };
}

async function openIdle(prefix: string, count: number, concurrency: number): Promise<IdleStats> {
  const { driver: d } = requireDriver();
  const started = now();
  let next = 0;
  let failedInARow = 0;
  let firstError: string | undefined;
  const worker = async () => {
    // Give up on the rest once the server refuses connection after connection.
    while (next < count && failedInARow < MAX_FAILURES_IN_A_ROW) {
      const i = next++;
      try {
        idle.push(await d.idle(`${prefix}-${i}`));
        failedInARow = 0;
      } catch (err) {
        failedInARow++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (next < count) firstError = `${firstError} (gave up after ${MAX_FAILURES_IN_A_ROW} failures in a row)`;
  return { connected: idle.length, failed: count - idle.length, firstError, ms: now() - started };
}

const methods: Record<string, (params: Record<string, unknown>) => Promise<unknown>> = {
  async init(params) {
    if (driver) throw new Error("already initialised: closeAll first");
    const system = await loadSystem(String(params.system));
    plan = params.plan as RunPlan;
    driver = await system.client(params.endpoint as Endpoint, plan);
    return {};
  },

  /**
   * Connects (or reconnects) the durable subscribers `indices` and subscribes them. `phases`
   * (message counts, in seq order) splits the latency by sweep phase.
   */
  async subscribe(params) {
    const { driver: d, plan: p } = requireDriver();
    const indices = params.indices as number[];
    if (seen.length === 0) {
      for (const i of indices) seen[i] = new Uint8Array(p.messages);
      expected = indices.length * p.messages;
      let end = 0;
      phaseEnds = ((params.phases as number[] | undefined) ?? []).map((n) => (end += n));
      phaseLatency = phaseEnds.map(() => new Histogram());
      phaseLastAt = phaseEnds.map(() => 0);
    }
    startedAt = now();
    subscribers = await Promise.all(indices.map((i) => d.subscriber(i, (stamp) => onMessage(i, stamp))));
    return {};
  },

  async closeSubscribers() {
    await Promise.all(subscribers.map((s) => s.close()));
    subscribers = [];
    return {};
  },

  /** Resolves once the subscribers of this process have received `count` messages (default: all). */
  async waitReceived(params) {
    const count = typeof params.count === "number" ? params.count : expected;
    if (unique < count) await new Promise<void>((wake) => waiters.push({ count, wake }));
    return subscriberStats();
  },

  async stats() {
    return subscriberStats();
  },

  async connectPublisher() {
    const { driver: d } = requireDriver();
    publisher ??= await d.publisher();
    return {};
  },

  async publish(params) {
    const { driver: d, plan: p } = requireDriver();
    publisher ??= await d.publisher();
    return publishAll(publisher, p, params as PublishRequest);
  },

  async idle(params) {
    return openIdle(String(params.prefix), Number(params.count), Number(params.concurrency ?? 100));
  },

  async closeAll() {
    const all = [...subscribers, ...idle, ...(publisher ? [publisher] : [])];
    subscribers = [];
    idle = [];
    publisher = undefined;
    await Promise.allSettled(all.map((c) => c.close()));
    await driver?.dispose?.();
    resetState();
    return {};
  },
};

function send(message: unknown): void {
  process.send?.(message);
}

process.on("message", (raw) => {
  const req = raw as Request;
  const method = methods[req.method];
  if (!method) {
    send({ type: "reply", id: req.id, ok: false, error: `unknown method ${req.method}` });
    return;
  }
  method(req.params ?? {}).then(
    (result) => send({ type: "reply", id: req.id, ok: true, result }),
    (err: unknown) => {
      const message = err instanceof Error ? err.message || err.name : String(err);
      send({ type: "reply", id: req.id, ok: false, error: message });
    },
  );
});

// The controller went away: nothing left to do.
process.on("disconnect", () => process.exit(0));

// Progress for the controller's status line and its timeout reports.
let lastReport = "";
setInterval(() => {
  const progress = { received, unique, expected, published, idle: idle.length };
  const text = JSON.stringify(progress);
  if (text !== lastReport) {
    lastReport = text;
    send({ type: "progress", progress });
  }
}, 250).unref();
