// In-memory store: for tests and throwaway use. The backlog lives in the hub's memory.
// It is the reference implementation of the store contract (store.ts).
import type { Message } from "../protocol.js";
import {
  type ClaimRequest,
  type ClaimResult,
  clientQueue,
  type DeadLetter,
  type EnqueueRequest,
  type EnqueueResult,
  groupQueue,
  isGroupQueue,
  type NewMessage,
  nsKey,
  type QueueName,
  type QueueStats,
  type QueueStore,
  StoreError,
  type Subscription,
} from "./store.js";

interface Entry {
  message: NewMessage;
  deliveries: number;
  leaseOwner: string | null;
  leaseUntil: number;
}

export class MemoryStore implements QueueStore {
  /** ns → event → clientId → group */
  private readonly subs = new Map<string, Map<string, Map<string, string | null>>>();
  /** ns\0queue → messageId → entry, in insertion (FIFO) order */
  private readonly queues = new Map<string, Map<string, Entry>>();
  /** ns → (queue\0messageId) → dead letter */
  private readonly dead = new Map<string, Map<string, DeadLetter>>();
  private readonly dedup = new Map<string, { ids: string[]; expiresAt: number }>();
  private closed = false;

  async subscribe(ns: string, clientId: string, events: string[], group: string | null) {
    this.check();
    const byEvent = getOrInit(this.subs, ns, () => new Map());
    for (const event of events) getOrInit(byEvent, event, () => new Map()).set(clientId, group);
  }

  async unsubscribe(ns: string, clientId: string, events: string[]) {
    this.check();
    const byEvent = this.subs.get(ns);
    let dropped = 0;
    for (const event of events) {
      const clients = byEvent?.get(event);
      const group = clients?.get(clientId);
      if (!clients || group === undefined) continue;
      clients.delete(clientId);
      dropped += this.dropEvent(ns, clientQueue(clientId), event);
      if (group !== null && ![...clients.values()].includes(group)) {
        dropped += this.dropEvent(ns, groupQueue(group), event);
      }
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
    const dedupKey = req.key === undefined ? undefined : nsKey(req.ns, req.key);
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
    let dropped = 0;
    req.messages.forEach((message, i) => {
      for (const queue of targets[i] ?? []) {
        const entries = this.queueOf(req.ns, queue, true);
        entries.set(message.messageId, { message, deliveries: 0, leaseOwner: null, leaseUntil: 0 });
        // A while, not an if: a queue pushed past the limit by requeued dead letters is cut back too.
        while (req.maxQueueLength > 0 && entries.size > req.maxQueueLength) {
          const [oldestId, oldest] = entries.entries().next().value as [string, Entry];
          entries.delete(oldestId);
          this.toDead(req.ns, queue, oldest, "overflow", req.now);
          dropped++;
        }
      }
    });
    const messageIds = req.messages.map((m) => m.messageId);
    if (dedupKey) this.dedup.set(dedupKey, { ids: messageIds, expiresAt: req.now + req.dedupWindowMs });
    return { duplicate: false, messageIds, queues: [...added.keys()], dropped };
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    this.check();
    const result: ClaimResult = { messages: [], deadLettered: 0, expired: 0 };
    const entries = this.queueOf(req.ns, req.queue, false);
    if (!entries) return result;
    for (const [id, entry] of entries) {
      if (result.messages.length >= req.limit) break;
      if (entry.leaseUntil > req.now) continue;
      if (req.event !== undefined && entry.message.event !== req.event) continue;
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
        result.messages.push(toMessage(entry));
      }
    }
    return result;
  }

  async release(ns: string, queue: QueueName, consumer: string, messageIds?: string[]) {
    this.check();
    const entries = this.queueOf(ns, queue, false);
    if (!entries) return 0;
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
    let count = 0;
    for (const queue of await this.consumerQueues(ns, clientId)) {
      for (const entry of this.queueOf(ns, queue, false)?.values() ?? []) {
        if (event !== undefined && entry.message.event !== event) continue;
        if (isGroupQueue(queue) && entry.leaseUntil > now && entry.leaseOwner !== clientId) continue;
        count++;
      }
    }
    return count;
  }

  async sweep(now: number) {
    this.check();
    let removed = 0;
    for (const entries of this.queues.values()) {
      for (const [id, entry] of entries) {
        if (entry.message.expiresAt !== null && entry.message.expiresAt <= now) {
          entries.delete(id);
          removed++;
        }
      }
    }
    for (const [k, seen] of this.dedup) if (seen.expiresAt <= now) this.dedup.delete(k);
    return removed;
  }

  async listDead(ns: string, limit: number) {
    this.check();
    return [...(this.dead.get(ns)?.values() ?? [])].slice(0, limit);
  }

  async requeueDead(ns: string, messageIds: string[]) {
    this.check();
    const wanted = new Set(messageIds);
    const queues = new Set<QueueName>();
    const dead = this.dead.get(ns);
    for (const [k, letter] of dead ?? []) {
      if (!wanted.has(letter.messageId)) continue;
      dead?.delete(k);
      const { ns: _ns, queue, reason: _r, deadAt: _d, deliveries: _n, ...rest } = letter;
      const message: NewMessage = { ...rest, expiresAt: null };
      this.queueOf(ns, queue, true).set(letter.messageId, {
        message,
        deliveries: 0,
        leaseOwner: null,
        leaseUntil: 0,
      });
      queues.add(queue);
    }
    return [...queues];
  }

  async dropDead(ns: string, messageIds: string[]) {
    this.check();
    const wanted = new Set(messageIds);
    const dead = this.dead.get(ns);
    let dropped = 0;
    for (const [k, letter] of dead ?? []) {
      if (wanted.has(letter.messageId)) {
        dead?.delete(k);
        dropped++;
      }
    }
    return dropped;
  }

  async stats(ns?: string) {
    this.check();
    const now = Date.now();
    const out: QueueStats[] = [];
    for (const [k, entries] of this.queues) {
      const [queueNs, queue] = k.split("\u0000") as [string, string];
      if ((ns !== undefined && queueNs !== ns) || entries.size === 0) continue;
      let inFlight = 0;
      for (const e of entries.values()) if (e.leaseUntil > now) inFlight++;
      out.push({ ns: queueNs, queue, pending: entries.size, inFlight });
    }
    return out;
  }

  async subscriptions(ns?: string) {
    this.check();
    const out: Subscription[] = [];
    for (const [subNs, byEvent] of this.subs) {
      if (ns !== undefined && subNs !== ns) continue;
      for (const [event, clients] of byEvent) {
        for (const [clientId, group] of clients) out.push({ ns: subNs, clientId, event, group });
      }
    }
    return out;
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

  private targets(ns: string, message: NewMessage): QueueName[] {
    if (message.to) return [...new Set(message.to)].map(clientQueue);
    const queues = new Set<QueueName>();
    for (const [clientId, group] of this.subs.get(ns)?.get(message.event) ?? []) {
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

  private dropEvent(ns: string, queue: QueueName, event: string) {
    const entries = this.queueOf(ns, queue, false);
    let dropped = 0;
    for (const [id, entry] of entries ?? []) {
      if (entry.message.event === event) {
        entries?.delete(id);
        dropped++;
      }
    }
    return dropped;
  }

  private toDead(ns: string, queue: QueueName, entry: Entry, reason: DeadLetter["reason"], now: number) {
    getOrInit(this.dead, ns, () => new Map()).set(`${queue}\u0000${entry.message.messageId}`, {
      ...toMessage(entry),
      ns,
      queue,
      reason,
      deadAt: now,
    });
  }
}

function toMessage(entry: Entry): Message {
  const { messageId, event, payload, publishedAt, from } = entry.message;
  return { messageId, event, payload, publishedAt, from, deliveries: entry.deliveries };
}

function getOrInit<K, V>(map: Map<K, V>, k: K, make: () => V): V {
  let value = map.get(k);
  if (value === undefined) {
    value = make();
    map.set(k, value);
  }
  return value;
}
