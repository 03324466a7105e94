// In-memory store: for tests and throwaway use. The backlog lives in the hub's memory.
// It is the reference implementation of the store contract (store.ts). Its views sort what they
// list on every page: fine for tests, not for a hub with a hundred thousand subscriptions.
import type { Message } from "../protocol.js";
import {
  type ClaimRequest,
  type ClaimResult,
  clientQueue,
  type DeadLetter,
  decodeCursor,
  deliveryOf,
  type EnqueueRequest,
  type EnqueueResult,
  encodeCursor,
  groupQueue,
  type HandedOver,
  type HandoverOffer,
  isGroupQueue,
  type NamespaceSummary,
  type NewMessage,
  nsKey,
  type Page,
  type PageRequest,
  pageLimit,
  type QueueName,
  type QueueStats,
  type QueueStore,
  type RoomSummary,
  StoreError,
  type Subscription,
  withHandedOver,
} from "./store.js";

interface Entry {
  message: NewMessage;
  /** Store order: a long operation in steps leaves alone what was stored after it began. */
  seq: number;
  deliveries: number;
  leaseOwner: string | null;
  leaseUntil: number;
}

/** Entries one step of a long operation (unsubscribe, a count, a drop-oldest) looks at, at most. */
export const MEMORY_STEP = 10_000;

const isString = (v: unknown): v is string => typeof v === "string";
const isPair = (v: unknown): v is [string, string] =>
  Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "string");
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v);

export class MemoryStore implements QueueStore {
  readonly kind = "memory";
  /** ns → event → clientId → group */
  private readonly subs = new Map<string, Map<string, Map<string, string | null>>>();
  /** ns\0queue → messageId → entry, in insertion (FIFO) order */
  private readonly queues = new Map<string, Map<string, Entry>>();
  /** ns → (queue\0messageId) → dead letter and its order */
  private readonly dead = new Map<string, Map<string, { letter: DeadLetter; seq: number }>>();
  /** ns\0scope\0key → the first publish's ids */
  private readonly dedup = new Map<string, { ids: string[]; expiresAt: number }>();
  /** ns → room → members */
  private readonly roomMembersOf = new Map<string, Map<string, Set<string>>>();
  /** ns\0clientId → its rooms */
  private readonly roomsOfClient = new Map<string, Set<string>>();
  private seq = 0;
  /**
   * ns\0queue → claim cursor: every entry up to `seq` is leased (or gone), and the first of those
   * leases runs out at `until`. Lets a handover see at once that nothing older is claimable.
   * Dropped on release; stale once `until` passes.
   */
  private readonly cursors = new Map<string, { seq: number; until: number }>();
  /** ns\0queue → seq of the entry stored last in it. */
  private readonly lastSeq = new Map<string, number>();
  private closed = false;
  /** Steps a long operation took (for tests of the stepping). */
  steps = 0;

  async subscribe(ns: string, clientId: string, events: string[], group: string | null) {
    this.check();
    const byEvent = getOrInit(this.subs, ns, () => new Map());
    for (const event of events) getOrInit(byEvent, event, () => new Map()).set(clientId, group);
  }

  async unsubscribe(ns: string, clientId: string, events: string[]) {
    this.check();
    const byEvent = this.subs.get(ns);
    const drops: [QueueName, string][] = [];
    for (const event of events) {
      const clients = byEvent?.get(event);
      const group = clients?.get(clientId);
      if (!clients || group === undefined) continue;
      clients.delete(clientId);
      if (clients.size === 0) byEvent?.delete(event);
      drops.push([clientQueue(clientId), event]);
      if (group !== null && ![...clients.values()].includes(group)) drops.push([groupQueue(group), event]);
    }
    // Entries stored from now on (addressed with `to`, say) are not the unsubscribe's to drop.
    const upTo = this.seq;
    let dropped = 0;
    for (const [queue, event] of drops) {
      dropped += await this.stepped(this.queueOf(ns, queue, false), upTo, (id, entry, entries) => {
        if (entry.message.event !== event) return;
        entries.delete(id);
        return 1;
      });
    }
    return dropped;
  }

  async consumerQueues(ns: string, clientId: string) {
    this.check();
    const groups = new Set<string>();
    for (const clients of this.subs.get(ns)?.values() ?? []) {
      const group = clients.get(clientId);
      if (group) groups.add(group);
    }
    return [clientQueue(clientId), ...[...groups].map(groupQueue)];
  }

  async enqueue(req: EnqueueRequest): Promise<EnqueueResult> {
    this.check();
    const dedupKey = req.key === undefined ? undefined : nsKey(req.ns, nsKey(req.key.scope, req.key.key));
    if (dedupKey) {
      const seen = this.dedup.get(dedupKey);
      if (seen && seen.expiresAt > req.now) {
        return { duplicate: true, messageIds: seen.ids, queues: [], dropped: 0 };
      }
    }
    const targets = req.messages.map((m) => this.targets(req.ns, m));
    const added = new Map<QueueName, number>();
    for (const queues of targets) for (const q of queues) added.set(q, (added.get(q) ?? 0) + 1);
    if (req.maxQueueLength > 0 && req.overflow === "reject") {
      for (const [queue, n] of added) {
        const size = this.queues.get(nsKey(req.ns, queue))?.size ?? 0;
        if (size + n > req.maxQueueLength) {
          throw new StoreError("QUEUE_FULL", `queue ${queue} holds ${size} of ${req.maxQueueLength}`);
        }
      }
    }
    // Asked before anything is stored: whether the queue held anything claimable before this request.
    const offers = new Map<QueueName, { offer: HandoverOffer; handed: HandedOver }>();
    if (req.handover) {
      for (const [queue, n] of added) {
        const offer = req.handover(queue, n);
        if (offer === undefined || offer.limit <= 0 || !this.nothingClaimable(req.ns, queue, req.now))
          continue;
        const size = this.queues.get(nsKey(req.ns, queue))?.size ?? 0;
        if (req.maxQueueLength > 0 && size + n > req.maxQueueLength) continue;
        offers.set(queue, { offer, handed: { queue, consumer: offer.consumer, messages: [] } });
      }
    }
    req.messages.forEach((m, i) => {
      const message: NewMessage = m.to !== undefined && m.room !== undefined ? { ...m, room: undefined } : m;
      for (const queue of targets[i] ?? []) {
        const entry: Entry = { message, seq: ++this.seq, deliveries: 0, leaseOwner: null, leaseUntil: 0 };
        const k = nsKey(req.ns, queue);
        this.queueOf(req.ns, queue, true).set(m.messageId, entry);
        this.lastSeq.set(k, entry.seq);
        const taker = offers.get(queue);
        if (taker === undefined || taker.handed.messages.length >= taker.offer.limit) continue;
        entry.deliveries = 1;
        entry.leaseOwner = taker.offer.consumer;
        entry.leaseUntil = req.now + taker.offer.leaseMs;
        taker.handed.messages.push(toMessage(entry));
        const cursor = this.cursors.get(k);
        const until = Math.min(
          entry.leaseUntil,
          cursor !== undefined && cursor.until > req.now ? cursor.until : Infinity,
        );
        this.cursors.set(k, { seq: entry.seq, until });
      }
    });
    const messageIds = req.messages.map((m) => m.messageId);
    if (dedupKey) this.dedup.set(dedupKey, { ids: messageIds, expiresAt: req.now + req.dedupWindowMs });
    let dropped = 0;
    // Cut back to the limit, oldest first, in steps (a requeue or a lowered limit may leave a long excess).
    if (req.maxQueueLength > 0 && req.overflow === "drop-oldest") {
      for (const queue of added.keys())
        dropped += await this.dropOldest(req.ns, queue, req.maxQueueLength, req.now);
    }
    return {
      duplicate: false,
      messageIds,
      queues: [...added.keys()],
      dropped,
      ...withHandedOver([...offers.values()].map((o) => o.handed)),
    };
  }

  /** True when a queue holds no entry a claim could take now (all under live leases, or none). */
  private nothingClaimable(ns: string, queue: QueueName, now: number): boolean {
    const k = nsKey(ns, queue);
    if ((this.queues.get(k)?.size ?? 0) === 0) return true;
    const cursor = this.cursors.get(k);
    return cursor !== undefined && now < cursor.until && (this.lastSeq.get(k) ?? 0) <= cursor.seq;
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    this.check();
    const result: ClaimResult = { messages: [], deadLettered: 0, expired: 0 };
    const entries = this.queueOf(req.ns, req.queue, false);
    if (!entries) return result;
    // Every entry up to `leasedUpTo` is leased once this claim is done (see cursors).
    let leasedUpTo = 0;
    let firstExpiry = Number.POSITIVE_INFINITY;
    let open = false;
    for (const [id, entry] of entries) {
      if (result.messages.length >= req.limit) break;
      if (entry.leaseUntil > req.now) {
        firstExpiry = Math.min(firstExpiry, entry.leaseUntil);
        if (!open) leasedUpTo = entry.seq;
        continue;
      }
      if (req.event !== undefined && entry.message.event !== req.event) {
        open = true;
        continue;
      }
      if (entry.message.expiresAt !== null && entry.message.expiresAt <= req.now) {
        entries.delete(id);
        result.expired++;
      } else if (req.maxDeliveries > 0 && entry.deliveries >= req.maxDeliveries) {
        entries.delete(id);
        this.toDead(req.ns, req.queue, entry, "max-deliveries", req.now);
        result.deadLettered++;
      } else {
        entry.deliveries++;
        entry.leaseOwner = req.consumer;
        entry.leaseUntil = req.now + req.leaseMs;
        firstExpiry = Math.min(firstExpiry, entry.leaseUntil);
        if (!open) leasedUpTo = entry.seq;
        result.messages.push(toMessage(entry));
      }
    }
    if (req.event === undefined) {
      this.cursors.set(nsKey(req.ns, req.queue), { seq: leasedUpTo, until: firstExpiry });
    }
    return result;
  }

  async release(ns: string, queue: QueueName, consumer: string, messageIds?: string[]) {
    this.check();
    const entries = this.queueOf(ns, queue, false);
    if (!entries) return 0;
    this.cursors.delete(nsKey(ns, queue));
    let released = 0;
    const candidates = messageIds
      ? messageIds.map((id) => entries.get(id)).filter((e) => e !== undefined)
      : entries.values();
    for (const entry of candidates) {
      if (entry.leaseOwner === consumer && entry.leaseUntil > 0) {
        entry.leaseOwner = null;
        entry.leaseUntil = 0;
        released++;
      }
    }
    return released;
  }

  async ack(ns: string, clientId: string, messageIds: string[]) {
    this.check();
    const removed: string[] = [];
    const queues = await this.consumerQueues(ns, clientId);
    for (const id of new Set(messageIds)) {
      for (const queue of queues) {
        const entries = this.queueOf(ns, queue, false);
        const entry = entries?.get(id);
        if (!entries || !entry) continue;
        if (isGroupQueue(queue) && entry.leaseOwner !== clientId) continue;
        entries.delete(id);
        removed.push(id);
        break;
      }
    }
    return removed;
  }

  async pending(ns: string, clientId: string, now: number, event?: string) {
    this.check();
    const upTo = this.seq;
    let count = 0;
    for (const queue of await this.consumerQueues(ns, clientId)) {
      const entries = this.queueOf(ns, queue, false);
      if (event === undefined && !isGroupQueue(queue)) {
        count += entries?.size ?? 0;
        continue;
      }
      count += await this.stepped(entries, upTo, (_id, entry) => {
        if (event !== undefined && entry.message.event !== event) return;
        if (isGroupQueue(queue) && entry.leaseUntil > now && entry.leaseOwner !== clientId) return;
        return 1;
      });
    }
    return count;
  }

  async sweep(now: number) {
    this.check();
    let removed = 0;
    for (const entries of this.queues.values()) {
      removed += await this.stepped(entries, this.seq, (id, entry) => {
        if (entry.message.expiresAt === null || entry.message.expiresAt > now) return;
        entries.delete(id);
        return 1;
      });
    }
    for (const [k, seen] of this.dedup) if (seen.expiresAt <= now) this.dedup.delete(k);
    return removed;
  }

  // ---- rooms ------------------------------------------------------------------------------------

  async joinRoom(ns: string, room: string, clientId: string) {
    this.check();
    const members = getOrInit(
      getOrInit(this.roomMembersOf, ns, () => new Map()),
      room,
      () => new Set(),
    );
    if (members.has(clientId)) return false;
    members.add(clientId);
    getOrInit(this.roomsOfClient, nsKey(ns, clientId), () => new Set()).add(room);
    return true;
  }

  async leaveRoom(ns: string, room: string, clientId: string) {
    this.check();
    const rooms = this.roomMembersOf.get(ns);
    const members = rooms?.get(room);
    if (!members?.delete(clientId)) return false;
    if (members.size === 0) rooms?.delete(room);
    const mine = this.roomsOfClient.get(nsKey(ns, clientId));
    mine?.delete(room);
    if (mine?.size === 0) this.roomsOfClient.delete(nsKey(ns, clientId));
    return true;
  }

  async isMember(ns: string, room: string, clientId: string) {
    this.check();
    return this.roomMembersOf.get(ns)?.get(room)?.has(clientId) ?? false;
  }

  async clientRooms(ns: string, clientId: string) {
    this.check();
    return [...(this.roomsOfClient.get(nsKey(ns, clientId)) ?? [])].sort();
  }

  async roomMembers(ns: string, room: string, page: PageRequest): Promise<Page<string>> {
    this.check();
    const members = [...(this.roomMembersOf.get(ns)?.get(room) ?? [])];
    return pageOf(members, (m) => m, page, isString);
  }

  // ---- views ------------------------------------------------------------------------------------

  async namespaces(page: PageRequest): Promise<Page<NamespaceSummary>> {
    this.check();
    const names = new Set<string>([...this.subs.keys(), ...this.dead.keys(), ...this.roomMembersOf.keys()]);
    for (const [k, entries] of this.queues) if (entries.size > 0) names.add(splitKey(k)[0]);
    const summaries = [...names].map((ns) => this.summary(ns)).filter((s) => s !== null);
    return pageOf(summaries, (s) => s.ns, page, isString);
  }

  async stats(page: PageRequest, ns?: string): Promise<Page<QueueStats>> {
    this.check();
    const now = Date.now();
    const out: QueueStats[] = [];
    for (const [k, entries] of this.queues) {
      const [queueNs, queue] = splitKey(k);
      if ((ns !== undefined && queueNs !== ns) || entries.size === 0) continue;
      let inFlight = 0;
      for (const e of entries.values()) if (e.leaseUntil > now) inFlight++;
      out.push({ ns: queueNs, queue, pending: entries.size, inFlight });
    }
    return pageOf(out, (s): [string, string] => [s.ns, s.queue], page, isPair);
  }

  async subscriptions(page: PageRequest, ns?: string): Promise<Page<Subscription>> {
    this.check();
    const out: Subscription[] = [];
    for (const [subNs, byEvent] of this.subs) {
      if (ns !== undefined && subNs !== ns) continue;
      for (const [event, clients] of byEvent) {
        for (const [clientId, group] of clients) out.push({ ns: subNs, clientId, event, group });
      }
    }
    const key = (s: Subscription) => [s.ns, nsKey(s.event, s.clientId)] as [string, string];
    return pageOf(out, key, page, isPair);
  }

  async rooms(ns: string, page: PageRequest): Promise<Page<RoomSummary>> {
    this.check();
    const out = [...(this.roomMembersOf.get(ns) ?? [])].map(([room, members]) => ({
      ns,
      room,
      members: members.size,
    }));
    return pageOf(out, (r) => r.room, page, isString);
  }

  async listDead(ns: string, page: PageRequest): Promise<Page<DeadLetter>> {
    this.check();
    const all = [...(this.dead.get(ns)?.values() ?? [])];
    const after = page.after ? decodeCursor(page.after, isNumber) : 0;
    const limit = pageLimit(page);
    const rest = all.filter((d) => d.seq > after);
    const items = rest.slice(0, limit);
    const last = items.at(-1);
    return {
      items: items.map((d) => d.letter),
      next: rest.length > limit && last ? encodeCursor(last.seq) : null,
    };
  }

  async requeueDead(ns: string, messageIds: string[]) {
    this.check();
    const wanted = new Set(messageIds);
    const queues = new Set<QueueName>();
    const dead = this.dead.get(ns);
    for (const [k, { letter }] of dead ?? []) {
      if (!wanted.has(letter.messageId)) continue;
      dead?.delete(k);
      const { ns: _ns, queue, reason: _r, deadAt: _d, deliveries: _n, ...rest } = letter;
      const message: NewMessage = { ...rest, expiresAt: null };
      const seq = ++this.seq;
      this.queueOf(ns, queue, true).set(letter.messageId, {
        message,
        seq,
        deliveries: 0,
        leaseOwner: null,
        leaseUntil: 0,
      });
      this.lastSeq.set(nsKey(ns, queue), seq);
      queues.add(queue);
    }
    return [...queues];
  }

  async dropDead(ns: string, messageIds: string[]) {
    this.check();
    const wanted = new Set(messageIds);
    const dead = this.dead.get(ns);
    let dropped = 0;
    for (const [k, { letter }] of dead ?? []) {
      if (wanted.has(letter.messageId)) {
        dead?.delete(k);
        dropped++;
      }
    }
    return dropped;
  }

  async healthy() {
    return !this.closed;
  }

  async close() {
    this.closed = true;
  }

  private check() {
    if (this.closed) throw new StoreError("UNAVAILABLE", "store is closed");
  }

  private summary(ns: string): NamespaceSummary | null {
    const s: NamespaceSummary = { ns, queues: 0, pending: 0, subscriptions: 0, rooms: 0, deadLetters: 0 };
    for (const [k, entries] of this.queues) {
      if (entries.size === 0 || splitKey(k)[0] !== ns) continue;
      s.queues++;
      s.pending += entries.size;
    }
    for (const clients of this.subs.get(ns)?.values() ?? []) s.subscriptions += clients.size;
    s.rooms = this.roomMembersOf.get(ns)?.size ?? 0;
    s.deadLetters = this.dead.get(ns)?.size ?? 0;
    return s.queues || s.subscriptions || s.rooms || s.deadLetters ? s : null;
  }

  private targets(ns: string, message: NewMessage): QueueName[] {
    if (message.to) return [...new Set(message.to)].map(clientQueue);
    if (message.room !== undefined) {
      const members = this.roomMembersOf.get(ns)?.get(message.room) ?? [];
      return [...members].filter((c) => c !== message.from || message.echo).map(clientQueue);
    }
    const subscribers = this.subs.get(ns)?.get(message.event);
    if (message.route !== undefined && message.route !== message.from && subscribers?.has(message.route)) {
      return [clientQueue(message.route)];
    }
    const queues = new Set<QueueName>();
    for (const [clientId, group] of subscribers ?? []) {
      if (group !== null) queues.add(groupQueue(group));
      else if (clientId !== message.from || message.echo) queues.add(clientQueue(clientId));
    }
    return [...queues];
  }

  private queueOf(ns: string, queue: QueueName, create: true): Map<string, Entry>;
  private queueOf(ns: string, queue: QueueName, create: false): Map<string, Entry> | undefined;
  private queueOf(ns: string, queue: QueueName, create: boolean) {
    const k = nsKey(ns, queue);
    return create ? getOrInit(this.queues, k, () => new Map()) : this.queues.get(k);
  }

  /** Keeps a queue within `max` entries by moving its oldest ones to dead letters, in steps. */
  private async dropOldest(ns: string, queue: QueueName, max: number, now: number) {
    const entries = this.queueOf(ns, queue, false);
    let dropped = 0;
    while (entries && entries.size > max) {
      let step = 0;
      for (const [id, oldest] of entries) {
        if (entries.size <= max || step++ === MEMORY_STEP) break;
        entries.delete(id);
        this.toDead(ns, queue, oldest, "overflow", now);
        dropped++;
      }
      if (entries.size > max) await this.yieldStep();
    }
    return dropped;
  }

  /**
   * Visits a queue's entries stored up to `upTo` in store order, MEMORY_STEP at a time with the
   * event loop free between steps. Returns the sum of what `visit` returns.
   */
  private async stepped(
    entries: Map<string, Entry> | undefined,
    upTo: number,
    visit: (id: string, entry: Entry, entries: Map<string, Entry>) => number | undefined,
  ): Promise<number> {
    if (!entries) return 0;
    let total = 0;
    let seen = 0;
    for (const [id, entry] of entries) {
      if (entry.seq > upTo) break;
      total += visit(id, entry, entries) ?? 0;
      if (++seen % MEMORY_STEP === 0) await this.yieldStep();
    }
    return total;
  }

  private async yieldStep() {
    this.steps++;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.check();
  }

  private toDead(ns: string, queue: QueueName, entry: Entry, reason: DeadLetter["reason"], now: number) {
    getOrInit(this.dead, ns, () => new Map()).set(`${queue}\u0000${entry.message.messageId}`, {
      letter: { ...toMessage(entry), ns, queue, reason, deadAt: now },
      seq: ++this.seq,
    });
  }
}

function toMessage(entry: Entry): Message {
  return deliveryOf(entry.message, entry.deliveries);
}

function splitKey(k: string): [string, string] {
  const i = k.indexOf("\u0000");
  return [k.slice(0, i), k.slice(i + 1)];
}

/** Sorts by key and returns the page after the cursor (the last key of the previous page). */
function pageOf<T, K extends string | [string, string]>(
  items: T[],
  keyOf: (item: T) => K,
  page: PageRequest,
  valid: (position: unknown) => position is K,
): Page<T> {
  const cmp = (a: K, b: K) => {
    const [a1, a2] = typeof a === "string" ? [a, ""] : a;
    const [b1, b2] = typeof b === "string" ? [b, ""] : b;
    return a1 < b1 ? -1 : a1 > b1 ? 1 : a2 < b2 ? -1 : a2 > b2 ? 1 : 0;
  };
  const after = page.after ? decodeCursor(page.after, valid) : undefined;
  const sorted = items.map((item) => ({ item, key: keyOf(item) })).sort((a, b) => cmp(a.key, b.key));
  const rest = after === undefined ? sorted : sorted.filter((x) => cmp(x.key, after) > 0);
  const limit = pageLimit(page);
  const chosen = rest.slice(0, limit);
  const last = chosen.at(-1);
  return {
    items: chosen.map((x) => x.item),
    next: rest.length > limit && last ? encodeCursor(last.key) : null,
  };
}

function getOrInit<K, V>(map: Map<K, V>, k: K, make: () => V): V {
  let value = map.get(k);
  if (value === undefined) {
    value = make();
    map.set(k, value);
  }
  return value;
}
