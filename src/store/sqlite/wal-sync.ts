// WAL syncing on the thread pool. SQLite then runs at synchronous=NORMAL (commits write the WAL
// without an fsync) and the store syncs the WAL itself, off the event loop:
// - HUB_SYNC=normal (`background`): shortly after commits, so that the checkpoints SQLite runs
//   inside a commit find little left to flush (one stalled the hub for tens of milliseconds, the p99
//   of the whole hub at a moderate rate). It only adds durability: a commit settles as before.
// - HUB_SYNC=full (`durable`): a commit's writes settle once an fdatasync of the WAL that began after
//   it has finished. That is what synchronous=FULL does in WAL mode (one WAL sync after each
//   commit), but SQLite does it inside COMMIT, holding the event loop for the length of an fsync;
//   here the event loop goes on meanwhile; the writes that arrive during a sync are committed
//   together when it ends (see idleThen) and the next sync covers them: group commit over fsync,
//   as databases do. (A commit forced by a full batch during a sync waits for the next one too.)
import { close, fdatasync, fdatasyncSync, openSync } from "node:fs";
import type { CommitSync } from "./group-commit.js";

/** Least time between two background syncs (each flushes what the commits of that time wrote). */
const SYNC_EVERY_MS = 10;

/** Called once what was committed before the call is on disk, or with the error that stopped it. */
export type Synced = (err: NodeJS.ErrnoException | null) => void;

/** Syncs a file descriptor's data: fs.fdatasync, or a stand-in in tests. */
export type SyncFn = (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => void;

export class WalSync implements CommitSync {
  private fd: number | null;
  private timer: NodeJS.Timeout | null = null;
  private syncing = false;
  private closed = false;
  /** Waiting for a sync that has not started yet (the running one began before they committed). */
  private waiting: Synced[] = [];
  /** Called once the running sync has ended (see idleThen). */
  private resume: (() => void) | null = null;

  private constructor(
    fd: number | null,
    private readonly walPath: string,
    private readonly syncFn: SyncFn,
  ) {
    this.fd = fd;
  }

  /** Background syncs for HUB_SYNC=normal; the WAL is opened at the first sync. */
  static background(walPath: string, syncFn: SyncFn = fdatasync): WalSync {
    return new WalSync(null, walPath, syncFn);
  }

  /**
   * Durable commits for HUB_SYNC=full, or null when the WAL cannot be opened (the store then leaves
   * the syncing to SQLite's synchronous=FULL).
   */
  static durable(walPath: string, syncFn: SyncFn = fdatasync): WalSync | null {
    try {
      return new WalSync(openSync(walPath, "r"), walPath, syncFn);
    } catch {
      return null;
    }
  }

  /** After a commit (background mode): a sync of the WAL starts within SYNC_EVERY_MS. */
  committed() {
    if (this.closed || this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.sync();
    }, SYNC_EVERY_MS);
    this.timer.unref();
  }

  /** After a commit (durable mode): `synced` runs once a sync that began after now has finished. */
  durable(synced: Synced) {
    this.waiting.push(synced);
    if (this.closed) this.syncNow();
    else this.sync();
  }

  /**
   * While a sync runs: remembers `resume` (the latest one given), to be called once it has ended,
   * and returns true. Returns false when no sync runs.
   */
  idleThen(resume: () => void): boolean {
    if (!this.syncing || this.closed) return false;
    this.resume = resume;
    return true;
  }

  /** Syncs what is still waiting, at once, then lets the file go. */
  close() {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.waiting.length > 0) this.syncNow();
    if (!this.syncing) this.release();
  }

  private sync() {
    if (this.closed || this.syncing) return;
    if (this.fd === null) {
      try {
        this.fd = openSync(this.walPath, "r");
      } catch {
        return; // No WAL (yet): nothing to flush ahead of SQLite.
      }
    }
    this.syncing = true;
    const covered = this.waiting;
    this.waiting = [];
    this.syncFn(this.fd, (err) => {
      this.syncing = false;
      for (const synced of covered) synced(err);
      const resume = this.resume;
      this.resume = null;
      // The writes held meanwhile are committed now, and the next sync covers them.
      resume?.();
      if (this.closed) {
        if (this.waiting.length > 0) this.syncNow();
        this.release();
      } else if (this.waiting.length > 0) this.sync();
    });
  }

  /** Closing: what waits is synced on this thread (close must not return before it is on disk). */
  private syncNow() {
    const covered = this.waiting;
    this.waiting = [];
    let error: NodeJS.ErrnoException | null = null;
    try {
      if (this.fd !== null) fdatasyncSync(this.fd);
    } catch (err) {
      error = err as NodeJS.ErrnoException;
    }
    for (const synced of covered) synced(error);
  }

  private release() {
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) close(fd, () => {});
  }
}
