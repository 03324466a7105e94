// SQLite store: the default durable store, one file on local disk (better-sqlite3, WAL).
//
// Open it with `SqliteStore.open({ file, sync })`, which is SYNCHRONOUS: it returns the store
// or throws an Error naming the file and saying what to do (corrupt file, unwritable path,
// file from a newer build). It never starts empty over a file it cannot read.
//
// Layout (PRAGMA user_version 3, see schema.ts): log-structured, a row per published BATCH, not per message.
// One row per message costs a B-tree insert, a lease update and a delete per message (plus
// their indexes): ~13 µs a message (publish, claim and ack) in a micro-benchmark here, more than all
// of Socket.IO's work. With a row per batch the store's whole share is ~4 µs.
// - `chunks`: the messages of one publish that go to the same set of queues, as one JSON array
//   of [messageId, event, payload, publishedAt, from, expiresAt]; `refs` counts the segments
//   pointing at it (a 100-way fan-out stores the payload once).
// - `segments`: one per (queue, chunk), in queue order (AUTOINCREMENT id: FIFO is store order,
//   ids are never reused). `members` holds what is left of the chunk for that queue with each
//   one's deliveries and lease, as a flat JSON array [index, deliveries, owner, until, ...]; NULL
//   while it is the whole chunk, never sent. `leased` counts members with a lease owner (a partial
//   index finds them for release and stats); `expires_at` is the soonest TTL of its members;
//   `first_id`/`last_id` bound its message ids, so an ack without a hint finds it by index (ids
//   are time-ordered: UUIDv7).
// - `dead`: dead letters, one row each with the message inline.
// - `queues` (id, ns, name, size), `events` + `subs` (subscriptions, in the order they were
//   made), `dedup` (idempotency keys), `meta`.
// Segments are read and changed in memory (segments.ts: a bounded cache of parsed chunks and
// segments); each operation writes the segments it changed before its savepoint is released, and
// a rollback empties the caches, so memory never holds what the file does not. Every write is
// group-committed (group-commit.ts); reads run at once and see only committed writes.
//
// Acks: a claim remembers, per message id, the segment it leased it from (in memory, bounded);
// an ack looks there first, and else finds the segment by the id bounds. Either way it checks
// the message id and, in a group queue, the lease owner.
import type Database from "better-sqlite3";
import type { SyncLevel } from "../../config.js";
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
} from "../store.js";
import { closedError } from "./errors.js";
import { GroupCommit } from "./group-commit.js";
import { openDatabase } from "./open.js";
import type { DeadSource } from "./schema.js";
import {
  CACHE_MESSAGES,
  type Member,
  type Segment,
  Segments,
  type Stored,
  storedText,
  toStored,
} from "./segments.js";
import { prepareStatements, type Statements, SWEEP_SEGMENTS } from "./statements.js";

export interface SqliteStoreOptions {
  /** Database file; its folder is created when missing. */
  file: string;
  /** `normal` survives kill -9 of the process; `full` also survives power loss; `off` neither. */
  sync: SyncLevel;
  /** Longest wait before a queued write is committed. @default 1 (0 = next setImmediate) */
  flushIntervalMs?: number;
  /** Commit at once when this many writes are queued. @default 256 */
  maxBatch?: number;
  /** Parsed messages kept in memory between operations. @default 50_000 */
  cacheMessages?: number;
}

/** Expired or dead-lettered entries one claim removes at most, so that no operation runs long. */
const CLAIM_REMOVALS_MAX = 2_000;
/** Messages per chunk at most: a bigger batch is split, so that work per segment stays small. */
const CHUNK_MAX = 128;

interface DeadRow {
  messageId: string;
  event: string;
  payload: string | null;
  publishedAt: number;
  sender: string | null;
  deliveries: number;
  queue: QueueName;
  reason: DeadLetter["reason"];
  deadAt: number;
}

export class SqliteStore implements QueueStore {
  /**
   * Opens (creating when missing) the store file and checks it. Synchronous: returns the
   * store, or throws an Error whose message names the file and what to do about it.
   */
  static open(opts: SqliteStoreOptions): SqliteStore {
    const { db, file } = openDatabase(opts.file, opts.sync);
    return new SqliteStore(db, file, opts);
  }

  private readonly s: Statements;
  private readonly batch: GroupCommit;
  private readonly segments: Segments;
  /**
   * queues.id → claim cursor: every member of the queue's segments up to id `after` is leased
   * (or gone), and the first of those leases runs out at `until`. Claims start after it instead
   * of re-reading leased segments each time. Dropped on release and on every rollback; stale
   * once `until` passes.
   */
  private readonly cursors = new Map<number, { after: number; until: number }>();
  /** ns\0queue → queues.id. Rows are never deleted; cleared on every rollback. */
  private readonly queueIds = new Map<string, number>();

  private constructor(
    private readonly database: Database.Database,
    private readonly file: string,
    opts: SqliteStoreOptions,
  ) {
    this.s = prepareStatements(database);
    this.segments = new Segments(this.s, Math.max(0, opts.cacheMessages ?? CACHE_MESSAGES));
    this.batch = new GroupCommit(database, file, opts, {
      afterWrite: () => this.segments.write(),
      afterRollback: () => this.forget(),
      afterCommit: () => this.segments.trimCaches(),
    });
  }

  /** The underlying connection: for tests and maintenance only. */
  get db(): Database.Database {
    return this.database;
  }

  /** Transactions committed so far (one per batch of writes). */
  get commits(): number {
    return this.batch.commits;
  }

  // ---- writes (group-committed) --------------------------------------------------------------

  subscribe(ns: string, clientId: string, events: string[], group: string | null): Promise<void> {
    return this.batch.write(() => {
      for (const event of events) {
        const eventId = this.eventId(ns, event, true) as number;
        this.s.subUpsert.run(eventId, clientId, group);
      }
    });
  }

  unsubscribe(ns: string, clientId: string, events: string[]): Promise<number> {
    return this.batch.write(() => {
      let dropped = 0;
      for (const event of events) {
        const eventId = this.eventId(ns, event, false);
        if (eventId === undefined) continue;
        const sub = this.s.subGet.get(eventId, clientId) as { grp: string | null } | undefined;
        if (!sub) continue;
        this.s.subDel.run(eventId, clientId);
        dropped += this.dropEvent(ns, clientQueue(clientId), event);
        if (sub.grp !== null && !this.s.groupLeft.get(eventId, sub.grp)) {
          dropped += this.dropEvent(ns, groupQueue(sub.grp), event);
        }
      }
      return dropped;
    });
  }

  enqueue(req: EnqueueRequest): Promise<EnqueueResult> {
    if (this.batch.closed) return Promise.reject(closedError(this.file));
    // Serialised once per message here, outside the transaction, whatever the fan-out.
    let texts: string[];
    try {
      texts = req.messages.map(storedText);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.batch.write(() => this.doEnqueue(req, texts));
  }

  claim(req: ClaimRequest): Promise<ClaimResult> {
    return this.batch.write(() => this.doClaim(req));
  }

  release(ns: string, queue: QueueName, consumer: string, messageIds?: string[]): Promise<number> {
    return this.batch.write(() => {
      const queueId = this.queueId(ns, queue, false);
      if (queueId === undefined) return 0;
      this.cursors.delete(queueId);
      let released = 0;
      const free = (segment: Segment, member: Member) => {
        if (member.owner !== consumer) return;
        member.owner = null;
        member.until = 0;
        this.segments.touch(segment);
        released++;
      };
      if (messageIds) {
        for (const messageId of new Set(messageIds)) {
          const found = this.segments.find(queueId, messageId);
          if (found) free(found.segment, found.member);
        }
      } else {
        for (const id of this.s.segmentsLeased.all(queueId) as number[]) {
          const segment = this.segments.segment(id) as Segment;
          for (const member of segment.members) free(segment, member);
        }
      }
      return released;
    });
  }

  ack(ns: string, clientId: string, messageIds: string[]): Promise<string[]> {
    return this.batch.write(() => {
      const removed: string[] = [];
      if (messageIds.length === 0) return removed;
      const queues: { id: number; group: boolean }[] = [];
      for (const name of this.consumerQueueNames(ns, clientId)) {
        const id = this.queueId(ns, name, false);
        if (id !== undefined) queues.push({ id, group: isGroupQueue(name) });
      }
      for (const messageId of new Set(messageIds)) {
        // Queues are tried in order (own queue first); in a group, only the lease holder acks.
        for (const queue of queues) {
          const found = this.segments.find(queue.id, messageId);
          if (!found || (queue.group && found.member.owner !== clientId)) continue;
          this.segments.removeMember(found.segment, found.member);
          this.segments.unhint(queue.id, messageId);
          removed.push(messageId);
          break;
        }
      }
      return removed;
    });
  }

  /** In steps of SWEEP_SEGMENTS segments, each its own write, so that no operation runs long. */
  async sweep(now: number): Promise<number> {
    let removed = 0;
    for (;;) {
      const step = await this.batch.write(() => {
        const ids = this.s.segmentsExpired.all(now) as number[];
        let n = 0;
        for (const id of ids) {
          const segment = this.segments.segment(id) as Segment;
          for (const member of [...segment.members]) {
            const expiresAt = (segment.messages[member.i] as Stored)[5];
            if (expiresAt !== null && expiresAt <= now) {
              this.segments.removeMember(segment, member);
              n++;
            }
          }
          // Rewritten even when nothing expired, so that expires_at moves on.
          this.segments.touch(segment);
          this.segments.keepBounded();
        }
        const done = ids.length < SWEEP_SEGMENTS;
        if (done) this.s.sweepDedup.run(now);
        return { n, done };
      });
      removed += step.n;
      if (step.done) return removed;
    }
  }

  requeueDead(ns: string, messageIds: string[]): Promise<QueueName[]> {
    return this.batch.write(() => {
      const queues = new Set<QueueName>();
      if (messageIds.length === 0) return [];
      const rows = this.s.deadFind.all(JSON.stringify(messageIds), ns) as (DeadSource & {
        id: number;
        queueId: number;
        queue: QueueName;
      })[];
      for (const row of rows) {
        // Back at the tail in a segment of its own, deliveries reset and no TTL.
        const message = {
          messageId: row.messageId,
          event: row.event,
          payload: row.payload === null ? null : JSON.parse(row.payload),
          payloadJson: row.payload ?? "null",
          publishedAt: row.publishedAt,
          from: row.sender,
          expiresAt: null,
        };
        const stored = [toStored(message)];
        this.segments.addSegment(
          row.queueId,
          this.segments.addChunk([storedText(message)], stored, 1),
          stored,
        );
        this.segments.grow(row.queueId, 1);
        this.s.deadDel.run(row.id);
        queues.add(row.queue);
      }
      return [...queues];
    });
  }

  dropDead(ns: string, messageIds: string[]): Promise<number> {
    return this.batch.write(() => {
      if (messageIds.length === 0) return 0;
      return this.s.deadDrop.run(JSON.stringify(messageIds), ns).changes;
    });
  }

  // ---- reads (direct: they see every committed write) ------------------------------------------

  consumerQueues(ns: string, clientId: string): Promise<QueueName[]> {
    return this.batch.read(() => this.consumerQueueNames(ns, clientId));
  }

  pending(ns: string, clientId: string, now: number, event?: string): Promise<number> {
    return this.batch.read(() => {
      let count = 0;
      for (const name of this.consumerQueueNames(ns, clientId)) {
        const queueId = this.queueId(ns, name, false);
        if (queueId === undefined) continue;
        const othersLease = (member: Member) =>
          member.owner !== null && member.owner !== clientId && member.until > now;
        if (event === undefined) {
          count += this.s.queueSize.get(queueId) as number;
          if (isGroupQueue(name)) count -= this.segments.countMembers(queueId, true, othersLease);
        } else {
          count += this.segments.countMembers(
            queueId,
            false,
            (member, m) => m[1] === event && !(isGroupQueue(name) && othersLease(member)),
          );
        }
      }
      return count;
    });
  }

  listDead(ns: string, limit: number): Promise<DeadLetter[]> {
    return this.batch.read(() =>
      (this.s.listDead.all(ns, Math.max(0, limit)) as DeadRow[]).map(
        (r): DeadLetter => ({
          messageId: r.messageId,
          event: r.event,
          payload: parsePayload(r.payload),
          publishedAt: r.publishedAt,
          from: r.sender,
          deliveries: r.deliveries,
          ns,
          queue: r.queue,
          reason: r.reason,
          deadAt: r.deadAt,
        }),
      ),
    );
  }

  stats(ns?: string): Promise<QueueStats[]> {
    return this.batch.read(() => {
      const now = Date.now();
      const rows = (
        ns === undefined ? this.s.queuesLive.all() : this.s.queuesLiveNs.all(ns)
      ) as (QueueStats & {
        id: number;
      })[];
      return rows.map(({ id, ...stats }) => ({
        ...stats,
        inFlight: this.segments.countMembers(
          id,
          true,
          (member) => member.owner !== null && member.until > now,
        ),
      }));
    });
  }

  subscriptions(ns?: string): Promise<Subscription[]> {
    return this.batch.read(
      () =>
        (ns === undefined ? this.s.subscriptions.all() : this.s.subscriptionsNs.all(ns)) as Subscription[],
    );
  }

  /** Writes a probe row through the batch: true when it commits and no write is failing. */
  async healthy(): Promise<boolean> {
    if (this.batch.closed) return false;
    try {
      await this.batch.write(() => this.s.probe.run(Date.now()));
      return !this.batch.failing;
    } catch {
      return false;
    }
  }

  /** Commits the writes still queued, then closes the file. Closing twice is harmless. */
  async close(): Promise<void> {
    if (this.batch.closed) return;
    this.batch.close();
    this.database.close();
  }

  // ---- operations, run inside the batch transaction --------------------------------------------

  private doEnqueue(req: EnqueueRequest, texts: string[]): EnqueueResult {
    const { ns, now } = req;
    if (req.key !== undefined) {
      const seen = this.s.dedupGet.get(ns, req.key) as { ids: string; expiresAt: number } | undefined;
      if (seen && seen.expiresAt > now) {
        return { duplicate: true, messageIds: JSON.parse(seen.ids) as string[], queues: [], dropped: 0 };
      }
    }
    const subscribers = new Map<string, { clientId: string; grp: string | null }[]>();
    // queue → indexes of the request's messages it gets, in order.
    const picks = new Map<QueueName, number[]>();
    req.messages.forEach((m, i) => {
      for (const queue of this.targets(ns, m, subscribers)) {
        const list = picks.get(queue);
        if (list) list.push(i);
        else picks.set(queue, [i]);
      }
    });
    const max = req.maxQueueLength;
    if (max > 0 && req.overflow === "reject") {
      for (const [queue, list] of picks) {
        const queueId = this.queueId(ns, queue, false);
        const size = queueId === undefined ? 0 : (this.s.queueSize.get(queueId) as number);
        if (size + list.length > max) {
          throw new StoreError("QUEUE_FULL", `queue ${queue} holds ${size} of ${max}`);
        }
      }
    }
    // One chunk per distinct set of messages (a plain fan-out shares one), one segment per queue.
    const chunks = new Map<string, { picked: number[]; queueIds: number[] }>();
    for (const [queue, picked] of picks) {
      const queueId = this.queueId(ns, queue, true) as number;
      const k = picked.length === req.messages.length ? "*" : picked.join(",");
      const chunk = chunks.get(k);
      if (chunk) chunk.queueIds.push(queueId);
      else chunks.set(k, { picked, queueIds: [queueId] });
    }
    let dropped = 0;
    for (const { picked: all, queueIds } of chunks.values()) {
      for (let from = 0; from < all.length; from += CHUNK_MAX) {
        const picked = all.slice(from, from + CHUNK_MAX);
        const stored = picked.map((i) => toStored(req.messages[i] as NewMessage));
        const chunk = this.segments.addChunk(
          picked.map((i) => texts[i] as string),
          stored,
          queueIds.length,
        );
        for (const queueId of queueIds) this.segments.addSegment(queueId, chunk, stored);
      }
    }
    for (const { picked, queueIds } of chunks.values()) {
      for (const queueId of queueIds) {
        this.segments.grow(queueId, picked.length);
        if (max > 0 && req.overflow === "drop-oldest") dropped += this.dropOldest(queueId, max, now);
      }
    }
    const messageIds = req.messages.map((m) => m.messageId);
    if (req.key !== undefined) {
      this.s.dedupPut.run(ns, req.key, JSON.stringify(messageIds), now + req.dedupWindowMs);
    }
    return { duplicate: false, messageIds, queues: [...picks.keys()], dropped };
  }

  private targets(
    ns: string,
    m: NewMessage,
    cache: Map<string, { clientId: string; grp: string | null }[]>,
  ): QueueName[] {
    if (m.to) return [...new Set(m.to)].map(clientQueue);
    let subs = cache.get(m.event);
    if (!subs) {
      subs = this.s.targets.all(ns, m.event) as { clientId: string; grp: string | null }[];
      cache.set(m.event, subs);
    }
    const queues = new Set<QueueName>();
    for (const { clientId, grp } of subs) {
      if (grp !== null) queues.add(groupQueue(grp));
      else if (clientId !== m.from || m.echo) queues.add(clientQueue(clientId));
    }
    return [...queues];
  }

  /** Keeps a queue within `max` entries by moving its oldest ones to dead letters. Returns how many. */
  private dropOldest(queueId: number, max: number, now: number): number {
    let size = (this.s.queueSize.get(queueId) as number) + this.segments.growth(queueId);
    let dropped = 0;
    let after = 0;
    while (size > max) {
      const ids = this.s.segmentPage.all(queueId, after) as number[];
      if (ids.length === 0) break;
      for (const id of ids) {
        after = id;
        const segment = this.segments.segment(id) as Segment;
        while (size > max && segment.members.length > 0) {
          this.deadLetter(segment, segment.members[0] as Member, "overflow", now);
          size--;
          dropped++;
        }
        this.segments.keepBounded();
        if (size <= max) break;
      }
    }
    return dropped;
  }

  private doClaim(req: ClaimRequest): ClaimResult {
    const result: ClaimResult = { messages: [], deadLettered: 0, expired: 0 };
    const queueId = this.queueId(req.ns, req.queue, false);
    if (queueId === undefined || !(req.limit > 0)) return result;
    const { now, maxDeliveries, consumer, event } = req;
    const until = now + req.leaseMs;
    // An event filter skips other events' members, so it neither uses nor moves the cursor.
    const tracked = event === undefined;
    const cursor = tracked ? this.cursors.get(queueId) : undefined;
    const valid = cursor !== undefined && now < cursor.until;
    let after = valid ? cursor.after : 0;
    let firstExpiry = valid ? cursor.until : Number.POSITIVE_INFINITY;
    // Every member of the segments up to `leasedUpTo` is leased (or gone) once this claim is done.
    let leasedUpTo = after;
    let open = false;
    // Stop at the limit, or after removing CLAIM_REMOVALS_MAX entries (the caller claims again).
    const removedEnough = () => result.expired + result.deadLettered >= CLAIM_REMOVALS_MAX;
    const full = () => result.messages.length >= req.limit || removedEnough();
    for (;;) {
      const ids = this.s.segmentPage.all(queueId, after) as number[];
      for (const id of ids) {
        after = id;
        const segment = this.segments.segment(id) as Segment;
        const members = segment.members;
        let left = false;
        for (let k = 0; k < members.length; k++) {
          const member = members[k] as Member;
          if (member.owner !== null && member.until > now) {
            firstExpiry = Math.min(firstExpiry, member.until);
            continue;
          }
          const m = segment.messages[member.i] as Stored;
          if ((event !== undefined && m[1] !== event) || full()) {
            left = true;
            continue;
          }
          if (m[5] !== null && m[5] <= now) {
            this.segments.removeMember(segment, member);
            k--;
            result.expired++;
          } else if (maxDeliveries > 0 && member.deliveries >= maxDeliveries) {
            this.deadLetter(segment, member, "max-deliveries", now);
            k--;
            result.deadLettered++;
          } else {
            member.deliveries++;
            member.owner = consumer;
            member.until = until;
            this.segments.touch(segment);
            this.segments.hint(queueId, m[0], segment.id);
            result.messages.push({
              messageId: m[0],
              event: m[1],
              payload: m[2],
              publishedAt: m[3],
              from: m[4],
              deliveries: member.deliveries,
            });
          }
        }
        if (left) open = true;
        else if (!open) leasedUpTo = id;
        // A long run of expired or dead-lettered members must not fill memory.
        this.segments.keepBounded();
        if (full()) break;
      }
      if (ids.length === 0 || full()) break;
    }
    if (removedEnough()) result.more = true;
    if (result.messages.length > 0) firstExpiry = Math.min(firstExpiry, until);
    if (tracked) this.cursors.set(queueId, { after: leasedUpTo, until: firstExpiry });
    return result;
  }

  private deadLetter(segment: Segment, member: Member, reason: DeadLetter["reason"], now: number) {
    const m = segment.messages[member.i] as Stored;
    this.s.deadAdd.run(
      segment.queueId,
      m[0],
      m[1],
      m[2] === undefined ? null : JSON.stringify(m[2]),
      m[3],
      m[4],
      member.deliveries,
      reason,
      now,
    );
    this.segments.removeMember(segment, member);
  }

  /** Forgets every cache that may hold what a rollback undid. */
  private forget() {
    this.queueIds.clear();
    this.cursors.clear();
    this.segments.forget();
  }

  // ---- helpers --------------------------------------------------------------------------------

  private consumerQueueNames(ns: string, clientId: string): QueueName[] {
    const groups = this.s.consumerGroups.all(clientId, ns) as string[];
    return [clientQueue(clientId), ...groups.map(groupQueue)];
  }

  /** Removes a queue's members of one event (unsubscribe). Returns how many. */
  private dropEvent(ns: string, queue: QueueName, event: string): number {
    const queueId = this.queueId(ns, queue, false);
    if (queueId === undefined) return 0;
    let dropped = 0;
    for (const id of this.s.segmentsOf.all(queueId) as number[]) {
      const segment = this.segments.segment(id) as Segment;
      for (const member of [...segment.members]) {
        if ((segment.messages[member.i] as Stored)[1] === event) {
          this.segments.removeMember(segment, member);
          dropped++;
        }
      }
      this.segments.keepBounded();
    }
    return dropped;
  }

  private queueId(ns: string, queue: QueueName, create: boolean): number | undefined {
    const k = nsKey(ns, queue);
    let id = this.queueIds.get(k);
    if (id !== undefined) return id;
    id = this.s.queueGet.get(ns, queue) as number | undefined;
    if (id === undefined) {
      if (!create) return undefined;
      id = Number(this.s.queueAdd.run(ns, queue).lastInsertRowid);
    }
    this.queueIds.set(k, id);
    return id;
  }

  private eventId(ns: string, event: string, create: boolean): number | undefined {
    const id = this.s.eventGet.get(ns, event) as number | undefined;
    if (id !== undefined || !create) return id;
    return Number(this.s.eventAdd.run(ns, event).lastInsertRowid);
  }
}

function parsePayload(text: string | null): unknown {
  return text === null ? undefined : JSON.parse(text);
}
