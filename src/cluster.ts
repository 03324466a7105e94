// Several hubs as one, over Redis. Socket.IO's Redis adapter shares rooms and broadcasts, and it
// carries the hubs' own messages as server-side events (`io.serverSideEmit`): which queues got
// entries (so consumers on other hubs pull from the shared store), which client a newer
// connection took over, and, asked with an ack, which clients each hub has connected.
import { EventEmitter } from "node:events";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import type { Server } from "socket.io";
import type { Logger } from "./log.js";
import type { QueueCore } from "./queue.js";
import type { QueueName } from "./store/store.js";

/** A connected, identified socket, as the operator views list them. */
export interface ConnectedClient {
  ns: string;
  clientId: string;
  socketId: string;
}

/** The events hubs send each other (`io.serverSideEmit`), checked by the compiler on both sides. */
export interface HubServerSideEvents {
  /** These queues of `ns` got entries: their consumers on this hub pull. */
  "queuehub:wake": (ns: string, queues: QueueName[]) => void;
  /** A newer connection of `clientId` (on another hub) takes over its deliveries. */
  "queuehub:takeover": (ns: string, clientId: string) => void;
  /** The clients connected to this hub (in `ns`, or all). */
  "queuehub:clients": (ns: string | null, reply: (clients: ConnectedClient[]) => void) => void;
}

// biome-ignore lint/suspicious/noExplicitAny: the socket-level event maps are the host's business here
type ClusterServer = Server<any, any, HubServerSideEvents, any>;

export interface RedisAdapterOptions {
  url: string;
  prefix: string;
  log: Logger;
}

/** Socket.IO's Redis adapter on a server of the hub's own (createHub): rooms, broadcasts and server-side events span hubs. */
export async function useRedisAdapter(
  // biome-ignore lint/suspicious/noExplicitAny: any typed Server takes the adapter
  io: Server<any, any, any, any>,
  options: RedisAdapterOptions,
): Promise<{ close(): Promise<void> }> {
  const { log } = options;
  const pub = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on("error", (err: Error) => log.debug({ err: err.message }, "cluster redis error"));
  }
  logRejections(pub, ["publish"], log);
  logRejections(sub, ["subscribe", "psubscribe", "unsubscribe", "punsubscribe"], log);
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub, { key: `${options.prefix}socket.io`, requestsTimeout: 2000 }));
  return {
    async close() {
      // quit() fails while Redis is down, and the client would go on reconnecting for ever.
      await Promise.all([pub, sub].map((client) => client.quit().catch(() => client.disconnect())));
    },
  };
}

/**
 * The adapter sends these commands without waiting for Redis's reply: one that fails (Redis down)
 * would be an unhandled rejection, which ends a Node process. Logged instead; consumers on other
 * hubs then pick the entries up at their next poll or reconnect.
 */
function logRejections(client: Redis, methods: readonly string[], log: Logger) {
  const commands = client as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const name of methods) {
    const send = commands[name]?.bind(client);
    if (!send) continue;
    commands[name] = (...args: unknown[]) => {
      const reply = send(...args);
      reply.catch((err: Error) =>
        log.warn({ command: name, err: err.message }, "cluster: message to the other hubs not sent"),
      );
      return reply;
    };
  }
}

/**
 * True when the server's adapter carries server-side events to other servers (the Redis adapter,
 * or any cluster adapter): every adapter extends Socket.IO's in-memory one, whose serverSideEmit
 * only warns.
 */
// biome-ignore lint/suspicious/noExplicitAny: any typed Server
export function adapterSpansServers(io: Server<any, any, any, any>): boolean {
  const adapter = io.of("/").adapter;
  let base: object = Object.getPrototypeOf(adapter);
  while (Object.getPrototypeOf(base) !== EventEmitter.prototype && Object.getPrototypeOf(base) !== null) {
    base = Object.getPrototypeOf(base);
  }
  return adapter.serverSideEmit !== (base as typeof adapter).serverSideEmit;
}

export interface Cluster {
  /** Clients connected to every hub (in `ns`, or all); `complete` is false when a hub did not answer in time. */
  clients(ns?: string): Promise<{ clients: ConnectedClient[]; complete: boolean }>;
  close(): void;
}

/**
 * Makes this hub's queue core one of the cluster's, over the server's adapter: wake-ups and
 * takeovers go to the other hubs, and theirs come here.
 */
export function joinCluster(
  io: ClusterServer,
  core: QueueCore,
  localClients: (ns?: string) => ConnectedClient[],
  log: Logger,
): Cluster {
  const onWake = (ns: unknown, queues: unknown) => {
    if (typeof ns !== "string" || !Array.isArray(queues) || !queues.every((q) => typeof q === "string")) {
      return log.warn({ ns: String(ns).slice(0, 100) }, "cluster: malformed wake-up dropped");
    }
    core.wakeLocal(ns, queues);
  };
  const onTakeover = (ns: unknown, clientId: unknown) => {
    if (typeof ns !== "string" || typeof clientId !== "string") {
      return log.warn({ ns: String(ns).slice(0, 100) }, "cluster: malformed takeover dropped");
    }
    core.surrender(ns, clientId);
  };
  const onClients = (ns: unknown, reply: unknown) => {
    if (typeof reply === "function") reply(localClients(typeof ns === "string" ? ns : undefined));
  };
  io.on("queuehub:wake", onWake);
  io.on("queuehub:takeover", onTakeover);
  io.on("queuehub:clients", onClients);

  // Wake-ups are coalesced: one server-side event per namespace for the publishes that complete
  // together. The flush is a microtask, so it runs before the publisher's ack is sent (a few promise
  // steps after the store's reply), and the Redis adapter's serverSideEmit writes its PUBLISH to the
  // socket at once: a hub killed after acking has always sent the wake-up, and consumers on other
  // hubs never miss an acked message (__tests__/cluster.process.test.ts kills a hub right after an ack).
  const pending = new Map<string, Set<QueueName>>();
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    for (const [ns, queues] of pending) io.serverSideEmit("queuehub:wake", ns, [...queues]);
    pending.clear();
  };
  core.peers = {
    wake(ns, queues) {
      const set = pending.get(ns) ?? new Set();
      for (const q of queues) set.add(q);
      pending.set(ns, set);
      if (!scheduled) {
        scheduled = true;
        queueMicrotask(flush);
      }
    },
    takeover(ns, clientId) {
      io.serverSideEmit("queuehub:takeover", ns, clientId);
    },
  };

  return {
    clients(ns) {
      const local = localClients(ns);
      return new Promise((resolve) => {
        io.serverSideEmit(
          "queuehub:clients",
          ns ?? null,
          (err: Error | null, answers: ConnectedClient[][]) => {
            // On a timeout the answers that came are kept.
            resolve({ clients: [...local, ...(answers ?? []).flat()], complete: !err });
          },
        );
      });
    },
    close() {
      core.peers = null;
      flush();
      io.off("queuehub:wake", onWake);
      io.off("queuehub:takeover", onTakeover);
      io.off("queuehub:clients", onClients);
    },
  };
}
