// Room to drain when the disk fills: a reserve file beside the database, given back to the disk
// when SQLite cannot write (SQLITE_FULL), so that claims and acks, which free space in the file,
// can still be committed. It is made again once the disk has room for it.
import { closeSync, openSync, rmSync, statfsSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";

const CHUNK = Buffer.alloc(1 << 20);

export class SpaceReserve {
  private made = false;

  /** `bytes` 0: no reserve (an in-memory database, or a caller that wants none). */
  constructor(
    readonly file: string,
    readonly bytes: number,
  ) {}

  /** True when the reserve file is on disk. */
  get held(): boolean {
    return this.made || this.bytes === 0;
  }

  /**
   * Writes the reserve file (real blocks: zeros written, never a sparse file). False when the
   * disk has no room for it; nothing is left behind then.
   */
  make(): boolean {
    if (this.held) return true;
    try {
      // Left by an earlier run: no need to write it again.
      if (statSync(this.file).size >= this.bytes) {
        this.made = true;
        return true;
      }
    } catch {
      // not there yet
    }
    let fd: number | undefined;
    try {
      fd = openSync(this.file, "w");
      for (let left = this.bytes; left > 0; left -= CHUNK.length) {
        writeSync(fd, CHUNK, 0, Math.min(left, CHUNK.length));
      }
      closeSync(fd);
      this.made = true;
    } catch {
      if (fd !== undefined) closeSync(fd);
      rmSync(this.file, { force: true });
      this.made = false;
    }
    return this.made;
  }

  /** Gives the reserve's space back to the disk. */
  release(): void {
    if (this.bytes === 0) return;
    rmSync(this.file, { force: true });
    this.made = false;
  }

  /** Bytes free for this process on the reserve's file system. */
  freeBytes(): number {
    const fs = statfsSync(dirname(this.file));
    return fs.bavail * fs.bsize;
  }
}
