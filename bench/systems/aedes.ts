// Baseline: Aedes, an MQTT broker written for Node, in a process of its own
// (bench/servers/aedes-server.ts), default in-memory persistence; QoS 1 with mqtt.js clients.

import { startBenchServer } from "../proc.js";
import type { SystemDef } from "../types.js";
import { mqttClient } from "./mqtt-client.js";

export const aedes: SystemDef = {
  name: "aedes",
  durability: "memory only (aedes-persistence default): nothing on disk",
  disk: "memory only",
  hasQueue: true,
  async start() {
    return startBenchServer("aedes", "aedes-server.ts", (url) => `Aedes broker process at ${url}`);
  },
  client: mqttClient,
};
