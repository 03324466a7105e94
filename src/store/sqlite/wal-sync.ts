// Background WAL syncing for HUB_SYNC=normal. Commits then write the WAL without an fsync; the
// fsync comes at each checkpoint, which SQLite runs inside a commit: with ~16 MiB of WAL written
// since the last one, that commit (and every delivery and ack waiting on it) stalled for tens of
// milliseconds, the p99 of the whole hub at a moderate rate. Syncing the WAL on the thread pool
// shortly after commits leaves each checkpoint little to flush. It only adds durability: a
// commit's promise still settles when SQLite has written it, as before.
import { close, fdatasync, openSync } from "node:fs";

/** Least time between two background syncs (each flushes what the commits of that time wrote). */
const SYNC_EVERY_MS = 10;

export class WalSync {
  private fd: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private syncing = false;
  private closed = false;

  constructor(private readonly walPath: string) {}

  /** After a commit: a sync of the WAL starts on the thread pool within SYNC_EVERY_MS. */
  committed() {
    if (this.closed || this.timer !== null) return;
    this.timer = setTimeout(() => this.sync(), SYNC_EVERY_MS);
    this.timer.unref();
  }

  close() {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (!this.syncing) this.release();
  }

  private sync() {
    this.timer = null;
    if (this.closed || this.syncing) return;
    if (this.fd === null) {
      try {
        this.fd = openSync(this.walPath, "r");
      } catch {
        return; // No WAL (yet): nothing to flush ahead of SQLite.
      }
    }
    this.syncing = true;
    fdatasync(this.fd, () => {
      this.syncing = false;
      if (this.closed) this.release();
    });
  }

  private release() {
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) close(fd, () => {});
  }
}
