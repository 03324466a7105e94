// The one small contract every queue store implements (memory, SQLite, Redis).
// Every method that changes state is atomic: it happens whole or not at all. The
// store owns all durable state, so several hubs over one store behave as one hub.
import type { Message } from "../protocol.js";

/**
 * A queue is named by its owner: `c:<clientId>` for a client's own queue,
 * `g:<group>` for a group's shared queue. One queue per owner per namespace.
 */
export type QueueName = string;
export const clientQueue = (clientId: string): QueueName => `c:${clientId}`;
export const groupQueue = (group: string): QueueName => `g:${group}`;
export const isGroupQueue = (queue: QueueName): boolean => queue.startsWith("g:");

/** A map key for a name (a queue, a clientId) within a namespace. */
export const nsKey = (ns: string, name: string): string => `${ns}\u0000${name}`;

export type OverflowPolicy = "reject" | "drop-oldest";

/** A message as the hub hands it to the store; the store keeps one copy per target queue. */
export interface NewMessage {
  messageId: string;
  event: string;
  payload: unknown;
  publishedAt: number;
  from: string | null;
  /** Epoch ms after which it is never delivered, or null for no TTL. */
  expiresAt: number | null;
  /** Target clients' own queues; when absent, every subscriber of `event` in the namespace. */
  to?: string[];
  /** With no `to`: also the publisher's own subscription (groups always receive). */
  echo?: boolean;
  /** `payload` as JSON text, when the hub has it already (a store that serialises can reuse it). */
  payloadJson?: string;
}

export interface EnqueueRequest {
  ns: string;
  /** One publish, or a batch: stored all or nothing, in this order. */
  messages: NewMessage[];
  /** Idempotency key for the whole request, scoped to the namespace. */
  key?: string;
  now: number;
  dedupWindowMs: number;
  /** Max entries per queue; 0 means unlimited. */
  maxQueueLength: number;
  overflow: OverflowPolicy;
}

export interface EnqueueResult {
  /** The key was seen inside the window: nothing was stored, ids are the first publish's. */
  duplicate: boolean;
  messageIds: string[];
  /** Queues that received at least one entry (whose consumers should be woken). */
  queues: QueueName[];
  /** Entries moved to the dead-letter queue by the drop-oldest policy. */
  dropped: number;
}

export interface ClaimRequest {
  ns: string;
  queue: QueueName;
  /** Who holds the lease (the consuming clientId). */
  consumer: string;
  limit: number;
  now: number;
  leaseMs: number;
  /** Deliveries after which an unacked entry moves to dead letters; 0 means never. */
  maxDeliveries: number;
  /** Only entries of this event. */
  event?: string;
}

export interface ClaimResult {
  /** Leased to the consumer, oldest first, with `deliveries` already counting this send. */
  messages: Message[];
  /** Entries moved to dead letters instead of being delivered. */
  deadLettered: number;
  /** Entries removed because their TTL passed. */
  expired: number;
  /**
   * The store stopped early, after removing many expired or dead-lettered entries, to keep one
   * operation short: claim again for the rest.
   */
  more?: boolean;
}

export interface DeadLetter extends Message {
  ns: string;
  queue: QueueName;
  reason: "max-deliveries" | "overflow";
  deadAt: number;
}

export interface QueueStats {
  ns: string;
  queue: QueueName;
  /** Entries stored, in flight or not. */
  pending: number;
  /** Entries under an unexpired lease. */
  inFlight: number;
}

export interface Subscription {
  ns: string;
  clientId: string;
  event: string;
  group: string | null;
}

export interface QueueStore {
  /** Durable subscription, idempotent; a new `group` replaces the old one. */
  subscribe(ns: string, clientId: string, events: string[], group: string | null): Promise<void>;
  /** Ends the subscriptions and drops this client's queued entries of those events (and a group's, when no member is left for the event). Returns entries dropped. */
  unsubscribe(ns: string, clientId: string, events: string[]): Promise<number>;
  /** The queues a client consumes from in a namespace: its own, then its groups'. */
  consumerQueues(ns: string, clientId: string): Promise<QueueName[]>;
  /** Stores every message in each target queue, all or nothing; throws StoreError QUEUE_FULL when `reject` applies. */
  enqueue(req: EnqueueRequest): Promise<EnqueueResult>;
  /** Leases up to `limit` claimable entries (free, or lease expired), oldest first, skipping expired and dead-lettering exhausted ones. */
  claim(req: ClaimRequest): Promise<ClaimResult>;
  /** Clears the consumer's leases in a queue (all, or those ids) so they can be claimed again. Returns how many. */
  release(ns: string, queue: QueueName, consumer: string, messageIds?: string[]): Promise<number>;
  /** Deletes entries from the client's own queue (leased or not) and from its groups' queues where it holds the lease. Returns the ids removed. */
  ack(ns: string, clientId: string, messageIds: string[]): Promise<string[]>;
  /** Entries the client would be sent: its own queue plus its groups' entries not leased by others. */
  pending(ns: string, clientId: string, now: number, event?: string): Promise<number>;
  /** Removes entries whose TTL passed and forgets old dedup keys. Returns entries removed. */
  sweep(now: number): Promise<number>;
  listDead(ns: string, limit: number): Promise<DeadLetter[]>;
  /** Moves dead letters (by id) back to the tail of their queues with `deliveries` reset. Returns the queues touched. */
  requeueDead(ns: string, messageIds: string[]): Promise<QueueName[]>;
  dropDead(ns: string, messageIds: string[]): Promise<number>;
  stats(ns?: string): Promise<QueueStats[]>;
  subscriptions(ns?: string): Promise<Subscription[]>;
  /** True when the store can write now. */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

export type StoreErrorCode = "QUEUE_FULL" | "UNAVAILABLE";

/** A refusal the hub maps straight to a wire error code. */
export class StoreError extends Error {
  override name = "StoreError";
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
