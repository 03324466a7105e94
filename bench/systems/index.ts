// The systems the benchmark knows, in table order. Each is loaded on demand, so a load process
// imports only the client library it drives.

import type { ScenarioName, SystemDef } from "../types.js";

const loaders: Record<string, () => Promise<SystemDef>> = {
  "queuehub-sqlite": async () => (await import("./queuehub.js")).queuehubSqlite,
  "queuehub-sqlite-full": async () => (await import("./queuehub.js")).queuehubSqliteFull,
  "queuehub-memory": async () => (await import("./queuehub.js")).queuehubMemory,
  "queuehub-redis-2hubs": async () => (await import("./queuehub.js")).queuehubRedis2Hubs,
  "socketio-raw": async () => (await import("./socketio-raw.js")).socketioRaw,
  "socketio-raw-ack": async () => (await import("./socketio-raw.js")).socketioRawAck,
  "socketio-relay": async () => (await import("./socketio-relay.js")).socketioRelay,
  aedes: async () => (await import("./aedes.js")).aedes,
  mosquitto: async () => (await import("./mosquitto.js")).mosquitto,
  rabbitmq: async () => (await import("./rabbitmq.js")).rabbitmq,
  "nats-jetstream": async () => (await import("./nats-jetstream.js")).natsJetstream,
};

export const SYSTEM_NAMES = Object.keys(loaders);

/** The systems under test whose ratios to the others are reported. */
export const QUEUEHUB_SYSTEMS = SYSTEM_NAMES.filter((name) => name.startsWith("queuehub"));

const BROKERS = ["mosquitto", "rabbitmq", "nats-jetstream"];
const BATCH_SCENARIO_SYSTEMS = SYSTEM_NAMES.filter((name) => name !== "socketio-relay");

/**
 * The systems each scenario runs unless --systems says otherwise. The batch-path scenarios run
 * everything but the relay (its wire pattern is the singles one); `singles` runs queuehub's stores
 * on the ordinary user's path against the relay (the limit for that path) and the brokers; the
 * latency sweep runs queuehub's default store, the relay and the brokers.
 */
export const DEFAULT_SYSTEMS: Record<ScenarioName, string[]> = {
  throughput: BATCH_SCENARIO_SYSTEMS,
  fanout: BATCH_SCENARIO_SYSTEMS,
  backlog: BATCH_SCENARIO_SYSTEMS,
  connections: BATCH_SCENARIO_SYSTEMS,
  singles: ["queuehub-sqlite", "queuehub-sqlite-full", "queuehub-memory", "socketio-relay", ...BROKERS],
  sweep: ["queuehub-sqlite", "socketio-relay", ...BROKERS],
};

export async function loadSystem(name: string): Promise<SystemDef> {
  const load = loaders[name];
  if (!load) throw new Error(`unknown system ${name} (known: ${SYSTEM_NAMES.join(", ")})`);
  return load();
}
