// Baseline: a bare Socket.IO relay (bench/servers/socketio-relay-server.ts) that speaks queuehub's
// wire pattern without storing anything: it acks each publish at once and emits the message to the
// subscriber, which acks back as queuehub's subscriber does. Driven by the very client code that
// drives queuehub, so the only difference between the two rows is the server. No queue: the backlog
// scenario does not apply.

import { startBenchServer } from "../proc.js";
import type { SystemDef } from "../types.js";
import { queuehubClient } from "./queuehub-client.js";

export const socketioRelay: SystemDef = {
  name: "socketio-relay",
  durability: "none: no queue, no storage (publish acked on arrival, relayed at once)",
  disk: "none",
  hasQueue: false,
  async start() {
    return startBenchServer(
      "socketio-relay",
      "socketio-relay-server.ts",
      (url) => `bare Socket.IO relay process at ${url}`,
    );
  },
  client: queuehubClient,
};
