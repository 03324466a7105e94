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
  type EnqueueRequest,
  type EnqueueResult,
  groupQueue,
  type QueueName,
  type QueueStats,
  type QueueStore,
  StoreError,
  type Subscription,
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
}

const encodeGroup = (group: string | null) => (group === null ? "" : `:${group}`);
const decodeGroup = (enc: string) => (enc === "" ? null : enc.slice(1));

export class RedisStore implements QueueStore {
  private closed = false;

  private constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

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
    return new RedisStore(redis, opts.prefix);
  }

  async subscribe(ns: string, clientId: string, events: string[], group: string | null) {
    if (events.length === 0) return this.check();
    await this.run("qhSubscribe", ns, clientId, encodeGroup(group), ...events);
  }

  async unsubscribe(ns: string, clientId: string, events: string[]) {
    if (events.length === 0) return this.check(0);
    return (await this.run("qhUnsubscribe", ns, clientId, ...events)) as number;
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
      req.key ?? "",
      req.now,
      req.dedupWindowMs,
      req.maxQueueLength,
      req.overflow,
      req.messages.length,
      JSON.stringify(messageIds),
    ];
    for (const m of req.messages) {
      args.push(
        m.messageId,
        m.event,
        `[${m.publishedAt},${JSON.stringify(m.from)},${m.payloadJson ?? JSON.stringify(m.payload ?? null)}]`,
        m.expiresAt ?? "",
        m.from === null ? 0 : 1,
        m.from ?? "",
        m.echo ? 1 : 0,
        m.to ? m.to.length : -1,
      );
      if (m.to) args.push(...m.to);
    }
    const reply = (await this.run("qhEnqueue", ...args)) as ScriptReply[];
    if (reply[0] === 1) {
      return { duplicate: true, messageIds: JSON.parse(reply[1] as string), queues: [], dropped: 0 };
    }
    if (reply[0] === 2) throw new StoreError("QUEUE_FULL", reply[1] as string);
    return { duplicate: false, messageIds, queues: reply.slice(2) as string[], dropped: reply[1] as number };
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

  async listDead(ns: string, limit: number) {
    const reply = (await this.run("qhListDead", ns, Math.floor(limit))) as string[];
    const out: DeadLetter[] = [];
    for (let i = 0; i < reply.length; i += 5) {
      const [queue, id, event, body, meta] = reply.slice(i, i + 5) as [
        string,
        string,
        string,
        string,
        string,
      ];
      const [reason, deadAt, deliveries] = meta.split(",") as [DeadLetter["reason"], string, string];
      out.push({
        ...toMessage(id, event, Number(deliveries), body),
        ns,
        queue,
        reason,
        deadAt: Number(deadAt),
      });
    }
    return out;
  }

  async requeueDead(ns: string, messageIds: string[]) {
    if (messageIds.length === 0) return this.check([] as QueueName[]);
    return (await this.run("qhRequeueDead", ns, ...messageIds)) as QueueName[];
  }

  async dropDead(ns: string, messageIds: string[]) {
    if (messageIds.length === 0) return this.check(0);
    return (await this.run("qhDropDead", ns, ...messageIds)) as number;
  }

  async stats(ns?: string) {
    const reply = (await this.run("qhStats", Date.now(), ns ?? "")) as ScriptReply[];
    const out: QueueStats[] = [];
    for (let i = 0; i < reply.length; i += 4) {
      out.push({
        ns: reply[i] as string,
        queue: reply[i + 1] as string,
        pending: reply[i + 2] as number,
        inFlight: reply[i + 3] as number,
      });
    }
    return out;
  }

  async subscriptions(ns?: string) {
    const reply = (await this.run("qhSubscriptions", ns ?? "")) as string[];
    const out: Subscription[] = [];
    for (let i = 0; i < reply.length; i += 4) {
      out.push({
        ns: reply[i] as string,
        event: reply[i + 1] as string,
        clientId: reply[i + 2] as string,
        group: decodeGroup(reply[i + 3] as string),
      });
    }
    return out;
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
  const [publishedAt, from, payload] = JSON.parse(body) as [number, string | null, unknown];
  return { messageId, event, payload, publishedAt, from, deliveries };
}
