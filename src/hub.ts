// The hub: the queue attached to chosen Socket.IO namespaces (attachHub), on a host's Socket.IO
// server or on one of its own (createHub: an HTTP server with Socket.IO on it and the hub's
// routes beside). Every namespace served hands its work to one queue core over one store.
import {
  createServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { type Namespace, Server } from "socket.io";
import { clientAddress } from "./address.js";
import { ConnectionLimits } from "./admission.js";
import {
  adapterSpansServers,
  type Cluster,
  type ConnectedClient,
  type HubServerSideEvents,
  joinCluster,
  useRedisAdapter,
} from "./cluster.js";
import { ConfigError } from "./config.js";
import { type HubSocket, handleConnection, type SocketData } from "./connection.js";
import { corkWritesPerTurn } from "./cork.js";
import { DEV_TOKENS_WARNING, devTokensRefusal } from "./dev-tokens.js";
import { exposure } from "./exposure.js";
import { createHttpHandler } from "./http.js";
import { LiveSockets } from "./live-sockets.js";
import type { Logger } from "./log.js";
import { HubMetrics } from "./metrics.js";
import {
  type AnyServer,
  type AttachOptions,
  checkHostServer,
  type HubOptions,
  originPolicyOf,
  type ResolvedOptions,
  resolveOptions,
  socketServerOptions,
} from "./options.js";
import {
  type ClientToHubEvents,
  CONNECT_ERRORS,
  type HandshakeAuth,
  type HubToClientEvents,
  isValidClientId,
} from "./protocol.js";
import { QueueCore } from "./queue.js";
import { Rooms } from "./rooms.js";
import { openStore } from "./store/index.js";
import type { NamespaceSummary, Page, QueueStore } from "./store/store.js";
import { allows, TokenVerifier } from "./token.js";

export type { ConnectedClient } from "./cluster.js";
export type { HubConfig } from "./config.js";
export { defaultConfig, HUB_DEFAULTS, parseConfig } from "./config.js";
export type { AttachOptions, HubOptions, NamespaceSelector } from "./options.js";
export type * from "./protocol.js";
export { MemoryStore } from "./store/memory.js";
export type { QueueStore } from "./store/store.js";

export type HubServer = Server<ClientToHubEvents, HubToClientEvents, HubServerSideEvents, SocketData>;
type HubNamespace = Namespace<ClientToHubEvents, HubToClientEvents, HubServerSideEvents, SocketData>;

/** The queue on a Socket.IO server. */
export interface AttachedHub {
  /** The Socket.IO server the queue is on. */
  io: HubServer;
  core: QueueCore;
  store: QueueStore;
  log: Logger;
  /** The prom-client registry holding the hub's metrics (the one passed in, or its own). */
  registry: Registry;
  /** True for every namespace the queue serves. */
  serves(name: string): boolean;
  /**
   * Connected, identified clients of the queue's namespaces (one namespace, or all); in a cluster,
   * every hub's (`complete` is false when a hub did not answer in time).
   */
  clients(ns?: string): Promise<{ clients: ConnectedClient[]; complete: boolean }>;
  /** `/healthz`, `/metrics`, HTTP publish and the operator views, to mount on the host's HTTP server. */
  handleHttp(req: IncomingMessage, res: ServerResponse): void;
  /** Disconnects the queue's sockets and closes its store; the Socket.IO and HTTP servers stay up. */
  close(): Promise<void>;
}

/** A hub on an HTTP and Socket.IO server of its own. */
export interface Hub extends AttachedHub {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  httpServer: HttpServer;
  /** Closes the queue, then the Socket.IO and HTTP servers. */
  close(): Promise<void>;
}

/**
 * Starts a hub on an HTTP server of its own: `/`, the topic namespaces `namespaces` allows, and
 * the HTTP routes. Every option has a default (see HubOptions and HubConfig).
 */
export async function createHub(options: HubOptions = {}): Promise<Hub> {
  const resolved = resolveOptions(options, "create");
  const { config } = resolved;
  // Before anything opens: an open hub asked to listen beyond loopback is refused here.
  const exposed = exposure(config);
  // The address decided: the origin checks judge the Host of requests by it (loopback only or not).
  config.host = exposed.host;
  const devTokensRefused = config.devTokens ? devTokensRefusal(exposed.host) : null;
  if (devTokensRefused) throw new ConfigError(devTokensRefused);
  let attached: AttachedHub | null = null;
  // Socket.IO takes over this server's request listeners and passes on whatever is not its own.
  const httpServer = createServer((req, res) => {
    if (attached) attached.handleHttp(req, res);
    else res.writeHead(503).end();
  });
  // Every handshake passes the checks of allowRequest first (see admission.ts).
  const limits = new ConnectionLimits(config, resolved.logger);
  const io: HubServer = new Server(httpServer, socketServerOptions(config, limits));
  limits.track(io.engine);
  limits.guard(httpServer);
  let adapter: { close(): Promise<void> } | null = null;
  try {
    // A cluster's hubs share rooms and broadcasts through Socket.IO's Redis adapter.
    if ((resolved.queueStore?.kind ?? config.store) === "redis") {
      adapter = await useRedisAdapter(io, {
        url: config.redisUrl,
        prefix: config.redisPrefix,
        log: resolved.logger,
      });
    }
    attached = await attach(io, resolved);
    const queue = attached;
    await new Promise<void>((resolve, reject) => {
      httpServer.once("error", reject);
      httpServer.listen(config.port, exposed.host, () => resolve());
    }).catch(async (err) => {
      await queue.close();
      throw err;
    });
  } catch (err) {
    await io.close();
    await adapter?.close();
    throw err;
  }
  const queue = attached;
  const { port } = httpServer.address() as AddressInfo;
  const log = resolved.logger;
  if (exposed.mode === "open-insecure") log.warn({ mode: exposed.mode, host: exposed.host }, exposed.why);
  else log.info({ mode: exposed.mode, host: exposed.host }, exposed.why);

  let closing: Promise<void> | null = null;
  return {
    ...queue,
    url: `http://127.0.0.1:${port}`,
    port,
    httpServer,
    close() {
      closing ??= (async () => {
        queue.core.close();
        // No new connections. Node's close() waits for every open one, and a keep-alive connection
        // busy at this moment stays open for as long as a page polls on it (the dashboard polls
        // every second): from now on each answer closes its connection.
        httpServer.prependListener("request", closeAfterAnswer);
        const httpClosed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        // Sockets first (their disconnect handlers hand leases back), then the HTTP connections
        // (a request still unanswered after 2 s is cut), then the store: nothing is answered by a
        // hub whose store is gone.
        await io.close();
        httpServer.closeIdleConnections();
        const cut = setTimeout(() => httpServer.closeAllConnections(), 2000);
        await httpClosed;
        clearTimeout(cut);
        await queue.close();
        await adapter?.close();
      })();
      return closing;
    },
  };
}

/**
 * Adds the queue to a host's Socket.IO server (or to an HTTP server, on a Socket.IO server made for
 * it), on the namespaces `namespaces` names only: the host's events elsewhere are untouched.
 *
 * Server-wide settings stay the host's. The hub needs `maxHttpBufferSize` of at least
 * `maxPayloadBytes × maxBatch × 1.1` (1 MiB to 64 MiB), and `cleanupEmptyChildNamespaces: true`
 * when namespaces are chosen by a predicate; it logs a warning naming each setting that differs.
 * `close()` detaches the queue and leaves the host's servers running.
 */
export async function attachHub(
  target: AnyServer | HttpServer,
  options: AttachOptions,
): Promise<AttachedHub> {
  const resolved = resolveOptions(options, "attach");
  if (target instanceof Server) return attach(target as HubServer, resolved);
  // An HTTP server without Socket.IO: a Socket.IO server made for the queue, detached again on close.
  const httpServer = target;
  const before = new Map<string, Listeners>(WATCHED.map((event) => [event, httpServer.listeners(event)]));
  const io: HubServer = new Server(httpServer, socketServerOptions(resolved.config));
  // Socket.IO always has `/`: refused here unless the queue serves it.
  if (!resolved.serves("/")) io.use((_socket, next) => next(new Error("Invalid namespace")));
  const detach = () => {
    io.engine.close();
    restoreListeners(httpServer, before);
  };
  const attached = await attach(io, resolved).catch((err: unknown) => {
    detach();
    throw err;
  });
  return {
    ...attached,
    async close() {
      await attached.close();
      detach();
    },
  };
}

function closeAfterAnswer(_req: IncomingMessage, res: ServerResponse) {
  res.setHeader("connection", "close");
}

/** Events whose listeners Engine.IO adds to (or, for `request`, takes over on) an HTTP server. */
const WATCHED = ["request", "upgrade", "close", "listening"] as const;

type Listeners = ReturnType<HttpServer["listeners"]>;

function restoreListeners(server: HttpServer, before: Map<string, Listeners>) {
  for (const [event, original] of before) {
    for (const listener of server.listeners(event)) {
      if (!original.includes(listener)) server.off(event, listener as () => void);
    }
    for (const listener of original) {
      if (!server.listeners(event).includes(listener)) server.on(event, listener as () => void);
    }
  }
}

/** The one place where the queue attaches to namespaces. */
async function attach(io: HubServer, resolved: ResolvedOptions): Promise<AttachedHub> {
  const { config, serves } = resolved;
  const log = resolved.logger;
  if (resolved.fixed.length === 0 && resolved.onDemand === null) {
    log.warn("queuehub attached to no namespace");
  }
  checkHostServer(io, resolved, log);
  if (config.devTokens) {
    if (config.secret) log.warn(DEV_TOKENS_WARNING);
    else
      log.info(
        "HUB_DEV_TOKENS is set but HUB_SECRET is not: an open hub needs no tokens, POST /dev/token is off",
      );
  }
  const store = resolved.queueStore ?? (await openStore(config));
  const metrics = new HubMetrics();
  const core = new QueueCore(store, config, log, metrics);
  const rooms = new Rooms(core, log);
  const verifier = config.secret ? new TokenVerifier(config.secret, config.requireExp) : null;

  const sockets = new LiveSockets<HubSocket>();
  const connections = () => sockets.size();
  const localClients = (ns?: string): ConnectedClient[] =>
    [...sockets.sockets(ns)].flatMap((socket) =>
      socket.data.clientId === null
        ? []
        : [{ ns: socket.nsp.name, clientId: socket.data.clientId, socketId: socket.id }],
    );

  // In a cluster the other hubs must hear of this one before its namespaces start serving.
  const cluster = store.kind === "redis" ? clusterOf(io, core, localClients, log) : null;
  try {
    metrics.register(resolved.registry, {
      connections,
      inFlight: () => core.inFlight(),
      namespaces: () => allNamespaces(store),
      log,
    });
  } catch (err) {
    core.close();
    cluster?.close();
    await store.close();
    throw err;
  }
  let closed = false;

  const authenticate = async (socket: HubSocket, next: (err?: Error) => void) => {
    if (closed) return next(new Error("queuehub closed"));
    const auth = (socket.handshake.auth ?? {}) as HandshakeAuth;
    const clientId = auth.clientId ?? undefined;
    socket.data.batch = auth.batch === true;
    if (clientId !== undefined && !isValidClientId(clientId))
      return next(new Error(CONNECT_ERRORS.invalidClientId));
    socket.data.claims = null;
    socket.data.address = clientAddress(
      socket.handshake.address,
      socket.handshake.headers,
      config.trustedProxies,
    );
    if (verifier) {
      if (clientId === undefined) return next(new Error(CONNECT_ERRORS.clientIdRequired));
      const claims = await verifier.verify(auth.token);
      if ("refused" in claims || claims.sub !== clientId) {
        const why = "refused" in claims ? `token ${claims.refused}` : "token of another clientId";
        log.debug({ ns: socket.nsp.name, clientId, why }, "connection refused");
        return next(new Error(CONNECT_ERRORS.unauthorized));
      }
      if (!allows(claims, "ns", socket.nsp.name)) return next(forbidden());
      socket.data.claims = claims;
    }
    socket.data.clientId = clientId ?? null;
    socket.data.classroom = clientId === undefined;
    next();
  };
  const onConnection = (socket: HubSocket) => {
    sockets.add(socket);
    socket.once("disconnect", () => sockets.delete(socket));
    corkWritesPerTurn(socket.conn);
    handleConnection(socket, core, rooms, log, { maxBatch: config.maxBatch });
    const expiresAt = socket.data.claims?.expiresAt;
    if (expiresAt != null) closeAtExpiry(socket, expiresAt);
  };
  const served: HubNamespace[] = [];
  const serve = (nsp: HubNamespace) => {
    nsp.use((socket, next) => void authenticate(socket, next));
    nsp.on("connection", onConnection);
    served.push(nsp);
  };
  for (const name of resolved.fixed) serve(io.of(name));
  const { onDemand } = resolved;
  if (onDemand) {
    const room = namespaceRoom(io, config.maxNamespaces, log);
    serve(io.of((name, _auth, next) => next(null, !closed && onDemand(name) && room())));
  }

  const clients = (ns?: string) =>
    cluster ? cluster.clients(ns) : Promise.resolve({ clients: localClients(ns), complete: true });
  const handleHttp = createHttpHandler({
    config,
    core,
    store,
    log,
    verifier,
    origins: originPolicyOf(config),
    namespaceAllowed: serves,
    registry: resolved.registry,
    connections,
    clients,
  });

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      closed = true;
      core.close();
      for (const nsp of served) nsp.off("connection", onConnection);
      for (const socket of [...sockets.sockets()]) socket.disconnect();
      cluster?.close();
      // Let disconnect handlers hand their leases back before the store goes.
      await new Promise((resolve) => setImmediate(resolve));
      await store.close();
      metrics.unregister(resolved.registry);
    })();
    return closing;
  };
  return { io, core, store, log, registry: resolved.registry, serves, clients, handleHttp, close };
}

/**
 * Namespaces served on demand each cost a Socket.IO namespace while in use: at most `max` at once
 * (all of the server's, HUB_MAX_NAMESPACES; 0: no limit). Past it, a new name is refused as
 * Socket.IO refuses an unknown one (`Invalid namespace`), with a warning a minute at most.
 */
function namespaceRoom(io: HubServer, max: number, log: Logger): () => boolean {
  let warned = 0;
  return () => {
    // Socket.IO asks only for names not in use: every one of them would be a new namespace.
    if (max === 0 || io._nsps.size < max) return true;
    if (Date.now() - warned > 60_000) {
      warned = Date.now();
      log.warn({ maxNamespaces: max }, `namespace refused: ${max} namespaces in use (HUB_MAX_NAMESPACES)`);
    }
    return false;
  };
}

/** The connect_error of a namespace the token's `ns` claim does not list. */
function forbidden(): Error {
  return Object.assign(new Error(CONNECT_ERRORS.unauthorized), { data: { code: "FORBIDDEN" } });
}

/** Longest delay Node's timers take (about 24.8 days); a later expiry is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A connection lives no longer than its token: at expiry the hub says so (`hub:error` UNAUTHORIZED,
 * so a client can fetch a fresh token) and closes it.
 */
function closeAtExpiry(socket: HubSocket, expiresAt: number) {
  let timer: NodeJS.Timeout;
  const wait = () => {
    const left = expiresAt - Date.now();
    if (left > 0) {
      timer = setTimeout(wait, Math.min(left, MAX_TIMER_MS));
      return;
    }
    socket.emit("hub:error", {
      event: "auth",
      code: "UNAUTHORIZED",
      message: "token expired: connect again with a fresh token",
    });
    socket.disconnect();
  };
  wait();
  socket.once("disconnect", () => clearTimeout(timer));
}

/**
 * With a Redis store, the hubs on it act as one over the Socket.IO server's adapter. A host whose
 * adapter does not span servers gets a warning; its hub then finds other hubs' messages by polling
 * at the ack-timeout pace.
 */
function clusterOf(
  io: HubServer,
  core: QueueCore,
  localClients: (ns?: string) => ConnectedClient[],
  log: Logger,
): Cluster | null {
  if (adapterSpansServers(io)) return joinCluster(io, core, localClients, log);
  log.warn(
    "store is redis, but the Socket.IO server's adapter does not span servers: other hubs' messages arrive at the ack-timeout poll; give the server @socket.io/redis-adapter",
  );
  // No peers to tell, but the core polls as in a cluster.
  core.peers = { wake() {}, takeover() {} };
  return null;
}

/** Every namespace's counts, page by page (the store keeps them per namespace). */
async function allNamespaces(store: QueueStore): Promise<NamespaceSummary[]> {
  const all: NamespaceSummary[] = [];
  let after: string | null = null;
  do {
    const page: Page<NamespaceSummary> = await store.namespaces({ limit: 1000, after });
    all.push(...page.items);
    after = page.next;
  } while (after !== null);
  return all;
}
