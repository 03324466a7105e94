// Several hubs as one, over Redis. Socket.IO's Redis adapter shares rooms and broadcasts;
// one pub/sub channel tells the other hubs when queues got entries (so their consumers
// pull from the shared store) and when a newer connection of a client took over.
import { randomUUID } from "node:crypto";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import type { Server } from "socket.io";
import type { Logger } from "./log.js";
import type { QueueCore } from "./queue.js";
import type { QueueName } from "./store/store.js";

export interface ClusterOptions {
  url: string;
  prefix: string;
  log: Logger;
}

export interface Cluster {
  close(): Promise<void>;
}

type HubEvent =
  | { origin: string; type: "wake"; ns: string; queues: QueueName[] }
  | { origin: string; type: "takeover"; ns: string; clientId: string };

/** Socket.IO's Redis adapter on a server of the hub's own (createHub): rooms and broadcasts span hubs. */
export async function useRedisAdapter(
  // biome-ignore lint/suspicious/noExplicitAny: any typed Server takes the adapter
  io: Server<any, any, any, any>,
  options: ClusterOptions,
): Promise<Cluster> {
  const { log } = options;
  const pub = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on("error", (err: Error) => log.debug({ err: err.message }, "cluster redis error"));
  }
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub, { key: `${options.prefix}socket.io` }));
  return {
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}

/** Makes this hub's queue core one of the cluster's: wake-ups and takeovers go to the other hubs. */
export async function joinCluster(
  // biome-ignore lint/suspicious/noExplicitAny: any typed Server
  _io: Server<any, any, any, any>,
  core: QueueCore,
  options: ClusterOptions,
): Promise<Cluster> {
  const { log, prefix } = options;
  const pub = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const events = pub.duplicate();
  for (const client of [pub, events]) {
    client.on("error", (err: Error) => log.debug({ err: err.message }, "cluster redis error"));
  }
  await Promise.all([pub.connect(), events.connect()]);

  const origin = randomUUID();
  const channel = `${prefix}hub-events`;
  await events.subscribe(channel);
  events.on("message", (_channel: string, text: string) => {
    let event: HubEvent;
    try {
      event = JSON.parse(text) as HubEvent;
    } catch {
      return log.warn({ text: text.slice(0, 200) }, "cluster: malformed hub event dropped");
    }
    if (event.origin === origin) return;
    if (event.type === "wake") core.wakeLocal(event.ns, event.queues);
    else if (event.type === "takeover") core.surrender(event.ns, event.clientId);
  });

  // Wake-ups are coalesced: one PUBLISH per namespace for the publishes that complete together.
  // The flush is a microtask, so the PUBLISH is written before the publisher's ack (which
  // follows the store's reply a few promise steps later): a hub killed after acking has
  // always sent the wake, and consumers on other hubs never miss an acked message.
  const pending = new Map<string, Set<QueueName>>();
  let scheduled = false;
  const send = (event: HubEvent) => {
    pub.publish(channel, JSON.stringify(event)).catch((err: Error) => {
      // Consumers on other hubs then pick the entries up on their next pull or reconnect.
      log.warn({ type: event.type, err: err.message }, "cluster: hub event not sent");
    });
  };
  const flush = () => {
    scheduled = false;
    for (const [ns, queues] of pending) send({ origin, type: "wake", ns, queues: [...queues] });
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
      send({ origin, type: "takeover", ns, clientId });
    },
  };

  return {
    async close() {
      core.peers = null;
      flush();
      await Promise.allSettled([pub.quit(), events.quit()]);
    },
  };
}
