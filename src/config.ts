// Configuration is read from the environment once, here, into a typed object.
// The core never reads process.env. Every name below is in .env.example and the README.
import { NAMESPACE_PATTERN } from "./protocol.js";
import type { OverflowPolicy } from "./store/store.js";

export type StoreKind = "sqlite" | "memory" | "redis";
export type SyncLevel = "off" | "normal" | "full";
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export interface HubConfig {
  /** @default 3000 (0 picks a free port) */
  port: number;
  /** @default "0.0.0.0" */
  host: string;
  /** @default "sqlite" */
  store: StoreKind;
  /** SQLite file. @default "./data/hub.db" */
  db: string;
  /** SQLite synchronous level: `normal` survives kill -9, `full` also power loss. @default "normal" */
  sync: SyncLevel;
  /** Longest wait before a group commit; 0 commits at the end of the current event-loop turn. @default 0 */
  flushMs: number;
  /** @default "redis://127.0.0.1:6379" */
  redisUrl: string;
  /** @default "queuehub:" */
  redisPrefix: string;
  /** Enables JWT (HS256) tokens when set. */
  secret: string | null;
  /** Allowed topic namespaces besides `/`; null means any valid name. */
  namespaces: string[] | null;
  /** @default "info" */
  logLevel: LogLevel;
  /** Unacked deliveries in flight per connection. @default 256 */
  prefetch: number;
  /** Redelivery after this long without an ack. @default 30000 */
  ackTimeoutMs: number;
  /** Dead-letter after this many deliveries; 0 = never. @default 10 */
  maxDeliveries: number;
  /** Default time to live of a message; 0 = forever. @default 0 */
  messageTtlMs: number;
  /** Entries per subscriber queue; 0 = unlimited. @default 0 */
  maxQueueLength: number;
  /** @default "reject" */
  overflow: OverflowPolicy;
  /** @default 262144 */
  maxPayloadBytes: number;
  /** Messages in one batch publish. @default 100 */
  maxBatch: number;
  /** Publishes per second per client; 0 = unlimited. @default 0 */
  rateLimit: number;
  /** Idempotency keys are remembered this long. @default 120000 */
  dedupWindowMs: number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Env = Record<string, string | undefined>;

export function parseConfig(env: Env = process.env): HubConfig {
  const read = (name: string) => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const int = (name: string, fallback: number, min = 0) => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min) {
      throw new ConfigError(`${name} must be a whole number ≥ ${min}, got "${raw}"`);
    }
    return value;
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      throw new ConfigError(`${name} must be one of ${allowed.join(", ")}, got "${raw}"`);
    }
    return raw as T;
  };
  const namespaces = read("HUB_NAMESPACES")
    ?.split(",")
    .map((n) => n.trim())
    .filter(Boolean)
    .map((n) => (n.startsWith("/") ? n : `/${n}`));
  for (const ns of namespaces ?? []) {
    if (!NAMESPACE_PATTERN.test(ns)) {
      throw new ConfigError(`HUB_NAMESPACES: "${ns}" is not a valid namespace (${NAMESPACE_PATTERN})`);
    }
  }
  const port = int("PORT", 3000);
  if (port > 65535) throw new ConfigError(`PORT must be at most 65535, got ${port}`);
  return {
    port,
    host: read("HUB_HOST") ?? "0.0.0.0",
    store: oneOf("HUB_STORE", ["sqlite", "memory", "redis"], "sqlite"),
    db: read("HUB_DB") ?? "./data/hub.db",
    sync: oneOf("HUB_SYNC", ["off", "normal", "full"], "normal"),
    flushMs: int("HUB_FLUSH_MS", 0),
    redisUrl: read("REDIS_URL") ?? "redis://127.0.0.1:6379",
    redisPrefix: read("HUB_REDIS_PREFIX") ?? "queuehub:",
    secret: read("HUB_SECRET") ?? null,
    namespaces: namespaces ?? null,
    logLevel: oneOf("LOG_LEVEL", ["debug", "info", "warn", "error", "silent"], "info"),
    prefetch: int("HUB_PREFETCH", 256, 1),
    ackTimeoutMs: int("HUB_ACK_TIMEOUT_MS", 30_000, 1),
    maxDeliveries: int("HUB_MAX_DELIVERIES", 10),
    messageTtlMs: int("HUB_MESSAGE_TTL_MS", 0),
    maxQueueLength: int("HUB_MAX_QUEUE_LENGTH", 0),
    overflow: oneOf("HUB_OVERFLOW", ["reject", "drop-oldest"], "reject"),
    maxPayloadBytes: int("HUB_MAX_PAYLOAD_BYTES", 262_144, 1),
    maxBatch: int("HUB_MAX_BATCH", 100, 1),
    rateLimit: int("HUB_RATE_LIMIT", 0),
    dedupWindowMs: int("HUB_DEDUP_WINDOW_MS", 120_000, 1),
  };
}

/** Defaults with overrides: what tests and embedders start from. */
export function defaultConfig(overrides: Partial<HubConfig> = {}): HubConfig {
  return { ...parseConfig({}), ...overrides };
}
