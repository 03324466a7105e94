// How the SQLite store names failures: SQLite's error codes, and UNAVAILABLE for the hub.
import { StoreError } from "../store.js";

/** A startup check that failed for a reason of our own (its message says what to do). */
export class SetupError extends Error {
  override name = "SetupError";
}

/** SQLite's error code (SQLITE_FULL, SQLITE_IOERR_WRITE, ...), when the error is SQLite's. */
export function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_") ? code : undefined;
}

/** An error as one line: its code, when it has one, and its message. */
export function describe(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === "string" ? `${code}: ${message}` : message;
}

/** A read or write the file refused: the hub answers UNAVAILABLE (retry later). */
export function unavailable(file: string, err: unknown, verb: "read" | "write", what: string): StoreError {
  return new StoreError(
    "UNAVAILABLE",
    `SQLite store ${file} cannot ${verb} (${describe(err)}); ${what}, retry later`,
    {
      cause: err,
    },
  );
}

export function closedError(file: string): StoreError {
  return new StoreError("UNAVAILABLE", `SQLite store ${file} is closed`);
}
