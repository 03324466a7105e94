// SQLite store: the default durable store, one file on local disk (better-sqlite3, WAL).
//
// Open it with `SqliteStore.open({ file, sync })`, which is SYNCHRONOUS: it returns the store
// or throws an Error naming the file and saying what to do (corrupt file, unwritable path,
// file from a newer build). It never starts empty over a file it cannot read.
//
// Schema (PRAGMA user_version 2; version 1 was a development format, refused at open):
// - `bodies`: one row per stored message (id, event, payload as JSON text, publishedAt, from),
//   whatever the number of queues it went to; indexed by messageId (a UUIDv7, time-ordered).
//   `refs` counts the entries and dead letters that point at it: set at insert to the number of
//   target queues, decremented when one is removed (a move entry <-> dead letter keeps it); the
//   body is deleted when the last one goes.
// - `entries`: one row per (queue, message), keyed by an INTEGER sequence: FIFO is store order.
//   Leases (owner, until), deliveries and the TTL are columns, so they survive a restart.
// - `dead`: dead letters, referencing bodies too.
// - `queues` (id, ns, name, size), `events` + `subs` (subscriptions, in the order they were
//   made), `dedup` (idempotency keys), `meta`.
// No triggers: each operation counts what it adds and removes per queue and applies it with one
// UPDATE of `queues.size` per queue touched, before its savepoint is released.
//
// Acks: a claim remembers, per message id, the entry it leased ({ seq, queue }, in memory,
// bounded); an ack then deletes by rowid, checking queue, message id (sequence numbers can be
// reused after deletes) and, in a group queue, the lease owner in the same DELETE. Without a hint,
// or when the check fails, it looks the entry up by message id as before.
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
}

const SCHEMA_VERSION = 2;
/** Ack hints kept at most (about 100 B each). */
const HINTS_MAX = 200_000;

const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE queues (
  id INTEGER PRIMARY KEY,
  ns TEXT NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL DEFAULT 0,
  UNIQUE (ns, name)
);
CREATE TABLE bodies (
  id INTEGER PRIMARY KEY,
  message_id TEXT NOT NULL,
  event TEXT NOT NULL,
  payload TEXT,
  published_at INTEGER NOT NULL,
  sender TEXT,
  refs INTEGER NOT NULL
);
CREATE INDEX bodies_message_id ON bodies (message_id);
CREATE TABLE entries (
  seq INTEGER PRIMARY KEY,
  queue_id INTEGER NOT NULL,
  body INTEGER NOT NULL,
  deliveries INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_until INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER
);
CREATE INDEX entries_queue ON entries (queue_id);
CREATE INDEX entries_body ON entries (body, queue_id);
CREATE INDEX entries_leased ON entries (queue_id, lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE dead (
  id INTEGER PRIMARY KEY,
  queue_id INTEGER NOT NULL,
  body INTEGER NOT NULL,
  deliveries INTEGER NOT NULL,
  reason TEXT NOT NULL,
  dead_at INTEGER NOT NULL
);
CREATE INDEX dead_body ON dead (body);
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
`;

const OTHERS_LEASED = "lease_owner IS NOT NULL AND lease_owner <> ? AND lease_until > ?";
// Leased rows are returned too (and skipped by the caller), so the claim cursor learns when their
// leases run out.
const CLAIM_SCAN = `SELECT e.seq, e.body, e.deliveries, e.expires_at AS expiresAt, e.lease_until AS leaseUntil,
  b.message_id AS messageId, b.event, b.payload, b.published_at AS publishedAt, b.sender
  FROM entries e INDEXED BY entries_queue JOIN bodies b ON b.id = e.body
  WHERE e.queue_id = ? AND e.seq > ?`;
const DEAD_BY_IDS = `SELECT d.id, d.queue_id AS queueId, q.name AS queue, d.body
  FROM bodies b JOIN dead d ON d.body = b.id JOIN queues q ON q.id = d.queue_id
  WHERE b.message_id IN (SELECT value FROM json_each(?)) AND q.ns = ?`;
const STATS = `SELECT q.ns, q.name AS queue, q.size AS pending,
  (SELECT count(*) FROM entries e WHERE e.queue_id = q.id AND e.lease_owner IS NOT NULL AND e.lease_until > ?) AS inFlight
  FROM queues q WHERE q.size > 0`;
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
  dropEvent: `DELETE FROM entries WHERE seq IN (SELECT e.seq FROM entries e JOIN bodies b ON b.id = e.body
    WHERE e.queue_id = ? AND b.event = ?) RETURNING queue_id AS queueId, body`,

  dedupGet: "SELECT ids, expires_at AS expiresAt FROM dedup WHERE ns = ? AND key = ?",
  dedupPut: "INSERT OR REPLACE INTO dedup (ns, key, ids, expires_at) VALUES (?, ?, ?, ?)",
  bodyAdd:
    "INSERT INTO bodies (message_id, event, payload, published_at, sender, refs) VALUES (?, ?, ?, ?, ?, ?)",
  // Dropping n references: delete the body when they were the last, else count them down.
  bodyFree: "DELETE FROM bodies WHERE id = ? AND refs <= ?",
  bodyUnref: "UPDATE bodies SET refs = refs - ? WHERE id = ?",
  entryAdd: "INSERT INTO entries (queue_id, body, expires_at) VALUES (?, ?, ?)",
  entryDel: "DELETE FROM entries WHERE seq = ?",
  oldest: "SELECT seq, body, deliveries FROM entries WHERE queue_id = ? ORDER BY seq LIMIT 1",
  deadAdd: "INSERT INTO dead (queue_id, body, deliveries, reason, dead_at) VALUES (?, ?, ?, ?, ?)",

  // No LIMIT ?: a bound LIMIT makes SQLite re-prepare the statement on every run (~3x slower
  // here); claim stops iterating instead, so it still reads only the rows it needs.
  claimScan: `${CLAIM_SCAN} ORDER BY e.seq`,
  claimScanEvent: `${CLAIM_SCAN} AND b.event = ? ORDER BY e.seq`,
  lease: `UPDATE entries SET deliveries = deliveries + 1, lease_owner = ?, lease_until = ?
    WHERE seq IN (SELECT value FROM json_each(?))`,
  releaseAll: `UPDATE entries SET lease_owner = NULL, lease_until = 0
    WHERE queue_id = ? AND lease_owner = ? AND lease_until > 0`,
  releaseIds: `UPDATE entries SET lease_owner = NULL, lease_until = 0
    WHERE queue_id = ? AND lease_owner = ? AND lease_until > 0
    AND body IN (SELECT id FROM bodies WHERE message_id IN (SELECT value FROM json_each(?)))`,
  // Pinned: by the v7 id, then (body, queue); never a scan of the queue, whatever the statistics.
  ackFind: `SELECT e.seq, e.body, e.lease_owner AS leaseOwner
    FROM bodies b CROSS JOIN entries e INDEXED BY entries_body ON e.body = b.id
    WHERE b.message_id = ? AND e.queue_id = ? LIMIT 1`,
  // By the claim's hint: one rowid lookup, checked against queue, message id (and lease owner).
  ackHint: `DELETE FROM entries WHERE seq = ? AND queue_id = ?
    AND (SELECT message_id FROM bodies WHERE id = entries.body) = ? RETURNING body`,
  ackHintLeased: `DELETE FROM entries WHERE seq = ? AND queue_id = ?
    AND (SELECT message_id FROM bodies WHERE id = entries.body) = ? AND lease_owner = ? RETURNING body`,

  pendingEvent: `SELECT count(*) FROM entries e JOIN bodies b ON b.id = e.body
    WHERE e.queue_id = ? AND b.event = ?`,
  othersLeased: `SELECT count(*) FROM entries WHERE queue_id = ? AND ${OTHERS_LEASED}`,
  othersLeasedEvent: `SELECT count(*) FROM entries e JOIN bodies b ON b.id = e.body
    WHERE e.queue_id = ? AND b.event = ?
    AND e.lease_owner IS NOT NULL AND e.lease_owner <> ? AND e.lease_until > ?`,

  sweepEntries:
    "DELETE FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING queue_id AS queueId, body",
  sweepDedup: "DELETE FROM dedup WHERE expires_at <= ?",

  deadFind: `${DEAD_BY_IDS} ORDER BY d.id`,
  deadDel: "DELETE FROM dead WHERE id = ?",
  deadDrop: `DELETE FROM dead WHERE id IN (SELECT id FROM (${DEAD_BY_IDS})) RETURNING body`,
  requeueEntry: "INSERT INTO entries (queue_id, body) VALUES (?, ?)",
  listDead: `SELECT b.message_id AS messageId, b.event, b.payload, b.published_at AS publishedAt, b.sender,
    d.deliveries, q.name AS queue, d.reason, d.dead_at AS deadAt
    FROM dead d JOIN queues q ON q.id = d.queue_id JOIN bodies b ON b.id = d.body
    WHERE q.ns = ? ORDER BY d.id LIMIT ?`,

  stats: `${STATS} ORDER BY q.id`,
  statsNs: `${STATS} AND q.ns = ? ORDER BY q.id`,
  subscriptions: `${SUBSCRIPTIONS}
    ORDER BY (SELECT min(e2.id) FROM events e2 WHERE e2.ns = ev.ns), ev.id, s.id`,
  subscriptionsNs: `${SUBSCRIPTIONS} WHERE ev.ns = ? ORDER BY ev.id, s.id`,
} as const;

type Statements = { [K in keyof typeof SQL]: Database.Statement<unknown[], unknown> };

interface ClaimRow {
  seq: number;
  leaseUntil: number;
  body: number;
  deliveries: number;
  expiresAt: number | null;
  messageId: string;
  event: string;
  payload: string | null;
  publishedAt: number;
  sender: string | null;
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
      db = new Database(file, { timeout: 5000 });
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
  private ops: Op[] = [];
  private timer: { immediate: boolean; cancel(): void } | undefined;
  private closed = false;
  private commitCount = 0;
  /** Set when a batch or a write of it failed for a storage reason; cleared by a clean batch. */
  private failing = false;
  /**
   * queues.id → claim cursor: every entry up to `seq` is leased (or gone), and the first of
   * those leases runs out at `until`. Claims start after it instead of re-reading a window of
   * leased entries each time. Dropped on release and on every rollback; stale once `until` passes.
   */
  private readonly cursors = new Map<number, { seq: number; until: number }>();
  /** ns\0queue → queues.id. Rows are never deleted; cleared on every rollback. */
  private readonly queueIds = new Map<string, number>();
  /** queues.id → entries added minus removed by the running operation; applied before its RELEASE. */
  private readonly sizeDelta = new Map<number, number>();
  /**
   * messageId → the entry a claim leased it from. A hint only: acks check it against the row
   * (seq, queue, message id), so a stale one (rolled back, seq reused) just falls back to the
   * message id index. Deleted on ack; cleared whole when it grows past HINTS_MAX.
   */
  private readonly hints = new Map<string, { seq: number; queueId: number }>();

  private constructor(
    private readonly database: Database.Database,
    private readonly file: string,
    opts: SqliteStoreOptions,
  ) {
    this.flushIntervalMs = Math.max(0, opts.flushIntervalMs ?? 1);
    this.maxBatch = Math.max(1, opts.maxBatch ?? 256);
    this.s = Object.fromEntries(
      Object.entries(SQL).map(([name, sql]) => [name, database.prepare(sql)]),
    ) as Statements;
    for (const name of [
      "queueGet",
      "queueSize",
      "eventGet",
      "consumerGroups",
      "ackHint",
      "ackHintLeased",
    ] as const)
      this.s[name].pluck();
    for (const name of ["pendingEvent", "othersLeased", "othersLeasedEvent"] as const) this.s[name].pluck();
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
    let payloads: (string | null)[];
    try {
      payloads = req.messages.map((m) =>
        m.payload === undefined ? null : (JSON.stringify(m.payload) ?? null),
      );
    } catch (err) {
      return Promise.reject(err);
    }
    return this.write(() => this.doEnqueue(req, payloads));
  }

  claim(req: ClaimRequest): Promise<ClaimResult> {
    return this.write(() => this.doClaim(req));
  }

  release(ns: string, queue: QueueName, consumer: string, messageIds?: string[]): Promise<number> {
    return this.write(() => {
      const queueId = this.queueId(ns, queue, false);
      if (queueId === undefined) return 0;
      this.cursors.delete(queueId);
      const r = messageIds
        ? this.s.releaseIds.run(queueId, consumer, JSON.stringify(messageIds))
        : this.s.releaseAll.run(queueId, consumer);
      return r.changes;
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
        const hint = this.hints.get(messageId);
        for (const queue of queues) {
          // Queues are tried in order (own queue first) whatever the hint says.
          if (hint !== undefined && hint.queueId === queue.id) {
            const body = (
              queue.group
                ? this.s.ackHintLeased.get(hint.seq, queue.id, messageId, clientId)
                : this.s.ackHint.get(hint.seq, queue.id, messageId)
            ) as number | undefined;
            if (body !== undefined) {
              this.entriesGone(queue.id, body);
              removed.push(messageId);
              break;
            }
          }
          const row = this.s.ackFind.get(messageId, queue.id) as
            | { seq: number; body: number; leaseOwner: string | null }
            | undefined;
          if (!row || (queue.group && row.leaseOwner !== clientId)) continue;
          this.s.entryDel.run(row.seq);
          this.entriesGone(queue.id, row.body);
          removed.push(messageId);
          break;
        }
        if (hint !== undefined) this.hints.delete(messageId);
      }
      return removed;
    });
  }

  sweep(now: number): Promise<number> {
    return this.write(() => {
      const removed = this.removedRows(this.s.sweepEntries.all(now) as { queueId: number; body: number }[]);
      this.s.sweepDedup.run(now);
      return removed;
    });
  }

  requeueDead(ns: string, messageIds: string[]): Promise<QueueName[]> {
    return this.write(() => {
      const queues = new Set<QueueName>();
      if (messageIds.length === 0) return [];
      const rows = this.s.deadFind.all(JSON.stringify(messageIds), ns) as {
        id: number;
        queueId: number;
        queue: QueueName;
        body: number;
      }[];
      for (const row of rows) {
        // The reference moves from the dead letter to the new entry: `refs` stays.
        const requeued = this.s.requeueEntry.run(row.queueId, row.body);
        this.behindCursor(row.queueId, requeued.lastInsertRowid);
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
      const bodies = this.s.deadDrop.all(JSON.stringify(messageIds), ns) as { body: number }[];
      for (const { body } of bodies) this.unref(body, 1);
      return bodies.length;
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
        const group = isGroupQueue(name);
        if (event === undefined) {
          count += this.s.queueSize.get(queueId) as number;
          if (group) count -= this.s.othersLeased.get(queueId, clientId, now) as number;
        } else {
          count += this.s.pendingEvent.get(queueId, event) as number;
          if (group) count -= this.s.othersLeasedEvent.get(queueId, event, clientId, now) as number;
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
      return (ns === undefined ? this.s.stats.all(now) : this.s.statsNs.all(now, ns)) as QueueStats[];
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
          this.applySizes();
          this.s.release.run();
          outcomes.push({ ok: true, value });
        } catch (err) {
          // SQLite may have rolled back the whole transaction (SQLITE_FULL, IOERR, ...).
          this.sizeDelta.clear();
          if (!this.database.inTransaction) throw err;
          this.s.rollbackTo.run();
          this.s.release.run();
          this.queueIds.clear();
          this.cursors.clear();
          if (!(err instanceof StoreError) && sqliteCode(err)) opFailed = true;
          outcomes.push({ ok: false, error: this.opError(err) });
        }
      }
      this.s.commit.run();
      this.commitCount++;
    } catch (err) {
      failure = { cause: err };
      if (this.database.inTransaction) {
        try {
          this.s.rollback.run();
        } catch {
          // nothing more to undo
        }
      }
      this.queueIds.clear();
      this.cursors.clear();
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

  private doEnqueue(req: EnqueueRequest, payloads: (string | null)[]): EnqueueResult {
    const { ns, now } = req;
    if (req.key !== undefined) {
      const seen = this.s.dedupGet.get(ns, req.key) as { ids: string; expiresAt: number } | undefined;
      if (seen && seen.expiresAt > now) {
        return { duplicate: true, messageIds: JSON.parse(seen.ids) as string[], queues: [], dropped: 0 };
      }
    }
    const subscribers = new Map<string, { clientId: string; grp: string | null }[]>();
    const targets = req.messages.map((m) => this.targets(ns, m, subscribers));
    const added = new Map<QueueName, number>();
    for (const queues of targets) for (const q of queues) added.set(q, (added.get(q) ?? 0) + 1);
    const max = req.maxQueueLength;
    if (max > 0 && req.overflow === "reject") {
      for (const [queue, n] of added) {
        const queueId = this.queueId(ns, queue, false);
        const size = queueId === undefined ? 0 : (this.s.queueSize.get(queueId) as number);
        if (size + n > max) throw new StoreError("QUEUE_FULL", `queue ${queue} holds ${size} of ${max}`);
      }
    }
    const queueIds = new Map<QueueName, number>();
    for (const queue of added.keys()) queueIds.set(queue, this.queueId(ns, queue, true) as number);
    let dropped = 0;
    const dropOldest = max > 0 && req.overflow !== "reject";
    // queues.id → entries it holds, counting this request's (only under drop-oldest).
    const sizes = new Map<number, number>();
    if (dropOldest) for (const id of queueIds.values()) sizes.set(id, this.s.queueSize.get(id) as number);
    req.messages.forEach((m, i) => {
      const queues = targets[i] as QueueName[];
      if (queues.length === 0) return;
      const body = this.s.bodyAdd.run(
        m.messageId,
        m.event,
        payloads[i],
        m.publishedAt,
        m.from ?? null,
        queues.length,
      ).lastInsertRowid;
      for (const queue of queues) {
        const queueId = queueIds.get(queue) as number;
        this.behindCursor(queueId, this.s.entryAdd.run(queueId, body, m.expiresAt ?? null).lastInsertRowid);
        // Under `reject` the check above keeps every queue within max; under `drop-oldest` each
        // insert past max dead-letters the oldest entry (its body reference moves to the dead letter).
        if (dropOldest) {
          const size = (sizes.get(queueId) as number) + 1;
          sizes.set(queueId, size);
          if (size > max) {
            const oldest = this.s.oldest.get(queueId) as { seq: number; body: number; deliveries: number };
            this.s.deadAdd.run(queueId, oldest.body, oldest.deliveries, "overflow", now);
            this.s.entryDel.run(oldest.seq);
            sizes.set(queueId, size - 1);
            this.grow(queueId, -1);
            dropped++;
          }
        }
      }
    });
    for (const [queue, n] of added) this.grow(queueIds.get(queue) as number, n);
    const messageIds = req.messages.map((m) => m.messageId);
    if (req.key !== undefined) {
      this.s.dedupPut.run(ns, req.key, JSON.stringify(messageIds), now + req.dedupWindowMs);
    }
    return { duplicate: false, messageIds, queues: [...added.keys()], dropped };
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

  private doClaim(req: ClaimRequest): ClaimResult {
    const result: ClaimResult = { messages: [], deadLettered: 0, expired: 0 };
    const queueId = this.queueId(req.ns, req.queue, false);
    if (queueId === undefined || !(req.limit > 0)) return result;
    const { now, maxDeliveries } = req;
    const until = now + req.leaseMs;
    // An event filter skips other events' entries, so it neither uses nor moves the cursor.
    const tracked = req.event === undefined;
    const cursor = tracked ? this.cursors.get(queueId) : undefined;
    const valid = cursor !== undefined && now < cursor.until;
    let after = valid ? cursor.seq : Number.MIN_SAFE_INTEGER;
    let firstExpiry = valid ? cursor.until : Number.POSITIVE_INFINITY;
    // Reads only what it needs, in pages of the remaining limit; expired and dead-lettered
    // entries do not count toward the limit, so it reads on past them.
    for (;;) {
      const want = req.limit - result.messages.length;
      const rows: ClaimRow[] = [];
      const scan =
        req.event === undefined
          ? this.s.claimScan.iterate(queueId, after)
          : this.s.claimScanEvent.iterate(queueId, after, req.event);
      // Collected first (a connection cannot write while a statement iterates), then applied.
      let last = after;
      for (const row of scan as IterableIterator<ClaimRow>) {
        last = row.seq;
        if (row.leaseUntil > now) {
          firstExpiry = Math.min(firstExpiry, row.leaseUntil);
          continue;
        }
        rows.push(row);
        if (rows.length >= want) break;
      }
      after = last;
      const leased: number[] = [];
      for (const row of rows) {
        if (row.expiresAt !== null && row.expiresAt <= now) {
          this.s.entryDel.run(row.seq);
          this.entriesGone(queueId, row.body);
          result.expired++;
        } else if (maxDeliveries > 0 && row.deliveries >= maxDeliveries) {
          // The body reference moves to the dead letter.
          this.s.deadAdd.run(queueId, row.body, row.deliveries, "max-deliveries", now);
          this.s.entryDel.run(row.seq);
          this.grow(queueId, -1);
          result.deadLettered++;
        } else {
          leased.push(row.seq);
          this.hint(row.messageId, row.seq, queueId);
          result.messages.push(toMessage(row, row.deliveries + 1));
        }
      }
      if (leased.length > 0) {
        this.s.lease.run(req.consumer, until, JSON.stringify(leased));
        firstExpiry = Math.min(firstExpiry, until);
      }
      if (rows.length < want || result.messages.length >= req.limit) {
        if (tracked) this.cursors.set(queueId, { seq: after, until: firstExpiry });
        return result;
      }
    }
  }

  // ---- helpers --------------------------------------------------------------------------------

  /** A new entry may reuse a deleted sequence number at or below a cursor: then claims must look again. */
  private behindCursor(queueId: number, seq: number | bigint) {
    const cursor = this.cursors.get(queueId);
    if (cursor !== undefined && Number(seq) <= cursor.seq) this.cursors.delete(queueId);
  }

  private consumerQueueNames(ns: string, clientId: string): QueueName[] {
    const groups = this.s.consumerGroups.all(clientId, ns) as string[];
    return [clientQueue(clientId), ...groups.map(groupQueue)];
  }

  private dropEvent(ns: string, queue: QueueName, event: string): number {
    const queueId = this.queueId(ns, queue, false);
    if (queueId === undefined) return 0;
    return this.removedRows(this.s.dropEvent.all(queueId, event) as { queueId: number; body: number }[]);
  }

  /** Counts entries added to (n > 0) or removed from (n < 0) a queue by the running operation. */
  private grow(queueId: number, n: number) {
    this.sizeDelta.set(queueId, (this.sizeDelta.get(queueId) ?? 0) + n);
  }

  /** An entry was deleted (not moved to dead letters): its queue shrinks, its body loses a reference. */
  private entriesGone(queueId: number, body: number) {
    this.grow(queueId, -1);
    this.unref(body, 1);
  }

  /** Entries deleted by one statement (RETURNING queue_id, body). Returns how many. */
  private removedRows(rows: { queueId: number; body: number }[]): number {
    const refs = new Map<number, number>();
    for (const { queueId, body } of rows) {
      this.grow(queueId, -1);
      refs.set(body, (refs.get(body) ?? 0) + 1);
    }
    for (const [body, n] of refs) this.unref(body, n);
    return rows.length;
  }

  /** Drops n references to a body, deleting it when they were the last. */
  private unref(body: number, n: number) {
    if (this.s.bodyFree.run(body, n).changes === 0) this.s.bodyUnref.run(n, body);
  }

  /** Writes the running operation's size changes: one UPDATE per queue touched. */
  private applySizes() {
    if (this.sizeDelta.size === 0) return;
    for (const [queueId, n] of this.sizeDelta) if (n !== 0) this.s.queueGrow.run(n, queueId);
    this.sizeDelta.clear();
  }

  private hint(messageId: string, seq: number, queueId: number) {
    if (this.hints.size >= HINTS_MAX) this.hints.clear();
    this.hints.set(messageId, { seq, queueId });
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
  } else if (version !== SCHEMA_VERSION) {
    throw new SetupError(`unknown schema version ${version}; restore a backup or move the file aside`);
  }
  // A write at open: a file that can be read but not written fails now, not at the first publish.
  db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_at', ?)").run(Date.now());
}

function toMessage(row: ClaimRow, deliveries: number): Message {
  return {
    messageId: row.messageId,
    event: row.event,
    payload: parsePayload(row.payload),
    publishedAt: row.publishedAt,
    from: row.sender,
    deliveries,
  };
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
