// Redis store: one Redis (standalone or Sentinel-managed; NOT Redis Cluster) shared by a
// cluster of hubs. Every state change is one Lua script (./lua, one file per command), so it
// is atomic and two hubs never hand one group entry to two members. Time is the caller's
// `now` (stats() uses Date.now()). The keys are listed in ./lua/includes/prelude.lua.
// The body is stored once per message whatever the fan-out; claim reads `limit` entries
// (plus entries of other events when filtered by event), never the whole queue.
import { Redis } from "ioredis";
import type { Message } from "../../protocol.js";
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
  type NamespaceSummary,
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
} from "../store.js";
import { defineScripts, type ScriptArg, type ScriptName, type ScriptReply } from "./scripts.js";

export interface RedisStoreOptions {
  url: string;
  /** Every key starts with it, e.g. "queuehub:". */
  prefix: string;
  /** A command without a reply after this long rejects with UNAVAILABLE (default 5000 ms). */
  commandTimeoutMs?: number;
  /** Initial connection attempt limit (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Entries one step of a long operation (unsubscribe, drop-oldest) reads at most. @default 1000 */
  stepEntries?: number;
}

const encodeGroup = (group: string | null) => (group === null ? "" : `:${group}`);
const decodeGroup = (enc: string) => (enc === "" ? null : enc.slice(1));

export class RedisStore implements QueueStore {
  readonly kind = "redis";
  private closed = false;
  private readonly stepEntries: number;
  /** Scripts run by long operations, one per step (for tests of the stepping). */
  steps = 0;

  private constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    opts: RedisStoreOptions,
  ) {
    this.stepEntries = Math.max(1, opts.stepEntries ?? 1000);
  }

  static async connect(opts: RedisStoreOptions): Promise<RedisStore> {
    // The first connection fails at once (the caller learns Redis is missing); once it has
    // been up, the client reconnects by itself, forever, backing off to 1 s between attempts.
    let wasReady = false;
    const redis = new Redis(opts.url, {
      lazyConnect: true,
      // Fail fast instead of queueing while Redis is away; never resend a script whose
      // outcome is unknown (a retried publish is made safe by its idempotency key instead).
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: opts.commandTimeoutMs ?? 5000,
      connectTimeout: opts.connectTimeoutMs ?? 5000,
      retryStrategy: (times) => (wasReady ? Math.min(50 * 2 ** Math.min(times, 6), 1000) : null),
    });
    redis.once("ready", () => {
      wasReady = true;
    });
    // Errors surface on the calls; without a listener ioredis would log each reconnect failure.
    let lastError: Error | undefined;
    redis.on("error", (err: Error) => {
      lastError = err;
    });
    defineScripts(redis);
    try {
      await redis.connect();
    } catch (err) {
      // After a failed first attempt the client has ended; disconnect() on it would leave a
      // 2 s timer behind (ioredis' disconnectTimeout on an already closed stream).
      if (redis.status !== "end") redis.disconnect();
      const reason = lastError?.message ?? (err as Error).message;
      throw new StoreError("UNAVAILABLE", `redis ${opts.url}: ${reason}`, { cause: lastError ?? err });
    }
    const store = new RedisStore(redis, opts.prefix, opts);
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /**
   * Data written by an older queuehub (layout 1: no rooms, namespace-wide keys) is brought to
   * layout 2 one namespace at a time; each step may run twice, or on two hubs at once. Stop the
   * old hubs first: they do not know the new layout.
   */
  private async migrate() {
    const namespaces = (await this.run("qhMigrate")) as string[];
    if (namespaces.length === 0) return;
    for (const ns of namespaces) await this.run("qhMigrateNs", ns);
    await this.wrap(() => this.redis.set(`${this.prefix}version`, "2"));
  }

  async subscribe(ns: string, clientId: string, events: string[], group: string | null) {
    if (events.length === 0) return this.check();
    await this.run("qhSubscribe", ns, clientId, encodeGroup(group), ...events);
  }

  /** Ends the subscriptions in one script, then drops their entries in steps (drop-event-0.lua). */
  async unsubscribe(ns: string, clientId: string, events: string[]) {
    if (events.length === 0) return this.check(0);
    const [upTo, ...drops] = (await this.run("qhUnsubscribe", ns, clientId, ...events)) as [
      number,
      ...string[],
    ];
    let dropped = 0;
    for (let i = 0; i + 1 < drops.length; i += 2) {
      let after = "-inf";
      do {
        const step = (await this.run(
          "qhDropEvent",
          ns,
          drops[i] as string,
          drops[i + 1] as string,
          after,
          upTo,
          this.stepEntries,
        )) as [number, string];
        this.steps++;
        dropped += step[0];
        after = step[1];
      } while (after !== "");
    }
    return dropped;
  }

  async consumerQueues(ns: string, clientId: string) {
    const encs = (await this.wrap(() => this.redis.hvals(`${this.prefix}cs:${ns}|${clientId}`))) as string[];
    const groups = [...new Set(encs.filter((e) => e !== ""))].map((e) => groupQueue(e.slice(1))).sort();
    return [clientQueue(clientId), ...groups];
  }

  async enqueue(req: EnqueueRequest): Promise<EnqueueResult> {
    const messageIds = req.messages.map((m) => m.messageId);
    if (req.messages.length === 0) {
      this.check();
      return { duplicate: false, messageIds, queues: [], dropped: 0 };
    }
    const args: ScriptArg[] = [
      req.ns,
      req.key?.scope ?? "",
      req.key?.key ?? "",
      req.now,
      req.dedupWindowMs,
      req.maxQueueLength,
      req.overflow,
      req.messages.length,
      JSON.stringify(messageIds),
      this.stepEntries,
    ];
    for (const m of req.messages) {
      // `to` wins over `room`: such a message is no room message.
      const room = m.to === undefined ? (m.room ?? "") : "";
      const payload = m.payloadJson ?? JSON.stringify(m.payload ?? null);
      args.push(
        m.messageId,
        m.event,
        `[${m.publishedAt},${JSON.stringify(m.from)},${payload}${room === "" ? "" : `,${JSON.stringify(room)}`}]`,
        m.expiresAt ?? "",
        m.from === null ? 0 : 1,
        m.from ?? "",
        m.echo ? 1 : 0,
        room,
        m.route ?? "",
        m.to ? m.to.length : -1,
      );
      if (m.to) args.push(...m.to);
    }
    const reply = (await this.run("qhEnqueue", ...args)) as ScriptReply[];
    if (reply[0] === 1) {
      return { duplicate: true, messageIds: JSON.parse(reply[1] as string), queues: [], dropped: 0 };
    }
    if (reply[0] === 2) throw new StoreError("QUEUE_FULL", reply[1] as string);
    const count = reply[2] as number;
    const queues = reply.slice(3, 3 + count) as string[];
    const stored = reply.slice(3 + count, 3 + 2 * count) as number[];
    const over = reply.slice(3 + 2 * count) as string[];
    let dropped = reply[1] as number;
    // Drop-oldest far over the limit: the rest in steps, each its own script.
    for (const queue of over) {
      for (;;) {
        const [n, over] = (await this.run(
          "qhTrim",
          req.ns,
          queue,
          req.maxQueueLength,
          req.now,
          this.stepEntries,
        )) as [number, number];
        this.steps++;
        dropped += n;
        if (over === 0) break;
      }
    }
    const handedOver: HandedOver[] = [];
    if (req.handover !== undefined) {
      for (const [i, queue] of queues.entries()) {
        // Only a queue that got every message of the request: their ids are then its new entries.
        if (stored[i] !== req.messages.length || over.includes(queue)) continue;
        const handed = await this.handOver(req, queue);
        if (handed !== undefined) handedOver.push(handed);
      }
    }
    return { duplicate: false, messageIds, queues, dropped, ...withHandedOver(handedOver) };
  }

  /** Leases a queue's fresh entries to the consumer `handover` names, when nothing older is claimable. */
  private async handOver(req: EnqueueRequest, queue: QueueName): Promise<HandedOver | undefined> {
    const offer = req.handover?.(queue, req.messages.length);
    if (offer === undefined || offer.limit <= 0) return undefined;
    const ids = (await this.run(
      "qhHandover",
      req.ns,
      queue,
      offer.consumer,
      req.now,
      offer.leaseMs,
      Math.floor(offer.limit),
      ...req.messages.map((m) => m.messageId),
    )) as string[];
    if (ids.length === 0) return undefined;
    const messages = req.messages.slice(0, ids.length).map((m) => deliveryOf(m, 1));
    return { queue, consumer: offer.consumer, messages };
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    const reply = (await this.run(
      "qhClaim",
      req.ns,
      req.queue,
      req.consumer,
      Math.max(0, Math.floor(req.limit)),
      req.now,
      req.leaseMs,
      req.maxDeliveries,
      req.event ?? "",
    )) as ScriptReply[];
    const messages: Message[] = [];
    for (let i = 2; i < reply.length; i += 4) {
      messages.push(
        toMessage(reply[i] as string, reply[i + 1] as string, reply[i + 2] as number, reply[i + 3] as string),
      );
    }
    return { messages, expired: reply[0] as number, deadLettered: reply[1] as number };
  }

  async release(ns: string, queue: QueueName, consumer: string, messageIds?: string[]) {
    if (messageIds?.length === 0) return this.check(0);
    const ids = messageIds ? [1, ...messageIds] : [0];
    return (await this.run("qhRelease", ns, queue, consumer, ...ids)) as number;
  }

  async ack(ns: string, clientId: string, messageIds: string[]) {
    if (messageIds.length === 0) return this.check([] as string[]);
    return (await this.run("qhAck", ns, clientId, ...messageIds)) as string[];
  }

  async pending(ns: string, clientId: string, now: number, event?: string) {
    return (await this.run("qhPending", ns, clientId, now, event ?? "")) as number;
  }

  async sweep(now: number) {
    const chunk = 1000;
    let removed = 0;
    for (;;) {
      const [n, examined] = (await this.run("qhSweep", now, chunk)) as [number, number];
      removed += n;
      if (examined < chunk) return removed;
    }
  }

  async listDead(ns: string, page: PageRequest): Promise<Page<DeadLetter>> {
    const after = page.after ? decodeCursor(page.after, isScoreBound) : "-inf";
    const [next, ...reply] = (await this.run("qhListDead", ns, after, pageLimit(page))) as string[];
    const items: DeadLetter[] = [];
    for (let i = 0; i < reply.length; i += 5) {
      const [queue, id, event, body, meta] = reply.slice(i, i + 5) as [
        string,
        string,
        string,
        string,
        string,
      ];
      const [reason, deadAt, deliveries] = meta.split(",") as [DeadLetter["reason"], string, string];
      items.push({
        ...toMessage(id, event, Number(deliveries), body),
        ns,
        queue,
        reason,
        deadAt: Number(deadAt),
      });
    }
    return { items, next: next ? encodeCursor(next) : null };
  }

  async requeueDead(ns: string, messageIds: string[]) {
    if (messageIds.length === 0) return this.check([] as QueueName[]);
    return (await this.run("qhRequeueDead", ns, ...messageIds)) as QueueName[];
  }

  async dropDead(ns: string, messageIds: string[]) {
    if (messageIds.length === 0) return this.check(0);
    return (await this.run("qhDropDead", ns, ...messageIds)) as number;
  }

  async joinRoom(ns: string, room: string, clientId: string) {
    return (await this.run("qhJoinRoom", ns, room, clientId)) === 1;
  }

  async leaveRoom(ns: string, room: string, clientId: string) {
    return (await this.run("qhLeaveRoom", ns, room, clientId)) === 1;
  }

  async isMember(ns: string, room: string, clientId: string) {
    return (await this.wrap(() => this.redis.zscore(`${this.prefix}rm:${ns}|${room}`, clientId))) !== null;
  }

  async clientRooms(ns: string, clientId: string) {
    return (await this.wrap(() => this.redis.smembers(`${this.prefix}cr:${ns}|${clientId}`))).sort();
  }

  async roomMembers(ns: string, room: string, page: PageRequest): Promise<Page<string>> {
    const after = page.after ? decodeCursor(page.after, isString) : undefined;
    const limit = pageLimit(page);
    const members = await this.wrap(() =>
      this.redis.zrangebylex(
        `${this.prefix}rm:${ns}|${room}`,
        after === undefined ? "-" : `(${after}`,
        "+",
        "LIMIT",
        0,
        limit + 1,
      ),
    );
    if (members.length <= limit) return { items: members, next: null };
    const items = members.slice(0, limit);
    return { items, next: encodeCursor(items.at(-1)) };
  }

  async namespaces(page: PageRequest): Promise<Page<NamespaceSummary>> {
    const after = page.after ? decodeCursor(page.after, isString) : "";
    const [more, ...reply] = (await this.run("qhNamespaces", after, pageLimit(page))) as ScriptReply[];
    const rows: NamespaceSummary[] = [];
    for (let i = 0; i < reply.length; i += 6) {
      const [ns, queues, pending, subscriptions, rooms, deadLetters] = reply.slice(i, i + 6) as [
        string,
        number,
        number,
        number,
        number,
        number,
      ];
      rows.push({ ns, queues, pending, subscriptions, rooms, deadLetters });
    }
    const last = rows.at(-1);
    return {
      // A namespace whose counts all came back to zero stays in the list, unlisted here.
      items: rows.filter((r) => r.queues || r.pending || r.subscriptions || r.rooms || r.deadLetters),
      next: more === 1 && last ? encodeCursor(last.ns) : null,
    };
  }

  async stats(page: PageRequest, ns?: string): Promise<Page<QueueStats>> {
    const [afterNs, afterQueue] = page.after ? decodeCursor(page.after, isPair) : ["", ""];
    const [nextNs, nextQueue, ...reply] = (await this.run(
      "qhStats",
      Date.now(),
      ns ?? "",
      afterNs,
      afterQueue,
      pageLimit(page),
    )) as ScriptReply[];
    const items: QueueStats[] = [];
    for (let i = 0; i < reply.length; i += 4) {
      items.push({
        ns: reply[i] as string,
        queue: reply[i + 1] as string,
        pending: reply[i + 2] as number,
        inFlight: reply[i + 3] as number,
      });
    }
    return { items, next: nextNs ? encodeCursor([nextNs, nextQueue]) : null };
  }

  async subscriptions(page: PageRequest, ns?: string): Promise<Page<Subscription>> {
    const [afterNs, afterMember] = page.after ? decodeCursor(page.after, isPair) : ["", ""];
    const [nextNs, nextMember, ...reply] = (await this.run(
      "qhSubscriptions",
      ns ?? "",
      afterNs,
      afterMember,
      pageLimit(page),
    )) as string[];
    const items: Subscription[] = [];
    for (let i = 0; i < reply.length; i += 4) {
      items.push({
        ns: reply[i] as string,
        event: reply[i + 1] as string,
        clientId: reply[i + 2] as string,
        group: decodeGroup(reply[i + 3] as string),
      });
    }
    return { items, next: nextNs ? encodeCursor([nextNs, nextMember]) : null };
  }

  async rooms(ns: string, page: PageRequest): Promise<Page<RoomSummary>> {
    const after = page.after ? decodeCursor(page.after, isString) : "";
    const [more, ...reply] = (await this.run("qhRooms", ns, after, pageLimit(page))) as ScriptReply[];
    const items: RoomSummary[] = [];
    for (let i = 0; i < reply.length; i += 2) {
      items.push({ ns, room: reply[i] as string, members: reply[i + 1] as number });
    }
    const last = items.at(-1);
    return { items, next: more === 1 && last ? encodeCursor(last.room) : null };
  }

  async healthy() {
    if (this.closed || this.redis.status !== "ready") return false;
    try {
      return (await this.redis.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  private check(): undefined;
  private check<T>(value: T): T;
  private check<T>(value?: T) {
    if (this.closed) throw new StoreError("UNAVAILABLE", "store is closed");
    return value;
  }

  private run(name: ScriptName, ...args: ScriptArg[]): Promise<ScriptReply> {
    return this.wrap(() => this.redis[name](this.prefix, ...args));
  }

  private async wrap<T>(op: () => Promise<T>): Promise<T> {
    this.check();
    try {
      return await op();
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw new StoreError("UNAVAILABLE", `redis: ${(err as Error).message}`, { cause: err });
    }
  }
}

function toMessage(messageId: string, event: string, deliveries: number, body: string): Message {
  const [publishedAt, from, payload, room] = JSON.parse(body) as [number, string | null, unknown, string?];
  const message: Message = { messageId, event, payload, publishedAt, from, deliveries };
  if (room !== undefined) message.room = room;
  return message;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isPair = (v: unknown): v is [string, string] =>
  Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "string");
/** A cursor of dead letters: an exclusive score bound, "(123". */
const isScoreBound = (v: unknown): v is string => typeof v === "string" && /^\(\d+$/.test(v);
