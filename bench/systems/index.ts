// The systems the benchmark knows, in table order. Each is loaded on demand, so a load process
// imports only the client library it drives.

import type { SystemDef } from "../types.js";

const loaders: Record<string, () => Promise<SystemDef>> = {
  "queuehub-sqlite": async () => (await import("./queuehub.js")).queuehubSqlite,
  "queuehub-sqlite-full": async () => (await import("./queuehub.js")).queuehubSqliteFull,
  "queuehub-memory": async () => (await import("./queuehub.js")).queuehubMemory,
  "queuehub-redis-2hubs": async () => (await import("./queuehub.js")).queuehubRedis2Hubs,
  "socketio-raw": async () => (await import("./socketio-raw.js")).socketioRaw,
  "socketio-raw-ack": async () => (await import("./socketio-raw.js")).socketioRawAck,
  aedes: async () => (await import("./aedes.js")).aedes,
  mosquitto: async () => (await import("./mosquitto.js")).mosquitto,
  rabbitmq: async () => (await import("./rabbitmq.js")).rabbitmq,
  "nats-jetstream": async () => (await import("./nats-jetstream.js")).natsJetstream,
};

export const SYSTEM_NAMES = Object.keys(loaders);

/** The systems under test whose ratios to the others are reported. */
export const QUEUEHUB_SYSTEMS = SYSTEM_NAMES.filter((name) => name.startsWith("queuehub"));

export async function loadSystem(name: string): Promise<SystemDef> {
  const load = loaders[name];
  if (!load) throw new Error(`unknown system ${name} (known: ${SYSTEM_NAMES.join(", ")})`);
  return load();
}
