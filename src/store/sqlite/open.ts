// Opening the SQLite store's file: its folder, the pragmas the store relies on, the schema, and
// errors that name the file and say what to do. It never starts empty over a file it cannot read.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import type { SyncLevel } from "../../config.js";
import { describe, SetupError, sqliteCode } from "./errors.js";
import { ensureSchema } from "./schema.js";

/** WAL pages after which SQLite checkpoints (a smaller reserve lowers it: see SqliteStore). */
export const WAL_CHECKPOINT_PAGES = 4000;

/** Codes (or their prefixes) of SQLite errors that say the file cannot be used as it is. */
const CORRUPT = ["SQLITE_NOTADB", "SQLITE_CORRUPT"];
const UNWRITABLE = ["SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM", "SQLITE_FULL"];

/**
 * Opens (creating when missing) the store file and checks it. Synchronous: returns the open
 * connection and the file's absolute path, or throws an Error whose message names the file and
 * what to do about it.
 */
export function openDatabase(path: string, sync: SyncLevel): { db: Database.Database; file: string } {
  const file = path === ":memory:" ? path : resolve(path);
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
    prepareDatabase(db, sync, file === ":memory:");
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
  return { db, file };
}

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
  db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
  const check = db.pragma("quick_check", { simple: true });
  if (check !== "ok") {
    const err = new Error(`quick_check: ${String(check)}`) as Error & { code: string };
    err.code = "SQLITE_CORRUPT";
    throw err;
  }
  ensureSchema(db);
  // A write at open: a file that can be read but not written fails now, not at the first publish.
  db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_at', ?)").run(Date.now());
}
