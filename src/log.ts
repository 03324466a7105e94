// Structured logs through pino: one JSON object per line, `level` as its label ("info"), `time`
// (ISO 8601), `msg` and the fields. A host may pass its own pino logger instead.
import { type DestinationStream, pino } from "pino";
import type { LogLevel } from "./config.js";

export type LogFields = Record<string, unknown>;

/** pino's way: fields first, then the message. */
export interface LogFn {
  (fields: LogFields, msg: string): void;
  (msg: string): void;
}

/** What the hub calls on a logger: a pino logger fits, as does any with the same methods. */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

/** The hub's own logger: JSON lines on stdout, or to `write` (one line per call) when given. */
export function createLogger(level: LogLevel, write?: (line: string) => void): Logger {
  const destination: DestinationStream = write ? { write } : process.stdout;
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
