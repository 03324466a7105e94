// Baseline: Aedes, an MQTT broker written for Node, in a process of its own
// (bench/servers/aedes-server.ts), default in-memory persistence; QoS 1 with mqtt.js clients.

import { join } from "node:path";
import { BENCH_DIR, spawnTsServer } from "../proc.js";
import type { SystemDef } from "../types.js";
import { mqttClient } from "./mqtt-client.js";

export const aedes: SystemDef = {
  name: "aedes",
  durability: "memory only (aedes-persistence default): nothing on disk",
  disk: "memory only",
  hasQueue: true,
  async start() {
    const server = await spawnTsServer("aedes", join(BENCH_DIR, "servers", "aedes-server.ts"));
    return {
      endpoint: { url: server.ready },
      pid: server.pid,
      owned: true,
      describe: `Aedes broker process at ${server.ready}`,
      stop: server.stop,
      logTail: server.logTail,
    };
  },
  client: mqttClient,
};
