// The MQTT client side shared by the Aedes and Mosquitto baselines: mqtt.js, QoS 1 both ways,
// subscribers with persistent sessions (clean: false) so that messages queue while they are away.
// Each message is acked by the subscriber's PUBACK (MQTT has no batched ack). The publisher keeps
// a window of QoS 1 publishes in flight, each settled by its PUBACK; TCP_NODELAY on every
// connection (mqtt.js leaves Nagle's algorithm on; Mosquitto's set_tcp_nodelay does the same on
// the broker's side).

import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { decode, encode } from "../payload.js";
import type { BenchPayload, ClientDriver, Endpoint, RunPlan } from "../types.js";

export function topicOf(plan: RunPlan): string {
  return `bench/${plan.runId}/tick`;
}

/** Creates a client with its handlers attached first, then waits for CONNACK. */
function connect(
  url: string,
  opts: IClientOptions,
  setup?: (client: MqttClient) => void,
): Promise<MqttClient> {
  const client = mqtt.connect(url, {
    reconnectPeriod: 0,
    connectTimeout: 10000,
    protocolVersion: 4,
    ...opts,
  });
  setup?.(client);
  return new Promise((resolve, reject) => {
    const fail = (err?: Error) => {
      client.end(true);
      reject(err ?? new Error(`MQTT connection to ${url} closed before CONNACK`));
    };
    client.once("connect", () => {
      (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      client.off("error", fail);
      client.off("close", fail);
      client.on("error", (err) => console.error(`mqtt client ${opts.clientId}: ${err.message}`));
      resolve(client);
    });
    client.once("error", fail);
    client.once("close", fail);
  });
}

export async function mqttClient(endpoint: Endpoint, plan: RunPlan): Promise<ClientDriver> {
  const topic = topicOf(plan);
  return {
    async subscriber(index, onMessage) {
      const client = await connect(endpoint.url, { clientId: `s${plan.runId}-${index}`, clean: false }, (c) =>
        c.on("message", (_topic, payload) => onMessage(decode(payload))),
      );
      await client.subscribeAsync(topic, { qos: 1 });
      return { close: () => client.endAsync() };
    },

    async publisher() {
      const client = await connect(endpoint.url, { clientId: `p${plan.runId}`, clean: true });
      const publishOne = (p: BenchPayload) =>
        new Promise<void>((resolve, reject) =>
          client.publish(topic, encode(p), { qos: 1 }, (err) => (err ? reject(err) : resolve())),
        );
      return {
        maxBatch: 1,
        async publish(payloads) {
          await Promise.all(payloads.map(publishOne));
        },
        close: () => client.endAsync(),
      };
    },

    async idle(id) {
      const client = await connect(endpoint.url, { clientId: id, clean: true });
      return { close: () => client.endAsync() };
    },
  };
}
