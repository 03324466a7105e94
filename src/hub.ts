// The hub: one HTTP server with Socket.IO on it, the default namespace and the topic
// namespaces, all handing their work to one queue core over one store.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { joinCluster } from "./cluster.js";
import type { HubConfig } from "./config.js";
import { type HubSocket, handleConnection, type SocketData } from "./connection.js";
import { createHttpHandler } from "./http.js";
import { createLogger, type Logger } from "./log.js";
import {
  type ClientToHubEvents,
  CONNECT_ERRORS,
  type HandshakeAuth,
  type HubToClientEvents,
  isValidClientId,
  NAMESPACE_PATTERN,
} from "./protocol.js";
import { QueueCore } from "./queue.js";
import { openStore } from "./store/index.js";
import type { QueueStore } from "./store/store.js";
import { TokenVerifier } from "./token.js";

export interface HubOptions {
  /** A store to use instead of opening the configured one; the hub closes it on close(). */
  store?: QueueStore;
  log?: Logger;
}

type HubServer = Server<ClientToHubEvents, HubToClientEvents, Record<string, never>, SocketData>;

export interface Hub {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  io: HubServer;
  core: QueueCore;
  store: QueueStore;
  close(): Promise<void>;
}

const ONE_MIB = 1024 * 1024;

export async function createHub(config: HubConfig, options: HubOptions = {}): Promise<Hub> {
  const log = options.log ?? createLogger(config.logLevel);
  const store = options.store ?? (await openStore(config));
  const core = new QueueCore(store, config, log);
  const verifier = config.secret ? new TokenVerifier(config.secret) : null;
  const namespaceAllowed = (name: string) =>
    name === "/" || (NAMESPACE_PATTERN.test(name) && (config.namespaces?.includes(name) ?? true));

  // Socket.IO takes over this server's request listeners and passes on whatever is not its own.
  const httpServer = createServer(
    createHttpHandler({
      config,
      core,
      store,
      log,
      verifier,
      namespaceAllowed,
      connections: () => io.engine.clientsCount,
      clients: (ns) => connectedClients(io, ns),
    }),
  );
  const io: HubServer = new Server(httpServer, {
    // Frames must fit a full batch, so oversized payloads get PAYLOAD_TOO_LARGE instead of a cut connection.
    maxHttpBufferSize: Math.min(
      64 * ONE_MIB,
      Math.max(ONE_MIB, config.maxPayloadBytes * config.maxBatch * 1.1),
    ),
    serveClient: false,
    cleanupEmptyChildNamespaces: true,
  });

  // In a cluster the adapter must be in place before namespaces start serving.
  const cluster =
    config.store === "redis"
      ? await joinCluster(io, core, { url: config.redisUrl, prefix: config.redisPrefix, log })
      : null;

  const authenticate = async (socket: HubSocket, next: (err?: Error) => void) => {
    const auth = (socket.handshake.auth ?? {}) as HandshakeAuth;
    const clientId = auth.clientId ?? undefined;
    socket.data.batch = auth.batch === true;
    if (clientId !== undefined && !isValidClientId(clientId))
      return next(new Error(CONNECT_ERRORS.invalidClientId));
    if (verifier) {
      if (clientId === undefined) return next(new Error(CONNECT_ERRORS.clientIdRequired));
      if ((await verifier.subject(auth.token)) !== clientId)
        return next(new Error(CONNECT_ERRORS.unauthorized));
    }
    socket.data.clientId = clientId ?? null;
    next();
  };
  const serve = (nsp: ReturnType<typeof io.of>) => {
    nsp.use((socket, next) => void authenticate(socket, next));
    nsp.on("connection", (socket) => handleConnection(socket, core, log, { maxBatch: config.maxBatch }));
  };
  serve(io.of("/"));
  serve(io.of((name, _auth, next) => next(null, name !== "/" && namespaceAllowed(name))));

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(config.port, config.host, () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      core.close();
      await io.close();
      await cluster?.close();
      // Let disconnect handlers hand their leases back before the store goes.
      await new Promise((resolve) => setImmediate(resolve));
      await store.close();
    })();
    return closing;
  };
  return { url: `http://127.0.0.1:${port}`, port, io, core, store, close };
}

function connectedClients(io: HubServer, ns?: string) {
  return [...io._nsps.values()]
    .filter((nsp) => ns === undefined || nsp.name === ns)
    .flatMap((nsp) => [...nsp.sockets.values()])
    .flatMap((socket) =>
      socket.data.clientId === null
        ? []
        : [{ ns: socket.nsp.name, clientId: socket.data.clientId, socketId: socket.id }],
    );
}
