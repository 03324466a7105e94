// SQLite store: the default durable store, one file on local disk (better-sqlite3, WAL).
//
// Open it with `SqliteStore.open({ file, sync })`, which is SYNCHRONOUS: it returns the store
// or throws an Error naming the file and saying what to do (corrupt file, unwritable path,
// file from a newer build). It never starts empty over a file it cannot read.
//
// Layout (PRAGMA user_version 3): log-structured, a row per published BATCH, not per message.
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
// Segments are read and changed in memory (a bounded cache of parsed chunks and segments); each
// operation writes the segments it changed before its savepoint is released, and a rollback
// empties the caches, so memory never holds what the file does not.
//
// Acks: a claim remembers, per message id, the segment it leased it from (in memory, bounded);
// an ack looks there first, and else finds the segment by the id bounds. Either way it checks
// the message id and, in a group queue, the lease owner.
//
// Group commit: every write is queued and run, in arrival order, inside ONE transaction that is
// committed `flushIntervalMs` after the first queued write (setImmediate when 0) or as soon as
// `maxBatch` writes are queued. Each write runs inside its own SAVEPOINT, so one refusal
// (QUEUE_FULL) rolls back only that write; each promise settles only after COMMIT returns. If the
// commit itself fails (disk full, read-only, I/O error), the whole batch is rolled back and every
// write of it rejects with StoreError UNAVAILABLE; later batches try again. Reads run directly on
// the same connection, outside any transaction, so they see exactly the committed writes.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
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
  type QueueName,
  type QueueStats,
  type QueueStore,
  StoreError,
  type Subscription,
} from "./store.js";

export type SyncLevel = "off" | "normal" | "full";

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

const SCHEMA_VERSION = 3;
/** Ack hints kept at most (about 100 B each). */
const HINTS_MAX = 200_000;
/**
 * Messages kept parsed in memory between operations, at most, counted once in the chunk cache and
 * once in the segment cache (a cached segment keeps its chunk's messages alive). About 300 B each.
 */
const CACHE_MESSAGES = 50_000;
/** Weight of a cached segment or chunk beyond its messages (the objects around them). */
const CACHE_OVERHEAD = 8;
/** Segments one step of a sweep reads at most. */
const SWEEP_SEGMENTS = 500;
/** Expired or dead-lettered entries one claim removes at most, so that no operation runs long. */
const CLAIM_REMOVALS_MAX = 2_000;
/** Messages per chunk at most: a bigger batch is split, so that work per segment stays small. */
const CHUNK_MAX = 128;

/** The tables of the log-structured layout (version 3). */
const LOG_TABLES = `
CREATE TABLE chunks (id INTEGER PRIMARY KEY, data TEXT NOT NULL, refs INTEGER NOT NULL);
CREATE TABLE segments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue_id INTEGER NOT NULL,
  chunk INTEGER NOT NULL,
  members TEXT,
  leased INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER,
  ordered INTEGER NOT NULL,
  first_id TEXT NOT NULL,
  last_id TEXT NOT NULL
);
CREATE INDEX segments_queue ON segments (queue_id);
CREATE INDEX segments_ids ON segments (queue_id, ordered, last_id, first_id);
CREATE INDEX segments_leased ON segments (queue_id) WHERE leased > 0;
CREATE INDEX segments_expiry ON segments (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE dead (
  id INTEGER PRIMARY KEY,
  queue_id INTEGER NOT NULL,
  message_id TEXT NOT NULL,
  event TEXT NOT NULL,
  payload TEXT,
  published_at INTEGER NOT NULL,
  sender TEXT,
  deliveries INTEGER NOT NULL,
  reason TEXT NOT NULL,
  dead_at INTEGER NOT NULL
);
CREATE INDEX dead_message_id ON dead (message_id);
`;

const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE queues (
  id INTEGER PRIMARY KEY,
  ns TEXT NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL DEFAULT 0,
  UNIQUE (ns, name)
);
CREATE TABLE events (id INTEGER PRIMARY KEY, ns TEXT NOT NULL, event TEXT NOT NULL, UNIQUE (ns, event));
CREATE TABLE subs (
  id INTEGER PRIMARY KEY,
  event_id INTEGER NOT NULL,
  client_id TEXT NOT NULL,
  grp TEXT,
  UNIQUE (event_id, client_id)
);
CREATE INDEX subs_client ON subs (client_id);
CREATE TABLE dedup (
  ns TEXT NOT NULL,
  key TEXT NOT NULL,
  ids TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE INDEX dedup_expiry ON dedup (expires_at);
${LOG_TABLES}`;

const DEAD_BY_IDS = `SELECT d.id, d.queue_id AS queueId, q.name AS queue, d.message_id AS messageId,
  d.event, d.payload, d.published_at AS publishedAt, d.sender
  FROM dead d JOIN queues q ON q.id = d.queue_id
  WHERE d.message_id IN (SELECT value FROM json_each(?)) AND q.ns = ?`;
const SUBSCRIPTIONS = `SELECT ev.ns, s.client_id AS clientId, ev.event, s.grp AS "group"
  FROM subs s JOIN events ev ON ev.id = s.event_id`;

/** The statements, prepared once per store (exported for plan checks in tests). */
export const SQL = {
  begin: "BEGIN IMMEDIATE",
  commit: "COMMIT",
  rollback: "ROLLBACK",
  savepoint: "SAVEPOINT op",
  release: "RELEASE op",
  rollbackTo: "ROLLBACK TO op",
  probe: "INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)",

  queueGet: "SELECT id FROM queues WHERE ns = ? AND name = ?",
  queueAdd: "INSERT INTO queues (ns, name) VALUES (?, ?)",
  queueSize: "SELECT size FROM queues WHERE id = ?",
  queueGrow: "UPDATE queues SET size = size + ? WHERE id = ?",

  eventGet: "SELECT id FROM events WHERE ns = ? AND event = ?",
  eventAdd: "INSERT INTO events (ns, event) VALUES (?, ?)",
  subUpsert: `INSERT INTO subs (event_id, client_id, grp) VALUES (?, ?, ?)
    ON CONFLICT (event_id, client_id) DO UPDATE SET grp = excluded.grp`,
  subGet: "SELECT grp FROM subs WHERE event_id = ? AND client_id = ?",
  subDel: "DELETE FROM subs WHERE event_id = ? AND client_id = ?",
  groupLeft: "SELECT 1 FROM subs WHERE event_id = ? AND grp = ? LIMIT 1",
  targets: `SELECT s.client_id AS clientId, s.grp FROM events ev JOIN subs s ON s.event_id = ev.id
    WHERE ev.ns = ? AND ev.event = ? ORDER BY s.id`,
  consumerGroups: `SELECT s.grp FROM subs s JOIN events ev ON ev.id = s.event_id
    WHERE s.client_id = ? AND ev.ns = ? AND s.grp IS NOT NULL AND s.grp <> ''
    GROUP BY s.grp ORDER BY min(ev.id)`,

  dedupGet: "SELECT ids, expires_at AS expiresAt FROM dedup WHERE ns = ? AND key = ?",
  dedupPut: "INSERT OR REPLACE INTO dedup (ns, key, ids, expires_at) VALUES (?, ?, ?, ?)",

  chunkAdd: "INSERT INTO chunks (data, refs) VALUES (?, ?)",
  chunkGet: "SELECT data FROM chunks WHERE id = ?",
  // Dropping a reference: delete the chunk when it was the last, else count it down.
  chunkFree: "DELETE FROM chunks WHERE id = ? AND refs <= 1",
  chunkUnref: "UPDATE chunks SET refs = refs - 1 WHERE id = ?",
  segmentAdd: `INSERT INTO segments (queue_id, chunk, expires_at, ordered, first_id, last_id)
    VALUES (?, ?, ?, ?, ?, ?)`,
  segmentsHighest: "SELECT max(last_id) FROM segments WHERE queue_id = ? AND ordered = 1",
  segmentGet: "SELECT queue_id AS queueId, chunk, members FROM segments WHERE id = ?",
  segmentSet: "UPDATE segments SET members = ?, leased = ?, expires_at = ? WHERE id = ?",
  segmentDel: "DELETE FROM segments WHERE id = ?",
  // A literal LIMIT: a bound one makes SQLite re-prepare the statement on every run.
  // Pinned: one queue's segments in order, never a scan of every queue's, whatever the statistics.
  segmentPage:
    "SELECT id FROM segments INDEXED BY segments_queue WHERE queue_id = ? AND id > ? ORDER BY id LIMIT 16",
  segmentsOf: "SELECT id FROM segments INDEXED BY segments_queue WHERE queue_id = ? ORDER BY id",
  segmentsLeased: "SELECT id FROM segments WHERE queue_id = ? AND leased > 0 ORDER BY id",
  // Segments whose id range may hold a message id. Ordered segments (ids above every earlier
  // segment's: nearly all) have rising, disjoint ranges, so the first ending at or after the id
  // decides (one more is read in case a clock stepped back); the others (requeued dead letters,
  // ids from a clock that stepped back) are few and read whole.
  segmentsById: `SELECT id, first_id AS firstId FROM segments
    WHERE queue_id = ? AND ordered = 1 AND last_id >= ? ORDER BY last_id LIMIT 2`,
  segmentsByIdUnordered: `SELECT id FROM segments
    WHERE queue_id = ? AND ordered = 0 AND last_id >= ? AND first_id <= ?`,
  segmentsExpired: `SELECT id FROM segments WHERE expires_at IS NOT NULL AND expires_at <= ?
    LIMIT ${SWEEP_SEGMENTS}`,
  sweepDedup: "DELETE FROM dedup WHERE expires_at <= ?",

  deadAdd: `INSERT INTO dead (queue_id, message_id, event, payload, published_at, sender, deliveries, reason, dead_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  deadFind: `${DEAD_BY_IDS} ORDER BY d.id`,
  deadDel: "DELETE FROM dead WHERE id = ?",
  deadDrop: `DELETE FROM dead WHERE id IN (SELECT id FROM (${DEAD_BY_IDS}))`,
  listDead: `SELECT d.message_id AS messageId, d.event, d.payload, d.published_at AS publishedAt, d.sender,
    d.deliveries, q.name AS queue, d.reason, d.dead_at AS deadAt
    FROM dead d JOIN queues q ON q.id = d.queue_id
    WHERE q.ns = ? ORDER BY d.id LIMIT ?`,

  queuesLive: "SELECT id, ns, name AS queue, size AS pending FROM queues WHERE size > 0 ORDER BY id",
  queuesLiveNs:
    "SELECT id, ns, name AS queue, size AS pending FROM queues WHERE size > 0 AND ns = ? ORDER BY id",
  subscriptions: `${SUBSCRIPTIONS}
    ORDER BY (SELECT min(e2.id) FROM events e2 WHERE e2.ns = ev.ns), ev.id, s.id`,
  subscriptionsNs: `${SUBSCRIPTIONS} WHERE ev.ns = ? ORDER BY ev.id, s.id`,
} as const;

type Statements = { [K in keyof typeof SQL]: Database.Statement<unknown[], unknown> };

/** A message as a chunk holds it: [messageId, event, payload, publishedAt, from, expiresAt]. */
type Stored = [string, string, unknown, number, string | null, number | null];

/** What is left of a chunk in one queue: the chunk index and each one's delivery state. */
interface Member {
  /** Index into the chunk. */
  i: number;
  deliveries: number;
  /** Lease holder, or null when free. */
  owner: string | null;
  /** Lease end (epoch ms); 0 when free. */
  until: number;
}

interface Segment {
  id: number;
  queueId: number;
  chunk: number;
  messages: Stored[];
  members: Member[];
}

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

interface Op {
  run(): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Codes (or their prefixes) of SQLite errors that say the file cannot be used as it is. */
const CORRUPT = ["SQLITE_NOTADB", "SQLITE_CORRUPT"];
const UNWRITABLE = ["SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM", "SQLITE_FULL"];

export class SqliteStore implements QueueStore {
  /**
   * Opens (creating when missing) the store file and checks it. Synchronous: returns the
   * store, or throws an Error whose message names the file and what to do about it.
   */
  static open(opts: SqliteStoreOptions): SqliteStore {
    const file = opts.file === ":memory:" ? opts.file : resolve(opts.file);
    const fail = (what: string, cause?: unknown) =>
      new Error(`queuehub SQLite store ${file}: ${what}`, cause === undefined ? undefined : { cause });
    if (file !== ":memory:") {
      try {
        mkdirSync(dirname(file), { recursive: true });
      } catch (err) {
        throw fail(
          `cannot create its folder ${dirname(file)} (${describe(err)}); set HUB_DB to a file path in a writable folder`,
          err,
        );
      }
    }
    let db: Database.Database;
    try {
      // One process per file (see prepareDatabase): no lock is worth waiting long for.
      db = new Database(file, { timeout: 250 });
    } catch (err) {
      throw fail(
        `cannot open it (${describe(err)}); set HUB_DB to a writable file path (not a folder) in a writable folder`,
        err,
      );
    }
    try {
      prepareDatabase(db, opts.sync, file === ":memory:");
    } catch (err) {
      db.close();
      const code = sqliteCode(err);
      if (code && CORRUPT.some((c) => code.startsWith(c))) {
        throw fail(
          `the file is not a valid queuehub database or is damaged (${describe(err)}). Nothing was changed: ` +
            "restore it from a backup, or move it aside to start with an empty store",
          err,
        );
      }
      if (code && UNWRITABLE.some((c) => code.startsWith(c))) {
        throw fail(
          `cannot be opened for writing (${describe(err)}); check the file's permissions, that its ` +
            "folder is writable and that the disk has free space, or set HUB_DB to another path",
          err,
        );
      }
      if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
        throw fail(`is locked by another process (${describe(err)}); stop it or use another HUB_DB`, err);
      }
      if (err instanceof SetupError) throw fail(err.message);
      throw fail(`cannot be opened (${describe(err)})`, err);
    }
    return new SqliteStore(db, file, opts);
  }

  private readonly s: Statements;
  private readonly flushIntervalMs: number;
  private readonly maxBatch: number;
  private readonly cacheLimit: number;
  private ops: Op[] = [];
  private timer: { immediate: boolean; cancel(): void } | undefined;
  private closed = false;
  private commitCount = 0;
  /** Set when a batch or a write of it failed for a storage reason; cleared by a clean batch. */
  private failing = false;
  /**
   * queues.id → claim cursor: every member of the queue's segments up to id `after` is leased
   * (or gone), and the first of those leases runs out at `until`. Claims start after it instead
   * of re-reading leased segments each time. Dropped on release and on every rollback; stale
   * once `until` passes.
   */
  private readonly cursors = new Map<number, { after: number; until: number }>();
  /** ns\0queue → queues.id. Rows are never deleted; cleared on every rollback. */
  private readonly queueIds = new Map<string, number>();
  /** queues.id → entries added minus removed by the running operation; applied before its RELEASE. */
  private readonly sizeDelta = new Map<number, number>();
  /** queues.id\0messageId → the segment a claim leased it from. A hint only: acks check the member's id. */
  private readonly hints = new Map<string, number>();
  /** chunks.id → its parsed messages (shared by every segment of the chunk). */
  private readonly chunkCache = new Map<number, Stored[]>();
  private cachedMessages = 0;
  /** segments.id → its members, as the file holds them once the running operation is written. */
  private readonly segmentCache = new Map<number, Segment>();
  /** Messages of the cached segments (their size when cached, plus CACHE_OVERHEAD each). */
  private cachedMembers = 0;
  /** queues.id → the highest message id of its ordered segments (see SQL.segmentsById). */
  private readonly highest = new Map<number, string>();
  /** Segments the running operation changed: written (or deleted) before its RELEASE. */
  private readonly dirty = new Set<Segment>();

  private constructor(
    private readonly database: Database.Database,
    private readonly file: string,
    opts: SqliteStoreOptions,
  ) {
    this.flushIntervalMs = Math.max(0, opts.flushIntervalMs ?? 1);
    this.maxBatch = Math.max(1, opts.maxBatch ?? 256);
    this.cacheLimit = Math.max(0, opts.cacheMessages ?? CACHE_MESSAGES);
    this.s = Object.fromEntries(
      Object.entries(SQL).map(([name, sql]) => [name, database.prepare(sql)]),
    ) as Statements;
    for (const name of [
      "queueGet",
      "queueSize",
      "eventGet",
      "consumerGroups",
      "chunkGet",
      "segmentPage",
      "segmentsOf",
      "segmentsLeased",
      "segmentsByIdUnordered",
      "segmentsHighest",
      "segmentsExpired",
    ] as const)
      this.s[name].pluck();
  }

  /** The underlying connection: for tests and maintenance only. */
  get db(): Database.Database {
    return this.database;
  }

  /** Transactions committed so far (one per batch of writes). */
  get commits(): number {
    return this.commitCount;
  }

  // ---- writes (group-committed) --------------------------------------------------------------

  subscribe(ns: string, clientId: string, events: string[], group: string | null): Promise<void> {
    return this.write(() => {
      for (const event of events) {
        const eventId = this.eventId(ns, event, true) as number;
        this.s.subUpsert.run(eventId, clientId, group);
      }
    });
  }

  unsubscribe(ns: string, clientId: string, events: string[]): Promise<number> {
    return this.write(() => {
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
    if (this.closed) return Promise.reject(this.closedError());
    // Serialised once per message here, outside the transaction, whatever the fan-out.
    let texts: string[];
    try {
      texts = req.messages.map(storedText);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.write(() => this.doEnqueue(req, texts));
  }

  claim(req: ClaimRequest): Promise<ClaimResult> {
    return this.write(() => this.doClaim(req));
  }

  release(ns: string, queue: QueueName, consumer: string, messageIds?: string[]): Promise<number> {
    return this.write(() => {
      const queueId = this.queueId(ns, queue, false);
      if (queueId === undefined) return 0;
      this.cursors.delete(queueId);
      let released = 0;
      const free = (segment: Segment, member: Member) => {
        if (member.owner !== consumer) return;
        member.owner = null;
        member.until = 0;
        this.dirty.add(segment);
        released++;
      };
      if (messageIds) {
        for (const messageId of new Set(messageIds)) {
          const found = this.find(queueId, messageId);
          if (found) free(found.segment, found.member);
        }
      } else {
        for (const id of this.s.segmentsLeased.all(queueId) as number[]) {
          const segment = this.segment(id) as Segment;
          for (const member of segment.members) free(segment, member);
        }
      }
      return released;
    });
  }

  ack(ns: string, clientId: string, messageIds: string[]): Promise<string[]> {
    return this.write(() => {
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
          const found = this.find(queue.id, messageId);
          if (!found || (queue.group && found.member.owner !== clientId)) continue;
          this.removeMember(found.segment, found.member);
          this.hints.delete(hintKey(queue.id, messageId));
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
      const step = await this.write(() => {
        const ids = this.s.segmentsExpired.all(now) as number[];
        let n = 0;
        for (const id of ids) {
          const segment = this.segment(id) as Segment;
          for (const member of [...segment.members]) {
            const expiresAt = (segment.messages[member.i] as Stored)[5];
            if (expiresAt !== null && expiresAt <= now) {
              this.removeMember(segment, member);
              n++;
            }
          }
          // Rewritten even when nothing expired, so that expires_at moves on.
          this.dirty.add(segment);
          this.keepBounded();
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
    return this.write(() => {
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
        this.addSegment(row.queueId, this.addChunk([storedText(message)], stored, 1), stored);
        this.grow(row.queueId, 1);
        this.s.deadDel.run(row.id);
        queues.add(row.queue);
      }
      return [...queues];
    });
  }

  dropDead(ns: string, messageIds: string[]): Promise<number> {
    return this.write(() => {
      if (messageIds.length === 0) return 0;
      return this.s.deadDrop.run(JSON.stringify(messageIds), ns).changes;
    });
  }

  // ---- reads (direct: they see every committed write) ------------------------------------------

  consumerQueues(ns: string, clientId: string): Promise<QueueName[]> {
    return this.read(() => this.consumerQueueNames(ns, clientId));
  }

  pending(ns: string, clientId: string, now: number, event?: string): Promise<number> {
    return this.read(() => {
      let count = 0;
      for (const name of this.consumerQueueNames(ns, clientId)) {
        const queueId = this.queueId(ns, name, false);
        if (queueId === undefined) continue;
        const othersLease = (member: Member) =>
          member.owner !== null && member.owner !== clientId && member.until > now;
        if (event === undefined) {
          count += this.s.queueSize.get(queueId) as number;
          if (isGroupQueue(name)) count -= this.countMembers(queueId, true, othersLease);
        } else {
          count += this.countMembers(
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
    return this.read(() =>
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
    return this.read(() => {
      const now = Date.now();
      const rows = (
        ns === undefined ? this.s.queuesLive.all() : this.s.queuesLiveNs.all(ns)
      ) as (QueueStats & {
        id: number;
      })[];
      return rows.map(({ id, ...stats }) => ({
        ...stats,
        inFlight: this.countMembers(id, true, (member) => member.owner !== null && member.until > now),
      }));
    });
  }

  subscriptions(ns?: string): Promise<Subscription[]> {
    return this.read(
      () =>
        (ns === undefined ? this.s.subscriptions.all() : this.s.subscriptionsNs.all(ns)) as Subscription[],
    );
  }

  /** Writes a probe row through the batch: true when it commits and no write is failing. */
  async healthy(): Promise<boolean> {
    if (this.closed) return false;
    try {
      await this.write(() => this.s.probe.run(Date.now()));
      return !this.failing;
    } catch {
      return false;
    }
  }

  /** Commits the writes still queued, then closes the file. Closing twice is harmless. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.ops.length > 0) this.flush();
    this.cancelTimer();
    this.database.close();
  }

  // ---- group commit --------------------------------------------------------------------------

  private write<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError());
    return new Promise<T>((resolve, reject) => {
      this.ops.push({ run, resolve: resolve as (value: unknown) => void, reject });
      // A full batch is committed on the next turn of the event loop, never inside the caller:
      // a synchronous commit would settle promises in microtasks, and busy callers could then
      // starve timers and socket I/O.
      if (this.ops.length >= this.maxBatch) this.schedule(true);
      else if (!this.timer) this.schedule(this.flushIntervalMs === 0);
    });
  }

  private schedule(immediate: boolean) {
    if (this.timer?.immediate || (this.timer && !immediate)) return;
    this.cancelTimer();
    const flush = () => {
      this.timer = undefined;
      this.flush();
    };
    this.timer = immediate
      ? { immediate, cancel: clearImmediate.bind(null, setImmediate(flush)) }
      : { immediate, cancel: clearTimeout.bind(null, setTimeout(flush, this.flushIntervalMs)) };
  }

  private cancelTimer() {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /**
   * Runs up to `maxBatch` queued writes in one transaction, each in a savepoint, then commits
   * and settles them. More queued writes get the next turn of the event loop.
   */
  private flush() {
    this.cancelTimer();
    const batch = this.ops.splice(0, this.maxBatch);
    if (this.ops.length > 0) this.schedule(true);
    if (batch.length === 0) return;
    const outcomes: Outcome[] = [];
    let failure: { cause: unknown } | undefined;
    let opFailed = false;
    try {
      this.s.begin.run();
      for (const op of batch) {
        this.s.savepoint.run();
        try {
          const value = op.run();
          this.writeSegments();
          this.applySizes();
          this.s.release.run();
          outcomes.push({ ok: true, value });
        } catch (err) {
          // SQLite may have rolled back the whole transaction (SQLITE_FULL, IOERR, ...).
          this.sizeDelta.clear();
          this.forget();
          if (!this.database.inTransaction) throw err;
          this.s.rollbackTo.run();
          this.s.release.run();
          if (!(err instanceof StoreError) && sqliteCode(err)) opFailed = true;
          outcomes.push({ ok: false, error: this.opError(err) });
        }
      }
      this.s.commit.run();
      this.commitCount++;
      this.trimCaches();
    } catch (err) {
      failure = { cause: err };
      if (this.database.inTransaction) {
        try {
          this.s.rollback.run();
        } catch {
          // nothing more to undo
        }
      }
      this.forget();
    }
    if (failure !== undefined) {
      this.failing = true;
      const error = this.unavailable(failure.cause, "write", "nothing of this batch was stored");
      for (const op of batch) op.reject(error);
      return;
    }
    this.failing = opFailed;
    batch.forEach((op, i) => {
      const outcome = outcomes[i] as Outcome;
      if (outcome.ok) op.resolve(outcome.value);
      else op.reject(outcome.error);
    });
  }

  private read<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError());
    try {
      return Promise.resolve(run());
    } catch (err) {
      return Promise.reject(sqliteCode(err) ? this.unavailable(err, "read", "nothing was changed") : err);
    }
  }

  private opError(err: unknown) {
    if (err instanceof StoreError || !sqliteCode(err)) return err;
    return this.unavailable(err, "write", "nothing of this operation was stored");
  }

  private unavailable(err: unknown, verb: "read" | "write", what: string) {
    return new StoreError(
      "UNAVAILABLE",
      `SQLite store ${this.file} cannot ${verb} (${describe(err)}); ${what}, retry later`,
      { cause: err },
    );
  }

  private closedError() {
    return new StoreError("UNAVAILABLE", `SQLite store ${this.file} is closed`);
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
        const chunk = this.addChunk(
          picked.map((i) => texts[i] as string),
          stored,
          queueIds.length,
        );
        for (const queueId of queueIds) this.addSegment(queueId, chunk, stored);
      }
    }
    for (const { picked, queueIds } of chunks.values()) {
      for (const queueId of queueIds) {
        this.grow(queueId, picked.length);
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
    let size = (this.s.queueSize.get(queueId) as number) + (this.sizeDelta.get(queueId) ?? 0);
    let dropped = 0;
    let after = 0;
    while (size > max) {
      const ids = this.s.segmentPage.all(queueId, after) as number[];
      if (ids.length === 0) break;
      for (const id of ids) {
        after = id;
        const segment = this.segment(id) as Segment;
        while (size > max && segment.members.length > 0) {
          this.deadLetter(segment, segment.members[0] as Member, "overflow", now);
          size--;
          dropped++;
        }
        this.keepBounded();
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
        const segment = this.segment(id) as Segment;
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
            this.removeMember(segment, member);
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
            this.dirty.add(segment);
            if (this.hints.size >= HINTS_MAX) this.hints.clear();
            this.hints.set(hintKey(queueId, m[0]), segment.id);
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
        this.keepBounded();
        if (full()) break;
      }
      if (ids.length === 0 || full()) break;
    }
    if (removedEnough()) result.more = true;
    if (result.messages.length > 0) firstExpiry = Math.min(firstExpiry, until);
    if (tracked) this.cursors.set(queueId, { after: leasedUpTo, until: firstExpiry });
    return result;
  }

  // ---- segments ---------------------------------------------------------------------------------

  /** Stores a chunk (its messages' JSON texts) and caches its parsed messages. Returns its id. */
  private addChunk(texts: string[], stored: Stored[], refs: number): number {
    const chunk = Number(this.s.chunkAdd.run(`[${texts.join(",")}]`, refs).lastInsertRowid);
    this.cacheChunk(chunk, stored);
    return chunk;
  }

  private addSegment(queueId: number, chunk: number, stored: Stored[]): Segment {
    const expiresAt = soonest(stored.map((m) => m[5]));
    let low = (stored[0] as Stored)[0];
    let high = low;
    for (const m of stored) {
      if (m[0] < low) low = m[0];
      if (m[0] > high) high = m[0];
    }
    const highest = this.highest.get(queueId) ?? (this.s.segmentsHighest.get(queueId) as string | null) ?? "";
    const ordered = low > highest;
    if (ordered) this.highest.set(queueId, high);
    const id = Number(
      this.s.segmentAdd.run(queueId, chunk, expiresAt, ordered ? 1 : 0, low, high).lastInsertRowid,
    );
    const segment: Segment = { id, queueId, chunk, messages: stored, members: freshMembers(stored.length) };
    this.cacheSegment(segment);
    return segment;
  }

  /** A segment, from the cache or the file; undefined when it is gone. */
  private segment(id: number): Segment | undefined {
    return this.segmentCache.get(id) ?? this.load(id, true);
  }

  private load(id: number, cache: boolean): Segment | undefined {
    const row = this.s.segmentGet.get(id) as
      | { queueId: number; chunk: number; members: string | null }
      | undefined;
    if (!row) return undefined;
    let messages = this.chunkCache.get(row.chunk);
    if (!messages) {
      messages = JSON.parse(this.s.chunkGet.get(row.chunk) as string) as Stored[];
      if (cache) this.cacheChunk(row.chunk, messages);
    }
    const segment: Segment = {
      id,
      queueId: row.queueId,
      chunk: row.chunk,
      messages,
      members: row.members === null ? freshMembers(messages.length) : decodeMembers(row.members),
    };
    if (cache) this.cacheSegment(segment);
    return segment;
  }

  private cacheSegment(segment: Segment) {
    this.segmentCache.set(segment.id, segment);
    this.cachedMembers += segment.messages.length + CACHE_OVERHEAD;
  }

  private uncacheSegment(segment: Segment) {
    if (this.segmentCache.delete(segment.id)) this.cachedMembers -= segment.messages.length + CACHE_OVERHEAD;
  }

  private cacheChunk(chunk: number, messages: Stored[]) {
    this.chunkCache.set(chunk, messages);
    this.cachedMessages += messages.length + CACHE_OVERHEAD;
  }

  private uncacheChunk(chunk: number) {
    const messages = this.chunkCache.get(chunk);
    if (messages === undefined) return;
    this.chunkCache.delete(chunk);
    this.cachedMessages -= messages.length + CACHE_OVERHEAD;
  }

  /** The member holding a message id in a queue: by the claim's hint, else by the id bounds. */
  private find(queueId: number, messageId: string): { segment: Segment; member: Member } | undefined {
    const hinted = this.hints.get(hintKey(queueId, messageId));
    if (hinted !== undefined) {
      const found = this.findIn(hinted, queueId, messageId);
      if (found) return found;
    }
    const ordered = this.s.segmentsById.all(queueId, messageId) as { id: number; firstId: string }[];
    const candidates = [
      ...ordered.filter((row) => row.firstId <= messageId).map((row) => row.id),
      ...(this.s.segmentsByIdUnordered.all(queueId, messageId, messageId) as number[]),
    ].filter((id) => id !== hinted);
    for (const id of candidates) {
      const found = this.findIn(id, queueId, messageId);
      if (found) return found;
    }
    return undefined;
  }

  private findIn(id: number, queueId: number, messageId: string) {
    const segment = this.segment(id);
    if (segment === undefined || segment.queueId !== queueId) return undefined;
    for (const member of segment.members) {
      if ((segment.messages[member.i] as Stored)[0] === messageId) return { segment, member };
    }
    return undefined;
  }

  /** Deletes a member (acked, expired, unsubscribed): its queue shrinks. */
  private removeMember(segment: Segment, member: Member) {
    const k = segment.members.indexOf(member);
    if (k < 0) return;
    segment.members.splice(k, 1);
    this.dirty.add(segment);
    this.grow(segment.queueId, -1);
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
    this.removeMember(segment, member);
  }

  /** Counts members of a queue that pass a test: all segments, or only those with leases. */
  private countMembers(queueId: number, leasedOnly: boolean, test: (member: Member, m: Stored) => boolean) {
    let count = 0;
    const ids = (leasedOnly ? this.s.segmentsLeased : this.s.segmentsOf).all(queueId) as number[];
    for (const id of ids) {
      // Read past the caches: a count over a long queue must not fill memory with it.
      const segment = this.segmentCache.get(id) ?? this.load(id, false);
      if (!segment) continue;
      for (const member of segment.members) if (test(member, segment.messages[member.i] as Stored)) count++;
    }
    return count;
  }

  /** In a loop over a whole queue: writes what it changed so far and trims the caches. */
  private keepBounded() {
    if (this.cachedMembers <= this.cacheLimit && this.cachedMessages <= this.cacheLimit) return;
    this.writeSegments();
    this.trimCaches();
  }

  /** Writes what the running operation changed in its segments, deleting the emptied ones. */
  private writeSegments() {
    for (const segment of this.dirty) {
      if (segment.members.length === 0) {
        this.s.segmentDel.run(segment.id);
        this.uncacheSegment(segment);
        if (this.s.chunkFree.run(segment.chunk).changes > 0) {
          this.uncacheChunk(segment.chunk);
        } else {
          this.s.chunkUnref.run(segment.chunk);
        }
        continue;
      }
      let leased = 0;
      for (const member of segment.members) if (member.owner !== null) leased++;
      const expiresAt = soonest(segment.members.map((member) => (segment.messages[member.i] as Stored)[5]));
      this.s.segmentSet.run(encodeMembers(segment.members), leased, expiresAt, segment.id);
    }
    this.dirty.clear();
  }

  /** Keeps the caches within bounds, dropping the least recently added first. */
  private trimCaches() {
    for (const segment of this.segmentCache.values()) {
      if (this.cachedMembers <= this.cacheLimit) break;
      this.uncacheSegment(segment);
    }
    for (const chunk of this.chunkCache.keys()) {
      if (this.cachedMessages <= this.cacheLimit) break;
      this.uncacheChunk(chunk);
    }
  }

  /** Forgets every cache that may hold what a rollback undid. */
  private forget() {
    this.queueIds.clear();
    this.highest.clear();
    this.cursors.clear();
    this.dirty.clear();
    this.segmentCache.clear();
    this.cachedMembers = 0;
    this.chunkCache.clear();
    this.cachedMessages = 0;
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
      const segment = this.segment(id) as Segment;
      for (const member of [...segment.members]) {
        if ((segment.messages[member.i] as Stored)[1] === event) {
          this.removeMember(segment, member);
          dropped++;
        }
      }
      this.keepBounded();
    }
    return dropped;
  }

  /** Counts entries added to (n > 0) or removed from (n < 0) a queue by the running operation. */
  private grow(queueId: number, n: number) {
    this.sizeDelta.set(queueId, (this.sizeDelta.get(queueId) ?? 0) + n);
  }

  /** Writes the running operation's size changes: one UPDATE per queue touched. */
  private applySizes() {
    if (this.sizeDelta.size === 0) return;
    for (const [queueId, n] of this.sizeDelta) if (n !== 0) this.s.queueGrow.run(n, queueId);
    this.sizeDelta.clear();
  }

  private queueId(ns: string, queue: QueueName, create: boolean): number | undefined {
    const k = `${ns}\u0000${queue}`;
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

/** A startup check that failed for a reason of our own (its message says what to do). */
class SetupError extends Error {}

function prepareDatabase(db: Database.Database, sync: SyncLevel, memory: boolean) {
  // The caches hold the queues' state between operations, so no other process may write the file:
  // the first write takes a lock that a second hub (or anything else) cannot get until we close.
  db.pragma("locking_mode = EXCLUSIVE");
  // Reading the journal mode reads page 1: a file that is not a database fails here.
  const mode = db.pragma("journal_mode = WAL", { simple: true });
  if (!memory && mode !== "wal") {
    throw new SetupError(`cannot switch to WAL journaling (journal_mode is ${String(mode)})`);
  }
  const level = { off: 0, normal: 1, full: 2 }[sync];
  if (level === undefined) throw new SetupError(`unknown sync level ${JSON.stringify(sync)}`);
  db.pragma(`synchronous = ${level}`);
  if (db.pragma("synchronous", { simple: true }) !== level) {
    throw new SetupError(`could not set synchronous = ${sync}`);
  }
  db.pragma("cache_size = -16384"); // 16 MiB
  db.pragma("temp_store = MEMORY");
  db.pragma("journal_size_limit = 67108864");
  // Checkpoint every ~16 MiB of WAL instead of ~4 MiB: hot pages (index tails, queue rows) are
  // copied back once per checkpoint instead of four times (+5-8% on enqueue and ack here).
  db.pragma("wal_autocheckpoint = 4000");
  const check = db.pragma("quick_check", { simple: true });
  if (check !== "ok") {
    const err = new Error(`quick_check: ${String(check)}`) as Error & { code: string };
    err.code = "SQLITE_CORRUPT";
    throw err;
  }
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version === 0) {
    const objects = db.prepare("SELECT count(*) FROM sqlite_master").pluck().get() as number;
    if (objects > 0) {
      throw new SetupError(
        "the file holds another application's database (tables but no queuehub schema version); " +
          "set HUB_DB to another path, or move this file aside",
      );
    }
    db.transaction(() => {
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }).immediate();
  } else if (version > SCHEMA_VERSION) {
    throw new SetupError(
      `the file has schema version ${version}, written by a newer queuehub (this build knows ` +
        `${SCHEMA_VERSION}); run the newer build, or restore a backup made for this one`,
    );
  } else if (version === 1) {
    throw new SetupError(
      "the file has schema version 1, a development format this build no longer reads; " +
        "move it aside (or delete it) to start with an empty store",
    );
  } else if (version === 2) {
    migrateFrom2(db);
  } else if (version !== SCHEMA_VERSION) {
    throw new SetupError(`unknown schema version ${version}; restore a backup or move the file aside`);
  }
  // A write at open: a file that can be read but not written fails now, not at the first publish.
  db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_at', ?)").run(Date.now());
}

/** The fields of a message a chunk keeps; `payloadJson` saves serialising the payload again. */
type StoredSource = Pick<
  NewMessage,
  "messageId" | "event" | "payload" | "publishedAt" | "from" | "expiresAt"
> & {
  payloadJson?: string;
};

/** A dead letter's message as its row holds it. */
interface DeadSource {
  messageId: string;
  event: string;
  payload: string | null;
  publishedAt: number;
  sender: string | null;
}

/**
 * Version 2 kept one row per (queue, message): its entries become segments of up to 100
 * (deliveries, leases and TTLs kept, in queue order), its dead letters get their message inline.
 * One transaction: a failure leaves the file as it was.
 */
function migrateFrom2(db: Database.Database) {
  const PAGE = 100;
  db.transaction(() => {
    db.exec("ALTER TABLE dead RENAME TO dead_v2");
    db.exec("DROP INDEX dead_body");
    db.exec(LOG_TABLES);
    const page = db.prepare(`SELECT e.seq, e.deliveries, e.lease_owner AS owner, e.lease_until AS until,
      e.expires_at AS expiresAt, b.message_id AS messageId, b.event, b.payload, b.published_at AS publishedAt,
      b.sender FROM entries e JOIN bodies b ON b.id = e.body WHERE e.queue_id = ? AND e.seq > ?
      ORDER BY e.seq LIMIT ${PAGE}`);
    const chunkAdd = db.prepare(SQL.chunkAdd);
    const segmentAdd = db.prepare(SQL.segmentAdd);
    const segmentSet = db.prepare(SQL.segmentSet);
    type Row = DeadSource & {
      seq: number;
      deliveries: number;
      owner: string | null;
      until: number;
      expiresAt: number | null;
    };
    const addSegment = (queueId: number, rows: Row[], ordered = true) => {
      if (rows.length === 0) return;
      const texts = rows.map((r) =>
        storedText({ ...r, payload: null, from: r.sender, payloadJson: r.payload ?? "null" }),
      );
      const chunk = chunkAdd.run(`[${texts.join(",")}]`, 1).lastInsertRowid;
      const ids = rows.map((r) => r.messageId).sort();
      const expiresAt = soonest(rows.map((r) => r.expiresAt));
      const segment = segmentAdd.run(
        queueId,
        chunk,
        expiresAt,
        ordered ? 1 : 0,
        ids[0],
        ids[ids.length - 1],
      ).lastInsertRowid;
      const members = rows.map((r, i) => ({
        i,
        deliveries: r.deliveries,
        owner: r.owner,
        until: r.owner === null ? 0 : r.until,
      }));
      segmentSet.run(
        encodeMembers(members),
        members.filter((m) => m.owner !== null).length,
        expiresAt,
        segment,
      );
    };
    for (const queueId of db.prepare("SELECT id FROM queues").pluck().all() as number[]) {
      // Ordered segments of a queue hold rising, disjoint id ranges (acks find them by range): an
      // entry whose id is not above every earlier one (a requeued dead letter) gets one of its own.
      let after = Number.MIN_SAFE_INTEGER;
      let highest = "";
      let run: Row[] = [];
      for (;;) {
        const rows = page.all(queueId, after) as Row[];
        if (rows.length === 0) break;
        after = (rows[rows.length - 1] as Row).seq;
        for (const row of rows) {
          if (row.messageId > highest) {
            if (run.length >= PAGE) {
              addSegment(queueId, run);
              run = [];
            }
            run.push(row);
            highest = row.messageId;
          } else {
            addSegment(queueId, run);
            addSegment(queueId, [row], false);
            run = [];
          }
        }
      }
      addSegment(queueId, run);
    }
    db.exec(`INSERT INTO dead (queue_id, message_id, event, payload, published_at, sender, deliveries, reason, dead_at)
      SELECT d.queue_id, b.message_id, b.event, b.payload, b.published_at, b.sender, d.deliveries, d.reason, d.dead_at
      FROM dead_v2 d JOIN bodies b ON b.id = d.body ORDER BY d.id`);
    db.exec("DROP TABLE dead_v2; DROP TABLE entries; DROP TABLE bodies;");
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

/** The earliest of some expiry times (null: never), or null when none is set. */
function soonest(times: (number | null)[]): number | null {
  let first: number | null = null;
  for (const t of times) if (t !== null && (first === null || t < first)) first = t;
  return first;
}

const hintKey = (queueId: number, messageId: string) => `${queueId}\u0000${messageId}`;

/** The JSON text of one message in a chunk (see Stored). */
function storedText(m: StoredSource): string {
  const payload = m.payloadJson ?? JSON.stringify(m.payload === undefined ? null : m.payload);
  return `[${JSON.stringify(m.messageId)},${JSON.stringify(m.event)},${payload},${m.publishedAt},${JSON.stringify(m.from ?? null)},${m.expiresAt ?? null}]`;
}

function toStored(m: NewMessage): Stored {
  return [
    m.messageId,
    m.event,
    m.payload === undefined ? null : m.payload,
    m.publishedAt,
    m.from ?? null,
    m.expiresAt ?? null,
  ];
}

function freshMembers(n: number): Member[] {
  const members = new Array<Member>(n);
  for (let i = 0; i < n; i++) members[i] = { i, deliveries: 0, owner: null, until: 0 };
  return members;
}

function encodeMembers(members: Member[]): string {
  const flat: (number | string | null)[] = [];
  for (const m of members) flat.push(m.i, m.deliveries, m.owner, m.until);
  return JSON.stringify(flat);
}

function decodeMembers(text: string): Member[] {
  const flat = JSON.parse(text) as [number, number, string | null, number][number][];
  const members: Member[] = [];
  for (let k = 0; k + 3 < flat.length; k += 4) {
    members.push({
      i: flat[k] as number,
      deliveries: flat[k + 1] as number,
      owner: flat[k + 2] as string | null,
      until: flat[k + 3] as number,
    });
  }
  return members;
}

function parsePayload(text: string | null): unknown {
  return text === null ? undefined : JSON.parse(text);
}

function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_") ? code : undefined;
}

function describe(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === "string" ? `${code}: ${message}` : message;
}
