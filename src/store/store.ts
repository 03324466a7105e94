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
  /**
   * Targets, the first one set wins (the hub never sets two): `to`, the named clients' own queues;
   * `room`, the own queue of every member of the room in the namespace except `from` (unless
   * `echo`), and the delivered message carries `room`; else every subscriber of `event`.
   */
  to?: string[];
  room?: string;
  /**
   * Routing by payload: when this client (not `from`) subscribes to `event` in the namespace,
   * only its own queue gets the message; otherwise it fans out as if `route` were absent.
   */
  route?: string;
  /** With no `to`: also the publisher's own subscription or membership (groups always receive). */
  echo?: boolean;
  /** `payload` as JSON text, when the hub has it already (a store that serialises can reuse it). */
  payloadJson?: string;
}

/** An idempotency key and whose it is: keys of different scopes never meet. */
export interface IdempotencyKey {
  /** The publisher, as the hub names it: see publisherScope. */
  scope: string;
  key: string;
}

/** Scopes of idempotency keys: one per identified publisher, one per address for unnamed ones. */
export const publisherScope = {
  /** A clientId, or a token's `sub` (over HTTP): the same name is the same publisher. */
  identity: (name: string): string => `id:${name}`,
  /** An unnamed publisher (a classroom connection, an open-mode HTTP call), by remote address. */
  address: (address: string): string => `addr:${address}`,
} as const;

/** A consumer that may take a queue's fresh entries at once: see EnqueueRequest.handover. */
export interface HandoverOffer {
  /** Who holds the lease (the consuming clientId). */
  consumer: string;
  /** Entries of this request it takes at most. */
  limit: number;
  leaseMs: number;
}

/** Fresh entries leased to a consumer as they were stored (see EnqueueRequest.handover). */
export interface HandedOver {
  queue: QueueName;
  consumer: string;
  /** As a claim returns them: oldest first, `deliveries` 1. */
  messages: Message[];
}

/** A stored message as a delivery says it (a room only for a room publish, never beside `to`). */
export function deliveryOf(m: NewMessage, deliveries: number): Message {
  const message: Message = {
    messageId: m.messageId,
    event: m.event,
    payload: m.payload ?? null,
    publishedAt: m.publishedAt,
    from: m.from,
    deliveries,
  };
  if (m.to === undefined && m.room !== undefined) message.room = m.room;
  return message;
}

/** `handedOver` for an EnqueueResult: the handovers that leased something; absent when none did. */
export function withHandedOver(offered: Iterable<HandedOver>): { handedOver?: HandedOver[] } {
  const handedOver = [...offered].filter((h) => h.messages.length > 0);
  return handedOver.length > 0 ? { handedOver } : {};
}

export interface EnqueueRequest {
  ns: string;
  /** One publish, or a batch: stored all or nothing, in this order. */
  messages: NewMessage[];
  /** Idempotency key for the whole request, scoped to (namespace, publisher scope, key). */
  key?: IdempotencyKey;
  now: number;
  dedupWindowMs: number;
  /** Max entries per queue; 0 means unlimited. */
  maxQueueLength: number;
  overflow: OverflowPolicy;
  /**
   * Fresh-message handover: asked once per target queue with the number of entries this request
   * puts there. When it names a consumer and the queue holds nothing that consumer could claim
   * (every older entry is under a live lease, or there is none), the store leases the first
   * `limit` of the new entries to it as part of the same atomic write and returns them in
   * `handedOver`, so that the hub sends them without a claim. Otherwise the entries wait, free,
   * for a claim as usual: order within a queue always holds.
   */
  handover?: (queue: QueueName, count: number) => HandoverOffer | undefined;
}

export interface EnqueueResult {
  /** The key was seen inside the window: nothing was stored, ids are the first publish's. */
  duplicate: boolean;
  messageIds: string[];
  /** Queues that received at least one entry (whose consumers should be woken). */
  queues: QueueName[];
  /** Entries moved to the dead-letter queue by the drop-oldest policy. */
  dropped: number;
  /** Entries leased at once to the consumers `handover` named (absent or empty: none). */
  handedOver?: HandedOver[];
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

/** A namespace that holds anything, with its counts. */
export interface NamespaceSummary {
  ns: string;
  /** Queues holding at least one entry. */
  queues: number;
  /** Entries in all its queues. */
  pending: number;
  subscriptions: number;
  /** Rooms with at least one member. */
  rooms: number;
  deadLetters: number;
}

export interface RoomSummary {
  ns: string;
  room: string;
  members: number;
}

/** One page of a view: at most `limit` items after the cursor `after` (null or absent: from the start). */
export interface PageRequest {
  limit: number;
  after?: string | null;
}

/**
 * A page, in a stable order. `next` is the opaque cursor of the following page, null after the
 * last. A page may hold fewer than `limit` items (a store bounds the work per page) and still
 * have a `next`: read on until `next` is null.
 */
export interface Page<T> {
  items: T[];
  next: string | null;
}

export interface QueueStore {
  /**
   * What kind of store this is ("memory", "sqlite", "redis", or a custom store's own name):
   * /healthz reports it, and hubs on a "redis" store act as one cluster.
   */
  readonly kind: string;
  /** Durable subscription, idempotent; a new `group` replaces the old one. */
  subscribe(ns: string, clientId: string, events: string[], group: string | null): Promise<void>;
  /**
   * Ends the subscriptions and drops this client's queued entries of those events (and a group's,
   * when no member is left for the event), in short steps over a long queue. Returns entries dropped.
   */
  unsubscribe(ns: string, clientId: string, events: string[]): Promise<number>;
  /** The queues a client consumes from in a namespace: its own, then its groups'. */
  consumerQueues(ns: string, clientId: string): Promise<QueueName[]>;
  /**
   * Stores every message in each target queue, all or nothing; throws StoreError QUEUE_FULL when
   * `reject` applies. With `drop-oldest`, a backlog far over the limit is cut back in short steps.
   */
  enqueue(req: EnqueueRequest): Promise<EnqueueResult>;
  /** Leases up to `limit` claimable entries (free, or lease expired), oldest first, skipping expired and dead-lettering exhausted ones. */
  claim(req: ClaimRequest): Promise<ClaimResult>;
  /** Clears the consumer's leases in a queue (all, or those ids) so they can be claimed again. Returns how many. */
  release(ns: string, queue: QueueName, consumer: string, messageIds?: string[]): Promise<number>;
  /** Deletes entries from the client's own queue (leased or not) and from its groups' queues where it holds the lease. Returns the ids removed. */
  ack(ns: string, clientId: string, messageIds: string[]): Promise<string[]>;
  /** Entries the client would be sent: its own queue plus its groups' entries not leased by others (counted in short steps over a long queue). */
  pending(ns: string, clientId: string, now: number, event?: string): Promise<number>;
  /** Removes entries whose TTL passed and forgets old dedup keys, in short steps. Returns entries removed. */
  sweep(now: number): Promise<number>;

  /** Makes the client a durable member of the room, idempotent. True when it was not a member. */
  joinRoom(ns: string, room: string, clientId: string): Promise<boolean>;
  /** Ends the membership; queued room messages stay. True when it was a member. */
  leaveRoom(ns: string, room: string, clientId: string): Promise<boolean>;
  isMember(ns: string, room: string, clientId: string): Promise<boolean>;
  /** The client's rooms in the namespace, by name (as many as the hub lets a client join). */
  clientRooms(ns: string, clientId: string): Promise<string[]>;
  /** A room's members' clientIds, by clientId. */
  roomMembers(ns: string, room: string, page: PageRequest): Promise<Page<string>>;

  /** Namespaces that hold queues, subscriptions, rooms or dead letters, by name, with counts. */
  namespaces(page: PageRequest): Promise<Page<NamespaceSummary>>;
  /** Queues holding entries (of one namespace, or all), with their counts. */
  stats(page: PageRequest, ns?: string): Promise<Page<QueueStats>>;
  /** Subscriptions (of one namespace, or all). */
  subscriptions(page: PageRequest, ns?: string): Promise<Page<Subscription>>;
  /** A namespace's rooms that have members, by name, with member counts. */
  rooms(ns: string, page: PageRequest): Promise<Page<RoomSummary>>;
  /** A namespace's dead letters, oldest first. */
  listDead(ns: string, page: PageRequest): Promise<Page<DeadLetter>>;
  /** Moves dead letters (by id) back to the tail of their queues with `deliveries` reset. Returns the queues touched. */
  requeueDead(ns: string, messageIds: string[]): Promise<QueueName[]>;
  /** Deletes dead letters (by id). Returns how many. */
  dropDead(ns: string, messageIds: string[]): Promise<number>;

  /** True when the store can write now. */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

export type StoreErrorCode = "QUEUE_FULL" | "UNAVAILABLE" | "INVALID_ARGUMENT";

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

/** Rows a view reads at most per page, whatever it finds: a page never costs more than this. */
export const PAGE_SCAN_MAX = 10_000;
/** The most items a page holds. */
export const PAGE_LIMIT_MAX = 1000;

/** The page size a request asks for, within 1..PAGE_LIMIT_MAX. */
export function pageLimit(page: PageRequest): number {
  return Math.min(PAGE_LIMIT_MAX, Math.max(1, Math.floor(page.limit) || 1));
}

/** An opaque cursor for a position (a store's own key, whatever its shape). */
export function encodeCursor(position: unknown): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

/** The position a cursor holds, checked by `valid`; a cursor that is not one: StoreError INVALID_ARGUMENT. */
export function decodeCursor<T>(cursor: string, valid: (position: unknown) => position is T): T {
  let position: unknown;
  try {
    position = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    position = undefined;
  }
  if (!valid(position))
    throw new StoreError("INVALID_ARGUMENT", "cursor: not a cursor of this view; start again without one");
  return position;
}
