// Configuration is read from the environment once, here, into a typed object.
// The core never reads process.env. Every name below is in .env.example and the README.

import { isIP } from "node:net";
import { OriginError, parseOrigin } from "./origins.js";
import { NAMESPACE_PATTERN, toNamespace } from "./protocol.js";
import type { OverflowPolicy } from "./store/store.js";

export type StoreKind = "sqlite" | "memory" | "redis";
export type SyncLevel = "off" | "normal" | "full";
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export interface HubConfig {
  /** @default 3000 (0 picks a free port) */
  port: number;
  /**
   * Address to listen on (createHub). null: loopback (127.0.0.1) while open, every interface
   * (0.0.0.0) with a secret. An open hub refuses any other address unless `insecure`.
   * @default null
   */
  host: string | null;
  /** Let an open hub (no secret) listen beyond loopback. @default false */
  insecure: boolean;
  /** @default "sqlite" */
  store: StoreKind;
  /** SQLite file. @default "./data/hub.db" */
  db: string;
  /** SQLite synchronous level: `normal` survives kill -9, `full` also power loss. @default "normal" */
  sync: SyncLevel;
  /** Longest wait before a group commit; 0 commits at the end of the current event-loop turn. @default 0 */
  flushMs: number;
  /** MiB kept free beside the SQLite file, given back when the disk fills so that acks still drain. @default 32 */
  dbReserveMb: number;
  /** @default "redis://127.0.0.1:6379" */
  redisUrl: string;
  /** @default "queuehub:" */
  redisPrefix: string;
  /** Enables JWT (HS256) tokens when set. */
  secret: string | null;
  /** Refuse tokens without `exp`. @default true */
  requireExp: boolean;
  /** Allowed topic namespaces besides `/`; null means any valid name. */
  namespaces: string[] | null;
  /** @default "info" */
  logLevel: LogLevel;
  /** Unacked deliveries in flight per connection. @default 256 */
  prefetch: number;
  /** Redelivery after this long without an ack. @default 30000 */
  ackTimeoutMs: number;
  /**
   * Credit flow: longest a publish ack waits for the delivery to an online consumer that lags
   * (see the README); 0 = never held. @default 250
   */
  creditWaitMs: number;
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
  /** Payload bytes (as JSON) of one batch publish, all messages together; also sets the frame limit. @default 1048576 */
  maxBatchBytes: number;
  /** Publishes per second per publisher (a clientId, a token, an address), all namespaces together; 0 = unlimited. @default 0 */
  rateLimit: number;
  /** Idempotency keys are remembered this long. @default 120000 */
  dedupWindowMs: number;
  /** Durable rooms a client may be a member of in one namespace; 0 = unlimited. @default 100 */
  maxRoomsPerClient: number;
  /**
   * Origins of the web pages allowed to connect and to call the HTTP endpoints from a browser
   * (`https://app.example`; `*` for any). Pages the hub serves itself need no entry.
   * @default []
   */
  corsOrigins: string[];
  /**
   * Development only: `POST /dev/token` mints a client token for any clientId (with `secret`, on
   * a loopback listen address only). @default false
   */
  devTokens: boolean;
  /**
   * Accept socket.io-client 2.x (Engine.IO v3), as the CAPS lab's older clients use; only in open
   * mode (they cannot send `auth`). @default true
   */
  allowEio3: boolean;
  /**
   * Routing by payload (the CAPS lab's store routing): the payload field whose string value names the
   * one client a classroom or HTTP publish goes to, in open mode; null turns it off. @default "store"
   */
  routeField: string | null;
  /** Connections to the hub (Engine.IO connections); 0 = unlimited. @default 10000 */
  maxConnections: number;
  /** Connections from one remote address; 0 = unlimited. @default 100 */
  maxConnectionsPerAddress: number;
  /** Apply the per-address limit to loopback addresses too (exempt by default). @default false */
  limitLoopback: boolean;
  /** Connections of one clientId in one namespace: a newer one closes the oldest; 0 = unlimited. @default 10 */
  maxConnectionsPerClient: number;
  /** Namespaces in use at once when `namespaces` is not set; 0 = unlimited. @default 1000 */
  maxNamespaces: number;
  /** Proxies whose X-Forwarded-For names the client's address (exact addresses); empty: none. @default [] */
  trustedProxies: string[];
}

/** Every setting's default, in one place: parseConfig falls back to these, and so do createHub and attachHub. */
export const HUB_DEFAULTS: Readonly<HubConfig> = Object.freeze({
  port: 3000,
  host: null,
  insecure: false,
  store: "sqlite",
  db: "./data/hub.db",
  sync: "normal",
  flushMs: 0,
  dbReserveMb: 32,
  redisUrl: "redis://127.0.0.1:6379",
  redisPrefix: "queuehub:",
  secret: null,
  requireExp: true,
  namespaces: null,
  logLevel: "info",
  prefetch: 256,
  ackTimeoutMs: 30_000,
  creditWaitMs: 250,
  maxDeliveries: 10,
  messageTtlMs: 0,
  maxQueueLength: 0,
  overflow: "reject",
  maxPayloadBytes: 262_144,
  maxBatch: 100,
  maxBatchBytes: 1_048_576,
  rateLimit: 0,
  dedupWindowMs: 120_000,
  maxRoomsPerClient: 100,
  corsOrigins: [],
  devTokens: false,
  allowEio3: true,
  routeField: "store",
  maxConnections: 10_000,
  maxConnectionsPerAddress: 100,
  limitLoopback: false,
  maxConnectionsPerClient: 10,
  maxNamespaces: 1000,
  trustedProxies: [],
});

const ROUTE_FIELD_PATTERN = /^[A-Za-z0-9_$]{1,64}$/;

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
  const bool = (name: string, fallback: boolean) => {
    const raw = read(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (["1", "true", "yes", "on"].includes(raw)) return true;
    if (["0", "false", "no", "off"].includes(raw)) return false;
    throw new ConfigError(`${name} must be true or false, got "${raw}"`);
  };
  // Unset: the default field; set but empty: routing by payload is off.
  const routeField =
    env.HUB_ROUTE_FIELD === undefined ? HUB_DEFAULTS.routeField : env.HUB_ROUTE_FIELD.trim() || null;
  if (routeField !== null && !ROUTE_FIELD_PATTERN.test(routeField)) {
    throw new ConfigError(
      `HUB_ROUTE_FIELD must be a payload field name (1–64 letters, digits, _ or $), or empty to turn routing off, got "${routeField}"`,
    );
  }
  const list = (name: string) =>
    read(name)
      ?.split(",")
      .map((n) => n.trim())
      .filter(Boolean);
  const corsOrigins = (list("HUB_CORS_ORIGINS") ?? []).map((o) => checkOrigin("HUB_CORS_ORIGINS", o));
  const namespaces = list("HUB_NAMESPACES")?.map((n) => {
    const ns = toNamespace(n);
    if (ns === null || ns === "/") {
      throw new ConfigError(`HUB_NAMESPACES: "${n}" is not a valid topic namespace (${NAMESPACE_PATTERN})`);
    }
    return ns;
  });
  const port = int("PORT", HUB_DEFAULTS.port);
  if (port > 65535) throw new ConfigError(`PORT must be at most 65535, got ${port}`);
  const d = HUB_DEFAULTS;
  return {
    port,
    host: read("HUB_HOST") ?? d.host,
    insecure: bool("HUB_INSECURE", d.insecure),
    store: oneOf("HUB_STORE", ["sqlite", "memory", "redis"], d.store),
    db: read("HUB_DB") ?? d.db,
    sync: oneOf("HUB_SYNC", ["off", "normal", "full"], d.sync),
    flushMs: int("HUB_FLUSH_MS", d.flushMs),
    dbReserveMb: int("HUB_DB_RESERVE_MB", d.dbReserveMb),
    redisUrl: read("REDIS_URL") ?? d.redisUrl,
    redisPrefix: read("HUB_REDIS_PREFIX") ?? d.redisPrefix,
    secret: read("HUB_SECRET") ?? d.secret,
    requireExp: bool("HUB_REQUIRE_EXP", d.requireExp),
    namespaces: namespaces ?? d.namespaces,
    logLevel: oneOf("LOG_LEVEL", ["debug", "info", "warn", "error", "silent"], d.logLevel),
    prefetch: int("HUB_PREFETCH", d.prefetch, 1),
    ackTimeoutMs: int("HUB_ACK_TIMEOUT_MS", d.ackTimeoutMs, 1),
    creditWaitMs: int("HUB_CREDIT_WAIT_MS", d.creditWaitMs),
    maxDeliveries: int("HUB_MAX_DELIVERIES", d.maxDeliveries),
    messageTtlMs: int("HUB_MESSAGE_TTL_MS", d.messageTtlMs),
    maxQueueLength: int("HUB_MAX_QUEUE_LENGTH", d.maxQueueLength),
    overflow: oneOf("HUB_OVERFLOW", ["reject", "drop-oldest"], d.overflow),
    maxPayloadBytes: int("HUB_MAX_PAYLOAD_BYTES", d.maxPayloadBytes, 1),
    maxBatch: int("HUB_MAX_BATCH", d.maxBatch, 1),
    maxBatchBytes: int("HUB_MAX_BATCH_BYTES", d.maxBatchBytes, 1),
    rateLimit: int("HUB_RATE_LIMIT", d.rateLimit),
    dedupWindowMs: int("HUB_DEDUP_WINDOW_MS", d.dedupWindowMs, 1),
    maxRoomsPerClient: int("HUB_MAX_ROOMS_PER_CLIENT", d.maxRoomsPerClient),
    corsOrigins,
    devTokens: bool("HUB_DEV_TOKENS", d.devTokens),
    allowEio3: bool("HUB_ALLOW_EIO3", d.allowEio3),
    routeField,
    maxConnections: int("HUB_MAX_CONNECTIONS", d.maxConnections),
    maxConnectionsPerAddress: int("HUB_MAX_CONNECTIONS_PER_ADDRESS", d.maxConnectionsPerAddress),
    limitLoopback: bool("HUB_LIMIT_LOOPBACK", d.limitLoopback),
    maxConnectionsPerClient: int("HUB_MAX_CONNECTIONS_PER_CLIENT", d.maxConnectionsPerClient),
    maxNamespaces: int("HUB_MAX_NAMESPACES", d.maxNamespaces),
    trustedProxies: list("HUB_TRUSTED_PROXIES")?.map(checkAddress) ?? d.trustedProxies,
  };
}

/** An allowed origin, normalised (`https://app.example`); a ConfigError naming the setting otherwise. */
export function checkOrigin(setting: string, entry: string): string {
  try {
    return parseOrigin(entry);
  } catch (err) {
    if (err instanceof OriginError) throw new ConfigError(`${setting}: ${err.message}`);
    throw err;
  }
}

function checkAddress(address: string): string {
  if (isIP(address) === 0)
    throw new ConfigError(
      `HUB_TRUSTED_PROXIES: "${address}" is not an IP address (list the proxies' addresses)`,
    );
  return address;
}

/** Defaults with overrides: what tests and embedders start from. */
export function defaultConfig(overrides: Partial<HubConfig> = {}): HubConfig {
  return { ...HUB_DEFAULTS, ...definedOnly(overrides) };
}

/** The fields that are set: `{ port: undefined }` keeps the default port. */
export function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}
