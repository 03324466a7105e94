// SQLite store: the default durable store, one file on local disk (better-sqlite3, WAL).
//
// Open it with `SqliteStore.open({ file, sync })`, which is SYNCHRONOUS: it returns the store
// or throws an Error naming the file and saying what to do (corrupt file, unwritable path,
// file from a newer build). It never starts empty over a file it cannot read.
//
// Layout (PRAGMA user_version 4, see schema.ts): log-structured, a row per published BATCH, not per message.
// One row per message costs a B-tree insert, a lease update and a delete per message (plus
// their indexes): ~13 µs a message (publish, claim and ack) in a micro-benchmark here, more than all
// of Socket.IO's work. With a row per batch the store's whole share is ~4 µs.
// - `chunks`: the messages of one publish that go to the same set of queues, as one JSON array
//   of [messageId, event, payload, publishedAt, from, expiresAt, room?]; `refs` counts the segments
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
//   made), `rooms` + `room_members`, `dedup` (idempotency keys per publisher), `namespaces`
//   (counts per namespace, kept by every write: see namespace-counts.ts), `meta`.
// Views read one index range per page after an opaque cursor. Long work over one queue
// (unsubscribe, a count by event, drop-oldest far over the limit) runs in steps of at most
// `stepSegments` segments, each its own short write or read, the event loop free in between.
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
import type { Message } from "../../protocol.js";
import {
  type ClaimRequest,
  type ClaimResult,
  clientQueue,
  type DeadLetter,
  decodeCursor,
  type EnqueueRequest,
  type EnqueueResult,
  encodeCursor,
  groupQueue,
  type HandedOver,
  isGroupQueue,
  type NamespaceSummary,
  type NewMessage,
  nsKey,
  PAGE_SCAN_MAX,
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
import { SpaceReserve } from "./disk-space.js";
import { closedError, sqliteCode } from "./errors.js";
import { GroupCommit } from "./group-commit.js";
import { NamespaceCounts } from "./namespace-counts.js";
import { openDatabase, WAL_CHECKPOINT_PAGES } from "./open.js";
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
import { type SyncFn, WalSync } from "./wal-sync.js";

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
  /** Segments one step of a long operation (unsubscribe, count, drop-oldest) reads at most. @default 500 */
  stepSegments?: number;
  /**
   * Bytes kept in a reserve file beside the database (`<file>-reserve`), given back when the disk
   * fills; the WAL is checkpointed before it grows past half of it. @default 0 (the hub passes HUB_DB_RESERVE_MB)
   */
  reserveBytes?: number;
  /** How the WAL is synced on the thread pool. @default fs.fdatasync (tests pass a slower one) */
  syncFn?: SyncFn;
}

/** Free space, beyond twice the reserve, that ends the disk-full state. */
const RECOVERY_MARGIN = 1024 * 1024;
/** How often, at most, a store in the disk-full state looks for free space. */
const RECOVERY_EVERY_MS = 1000;

/** Expired or dead-lettered entries one claim removes at most, so that no operation runs long. */
const CLAIM_REMOVALS_MAX = 2_000;
/** Events whose subscribers the store keeps in memory at most (each a short list). */
const SUBSCRIBERS_CACHED = 10_000;
/** Messages per chunk at most: a bigger batch is split, so that work per segment stays small. */
const CHUNK_MAX = 128;

interface DeadRow {
  id: number;
  messageId: string;
  event: string;
  payload: string | null;
  publishedAt: number;
  sender: string | null;
  deliveries: number;
  queueId: number;
  reason: DeadLetter["reason"];
  deadAt: number;
  room: string | null;
}

type Subscriber = { clientId: string; grp: string | null };

const isId = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v);
const isName = (v: unknown): v is string => typeof v === "string";
const isPair = (v: unknown): v is [string, string] =>
  Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "string");
const isNamedId = (v: unknown): v is [string, number] =>
  Array.isArray(v) && v.length === 2 && isName(v[0]) && isId(v[1]);

/** Namespace-wide idempotency keys of version 3, honoured until their window ends (see schema.ts). */
interface LegacyKeys {
  get: Database.Statement<unknown[], unknown>;
  sweep: Database.Statement<unknown[], unknown>;
  any: Database.Statement<unknown[], unknown>;
}

export class SqliteStore implements QueueStore {
  readonly kind = "sqlite";
  /**
   * Opens (creating when missing) the store file and checks it. Synchronous: returns the
   * store, or throws an Error whose message names the file and what to do about it.
   */
  static open(opts: SqliteStoreOptions): SqliteStore {
    // HUB_SYNC=full on a file: SQLite runs at NORMAL and the store syncs each commit itself (wal-sync.ts).
    const selfSynced = opts.sync === "full" && opts.file !== ":memory:";
    const { db, file } = openDatabase(opts.file, selfSynced ? "normal" : opts.sync);
    let walSync: WalSync | null = null;
    if (selfSynced) {
      walSync = WalSync.durable(`${file}-wal`, opts.syncFn);
      // No WAL to sync from here: SQLite syncs inside each COMMIT, as synchronous=FULL does.
      if (walSync === null) db.pragma("synchronous = FULL");
    } else if (file !== ":memory:" && opts.sync === "normal") {
      walSync = WalSync.background(`${file}-wal`, opts.syncFn);
    }
    return new SqliteStore(db, file, opts, walSync);
  }

  private readonly s: Statements;
  private readonly batch: GroupCommit;
  private readonly segments: Segments;
  private readonly counts: NamespaceCounts;
  private readonly stepSegments: number;
  private legacyKeys: LegacyKeys | undefined;
  private readonly reserve: SpaceReserve;
  /** The disk is full: publishes are refused, claims and acks drain the queues (see diskFull). */
  private diskIsFull = false;
  private lastRecovery = 0;
  /**
   * queues.id → claim cursor: every member of the queue's segments up to id `after` is leased
   * (or gone), and the first of those leases runs out at `until`. Claims start after it instead
   * of re-reading leased segments each time. Dropped on release and on every rollback; stale
   * once `until` passes.
   */
  private readonly cursors = new Map<number, { after: number; until: number }>();
  /**
   * ns\0event → its subscribers, as `targets` reads them for every publish. Cleared by every change
   * of subscriptions and every rollback; at most SUBSCRIBERS_CACHED events.
   */
  private readonly subscribersOf = new Map<string, Subscriber[]>();
  /** ns\0queue → queues.id, and back to the namespace. Cleared on every rollback (ids may be reused). */
  private readonly queueIds = new Map<string, number>();
  private readonly queueNs = new Map<number, string>();

  private constructor(
    private readonly database: Database.Database,
    private readonly file: string,
    opts: SqliteStoreOptions,
    /** Syncs the WAL on the thread pool: in the background (normal), or before commits settle (full). */
    private readonly walSync: WalSync | null,
  ) {
    this.s = prepareStatements(database);
    this.stepSegments = Math.max(1, opts.stepSegments ?? 500);
    this.counts = new NamespaceCounts(this.s.nsCount);
    this.segments = new Segments(
      this.s,
      Math.max(0, opts.cacheMessages ?? CACHE_MESSAGES),
      this.counts,
      (queueId) => this.nsOf(queueId),
    );
    this.batch = new GroupCommit(database, file, opts, {
      afterWrite: () => this.segments.write(),
      writeKept: () => {
        // Sizes first: they add to the namespace counts the write keeps.
        this.segments.keepWrite();
        this.counts.keepWrite();
      },
      afterRollback: (batch) => {
        this.forget(batch);
        this.counts.forget(batch);
      },
      beforeCommit: () => {
        this.segments.writeSizes();
        this.counts.flush();
      },
      afterCommit: () => {
        if (opts.sync === "normal") this.walSync?.committed();
        this.segments.trimCaches();
        // While the disk is full every commit gives its WAL space back at once.
        if (this.diskIsFull) this.truncateWal();
      },
      storageFailed: (err) => {
        if (sqliteCode(err)?.startsWith("SQLITE_FULL")) this.diskFull();
      },
      ...(opts.sync === "full" && walSync !== null ? { sync: walSync } : {}),
    });
    const reserveBytes = file === ":memory:" ? 0 : Math.max(0, Math.floor(opts.reserveBytes ?? 0));
    this.reserve = new SpaceReserve(`${file}-reserve`, reserveBytes);
    if (reserveBytes > 0) {
      // A checkpoint copies the WAL's new pages into the file: the reserve must hold them.
      const pageSize = database.pragma("page_size", { simple: true }) as number;
      const pages = Math.max(64, Math.min(WAL_CHECKPOINT_PAGES, Math.floor(reserveBytes / 2 / pageSize)));
      database.pragma(`wal_autocheckpoint = ${pages}`);
    }
    // Opened on a full disk: it starts draining only.
    if (!this.reserve.make()) this.diskIsFull = true;
    const legacy = database.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dedup_v3'");
    if (legacy.get() !== undefined) {
      this.legacyKeys = {
        get: database.prepare("SELECT ids, expires_at AS expiresAt FROM dedup_v3 WHERE ns = ? AND key = ?"),
        sweep: database.prepare("DELETE FROM dedup_v3 WHERE expires_at <= ?"),
        any: database.prepare("SELECT 1 FROM dedup_v3 LIMIT 1"),
      };
    }
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
      this.subscribersOf.clear();
      for (const event of events) {
        const eventId = this.eventId(ns, event, true) as number;
        if (this.s.subGet.get(eventId, clientId) === undefined) this.counts.add(ns, "subscriptions", 1);
        this.s.subUpsert.run(eventId, clientId, group, ns);
      }
    });
  }

  /** Ends the subscriptions in one write, then drops their entries in steps (see dropStepwise). */
  async unsubscribe(ns: string, clientId: string, events: string[]): Promise<number> {
    const drops = await this.batch.write(() => {
      this.subscribersOf.clear();
      const out: { queueId: number; event: string; upTo: number }[] = [];
      const drop = (queue: QueueName, event: string) => {
        const queueId = this.queueId(ns, queue, false);
        const upTo = queueId === undefined ? null : (this.s.segmentsLast.get(queueId) as number | null);
        if (queueId !== undefined && upTo !== null) out.push({ queueId, event, upTo });
      };
      for (const event of events) {
        const eventId = this.eventId(ns, event, false);
        if (eventId === undefined) continue;
        const sub = this.s.subGet.get(eventId, clientId) as { grp: string | null } | undefined;
        if (!sub) continue;
        this.s.subDel.run(eventId, clientId);
        this.counts.add(ns, "subscriptions", -1);
        drop(clientQueue(clientId), event);
        if (sub.grp !== null && !this.s.groupLeft.get(eventId, sub.grp)) drop(groupQueue(sub.grp), event);
      }
      return out;
    });
    let dropped = 0;
    for (const { queueId, event, upTo } of drops) {
      dropped += await this.dropStepwise(queueId, upTo, (segment) => {
        let n = 0;
        for (const member of [...segment.members]) {
          if ((segment.messages[member.i] as Stored)[1] !== event) continue;
          this.segments.removeMember(segment, member);
          n++;
        }
        return n;
      });
    }
    return dropped;
  }

  enqueue(req: EnqueueRequest): Promise<EnqueueResult> {
    if (this.batch.closed) return Promise.reject(closedError(this.file));
    if (this.diskIsFull && !this.recover()) return Promise.reject(this.fullError("publish"));
    // Serialised once per message here, outside the transaction, whatever the fan-out.
    let messages: NewMessage[];
    let texts: string[];
    try {
      // `to` wins over `room`: such a message is no room message.
      messages = req.messages.some((m) => m.to !== undefined && m.room !== undefined)
        ? req.messages.map((m) =>
            m.to !== undefined && m.room !== undefined ? { ...m, room: undefined } : m,
          )
        : req.messages;
      texts = messages.map(storedText);
    } catch (err) {
      return Promise.reject(err);
    }
    const over: number[] = [];
    const stored = this.batch.write(() => this.doEnqueue(req, messages, texts, over));
    if (req.maxQueueLength === 0 || req.overflow !== "drop-oldest") return stored;
    // Drop-oldest far over the limit (a lowered limit, a requeue): the rest in steps of its own.
    return stored.then((result) => (over.length === 0 ? result : this.trim(req, result, over)));
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
        if (done) this.sweepKeys(now);
        return { n, done };
      });
      removed += step.n;
      if (step.done) return removed;
    }
  }

  requeueDead(ns: string, messageIds: string[]): Promise<QueueName[]> {
    if (this.diskIsFull && !this.recover()) return Promise.reject(this.fullError("requeue"));
    return this.batch.write(() => {
      const queues = new Set<QueueName>();
      if (messageIds.length === 0) return [];
      const rows = this.s.deadFind.all(JSON.stringify(messageIds), ns) as (DeadSource & {
        id: number;
        queueId: number;
        queue: QueueName;
        room: string | null;
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
          room: row.room ?? undefined,
        };
        const stored = [toStored(message)];
        this.segments.addSegment(
          row.queueId,
          this.segments.addChunk([storedText(message)], stored, 1),
          stored,
        );
        this.segments.grow(row.queueId, 1);
        this.s.deadDel.run(row.id);
        this.counts.add(ns, "dead", -1);
        queues.add(row.queue);
      }
      return [...queues];
    });
  }

  dropDead(ns: string, messageIds: string[]): Promise<number> {
    return this.batch.write(() => {
      if (messageIds.length === 0) return 0;
      const dropped = this.s.deadDrop.run(JSON.stringify(messageIds), ns).changes;
      this.counts.add(ns, "dead", -dropped);
      return dropped;
    });
  }

  joinRoom(ns: string, room: string, clientId: string): Promise<boolean> {
    return this.batch.write(() => {
      let roomId = this.s.roomGet.get(ns, room) as number | undefined;
      if (roomId === undefined) {
        roomId = Number(this.s.roomAdd.run(ns, room).lastInsertRowid);
        this.counts.add(ns, "rooms", 1);
      }
      if (this.s.memberAdd.run(roomId, clientId).changes === 0) return false;
      this.s.roomGrow.get(1, roomId);
      return true;
    });
  }

  leaveRoom(ns: string, room: string, clientId: string): Promise<boolean> {
    return this.batch.write(() => {
      const roomId = this.s.roomGet.get(ns, room) as number | undefined;
      if (roomId === undefined || this.s.memberDel.run(roomId, clientId).changes === 0) return false;
      // A room lives while it has members.
      if ((this.s.roomGrow.get(-1, roomId) as number) <= 0) {
        this.s.roomDel.run(roomId);
        this.counts.add(ns, "rooms", -1);
      }
      return true;
    });
  }

  // ---- reads (direct: they see every committed write) ------------------------------------------

  consumerQueues(ns: string, clientId: string): Promise<QueueName[]> {
    return this.batch.read(() => this.consumerQueueNames(ns, clientId));
  }

  /** The queue sizes are kept, so only a count by event, or a group's leases, reads segments (in steps). */
  async pending(ns: string, clientId: string, now: number, event?: string): Promise<number> {
    const queues = await this.batch.read(() =>
      this.consumerQueueNames(ns, clientId).flatMap((name) => {
        const id = this.queueId(ns, name, false);
        return id === undefined ? [] : [{ id, group: isGroupQueue(name) }];
      }),
    );
    let count = 0;
    for (const queue of queues) {
      const othersLease = (member: Member) =>
        queue.group && member.owner !== null && member.owner !== clientId && member.until > now;
      if (event === undefined) {
        count += await this.batch.read(() => this.segments.size(queue.id));
        if (queue.group) count -= await this.countStepwise(queue.id, true, othersLease);
      } else {
        count += await this.countStepwise(
          queue.id,
          false,
          (member, m) => m[1] === event && !othersLease(member),
        );
      }
    }
    return count;
  }

  isMember(ns: string, room: string, clientId: string): Promise<boolean> {
    return this.batch.read(() => {
      const roomId = this.s.roomGet.get(ns, room) as number | undefined;
      return roomId !== undefined && this.s.memberGet.get(roomId, clientId) !== undefined;
    });
  }

  clientRooms(ns: string, clientId: string): Promise<string[]> {
    return this.batch.read(() => this.s.clientRooms.all(clientId, ns) as string[]);
  }

  roomMembers(ns: string, room: string, page: PageRequest): Promise<Page<string>> {
    return this.batch.read(() => {
      const after = page.after ? decodeCursor(page.after, isName) : "";
      const roomId = this.s.roomGet.get(ns, room) as number | undefined;
      if (roomId === undefined) return { items: [], next: null };
      const limit = pageLimit(page);
      return paged(this.s.membersPage.all(roomId, after, limit + 1) as string[], limit, (m) => m);
    });
  }

  namespaces(page: PageRequest): Promise<Page<NamespaceSummary>> {
    return this.batch.read(() => {
      const after = page.after ? decodeCursor(page.after, isName) : "";
      const limit = pageLimit(page);
      const rows = this.s.namespacesPage.all(after, limit + 1) as NamespaceSummary[];
      const { items, next } = paged(rows, limit, (r) => r.ns);
      // A namespace whose counts all came back to zero is kept as a row, not listed.
      return {
        items: items.filter((r) => r.queues || r.pending || r.subscriptions || r.rooms || r.deadLetters),
        next,
      };
    });
  }

  /**
   * By namespace, then queue name. Empty queues are skipped: a page looks at most at
   * PAGE_SCAN_MAX rows, and may come back short.
   */
  stats(page: PageRequest, ns?: string): Promise<Page<QueueStats>> {
    return this.batch.read(() => {
      const limit = pageLimit(page);
      const [fromNs, fromName] = page.after ? decodeCursor(page.after, isPair) : [ns ?? "", ""];
      const found: (QueueStats & { id: number })[] = [];
      let looked = 0;
      let last: [string, string] | undefined;
      let next: [string, string] | undefined;
      for (const name of this.namespacesFrom(ns, fromNs)) {
        const rows = this.s.queuesPageNs.iterate(name, name === fromNs ? fromName : "");
        for (const row of rows as Iterable<QueueStats & { id: number }>) {
          if (found.length === limit || looked === PAGE_SCAN_MAX) {
            next = last;
            break;
          }
          looked++;
          last = [name, row.queue];
          if (row.pending > 0) found.push(row);
        }
        if (next) break;
      }
      const now = Date.now();
      const items = found.map(({ id, ...stats }) => ({
        ...stats,
        inFlight: this.segments.countMembers(id, true, (m) => m.owner !== null && m.until > now),
      }));
      return { items, next: next ? encodeCursor(next) : null };
    });
  }

  /** By namespace, then in the order they were made. */
  subscriptions(page: PageRequest, ns?: string): Promise<Page<Subscription>> {
    return this.batch.read(() => {
      const limit = pageLimit(page);
      const [fromNs, fromId] = page.after ? decodeCursor(page.after, isNamedId) : [ns ?? "", 0];
      const rows: { id: number; ns: string; clientId: string; eventId: number; group: string | null }[] = [];
      let more = false;
      for (const name of this.namespacesFrom(ns, fromNs)) {
        const after = name === fromNs ? fromId : 0;
        rows.push(...(this.s.subsPageNs.all(name, after, limit - rows.length + 1) as typeof rows));
        if (rows.length > limit) {
          more = true;
          break;
        }
      }
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return {
        items: items.map((r) => ({
          ns: r.ns,
          clientId: r.clientId,
          event: this.s.eventName.get(r.eventId) as string,
          group: r.group,
        })),
        next: more && last ? encodeCursor([last.ns, last.id]) : null,
      };
    });
  }

  rooms(ns: string, page: PageRequest): Promise<Page<RoomSummary>> {
    return this.batch.read(() => {
      const after = page.after ? decodeCursor(page.after, isName) : "";
      const limit = pageLimit(page);
      const rows = this.s.roomsPage.all(ns, after, limit + 1) as { room: string; members: number }[];
      const { items, next } = paged(rows, limit, (r) => r.room);
      return { items: items.map((r) => ({ ns, ...r })), next };
    });
  }

  listDead(ns: string, page: PageRequest): Promise<Page<DeadLetter>> {
    return this.batch.read(() => {
      const after = page.after ? decodeCursor(page.after, isId) : 0;
      const limit = pageLimit(page);
      const { items, next } = paged(
        this.s.deadPage.all(ns, after, limit + 1) as DeadRow[],
        limit,
        (r) => r.id,
      );
      return {
        items: items.map((r) => {
          const letter: DeadLetter = {
            messageId: r.messageId,
            event: r.event,
            payload: parsePayload(r.payload),
            publishedAt: r.publishedAt,
            from: r.sender,
            deliveries: r.deliveries,
            ns,
            queue: this.s.queueName.get(r.queueId) as QueueName,
            reason: r.reason,
            deadAt: r.deadAt,
          };
          if (r.room !== null) letter.room = r.room;
          return letter;
        }),
        next,
      };
    });
  }

  /**
   * Writes a probe row through the batch: true when it commits, no write is failing and the disk
   * is not full (a full disk is looked at again here, at most once a second).
   */
  async healthy(): Promise<boolean> {
    if (this.batch.closed) return false;
    if (this.diskIsFull && !this.recover()) return false;
    try {
      await this.batch.write(() => this.s.probe.run(Date.now()));
      return !this.batch.failing && !this.diskIsFull;
    } catch {
      return false;
    }
  }

  /** True while the disk is full: publishes refused, the queues draining. */
  get full(): boolean {
    return this.diskIsFull;
  }

  /** Commits the writes still queued, then closes the file. Closing twice is harmless. */
  async close(): Promise<void> {
    if (this.batch.closed) return;
    this.batch.close();
    this.walSync?.close();
    this.database.close();
  }

  /** One namespace, or every namespace from `from` on (a view over all of them reads each in turn). */
  private namespacesFrom(ns: string | undefined, from: string): string[] {
    return ns !== undefined ? [ns] : (this.s.namespacesFrom.all(from) as string[]);
  }

  // ---- a full disk ------------------------------------------------------------------------------

  /**
   * SQLite could not write for want of space. The reserve goes back to the disk and the WAL is
   * checkpointed and truncated, so that claims and acks (which free space in the file) commit
   * again; publishes are refused until the disk has room for the reserve again (recover).
   */
  private diskFull() {
    this.reserve.release();
    this.truncateWal();
    this.diskIsFull = true;
    this.lastRecovery = 0;
  }

  private truncateWal() {
    try {
      this.database.pragma("wal_checkpoint(TRUNCATE)");
    } catch {
      // Still no room to copy the WAL back: the next commit tries again.
    }
  }

  /**
   * Ends the disk-full state once the disk has room for the reserve twice over (giving the reserve
   * back frees it once, and the WAL at most half of it again: more than that came from outside),
   * and makes the reserve again.
   */
  private recover(): boolean {
    const now = Date.now();
    if (now - this.lastRecovery < RECOVERY_EVERY_MS) return false;
    this.lastRecovery = now;
    try {
      if (this.reserve.freeBytes() < 2 * this.reserve.bytes + RECOVERY_MARGIN) return false;
    } catch {
      return false;
    }
    if (!this.reserve.make()) return false;
    this.diskIsFull = false;
    return true;
  }

  private fullError(what: string) {
    return new StoreError(
      "UNAVAILABLE",
      `SQLite store ${this.file}: the disk is full; ${what} refused while deliveries and acks drain the queues, retry later`,
    );
  }

  // ---- long operations, in steps -------------------------------------------------------------

  /**
   * Runs `change` over a queue's segments up to `upTo` (the last one when the operation began:
   * later entries are not its business), `stepSegments` per write. Returns the sum of its results.
   */
  private async dropStepwise(queueId: number, upTo: number, change: (segment: Segment) => number) {
    let total = 0;
    let after = 0;
    for (;;) {
      const step = await this.batch.write(() => {
        const ids = this.s.segmentsStep.all(queueId, after, upTo, this.stepSegments) as number[];
        let n = 0;
        for (const id of ids) {
          const segment = this.segments.segment(id);
          if (segment) n += change(segment);
          this.segments.keepBounded();
        }
        return { n, last: ids.at(-1), done: ids.length < this.stepSegments };
      });
      total += step.n;
      if (step.done || step.last === undefined) return total;
      after = step.last;
    }
  }

  /** Counts members of a queue (all, or those with leases) that pass a test, `stepSegments` per read. */
  private async countStepwise(
    queueId: number,
    leasedOnly: boolean,
    test: (member: Member, m: Stored) => boolean,
  ): Promise<number> {
    const upTo = await this.batch.read(() => (this.s.segmentsLast.get(queueId) as number | null) ?? 0);
    let total = 0;
    let after = 0;
    for (;;) {
      const step = await this.batch.read(() => {
        const ids = (leasedOnly ? this.s.segmentsLeasedStep : this.s.segmentsStep).all(
          queueId,
          after,
          upTo,
          this.stepSegments,
        ) as number[];
        let n = 0;
        for (const id of ids) {
          const segment = this.segments.peek(id);
          if (!segment) continue;
          for (const member of segment.members) if (test(member, segment.messages[member.i] as Stored)) n++;
        }
        return { n, last: ids.at(-1), done: ids.length < this.stepSegments };
      });
      total += step.n;
      if (step.done || step.last === undefined) return total;
      after = step.last;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** After an enqueue left queues over the limit: drop-oldest, one write per step, until within it. */
  private async trim(req: EnqueueRequest, result: EnqueueResult, over: number[]): Promise<EnqueueResult> {
    let dropped = result.dropped;
    for (const queueId of over) {
      for (;;) {
        const step = await this.batch.write(() => this.dropOldest(queueId, req.maxQueueLength, req.now));
        dropped += step.dropped;
        if (step.done) break;
      }
    }
    return { ...result, dropped };
  }

  // ---- operations, run inside the batch transaction --------------------------------------------

  private doEnqueue(
    req: EnqueueRequest,
    messages: NewMessage[],
    texts: string[],
    over: number[],
  ): EnqueueResult {
    const { ns, now } = req;
    if (req.key !== undefined) {
      const { scope, key } = req.key;
      const seen = (this.s.dedupGet.get(ns, scope, key) ?? this.legacyKeys?.get.get(ns, key)) as
        | { ids: string; expiresAt: number }
        | undefined;
      if (seen && seen.expiresAt > now) {
        return { duplicate: true, messageIds: JSON.parse(seen.ids) as string[], queues: [], dropped: 0 };
      }
    }
    const subscribers = new Map<string, Subscriber[]>();
    const members = new Map<string, string[]>();
    // queue → indexes of the request's messages it gets, in order.
    const picks = new Map<QueueName, number[]>();
    messages.forEach((m, i) => {
      for (const queue of this.targets(ns, m, subscribers, members)) {
        const list = picks.get(queue);
        if (list) list.push(i);
        else picks.set(queue, [i]);
      }
    });
    const max = req.maxQueueLength;
    if (max > 0 && req.overflow === "reject") {
      for (const [queue, list] of picks) {
        const queueId = this.queueId(ns, queue, false);
        const size = queueId === undefined ? 0 : this.segments.size(queueId);
        if (size + list.length > max) {
          throw new StoreError("QUEUE_FULL", `queue ${queue} holds ${size} of ${max}`);
        }
      }
    }
    // One chunk per distinct set of messages (a plain fan-out shares one), one segment per queue.
    const chunks = new Map<string, { picked: number[]; queueIds: number[] }>();
    for (const [queue, picked] of picks) {
      const queueId = this.queueId(ns, queue, true) as number;
      const k = picked.length === messages.length ? "*" : picked.join(",");
      const chunk = chunks.get(k);
      if (chunk) chunk.queueIds.push(queueId);
      else chunks.set(k, { picked, queueIds: [queueId] });
    }
    const takers = this.handoverTakers(req, picks);
    let dropped = 0;
    for (const { picked: all, queueIds } of chunks.values()) {
      for (let from = 0; from < all.length; from += CHUNK_MAX) {
        const picked = all.slice(from, from + CHUNK_MAX);
        const stored = picked.map((i) => toStored(messages[i] as NewMessage));
        const chunk = this.segments.addChunk(
          picked.map((i) => texts[i] as string),
          stored,
          queueIds.length,
        );
        for (const queueId of queueIds) {
          const taker = takers.get(queueId);
          const count = taker === undefined ? 0 : Math.min(stored.length, taker.left);
          if (taker === undefined || count === 0) {
            this.segments.addSegment(queueId, chunk, stored);
            continue;
          }
          const { consumer, until } = taker;
          const segment = this.segments.addSegment(queueId, chunk, stored, { owner: consumer, until, count });
          taker.left -= count;
          for (const m of stored.slice(0, count)) {
            this.segments.hint(queueId, m[0], segment.id);
            taker.handed.messages.push(toMessage(m, 1));
          }
          // Every member up to this segment is leased when the whole of it was handed over.
          if (count === stored.length) {
            const cursor = this.cursors.get(queueId);
            const before = cursor !== undefined && now < cursor.until ? cursor.until : until;
            this.cursors.set(queueId, { after: segment.id, until: Math.min(before, until) });
          }
        }
      }
    }
    for (const { picked, queueIds } of chunks.values()) {
      for (const queueId of queueIds) {
        this.segments.grow(queueId, picked.length);
        if (max > 0 && req.overflow === "drop-oldest") {
          const step = this.dropOldest(queueId, max, now);
          dropped += step.dropped;
          if (!step.done) over.push(queueId);
        }
      }
    }
    const messageIds = messages.map((m) => m.messageId);
    if (req.key !== undefined) {
      this.s.dedupPut.run(
        ns,
        req.key.scope,
        req.key.key,
        JSON.stringify(messageIds),
        now + req.dedupWindowMs,
      );
    }
    return {
      duplicate: false,
      messageIds,
      queues: [...picks.keys()],
      dropped,
      ...withHandedOver([...takers.values()].map((t) => t.handed)),
    };
  }

  /**
   * The queues of an enqueue whose consumer takes its fresh entries at once (EnqueueRequest.handover):
   * those offered a consumer that hold nothing claimable (the claim cursor covers every segment) and
   * stay within the queue limit. Asked before any entry of the request is stored.
   */
  private handoverTakers(req: EnqueueRequest, picks: Map<QueueName, number[]>) {
    const takers = new Map<number, { consumer: string; until: number; left: number; handed: HandedOver }>();
    if (req.handover === undefined) return takers;
    for (const [queue, picked] of picks) {
      const offer = req.handover(queue, picked.length);
      if (offer === undefined || offer.limit <= 0) continue;
      const queueId = this.queueId(req.ns, queue, true) as number;
      const max = req.maxQueueLength;
      if (max > 0 && this.segments.size(queueId) + this.segments.growth(queueId) + picked.length > max)
        continue;
      const cursor = this.cursors.get(queueId);
      const after = cursor !== undefined && req.now < cursor.until ? cursor.after : 0;
      if (this.s.segmentAfter.get(queueId, after) !== undefined) continue;
      takers.set(queueId, {
        consumer: offer.consumer,
        until: req.now + offer.leaseMs,
        left: offer.limit,
        handed: { queue, consumer: offer.consumer, messages: [] },
      });
    }
    return takers;
  }

  private targets(
    ns: string,
    m: NewMessage,
    subscribers: Map<string, Subscriber[]>,
    members: Map<string, string[]>,
  ): QueueName[] {
    if (m.to) return [...new Set(m.to)].map(clientQueue);
    if (m.room !== undefined) {
      let inRoom = members.get(m.room);
      if (!inRoom) {
        const roomId = this.s.roomGet.get(ns, m.room) as number | undefined;
        inRoom = roomId === undefined ? [] : (this.s.members.all(roomId) as string[]);
        members.set(m.room, inRoom);
      }
      return inRoom.filter((c) => c !== m.from || m.echo).map(clientQueue);
    }
    let subs = subscribers.get(m.event);
    if (!subs) {
      const k = nsKey(ns, m.event);
      subs = this.subscribersOf.get(k);
      if (subs === undefined) {
        subs = this.s.targets.all(ns, m.event) as Subscriber[];
        if (this.subscribersOf.size >= SUBSCRIBERS_CACHED) this.subscribersOf.clear();
        this.subscribersOf.set(k, subs);
      }
      subscribers.set(m.event, subs);
    }
    const route = m.route;
    if (route !== undefined && route !== m.from && subs.some((sub) => sub.clientId === route)) {
      return [clientQueue(route)];
    }
    const queues = new Set<QueueName>();
    for (const { clientId, grp } of subs) {
      if (grp !== null) queues.add(groupQueue(grp));
      else if (clientId !== m.from || m.echo) queues.add(clientQueue(clientId));
    }
    return [...queues];
  }

  /**
   * One step of keeping a queue within `max` entries by moving its oldest ones to dead letters:
   * at most `stepSegments` segments. `done` when the queue is within the limit.
   */
  private dropOldest(queueId: number, max: number, now: number): { dropped: number; done: boolean } {
    let size = this.segments.size(queueId) + this.segments.growth(queueId);
    let dropped = 0;
    let after = 0;
    let segments = 0;
    while (size > max && segments < this.stepSegments) {
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
        if (size <= max || ++segments >= this.stepSegments) break;
      }
    }
    return { dropped, done: size <= max };
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
            result.messages.push(toMessage(m, member.deliveries));
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
    const ns = this.nsOf(segment.queueId);
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
      ns,
      m[6] ?? null,
    );
    this.counts.add(ns, "dead", 1);
    this.segments.removeMember(segment, member);
  }

  /** The last step of a sweep: idempotency keys whose window passed (the old ones too, until none is left). */
  private sweepKeys(now: number) {
    this.s.sweepDedup.run(now);
    const legacy = this.legacyKeys;
    if (!legacy) return;
    legacy.sweep.run(now);
    if (legacy.any.get() === undefined) {
      this.database.exec("DROP TABLE dedup_v3");
      this.legacyKeys = undefined;
    }
  }

  /** Forgets every cache that may hold what a rollback undid. */
  private forget(batch: boolean) {
    this.subscribersOf.clear();
    this.queueIds.clear();
    this.queueNs.clear();
    this.cursors.clear();
    this.segments.forget(batch);
  }

  // ---- helpers --------------------------------------------------------------------------------

  private consumerQueueNames(ns: string, clientId: string): QueueName[] {
    const groups = this.s.consumerGroups.all(clientId, ns) as string[];
    return [clientQueue(clientId), ...groups.map(groupQueue)];
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
    this.queueNs.set(id, ns);
    return id;
  }

  private nsOf(queueId: number): string {
    let ns = this.queueNs.get(queueId);
    if (ns === undefined) {
      ns = this.s.queueNs.get(queueId) as string;
      this.queueNs.set(queueId, ns);
    }
    return ns;
  }

  private eventId(ns: string, event: string, create: boolean): number | undefined {
    const id = this.s.eventGet.get(ns, event) as number | undefined;
    if (id !== undefined || !create) return id;
    return Number(this.s.eventAdd.run(ns, event).lastInsertRowid);
  }
}

function toMessage(m: Stored, deliveries: number): Message {
  const message: Message = {
    messageId: m[0],
    event: m[1],
    payload: m[2],
    publishedAt: m[3],
    from: m[4],
    deliveries,
  };
  if (m[6] !== undefined) message.room = m[6];
  return message;
}

/** The page of rows read with LIMIT limit + 1: the extra row says there is a next page. */
function paged<T>(rows: T[], limit: number, position: (row: T) => unknown): Page<T> {
  if (rows.length <= limit) return { items: rows, next: null };
  const items = rows.slice(0, limit);
  return { items, next: encodeCursor(position(items[limit - 1] as T)) };
}

function parsePayload(text: string | null): unknown {
  return text === null ? undefined : JSON.parse(text);
}
