// Shared shapes of the benchmark: what a system under test provides (server side, run by the
// controller in bench/run.ts) and what its client driver provides (run inside the load child
// processes, bench/load.ts). Everything that crosses a process boundary is plain JSON.

export const SCENARIOS = ["throughput", "singles", "sweep", "fanout", "backlog", "connections"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/**
 * How the clients talk to a system that has a choice. "batch": queuehub's fast path (arrays of up
 * to `batch` messages per publish, `auth.batch` deliveries). "singles": what an ordinary Socket.IO
 * user writes: one publish per emit with an ack callback, one delivery event per message, acks
 * batched by the subscriber (every {@link SINGLES_ACK_EVERY} messages or {@link SINGLES_ACK_MS} ms).
 * Per-message protocols (MQTT, AMQP, JetStream) are the same in both.
 */
export type WireMode = "batch" | "singles";

/** The singles subscriber acks once this many deliveries are pending... */
export const SINGLES_ACK_EVERY = 100;
/** ...or this long after the first of them arrived, whichever comes first. */
export const SINGLES_ACK_MS = 5;

/** How to reach a running server; handed to the load processes as JSON. */
export interface Endpoint {
  url: string;
  /** Several servers acting as one (a queuehub cluster): publishers use the first, subscribers the others. */
  urls?: string[];
}

/** The parameters of one (scenario, system) run, shared by the controller and the load processes. */
export interface RunPlan {
  /** Short unique id of this run: names queues, streams, client ids. */
  runId: string;
  scenario: ScenarioName;
  /** Durable subscribers of the `tick` event (1 except in fan-out). */
  subscribers: number;
  /** Messages published (each subscriber receives all of them). */
  messages: number;
  payloadBytes: number;
  /** Unacked deliveries a subscriber may have in flight (AMQP prefetch, JetStream max_ack_pending...). */
  prefetch: number;
  /** Unacked publishes the publisher keeps in flight. */
  window: number;
  /** Messages per publish call where the system has batch publishes (queuehub). */
  batch: number;
  mode: WireMode;
}

/** A server under test, started (or found, for shared services) by the controller. */
export interface ServerHandle {
  endpoint: Endpoint;
  /** The process whose memory is reported, when known. */
  pid?: number;
  /** Every process of the server whose CPU time counts (default: `pid`); e.g. both hubs of a cluster. */
  cpuPids?: number[];
  /** True when this benchmark started the process: its VmHWM is then this run's peak. */
  owned: boolean;
  /** One line saying what runs where, e.g. "private mosquitto on 127.0.0.1:40123". */
  describe: string;
  stop(): Promise<void>;
  /** Overrides the system's `durability` and `disk` when they depend on how it was started. */
  durability?: string;
  disk?: string;
  /** Last lines the server printed, for error reports. */
  logTail?(): string[];
  /**
   * The server's event-loop delay since the previous call (which this call resets), for servers
   * that report theirs (queuehub's /metrics, the bench's own relay): how long a message arriving
   * at the worst moments waited in the server itself before it was even read.
   */
  loopDelay?(): Promise<LoopDelay | undefined>;
}

/** Event-loop delay over a stretch of time, as perf_hooks.monitorEventLoopDelay measures it. */
export interface LoopDelay {
  p99Ms: number;
  maxMs: number;
}

export interface StartOptions {
  prefetch: number;
  /** Scenario about to run: lets a system tune what it must (e.g. file limits). */
  scenario: ScenarioName;
}

/**
 * A system under test. `start`, `setup` and `teardown` run in the controller; `client` runs in a
 * load process. `start` and `setup` throw {@link Unavailable} when the system cannot be reached
 * or is not installed: the run is then reported as "not reachable" and is not a failure.
 */
export interface SystemDef {
  name: string;
  /** What a publish acknowledgement means on disk, in a sentence (legend, JSON). */
  durability: string;
  /** The same in a few words, printed beside the figures: does it fsync per message? */
  disk: string;
  /** False for systems without a queue (raw Socket.IO): the backlog scenario is not applicable. */
  hasQueue: boolean;
  start(opts: StartOptions): Promise<ServerHandle>;
  setup?(server: ServerHandle, plan: RunPlan): Promise<void>;
  /** How many client connections the server can take, when it is known to be limited. */
  connectionLimit?(server: ServerHandle): { limit: number; reason: string } | undefined;
  teardown?(server: ServerHandle, plan: RunPlan): Promise<void>;
  client(endpoint: Endpoint, plan: RunPlan): Promise<ClientDriver>;
}

/** The decoded bench payload: publish time stamp and sequence number. */
export interface Stamp {
  /** Publish time, epoch milliseconds with sub-millisecond precision (see payload.ts `now`). */
  t: number;
  /** 0-based publish sequence number. */
  seq: number;
}

/** The JSON payload every system carries (as an object or as its UTF-8 JSON text). */
export interface BenchPayload extends Stamp {
  pad: string;
}

export interface Closeable {
  close(): Promise<void>;
}

export interface Publisher extends Closeable {
  /** Largest number of payloads one `publish` call takes (1 for per-message protocols). */
  maxBatch: number;
  /** Publishes the payloads; resolves once the system acknowledged all of them. */
  publish(payloads: BenchPayload[]): Promise<void>;
}

export interface ClientDriver {
  /**
   * Connects durable subscriber `index` of the run and subscribes it to `tick`. Every message is
   * passed to `onMessage` and acknowledged to the system. Calling it again after `close()` of the
   * returned handle reconnects the same durable subscriber (backlog scenario).
   */
  subscriber(index: number, onMessage: (stamp: Stamp) => void): Promise<Closeable>;
  publisher(): Promise<Publisher>;
  /** Opens one idle client connection (connections scenario). */
  idle(id: string): Promise<Closeable>;
  /** Releases shared client resources (e.g. one connection shared by the subscribers). */
  dispose?(): Promise<void>;
}

/** Thrown when a system is not installed or not reachable: reported, never a failure. */
export class Unavailable extends Error {
  override name = "Unavailable";
}
