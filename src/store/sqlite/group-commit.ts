// Group commit: every write is queued and run, in arrival order, inside ONE transaction that is
// committed `flushIntervalMs` after the first queued write (setImmediate when 0) or as soon as
// `maxBatch` writes are queued. Each write runs inside its own SAVEPOINT, so one refusal
// (QUEUE_FULL) rolls back only that write; each promise settles only after COMMIT returns. If the
// commit itself fails (disk full, read-only, I/O error), the whole batch is rolled back and every
// write of it rejects with StoreError UNAVAILABLE; later batches try again. With HUB_SYNC=full the
// promises settle once the WAL sync that followed the commit is done (the `sync` hook), and
// writes queued while a sync runs are committed when it ends; after a failed sync
// every write is refused until a restart. Reads run directly on the same connection,
// outside any transaction, so they see exactly the committed writes.
import type Database from "better-sqlite3";
import { StoreError } from "../store.js";
import { closedError, describe, sqliteCode, unavailable } from "./errors.js";

/** What the store does around each write of a batch. */
export interface BatchHooks {
  /** After a write ran, before its savepoint is released: store what it changed. */
  afterWrite(): void;
  /** After its savepoint is released: the write is part of the batch. */
  writeKept(): void;
  /** After a rollback of one write (`batch` false) or of the whole batch: forget what memory holds of it. */
  afterRollback(batch: boolean): void;
  /** Just before COMMIT: store what the batch's writes added up to. */
  beforeCommit(): void;
  /** After each commit. */
  afterCommit(): void;
  /** Once the batch is over, outside any transaction: SQLite refused a write of it (disk full, I/O error). */
  storageFailed(err: unknown): void;
  /**
   * When the store makes commits durable itself (HUB_SYNC=full: the WalSync, see wal-sync.ts): a
   * batch's writes settle once the sync after its commit is done, not at COMMIT.
   */
  sync?: CommitSync;
}

/** Syncs commits off the event loop (HUB_SYNC=full). */
export interface CommitSync {
  /** After a commit: calls `synced` once what it wrote is on disk. */
  durable(synced: (err: unknown) => void): void;
  /**
   * True while a sync runs, and then calls `resume` once it has ended. A batch due meanwhile waits
   * to be committed: its writes would wait for the next sync anyway, so one commit per sync
   * instead of several (fewer commits, fewer syncs, the same latency).
   */
  idleThen(resume: () => void): boolean;
}

export interface GroupCommitOptions {
  /** Longest wait before a queued write is committed. @default 1 (0 = next setImmediate) */
  flushIntervalMs?: number;
  /** Commit at once when this many writes are queued. @default 256 */
  maxBatch?: number;
}

interface Op {
  run(): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

const TRANSACTION = {
  begin: "BEGIN IMMEDIATE",
  commit: "COMMIT",
  rollback: "ROLLBACK",
  savepoint: "SAVEPOINT op",
  release: "RELEASE op",
  rollbackTo: "ROLLBACK TO op",
} as const;

export class GroupCommit {
  private readonly t: { [K in keyof typeof TRANSACTION]: Database.Statement<unknown[], unknown> };
  private readonly flushIntervalMs: number;
  private readonly maxBatch: number;
  private ops: Op[] = [];
  private timer: { immediate: boolean; cancel(): void } | undefined;
  /** Queued writes wait for the running WAL sync to end (CommitSync.idleThen). */
  private held = false;
  private closedFlag = false;
  private commitCount = 0;
  /** Set when a batch or a write of it failed for a storage reason; cleared by a clean batch. */
  private failingFlag = false;
  /**
   * Set for good when a sync of the WAL failed: what that batch wrote is not known to be on disk,
   * and neither is anything after it (WAL frames are checksummed in a chain, so recovery stops at
   * the first one lost), so no later write can be acked as durable until the hub restarts.
   */
  private syncFailure: StoreError | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly file: string,
    opts: GroupCommitOptions,
    private readonly hooks: BatchHooks,
  ) {
    this.flushIntervalMs = Math.max(0, opts.flushIntervalMs ?? 1);
    this.maxBatch = Math.max(1, opts.maxBatch ?? 256);
    this.t = Object.fromEntries(
      Object.entries(TRANSACTION).map(([name, sql]) => [name, db.prepare(sql)]),
    ) as GroupCommit["t"];
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Transactions committed so far (one per batch of writes). */
  get commits(): number {
    return this.commitCount;
  }

  /** True while the last batch (or a write of it) failed for a storage reason. */
  get failing(): boolean {
    return this.failingFlag;
  }

  /** Queues a write; it settles once its batch is committed (or refused). */
  write<T>(run: () => T): Promise<T> {
    if (this.closedFlag) return Promise.reject(closedError(this.file));
    if (this.syncFailure) return Promise.reject(this.syncFailure);
    return new Promise<T>((resolve, reject) => {
      this.ops.push({ run, resolve: resolve as (value: unknown) => void, reject });
      // A full batch is committed on the next turn of the event loop, never inside the caller:
      // a synchronous commit would settle promises in microtasks, and busy callers could then
      // starve timers and socket I/O.
      if (this.ops.length >= this.maxBatch) this.schedule(true);
      else if (!this.timer && !this.held) this.schedule(this.flushIntervalMs === 0);
    });
  }

  /** Runs a read at once, outside any transaction. */
  read<T>(run: () => T): Promise<T> {
    if (this.closedFlag) return Promise.reject(closedError(this.file));
    try {
      return Promise.resolve(run());
    } catch (err) {
      return Promise.reject(
        sqliteCode(err) ? unavailable(this.file, err, "read", "nothing was changed") : err,
      );
    }
  }

  /** Commits the writes still queued; later writes and reads are refused. */
  close() {
    if (this.closedFlag) return;
    this.closedFlag = true;
    while (this.ops.length > 0) this.flush();
    this.cancelTimer();
  }

  private schedule(immediate: boolean) {
    if (this.timer?.immediate || (this.timer && !immediate)) return;
    this.cancelTimer();
    const flush = () => {
      this.timer = undefined;
      if (this.ops.length < this.maxBatch && this.holdForSync()) return;
      this.flush();
    };
    this.timer = immediate
      ? { immediate, cancel: clearImmediate.bind(null, setImmediate(flush)) }
      : { immediate, cancel: clearTimeout.bind(null, setTimeout(flush, this.flushIntervalMs)) };
  }

  /** True when the queued writes wait for the running sync (they are flushed when it ends). */
  private holdForSync(): boolean {
    if (this.held) return true;
    if (this.closedFlag || this.hooks.sync === undefined) return false;
    this.held = this.hooks.sync.idleThen(() => {
      this.held = false;
      this.flush();
    });
    return this.held;
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
    this.held = false;
    const batch = this.ops.splice(0, this.maxBatch);
    if (this.ops.length > 0) this.schedule(true);
    if (batch.length === 0) return;
    if (this.syncFailure) {
      for (const op of batch) op.reject(this.syncFailure);
      return;
    }
    const outcomes: Outcome[] = [];
    let failure: { cause: unknown } | undefined;
    let opFailed: unknown;
    try {
      this.t.begin.run();
      for (const op of batch) {
        this.t.savepoint.run();
        try {
          const value = op.run();
          this.hooks.afterWrite();
          this.t.release.run();
          this.hooks.writeKept();
          outcomes.push({ ok: true, value });
        } catch (err) {
          // SQLite may have rolled back the whole transaction (SQLITE_FULL, IOERR, ...).
          this.hooks.afterRollback(false);
          if (!this.db.inTransaction) throw err;
          this.t.rollbackTo.run();
          this.t.release.run();
          if (!(err instanceof StoreError) && sqliteCode(err)) opFailed ??= err;
          outcomes.push({ ok: false, error: this.opError(err) });
        }
      }
      this.hooks.beforeCommit();
      this.t.commit.run();
      this.commitCount++;
      this.hooks.afterCommit();
    } catch (err) {
      failure = { cause: err };
      if (this.db.inTransaction) {
        try {
          this.t.rollback.run();
        } catch {
          // nothing more to undo
        }
      }
      this.hooks.afterRollback(true);
    }
    if (failure !== undefined) {
      this.failingFlag = true;
      this.hooks.storageFailed(failure.cause);
      const error = unavailable(this.file, failure.cause, "write", "nothing of this batch was stored");
      for (const op of batch) op.reject(error);
      return;
    }
    this.failingFlag = opFailed !== undefined;
    if (opFailed !== undefined) this.hooks.storageFailed(opFailed);
    const settle = () =>
      batch.forEach((op, i) => {
        const outcome = outcomes[i] as Outcome;
        if (outcome.ok) op.resolve(outcome.value);
        else op.reject(outcome.error);
      });
    if (this.hooks.sync === undefined) return settle();
    this.hooks.sync.durable((err) => {
      if (!err && this.syncFailure === undefined) return settle();
      // Committed, but not known to be on disk: the writer must not count on it (nor on its absence).
      if (this.syncFailure === undefined) {
        this.hooks.storageFailed(err);
        this.syncFailure = new StoreError(
          "UNAVAILABLE",
          `SQLite store ${this.file}: syncing its WAL failed (${describe(err)}); what it wrote since is not known to be on disk: restart the hub (SQLite then recovers what the disk holds)`,
          { cause: err },
        );
      }
      this.failingFlag = true;
      for (const op of batch) op.reject(this.syncFailure);
    });
  }

  private opError(err: unknown) {
    if (err instanceof StoreError || !sqliteCode(err)) return err;
    return unavailable(this.file, err, "write", "nothing of this operation was stored");
  }
}
