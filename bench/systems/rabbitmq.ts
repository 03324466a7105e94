// Baseline: RabbitMQ (shared service, BENCH_RABBITMQ_URL, default amqp://guest:guest@127.0.0.1:5672).
// One durable fanout exchange per run with one durable classic queue per subscriber; persistent
// messages. At its best known client settings (bench/README.md cites each): publisher confirms
// handled asynchronously with a window of unconfirmed publishes, consumers with a prefetch in the
// 100-300 range the RabbitMQ docs recommend (never more than the run's --prefetch) and manual acks
// batched with `multiple`, TCP_NODELAY on every connection (RabbitMQ's own Java client's default).

import { readFileSync } from "node:fs";
import amqplib from "amqplib";
import { decode, encode } from "../payload.js";
import { findPidByName, tcpProbe } from "../proc.js";
import { type ClientDriver, type Endpoint, type RunPlan, type SystemDef, Unavailable } from "../types.js";
import { batchedAcks } from "./acks.js";

const DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672";

/** "Values in the 100 through 300 range usually offer optimal throughput" (RabbitMQ, confirms guide). */
const BEST_PREFETCH = 300;

/** Socket options of every connection: Nagle's algorithm off, as RabbitMQ's Java client does by default. */
const SOCKET = { timeout: 10000, noDelay: true };

const exchangeOf = (plan: RunPlan) => `bench.${plan.runId}`;
const queueOf = (plan: RunPlan, index: number) => `bench.${plan.runId}.${index}`;

/** Soft "Max open files" of a process, from /proc/<pid>/limits. */
function openFileLimit(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    return soft && /^\d+$/.test(soft) ? Number(soft) : undefined;
  } catch {
    return undefined;
  }
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function client(endpoint: Endpoint, plan: RunPlan): Promise<ClientDriver> {
  const exchange = exchangeOf(plan);
  return {
    async subscriber(index, onMessage) {
      const conn = await amqplib.connect(endpoint.url, SOCKET);
      conn.on("error", (err) => console.error(`amqp subscriber connection: ${describeError(err)}`));
      const channel = await conn.createChannel();
      await channel.prefetch(Math.min(plan.prefetch, BEST_PREFETCH));
      // One basic.ack with `multiple` acks every delivery up to the last one of the group.
      const acks = batchedAcks<amqplib.ConsumeMessage>(plan, (msgs) => {
        const last = msgs.at(-1);
        if (last) channel.ack(last, true);
      });
      await channel.consume(
        queueOf(plan, index),
        (msg) => {
          if (!msg) return;
          onMessage(decode(msg.content));
          acks.add(msg);
        },
        { noAck: false },
      );
      return {
        async close() {
          acks.flush();
          await conn.close();
        },
      };
    },

    async publisher() {
      const conn = await amqplib.connect(endpoint.url, SOCKET);
      conn.on("error", (err) => console.error(`amqp publisher connection: ${describeError(err)}`));
      const channel = await conn.createConfirmChannel();
      const publishOne = (content: Buffer) =>
        new Promise<void>((resolve, reject) => {
          channel.publish(exchange, "", content, { persistent: true }, (err) =>
            err ? reject(new Error(`publish nacked: ${describeError(err)}`)) : resolve(),
          );
        });
      return {
        maxBatch: 1,
        async publish(payloads) {
          await Promise.all(payloads.map((p) => publishOne(encode(p))));
        },
        close: () => conn.close(),
      };
    },

    async idle() {
      const conn = await amqplib.connect(endpoint.url, SOCKET);
      conn.on("error", () => {});
      return { close: () => conn.close() };
    },
  };
}

export const rabbitmq: SystemDef = {
  name: "rabbitmq",
  durability:
    "durable queue, persistent messages: fsync before each publisher confirm (batched by the broker)",
  disk: "fsync per confirm",
  hasQueue: true,
  async start() {
    const url = new URL(process.env.BENCH_RABBITMQ_URL ?? DEFAULT_URL);
    const error = await tcpProbe(url.hostname, Number(url.port || 5672));
    if (error) throw new Unavailable(`not reachable: ${url.host}: ${error}`);
    return {
      endpoint: { url: url.href },
      pid: findPidByName("beam.smp"),
      owned: false,
      describe: `shared RabbitMQ at ${url.host}`,
      stop: async () => {},
    };
  },
  connectionLimit(server) {
    // RabbitMQ refuses sockets past ~90% of its open-file limit; going there would starve every
    // other user of this shared broker, so the connections scenario stops short of it.
    if (server.pid === undefined) return undefined;
    const limit = openFileLimit(server.pid);
    if (limit === undefined || limit >= 20000) return undefined;
    return {
      limit: Math.max(10, Math.floor((limit - 100) * 0.9) - 50),
      reason: `the broker's open-file limit is ${limit}`,
    };
  },
  async setup(server, plan) {
    let conn: amqplib.ChannelModel;
    try {
      conn = await amqplib.connect(server.endpoint.url);
    } catch (err) {
      throw new Unavailable(`not reachable: ${describeError(err)}`);
    }
    try {
      const channel = await conn.createChannel();
      await channel.assertExchange(exchangeOf(plan), "fanout", { durable: true, autoDelete: false });
      for (let i = 0; i < plan.subscribers; i++) {
        await channel.assertQueue(queueOf(plan, i), { durable: true, autoDelete: false });
        await channel.bindQueue(queueOf(plan, i), exchangeOf(plan), "");
      }
    } finally {
      await conn.close();
    }
  },
  async teardown(server, plan) {
    const conn = await amqplib.connect(server.endpoint.url);
    try {
      const channel = await conn.createChannel();
      for (let i = 0; i < plan.subscribers; i++) await channel.deleteQueue(queueOf(plan, i));
      await channel.deleteExchange(exchangeOf(plan));
    } finally {
      await conn.close();
    }
  },
  client,
};
