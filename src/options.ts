// The options of createHub and attachHub: one interface, every field optional, each default
// documented where the setting is declared (HubConfig) and merged once (resolveOptions). The
// Socket.IO server settings the hub needs are derived from them in one place
// (socketServerOptions) and, when the hub joins a host's server, compared with the host's
// (checkHostServer): server-wide settings belong to the host, so the hub only warns.
import { Registry } from "prom-client";
import type { Server, ServerOptions } from "socket.io";
import { admissionChecks, allowRequestOf, type ConnectionLimits } from "./admission.js";
import { ConfigError, checkOrigin, defaultConfig, type HubConfig } from "./config.js";
import { createLogger, type Logger } from "./log.js";
import { OriginPolicy } from "./origins.js";
import { isValidNamespace, toNamespace } from "./protocol.js";
import type { QueueStore } from "./store/store.js";
import { hubParser } from "./wire-encoder.js";

/** The namespaces the queue serves: a list of names, or a predicate. */
export type NamespaceSelector = readonly string[] | ((name: string) => boolean);

/**
 * Options of `createHub` and `attachHub`. The settings are HubConfig's (each with its default
 * there; `port` and `host` apply to createHub only); the rest are the parts a host may bring.
 */
export interface HubOptions extends Partial<Omit<HubConfig, "namespaces">> {
  /**
   * The namespaces the queue serves, as a list (`["/caps"]`, or `["caps"]`) or a predicate. Only
   * names the contract allows are ever served: `/` and names like `/caps`.
   * - createHub: the topic namespaces besides `/`, which it always serves.
   * - attachHub: exactly these (required), so the host keeps its own events on the others.
   * @default null: every valid name (createHub)
   */
  namespaces?: NamespaceSelector | null;
  /** A store instance to use instead of opening the one `store` names; the hub closes it on close(). */
  queueStore?: QueueStore;
  /** A logger with pino's methods. @default JSON lines on stdout at `logLevel` */
  logger?: Logger;
  /** The prom-client registry for the hub's metrics. @default a new Registry of the hub's own (not the global one) */
  registry?: Registry;
}

/** attachHub's options: the same, with the namespaces to serve named. */
export interface AttachOptions extends HubOptions {
  namespaces: NamespaceSelector;
}

export interface ResolvedOptions {
  /** Every setting, defaults filled in (`namespaces` is the list given, or null). */
  config: HubConfig;
  /** Namespaces served from the start. */
  fixed: string[];
  /** Further names served on demand (a Socket.IO dynamic namespace), or null for none. */
  onDemand: ((name: string) => boolean) | null;
  /** True for every namespace the queue serves. */
  serves(name: string): boolean;
  queueStore: QueueStore | undefined;
  logger: Logger;
  registry: Registry;
}

/** Merges the options with the defaults, once. `createHub` always serves `/`; attachHub only what it is given. */
export function resolveOptions(options: HubOptions, mode: "create" | "attach"): ResolvedOptions {
  const { namespaces, queueStore, logger, registry, ...settings } = options;
  const list = typeof namespaces === "function" || namespaces == null ? null : namespaces.map(checkName);
  const predicate = typeof namespaces === "function" ? namespaces : null;
  if (mode === "attach" && list === null && predicate === null) {
    throw new ConfigError('attachHub: say which namespaces the queue serves, e.g. namespaces: ["/caps"]');
  }
  const config = defaultConfig({ ...settings, namespaces: list?.filter((n) => n !== "/") ?? null });
  config.corsOrigins = config.corsOrigins.map((origin) => checkOrigin("corsOrigins", origin));
  const fixed = new Set(list ?? []);
  if (mode === "create" || predicate?.("/")) fixed.add("/");
  const onDemand =
    list !== null
      ? null
      : (name: string) => name !== "/" && isValidNamespace(name) && (predicate?.(name) ?? true);
  return {
    config,
    fixed: [...fixed],
    onDemand,
    serves: (name) => fixed.has(name) || (onDemand?.(name) ?? false),
    queueStore,
    logger: logger ?? createLogger(config.logLevel),
    registry: registry ?? new Registry(),
  };
}

function checkName(name: string): string {
  const ns = toNamespace(name);
  if (ns === null) throw new ConfigError(`namespaces: "${name}" is not a valid namespace (/ or /caps-style)`);
  return ns;
}

/** Room in a frame for what surrounds the payloads: event names, keys, `to` lists. */
const FRAME_OVERHEAD = 256 * 1024;

/**
 * The largest frame Socket.IO accepts, before and after authentication alike: the largest publish
 * the limits allow (a payload, or a batch's payloads together) and its envelope. A larger frame
 * closes the connection; one within it that breaks a limit gets PAYLOAD_TOO_LARGE or BATCH_TOO_LARGE.
 */
export function frameLimit(config: Pick<HubConfig, "maxPayloadBytes" | "maxBatchBytes">): number {
  return Math.max(config.maxPayloadBytes, config.maxBatchBytes) + FRAME_OVERHEAD;
}

/** The origins the hub lets pages use it from (`corsOrigins`, and its own). */
export function originPolicyOf(config: HubConfig): OriginPolicy {
  return new OriginPolicy(config.corsOrigins, config.host ?? "");
}

/**
 * The Socket.IO server settings the hub needs: createHub sets them (with its connection limits
 * among the handshake's checks), attachHub checks the host's.
 */
export function socketServerOptions(config: HubConfig, limits?: ConnectionLimits): Partial<ServerOptions> {
  const origins = originPolicyOf(config);
  return {
    maxHttpBufferSize: frameLimit(config),
    // Namespaces served on demand are dropped when their last socket leaves: no state per name.
    cleanupEmptyChildNamespaces: true,
    // /socket.io/socket.io.js and its minified and ESM builds, for pages (CORS headers as below).
    serveClient: true,
    // CORS headers on polling and on the served client for the listed origins; the hub's own
    // pages need none. The origin check itself is admission's, at the handshake.
    cors: { origin: (origin, callback) => callback(null, origins.corsOrigin(origin) ?? false) },
    allowRequest: allowRequestOf(admissionChecks({ origins, limits })),
    // socket.io-client 2.x (the CAPS lab's older clients) speaks Engine.IO v3. It cannot send
    // `auth`, so it is only of use to an open hub.
    allowEIO3: config.allowEio3 && config.secret === null,
    // socket.io-parser, with deliveries written from their payloads' JSON text (wire-encoder.ts).
    parser: hubParser,
  };
}

// biome-ignore lint/suspicious/noExplicitAny: a host's server has event maps of its own
export type AnyServer = Server<any, any, any, any>;

interface HostSetting {
  name: keyof ServerOptions;
  /** The host's value, as its server applies it. */
  read(io: AnyServer): unknown;
  fits(host: unknown, wanted: unknown): boolean;
  /** Only matters when namespaces are served on demand. */
  onDemandOnly?: boolean;
  why: string;
}

/**
 * The server-wide settings attachHub checks on a host's Socket.IO server. A setting the hub comes
 * to need (CORS origins, Engine.IO v3, connection limits) goes into socketServerOptions, for
 * createHub, and here, so that an attached hub says when the host's differs.
 */
const HOST_SETTINGS: HostSetting[] = [
  {
    name: "maxHttpBufferSize",
    // The engine holds the value in force (Engine.IO's default is 1e6 bytes).
    read: (io) =>
      (io.engine as typeof io.engine | undefined)?.opts.maxHttpBufferSize ??
      io._opts.maxHttpBufferSize ??
      1e6,
    fits: (host, wanted) => Number(host) >= Number(wanted),
    why: "the largest publish the limits allow must fit one frame, or a publisher is cut off instead of getting PAYLOAD_TOO_LARGE",
  },
  {
    name: "cleanupEmptyChildNamespaces",
    read: (io) => io._opts.cleanupEmptyChildNamespaces ?? false,
    fits: (host, wanted) => host === wanted,
    onDemandOnly: true,
    why: "namespaces served on demand stay in memory after their last client leaves",
  },
];

/** Warns, one log line per setting, where the host's Socket.IO server differs from what the hub needs. */
export function checkHostServer(io: AnyServer, resolved: ResolvedOptions, log: Logger): void {
  const wanted = socketServerOptions(resolved.config);
  for (const setting of HOST_SETTINGS) {
    if (setting.onDemandOnly && resolved.onDemand === null) continue;
    const host = setting.read(io);
    const recommended = wanted[setting.name];
    if (setting.fits(host, recommended)) continue;
    log.warn(
      { setting: setting.name, host, recommended },
      `host Socket.IO server: ${setting.name} is ${String(host)}, queuehub recommends ${String(recommended)} (${setting.why})`,
    );
  }
}
