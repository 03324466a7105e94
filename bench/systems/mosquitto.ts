// Baseline: Mosquitto, QoS 1, subscribers with persistent sessions (clean: false).
// A private instance is started for each run (`mosquitto -c <temp conf>` on a free port) so that
// the offline queue is not capped (the shared instance on :1883 keeps only 1,000 queued messages
// per client and drops the rest) and its memory is this run's alone. Without the binary, the
// shared instance (BENCH_MOSQUITTO_URL, default mqtt://127.0.0.1:1883) is used instead.

import { accessSync, constants, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { findPidByName, freePort, makeTempDir, removeTempDir, spawnServer, tcpProbe } from "../proc.js";
import { type SystemDef, Unavailable } from "../types.js";
import { mqttClient } from "./mqtt-client.js";

function findBinary(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const dir of dirs) {
    const candidate = join(dir, "mosquitto");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export const mosquitto: SystemDef = {
  name: "mosquitto",
  durability: "memory; snapshot to disk every 30 min and at exit (no fsync per message)",
  disk: "no fsync per msg",
  hasQueue: true,
  async start({ prefetch }) {
    const binary = findBinary();
    if (!binary) {
      const url = new URL(process.env.BENCH_MOSQUITTO_URL ?? "mqtt://127.0.0.1:1883");
      const error = await tcpProbe(url.hostname, Number(url.port || 1883));
      if (error) throw new Unavailable(`not reachable: no mosquitto binary, and ${url.host}: ${error}`);
      return {
        endpoint: { url: url.href },
        pid: findPidByName("mosquitto"),
        owned: false,
        describe: `shared mosquitto at ${url.host} (max_queued_messages as configured there)`,
        stop: async () => {},
      };
    }
    const dir = makeTempDir("bench-mosquitto-");
    const port = await freePort();
    const conf = join(dir, "mosquitto.conf");
    writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        "allow_anonymous true",
        "persistence true",
        `persistence_location ${dir}/`,
        // Queue every message for an offline persistent session (0 = no limit).
        "max_queued_messages 0",
        // Outgoing QoS 1 messages in flight per client: the same window as the others' prefetch.
        `max_inflight_messages ${Math.min(prefetch, 65535)}`,
        // Nagle's algorithm off on client sockets: "reducing latency of some messages" (mosquitto.conf(5)).
        "set_tcp_nodelay true",
        "max_connections -1",
        "connection_messages false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        ...(process.getuid?.() === 0 ? ["user root"] : []),
        "",
      ].join("\n"),
    );
    const server = await spawnServer({
      name: "mosquitto",
      command: binary,
      args: ["-c", conf],
      cwd: dir,
      ready: () => undefined,
      probe: async () => ((await tcpProbe("127.0.0.1", port, 500)) === undefined ? "up" : undefined),
      timeoutMs: 10000,
    }).catch((err: Error) => {
      removeTempDir(dir);
      throw err;
    });
    return {
      endpoint: { url: `mqtt://127.0.0.1:${port}` },
      pid: server.pid,
      owned: true,
      describe: `private mosquitto (${binary}) on 127.0.0.1:${port}, max_queued_messages 0, max_inflight_messages ${prefetch}, set_tcp_nodelay true`,
      logTail: server.logTail,
      async stop() {
        await server.stop();
        removeTempDir(dir);
      },
    };
  },
  client: mqttClient,
};
