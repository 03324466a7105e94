// The queue core decides delivery: who gets what, when, and how much at once.
// It keeps no backlog of its own: queues live in the store, and each connection holds
// at most `prefetch` unacked deliveries in flight (AMQP-style flow control).
import type { HubConfig } from "./config.js";
import { newMessageId } from "./ids.js";
import type { Logger } from "./log.js";
import { HubMetrics } from "./metrics.js";
import { type Failure, failure, isValidClientId, type Message, type Reply } from "./protocol.js";
import {
  type ClaimResult,
  clientQueue,
  type EnqueueResult,
  type HandoverOffer,
  type IdempotencyKey,
  isGroupQueue,
  type NewMessage,
  nsKey,
  type Page,
  type PageRequest,
  publisherScope,
  type QueueName,
  type QueueStore,
  StoreError,
} from "./store/store.js";
import type { ParsedPublish } from "./validate.js";
import { attachPayloadJson } from "./wire-encoder.js";

/** Length of a client queue name's prefix: what follows is the clientId. */
const CLIENT_QUEUE_PREFIX = clientQueue("").length;

export type DeliveryLimits = Pick<
  HubConfig,
  | "prefetch"
  | "ackTimeoutMs"
  | "creditWaitMs"
  | "maxDeliveries"
  | "messageTtlMs"
  | "maxQueueLength"
  | "overflow"
  | "maxPayloadBytes"
  | "maxBatchBytes"
  | "maxConnectionsPerClient"
  | "rateLimit"
  | "dedupWindowMs"
  | "routeField"
  | "maxRoomsPerClient"
>;

/** Idempotency scope of a publisher the caller did not name: all of them share it. */
const UNNAMED_SCOPE = publisherScope.address("unknown");

/** One identified connection that receives deliveries (a socket, in the hub). */
export interface Consumer {
  readonly id: string;
  readonly ns: string;
  readonly clientId: string;
  send(messages: Message[]): void;
  /** Closes the connection (the oldest of a client's, when it has too many). */
  close?(): void;
}

/** Hooks that let several hubs act as one (see cluster.ts); a single hub needs none. */
export interface Peers {
  /** Tell other hubs that these queues got entries. */
  wake(ns: string, queues: QueueName[]): void;
  /** Tell other hubs that a newer connection of this client took over. */
  takeover(ns: string, clientId: string): void;
}

interface InFlight {
  queue: QueueName;
  deadline: number;
}

class Connection {
  readonly inflight = new Map<string, InFlight>();
  queues: QueueName[] = [];
  ready = false;
  active = true;
  closed = false;
  pumping = false;
  again = false;
  /** Entries being claimed for this connection right now (they count against its window). */
  claiming = 0;
  /** The last pump failed (store outage): the ticker tries again. */
  retry = false;
  /** Claims of its own queue issued so far: a publish waiting for it knows which claims came after it. */
  claims = 0;
  /**
   * Its queue may hold entries not sent to it: set by every wake-up, cleared when a claim finds
   * the queue drained. Only then does an ack's freed window make a claim; otherwise every fresh
   * entry was handed over, and the claim would find nothing while holding the window, until its
   * commit, that the next publishes' handover needs.
   */
  backlog = true;
  /** Publish acks held until a claim issued after `after` finds the queue drained (credit flow). */
  readonly held: { after: number; release: () => void }[] = [];
  constructor(readonly consumer: Consumer) {}

  /** Lets held publish acks go: all of them, or those the claim numbered `claim` covered. */
  release(claim = Number.POSITIVE_INFINITY) {
    let kept = 0;
    for (const waiter of this.held) {
      if (waiter.after < claim) waiter.release();
      else this.held[kept++] = waiter;
    }
    this.held.length = kept;
  }
}

/** What one claim did for a connection: messages sent, and whether the store stopped early. */
interface Claimed {
  sent: number;
  more: boolean;
}
const NONE_SENT: Claimed = { sent: 0, more: false };

export class QueueCore {
  peers: Peers | null = null;
  /** ns\0clientId → connections, newest last; the newest receives deliveries. */
  private readonly clients = new Map<string, Connection[]>();
  /** ns\0groupQueue → connections consuming it */
  private readonly groupConsumers = new Map<string, Set<Connection>>();
  private readonly byConsumer = new Map<Consumer, Connection>();
  /** ns\0groupQueue → hand-out state: one pump at a time, members served in turn */
  private readonly groups = new Map<string, { pumping: boolean; again: boolean; turn: number }>();
  private readonly rates = new Map<string, { tokens: number; at: number }>();
  /** ns → publishes of this turn waiting to be stored together (see gather). */
  private readonly gathered = new Map<
    string,
    {
      messages: NewMessage[];
      outcome: Promise<Failure | { ok: true }>;
      settle: (outcome: Promise<Failure | { ok: true }>) => void;
    }
  >();
  private readonly timer: NodeJS.Timeout;
  private lastSweep = Date.now();
  private lastPoll = Date.now();

  constructor(
    private readonly store: QueueStore,
    private readonly limits: DeliveryLimits,
    private readonly log: Logger,
    /** Counters and the latency histogram, for /metrics. */
    readonly metrics: HubMetrics = new HubMetrics(),
  ) {
    const tick = Math.min(1000, Math.max(10, Math.floor(limits.ackTimeoutMs / 4)));
    this.timer = setInterval(() => this.onTick(), tick);
    this.timer.unref();
  }

  /** Registers a connection; it takes over its client's deliveries and starts streaming. */
  async attach(consumer: Consumer): Promise<void> {
    const conn = new Connection(consumer);
    this.byConsumer.set(consumer, conn);
    const k = nsKey(consumer.ns, consumer.clientId);
    const conns = this.clients.get(k) ?? [];
    // Only the newest connection receives, so only it (or one taken over by another hub, its
    // window cleared) has deliveries in flight: a takeover costs the same however many are open.
    const previous = conns.filter((c) => c.active || c.inflight.size > 0);
    conns.push(conn);
    this.clients.set(k, conns);
    for (const c of previous) {
      c.active = false;
      c.release();
    }
    // Past the limit the oldest connections are closed (a reconnect is never refused).
    const max = this.limits.maxConnectionsPerClient;
    if (max > 0 && conns.length > max) {
      const oldest = conns.slice(0, conns.length - max);
      this.log.info(
        { ns: consumer.ns, clientId: consumer.clientId, closed: oldest.length, max },
        "oldest connections of a client closed (HUB_MAX_CONNECTIONS_PER_CLIENT)",
      );
      for (const c of oldest) c.consumer.close?.();
    }
    try {
      await Promise.all(previous.map((c) => this.releaseInFlight(c)));
      // Leases left by earlier connections (here, on another hub, or before a restart) come back now.
      await this.store.release(consumer.ns, clientQueue(consumer.clientId), consumer.clientId);
      this.peers?.takeover(consumer.ns, consumer.clientId);
      await this.refreshQueues(conn);
    } catch (err) {
      this.log.error({ ns: consumer.ns, clientId: consumer.clientId, err }, "attach failed");
    }
    conn.ready = true;
    void this.pump(conn);
  }

  /** Forgets a connection; its unacked deliveries go back to its queues for the next consumer. */
  detach(consumer: Consumer): void {
    const conn = this.byConsumer.get(consumer);
    if (!conn) return;
    this.byConsumer.delete(consumer);
    conn.closed = true;
    conn.release();
    const k = nsKey(consumer.ns, consumer.clientId);
    const remaining = this.clients.get(k) ?? [];
    const at = remaining.indexOf(conn);
    if (at >= 0) remaining.splice(at, 1);
    if (remaining.length === 0) this.clients.delete(k);
    this.indexGroups(conn, []);
    const wasActive = conn.active;
    conn.active = false;
    const groups = conn.queues.filter(isGroupQueue);
    void this.releaseInFlight(conn).then(() => {
      const next = remaining.at(-1);
      if (wasActive && next) {
        next.active = true;
        void this.pump(next);
      }
      this.wakeLocal(consumer.ns, groups);
    });
  }

  /** Another hub took over this client: local connections stop receiving. */
  surrender(ns: string, clientId: string): void {
    for (const conn of this.clients.get(nsKey(ns, clientId)) ?? []) {
      conn.active = false;
      conn.release();
      conn.inflight.clear();
    }
  }

  async subscribe(
    ns: string,
    clientId: string,
    events: string[],
    group: string | null,
  ): Promise<Reply<object>> {
    return this.guard(async () => {
      await this.store.subscribe(ns, clientId, events, group);
      if (group !== null) await this.refreshClient(ns, clientId);
      return { ok: true };
    });
  }

  async unsubscribe(ns: string, clientId: string, events: string[]): Promise<Reply<object>> {
    return this.guard(async () => {
      await this.store.unsubscribe(ns, clientId, events);
      await this.refreshClient(ns, clientId);
      return { ok: true };
    });
  }

  /** Stores one copy per subscriber queue (all or nothing), then wakes their consumers. */
  async publish(
    ns: string,
    from: string | null,
    items: ParsedPublish[],
    /**
     * The publisher, for its idempotency keys and its rate bucket (see publisherScope); the hub
     * names unnamed publishers by address.
     */
    scope: string = from === null ? UNNAMED_SCOPE : publisherScope.identity(from),
    /** Routing by payload applies (a classroom or HTTP publisher on an open hub): see routeOf. */
    routed = false,
  ): Promise<Failure | { ok: true; messageIds: string[] }> {
    const now = Date.now();
    const key = items[0]?.key;
    // One bucket per publisher across namespaces: its scope (a clientId, a token's sub, an address).
    if (!this.takeTokens(scope, items.length, now)) {
      const who = from ?? `unnamed publishers at ${scope.replace(/^addr:/, "")}`;
      return this.refuse(
        failure("RATE_LIMITED", `publish: over ${this.limits.rateLimit} messages/s for ${who}; retry later`),
      );
    }
    const messages: NewMessage[] = [];
    let batchBytes = 0;
    for (const item of items) {
      const payload = item.payload === undefined ? null : item.payload;
      const payloadJson = JSON.stringify(payload);
      const size = Buffer.byteLength(payloadJson);
      if (size > this.limits.maxPayloadBytes) {
        return this.refuse(
          failure(
            "PAYLOAD_TOO_LARGE",
            `publish: payload of ${size} bytes is over the ${this.limits.maxPayloadBytes}-byte limit`,
          ),
        );
      }
      batchBytes += size;
      if (items.length > 1 && batchBytes > this.limits.maxBatchBytes) {
        return this.refuse(
          failure(
            "BATCH_TOO_LARGE",
            `publish: a batch's payloads may hold ${this.limits.maxBatchBytes} bytes together (HUB_MAX_BATCH_BYTES); this one is over it by message ${messages.length + 1} of ${items.length}`,
          ),
        );
      }
      const ttl = item.ttl ?? this.limits.messageTtlMs;
      messages.push({
        messageId: newMessageId(now),
        event: item.event,
        payload,
        publishedAt: now,
        from,
        expiresAt: ttl > 0 ? now + ttl : null,
        to: item.to,
        room: item.room,
        route: routed && item.to === undefined && item.room === undefined ? this.routeOf(payload) : undefined,
        echo: item.echo,
        payloadJson,
      });
    }
    if (messages.length > 1 || key !== undefined || this.limits.maxQueueLength > 0) {
      // Stored alone (a batch is one request already; a key or a queue limit may refuse it):
      // what this turn gathered goes first.
      this.storeGathered(ns);
      const idempotency = key === undefined ? undefined : { scope, key };
      return this.guard(() => this.storeMessages(ns, messages, idempotency, now));
    }
    const stored = await this.gather(ns, messages);
    return stored.ok ? { ok: true, messageIds: messages.map((m) => m.messageId) } : stored;
  }

  /**
   * Single-message publishes that nothing in the store can tell apart (no idempotency key, no
   * queue limit) are gathered over one turn of the event loop, per namespace, and stored in one
   * request: one row per batch of messages and one per queue instead of rows per publish (a turn
   * reads many of them from a socket at once). Each stays in its publisher's order; the request
   * succeeds or fails for all of them.
   */
  private gather(ns: string, messages: NewMessage[]): Promise<Failure | { ok: true }> {
    let gathered = this.gathered.get(ns);
    if (gathered === undefined) {
      let settle: (outcome: Promise<Failure | { ok: true }>) => void = () => {};
      const outcome = new Promise<Failure | { ok: true }>((resolve) => {
        settle = resolve;
      });
      gathered = { messages: [], outcome, settle };
      this.gathered.set(ns, gathered);
      process.nextTick(() => this.storeGathered(ns));
    }
    for (const m of messages) gathered.messages.push(m);
    return gathered.outcome;
  }

  /** Stores what `gather` holds for a namespace now. */
  private storeGathered(ns: string) {
    const gathered = this.gathered.get(ns);
    if (gathered === undefined) return;
    this.gathered.delete(ns);
    gathered.settle(this.guard(() => this.storeMessages(ns, gathered.messages, undefined, Date.now())));
  }

  /** Stores one copy per subscriber queue (all or nothing), hands fresh entries over, wakes the rest. */
  private async storeMessages(
    ns: string,
    messages: NewMessage[],
    key: IdempotencyKey | undefined,
    now: number,
  ): Promise<{ ok: true; messageIds: string[] }> {
    const handover = this.handoverOffers(ns);
    let result: EnqueueResult;
    try {
      result = await this.store.enqueue({
        ns,
        messages,
        key,
        now,
        dedupWindowMs: this.limits.dedupWindowMs,
        maxQueueLength: this.limits.maxQueueLength,
        overflow: this.limits.overflow,
        handover: handover.offer,
      });
    } finally {
      handover.settle();
    }
    if (!result.duplicate) {
      this.metrics.published.inc(messages.length);
      this.metrics.dropped.inc(result.dropped);
      if (result.dropped) this.log.warn({ ns, dropped: result.dropped }, "queue full: oldest dropped");
      // Fresh entries leased at once go out now, from memory; only the queues still holding
      // some of them need their consumers woken.
      const complete = new Set<QueueName>();
      for (const handed of result.handedOver ?? []) {
        const taken = handover.taken(handed.queue);
        if (taken === undefined) continue;
        if (handed.messages.length === taken.count) complete.add(handed.queue);
        // Sent with the payload texts made above, not serialised again (wire-encoder.ts).
        attachPayloadJson(handed.messages, messages);
        await this.deliver(taken.conn, handed.queue, handed.messages, now);
      }
      const waiting = complete.size === 0 ? result.queues : result.queues.filter((q) => !complete.has(q));
      // Held before the wake-up, so that only claims issued after this publish release it.
      const held = this.holdFor(ns, waiting);
      this.wake(ns, waiting);
      if (held !== null) await held;
    }
    return { ok: true, messageIds: result.messageIds };
  }

  /**
   * Credit flow: delivery goes before intake when a live consumer lags. A publish whose entries
   * wait in the queue of a consumer online here with room in its window (the hub's delivery is
   * behind, not the consumer) gets its ack once that consumer's pump has caught up past it, or
   * after `creditWaitMs` at most (the publisher slows to the consumer's pace, and is never stopped
   * by a consumer that stopped taking). A consumer whose window is full is slow: its queue absorbs
   * everything and holds no one; an offline consumer holds no one either. Reads are never paused
   * (the publisher's socket carries its acks too). Returns null when nothing holds the publish.
   */
  private holdFor(ns: string, queues: QueueName[]): Promise<void> | null {
    if (this.limits.creditWaitMs <= 0) return null;
    const waits: Promise<void>[] = [];
    for (const queue of queues) {
      if (isGroupQueue(queue)) continue;
      const conn = this.newestOf(ns, queue);
      if (conn === undefined || !conn.active || !conn.ready || this.windowFull(conn)) continue;
      const after = conn.claims;
      waits.push(new Promise<void>((release) => conn.held.push({ after, release })));
    }
    if (waits.length === 0) return null;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.limits.creditWaitMs);
    });
    return Promise.race([Promise.all(waits), bound]).then(() => clearTimeout(timer));
  }

  /**
   * The handover offers of one publish (EnqueueRequest.handover): a client queue whose newest
   * connection here is ready and has room in its window may take the fresh entries at once.
   * What is offered counts against the window until the store has answered (`settle`).
   */
  private handoverOffers(ns: string) {
    const offered = new Map<QueueName, { conn: Connection; count: number; limit: number }>();
    return {
      offer: (queue: QueueName, count: number): HandoverOffer | undefined => {
        // A group's queue is handed out among its members in turn (pumpGroup).
        if (isGroupQueue(queue) || offered.has(queue)) return undefined;
        const conn = this.newestOf(ns, queue);
        if (conn === undefined || !conn.active || !conn.ready) return undefined;
        const limit = Math.min(count, this.free(conn));
        if (limit <= 0) return undefined;
        conn.claiming += limit;
        offered.set(queue, { conn, count, limit });
        return { consumer: conn.consumer.clientId, limit, leaseMs: this.limits.ackTimeoutMs };
      },
      settle: () => {
        for (const { conn, limit } of offered.values()) conn.claiming -= limit;
      },
      taken: (queue: QueueName) => offered.get(queue),
    };
  }

  /**
   * The client a payload names in the route field (`{ store: "acme-widgets", ... }`), if any: the
   * store then gives the message to that client alone when it subscribes to the event.
   */
  private routeOf(payload: unknown): string | undefined {
    const field = this.limits.routeField;
    if (field === null || typeof payload !== "object" || payload === null || Array.isArray(payload)) return;
    const value = Object.hasOwn(payload, field) ? (payload as Record<string, unknown>)[field] : undefined;
    return isValidClientId(value) ? value : undefined;
  }

  /** Acks for this client: removes entries from its own queue (and group leases it holds). */
  async ack(ns: string, clientId: string, messageIds: string[]): Promise<Reply<{ removed: number }>> {
    // The window frees at once, so the next claim joins the ack in the store's batch instead of
    // waiting for its commit. Ids in flight are freed even if already gone from the store (expired).
    const freed: { conn: Connection; id: string; flight: InFlight }[] = [];
    for (const conn of this.clients.get(nsKey(ns, clientId)) ?? []) {
      for (const id of messageIds) {
        const flight = conn.inflight.get(id);
        if (flight === undefined) continue;
        conn.inflight.delete(id);
        freed.push({ conn, id, flight });
      }
    }
    const reply = this.guard(async () => {
      const removed = messageIds.length ? await this.store.ack(ns, clientId, messageIds) : [];
      this.metrics.acked.inc(removed.length);
      return { ok: true as const, removed: removed.length };
    });
    for (const conn of new Set(freed.map((f) => f.conn))) if (conn.active) void this.pump(conn, true);
    const result = await reply;
    // Not acked after all (store outage): back in flight, so that the ack timeout redelivers them.
    if (!result.ok) for (const { conn, id, flight } of freed) if (!conn.closed) conn.inflight.set(id, flight);
    return result;
  }

  /** Makes the client a durable member of the room, within `maxRoomsPerClient`; `joined` is false when it was one already. */
  async joinRoom(ns: string, room: string, clientId: string): Promise<Reply<{ joined: boolean }>> {
    return this.guard(async () => {
      const max = this.limits.maxRoomsPerClient;
      if (max > 0 && !(await this.store.isMember(ns, room, clientId))) {
        const rooms = await this.store.clientRooms(ns, clientId);
        if (rooms.length >= max) {
          return this.refuse(
            failure(
              "FORBIDDEN",
              `join: ${clientId} is a member of ${rooms.length} rooms, the most HUB_MAX_ROOMS_PER_CLIENT allows; leave one first`,
            ),
          );
        }
      }
      return { ok: true, joined: await this.store.joinRoom(ns, room, clientId) };
    });
  }

  /** Ends the client's membership (its queued room messages stay); `left` is false when it was none. */
  async leaveRoom(ns: string, room: string, clientId: string): Promise<Reply<{ left: boolean }>> {
    return this.guard(async () => ({ ok: true, left: await this.store.leaveRoom(ns, room, clientId) }));
  }

  /** The client's rooms in the namespace. */
  clientRooms(ns: string, clientId: string): Promise<string[]> {
    return this.store.clientRooms(ns, clientId);
  }

  /**
   * Refused unless the client is a member of every room named (members may publish to and list
   * their rooms); `what` names the request in the refusal.
   */
  async memberOf(ns: string, clientId: string, rooms: Iterable<string>, what: string): Promise<Reply> {
    return this.guard(async () => {
      for (const room of new Set(rooms)) {
        if (!(await this.store.isMember(ns, room, clientId))) {
          return this.refuse(
            failure("FORBIDDEN", `${what}: ${clientId} is not a member of room ${room}: join it first`),
          );
        }
      }
      return { ok: true };
    });
  }

  /** A page of a room's members' clientIds. */
  async roomMembers(ns: string, room: string, page: PageRequest): Promise<Reply<Page<string>>> {
    return this.guard(async () => ({ ok: true, ...(await this.store.roomMembers(ns, room, page)) }));
  }

  /** Restarts the connection's stream from the head of its queues; counts what is pending. */
  async getAll(consumer: Consumer, event?: string): Promise<Reply<{ count: number }>> {
    return this.guard(async () => {
      const count = await this.store.pending(consumer.ns, consumer.clientId, Date.now(), event);
      const conn = this.byConsumer.get(consumer);
      if (conn) void this.pump(conn);
      return { ok: true, count };
    });
  }

  /** Queues that got entries: their consumers on this hub (and, in a cluster, on the others) pull. */
  wake(ns: string, queues: QueueName[]): void {
    if (queues.length === 0) return;
    this.wakeLocal(ns, queues);
    this.peers?.wake(ns, queues);
  }

  wakeLocal(ns: string, queues: QueueName[]): void {
    for (const queue of queues) {
      if (isGroupQueue(queue)) {
        if (this.groupConsumers.has(nsKey(ns, queue))) void this.pumpGroup(ns, queue);
      } else {
        const conn = this.newestOf(ns, queue);
        if (conn?.active) void this.pump(conn);
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Deliveries sent and not yet acked, over every connection of this hub. */
  inFlight(): number {
    let n = 0;
    for (const conn of this.byConsumer.values()) n += conn.inflight.size;
    return n;
  }

  /** Moves dead letters back to their queues and wakes their consumers. Returns the queues touched. */
  async requeueDead(ns: string, messageIds: string[]): Promise<QueueName[]> {
    const queues = await this.store.requeueDead(ns, messageIds);
    this.wake(ns, queues);
    return queues;
  }

  /**
   * Fills the connection's window from its own queue, oldest first; one pump at a time per
   * connection. Then offers its groups' queues. After an ack (`acked`) its own queue is claimed
   * from only when it may hold entries not sent (see Connection.backlog).
   */
  private async pump(conn: Connection, acked = false): Promise<void> {
    if (!conn.ready) return;
    for (const queue of conn.queues) if (isGroupQueue(queue)) void this.pumpGroup(conn.consumer.ns, queue);
    if (!acked) conn.backlog = true;
    else if (!conn.backlog) return;
    if (conn.pumping) {
      conn.again = true;
      return;
    }
    conn.pumping = true;
    conn.retry = false;
    try {
      do {
        conn.again = false;
        const free = this.free(conn);
        if (free <= 0 || !conn.active) break;
        const claim = ++conn.claims;
        const got = await this.claimFor(conn, clientQueue(conn.consumer.clientId), free);
        if (got.sent === free || got.more) conn.again = true;
        // Drained: every publish held before this claim was issued is delivered.
        else {
          conn.release(claim);
          if (!conn.again) conn.backlog = false;
        }
      } while (conn.again && conn.active);
    } catch (err) {
      // The store refused (e.g. outage): the ticker pumps again later.
      conn.retry = true;
      this.log.warn({ clientId: conn.consumer.clientId, err }, "delivery paused: store error");
    } finally {
      conn.pumping = false;
      // A full window means a slow consumer, not a lagging hub: it holds no publisher.
      if (!conn.active || this.windowFull(conn)) conn.release();
    }
  }

  /**
   * Hands a group's queue out to its connected members in turn, as RabbitMQ does among
   * competing consumers: one message each per round at first, doubling the share while
   * every member takes a full one, so a burst is spread and a backlog still moves in pages.
   */
  private async pumpGroup(ns: string, queue: QueueName): Promise<void> {
    const k = nsKey(ns, queue);
    const state = this.groups.get(k) ?? { pumping: false, again: false, turn: 0 };
    this.groups.set(k, state);
    if (state.pumping) {
      state.again = true;
      return;
    }
    state.pumping = true;
    try {
      do {
        state.again = false;
        let share = 1;
        let fullRounds = 0;
        for (;;) {
          const members = [...(this.groupConsumers.get(k) ?? [])].filter((c) => c.active && c.ready);
          if (members.length === 0) break;
          const start = state.turn++ % members.length;
          const turn = [...members.slice(start), ...members.slice(0, start)];
          const limits = turn.map((member) => Math.min(share, this.free(member)));
          if (limits.every((limit) => limit <= 0)) break;
          // One round's claims go out together, so a group-committing store writes them in one commit.
          const got = await Promise.all(
            turn.map((member, i) =>
              (limits[i] ?? 0) > 0 ? this.claimFor(member, queue, limits[i] ?? 0) : NONE_SENT,
            ),
          );
          if (got.some((r) => r.more)) continue;
          if (got.some((r, i) => r.sent < (limits[i] ?? 0))) break;
          if (++fullRounds % 2 === 0) share = Math.min(share * 2, this.limits.prefetch);
        }
      } while (state.again);
    } catch (err) {
      this.log.warn({ ns, queue, err }, "group delivery paused: store error");
    } finally {
      state.pumping = false;
      if (!this.groupConsumers.has(k)) this.groups.delete(k);
    }
  }

  /** The newest connection here of a client queue's owner (the one that takes its deliveries). */
  private newestOf(ns: string, queue: QueueName): Connection | undefined {
    return this.clients.get(nsKey(ns, queue.slice(CLIENT_QUEUE_PREFIX)))?.at(-1);
  }

  /** The consumer holds as many unacked deliveries as it may: it is slow, not the hub. */
  private windowFull(conn: Connection): boolean {
    return conn.inflight.size >= this.limits.prefetch;
  }

  /** Window left on a connection, counting claims still on their way. */
  private free(conn: Connection): number {
    return this.limits.prefetch - conn.inflight.size - conn.claiming;
  }

  /** Leases up to `limit` entries of a queue to a connection and sends them. Returns how many, and whether the store has more to look at. */
  private async claimFor(conn: Connection, queue: QueueName, limit: number): Promise<Claimed> {
    const { ns, clientId } = conn.consumer;
    const now = Date.now();
    conn.claiming += limit;
    let claimed: ClaimResult;
    try {
      claimed = await this.store.claim({
        ns,
        queue,
        consumer: clientId,
        limit,
        now,
        leaseMs: this.limits.ackTimeoutMs,
        maxDeliveries: this.limits.maxDeliveries,
      });
    } finally {
      conn.claiming -= limit;
    }
    this.countClaim(ns, queue, claimed.expired, claimed.deadLettered);
    const more = claimed.more === true;
    return { sent: await this.deliver(conn, queue, claimed.messages, now), more };
  }

  /** Sends messages leased to a connection at `now` (claimed or handed over). Returns how many went out. */
  private async deliver(
    conn: Connection,
    queue: QueueName,
    messages: Message[],
    now: number,
  ): Promise<number> {
    if (messages.length === 0) return 0;
    const { ns, clientId } = conn.consumer;
    if (!conn.active) {
      // Taken over meanwhile: hand the leases back at once.
      await this.store.release(
        ns,
        queue,
        clientId,
        messages.map((m) => m.messageId),
      );
      this.wakeLocal(ns, [queue]);
      return 0;
    }
    const deadline = now + this.limits.ackTimeoutMs;
    let redelivered = 0;
    const sentAt = Date.now();
    for (const m of messages) {
      conn.inflight.delete(m.messageId);
      conn.inflight.set(m.messageId, { queue, deadline });
      if (m.deliveries > 1) redelivered++;
      else this.metrics.deliveryLatency.observe((sentAt - m.publishedAt) / 1000);
    }
    this.metrics.delivered.inc(messages.length);
    this.metrics.redelivered.inc(redelivered);
    conn.consumer.send(messages);
    return messages.length;
  }

  private countClaim(ns: string, queue: QueueName, expired: number, deadLettered: number) {
    if (expired) {
      this.metrics.expired.inc(expired);
      this.log.info({ ns, queue, expired }, "expired messages removed");
    }
    if (deadLettered) {
      this.metrics.deadLettered.inc(deadLettered);
      this.log.warn({ ns, queue, deadLettered }, "messages moved to dead letters");
    }
  }

  /** Redelivers what timed out, and sweeps expired messages now and then. */
  private onTick() {
    const now = Date.now();
    const pollDue = now - this.lastPoll >= this.limits.ackTimeoutMs;
    for (const conn of this.byConsumer.values()) {
      let timedOut = false;
      for (const [id, flight] of conn.inflight) {
        if (flight.deadline > now) break;
        conn.inflight.delete(id);
        timedOut = true;
      }
      // Leases held on a hub that died run out by themselves, and a wake-up from another hub can be
      // lost: poll at the ack-timeout pace (groups always, every connection in a cluster).
      const poll = pollDue && (this.peers !== null || conn.queues.length > 1);
      if ((timedOut || conn.retry || poll) && conn.active) void this.pump(conn);
    }
    if (pollDue) this.lastPoll = now;
    if (now - this.lastSweep >= 60_000) {
      this.lastSweep = now;
      // A bucket idle for a second is full again: forget it rather than keep one per client ever seen.
      for (const [k, bucket] of this.rates) if (now - bucket.at >= 1000) this.rates.delete(k);
      this.store.sweep(now).then(
        (removed) => {
          this.metrics.expired.inc(removed);
          if (removed) this.log.info({ removed }, "expired messages swept");
        },
        (err) => this.log.warn({ err }, "sweep failed"),
      );
    }
  }

  private async releaseInFlight(conn: Connection) {
    const byQueue = new Map<QueueName, string[]>();
    for (const [id, flight] of conn.inflight) {
      const ids = byQueue.get(flight.queue);
      if (ids) ids.push(id);
      else byQueue.set(flight.queue, [id]);
    }
    conn.inflight.clear();
    const { ns, clientId } = conn.consumer;
    try {
      await Promise.all([...byQueue].map(([queue, ids]) => this.store.release(ns, queue, clientId, ids)));
    } catch (err) {
      // Leases then run out by themselves after the ack timeout.
      this.log.warn({ clientId, err }, "release failed");
    }
  }

  private async refreshClient(ns: string, clientId: string) {
    for (const conn of this.clients.get(nsKey(ns, clientId)) ?? []) {
      await this.refreshQueues(conn);
      if (conn.active) void this.pump(conn);
    }
  }

  private async refreshQueues(conn: Connection) {
    const queues = await this.store.consumerQueues(conn.consumer.ns, conn.consumer.clientId);
    if (!conn.closed) this.indexGroups(conn, queues);
  }

  private indexGroups(conn: Connection, queues: QueueName[]) {
    for (const queue of conn.queues.filter(isGroupQueue)) {
      this.groupConsumers.get(nsKey(conn.consumer.ns, queue))?.delete(conn);
    }
    conn.queues = queues;
    for (const queue of queues.filter(isGroupQueue)) {
      const k = nsKey(conn.consumer.ns, queue);
      const members = this.groupConsumers.get(k) ?? new Set();
      members.add(conn);
      this.groupConsumers.set(k, members);
    }
  }

  /** Token bucket per client: `rateLimit` per second, bursts up to one second's worth. */
  private takeTokens(bucketKey: string, n: number, now: number): boolean {
    const rate = this.limits.rateLimit;
    if (rate <= 0) return true;
    const bucket = this.rates.get(bucketKey) ?? { tokens: rate, at: now };
    bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.at) * rate) / 1000);
    bucket.at = now;
    this.rates.set(bucketKey, bucket);
    if (bucket.tokens < n) return false;
    bucket.tokens -= n;
    return true;
  }

  private refuse(reply: Failure): Failure {
    this.metrics.refused.inc({ code: reply.error.code });
    this.log.info({ code: reply.error.code, reason: reply.error.message }, "refused");
    return reply;
  }

  /** Store refusals become error values on the wire; nothing else escapes. */
  private async guard<T extends object>(work: () => Promise<Reply<T>>): Promise<Reply<T>> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof StoreError) return this.refuse(failure(err.code, err.message));
      this.log.error({ err }, "store operation failed");
      return this.refuse(failure("UNAVAILABLE", "the store cannot write now: nothing was stored, retry"));
    }
  }
}
