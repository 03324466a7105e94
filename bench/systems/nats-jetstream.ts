// Baseline: NATS JetStream (shared service, BENCH_NATS_URL, default nats://127.0.0.1:4222).
// One file-storage stream per run with interest retention (a message is removed once every
// consumer acked it, as in a queue) and one durable pull consumer per subscriber with
// max_ack_pending = prefetch, pulling up to prefetch messages at a time. At its best known client
// settings (bench/README.md cites each): the publisher keeps a window of async publishes in
// flight, as NATS's PublishAsync does (awaiting each one in turn measures the client's round
// trips, not JetStream), and the consumer acks in groups with AckPolicy.All (one ack covers every
// earlier message), grouped as queuehub's subscribers group theirs.

import {
  AckPolicy,
  connect,
  createInbox,
  DeliverPolicy,
  type JsMsg,
  type NatsConnection,
  RetentionPolicy,
  StorageType,
} from "nats";
import { decode, encode } from "../payload.js";
import { findPidByName, tcpProbe } from "../proc.js";
import {
  type BenchPayload,
  type ClientDriver,
  type Endpoint,
  type RunPlan,
  type SystemDef,
  Unavailable,
} from "../types.js";
import { batchedAcks } from "./acks.js";

const DEFAULT_URL = "nats://127.0.0.1:4222";

/**
 * Options of the benchmark's clients. nats.js captures a stack trace for every request unless
 * told not to: with js.publish() that alone was a third of the publisher's CPU here.
 */
const CLIENT = { noAsyncTraces: true };

const streamOf = (plan: RunPlan) => `BENCH_${plan.runId}`;
const subjectOf = (plan: RunPlan) => `bench.${plan.runId}.tick`;
const consumerOf = (index: number) => `c${index}`;

function servers(endpoint: Endpoint): string {
  return new URL(endpoint.url).host;
}

async function client(endpoint: Endpoint, plan: RunPlan): Promise<ClientDriver> {
  const subject = subjectOf(plan);
  return {
    async subscriber(index, onMessage) {
      const nc = await connect({ ...CLIENT, servers: servers(endpoint), name: `s${plan.runId}-${index}` });
      const consumer = await nc.jetstream().consumers.get(streamOf(plan), consumerOf(index));
      const acks = batchedAcks<JsMsg>(plan, (msgs) => msgs.at(-1)?.ack());
      const messages = await consumer.consume({
        max_messages: plan.prefetch,
        callback: (m) => {
          onMessage(decode(m.data));
          acks.add(m);
        },
      });
      return {
        async close() {
          acks.flush();
          messages.stop();
          await nc.drain();
        },
      };
    },

    async publisher() {
      const nc = await connect({ ...CLIENT, servers: servers(endpoint), name: `p${plan.runId}` });
      // JetStream's async publish, as NATS's Go and Java clients do it (PublishAsync): a plain
      // publish to the stream's subject with a reply subject under one wildcard inbox; the stream's
      // PubAck (`{ stream, seq }`, or `{ error }`) arrives there. nats.js 2.x has no such call, and
      // its js.publish() (a request with its own timer, promise and headers per message) costs
      // the publisher ~40 µs of CPU a message here against ~9 µs this way.
      const inbox = createInbox();
      const pending = new Map<string, { resolve: () => void; reject: (err: Error) => void }>();
      let next = 0;
      nc.subscribe(`${inbox}.*`, {
        callback: (err, m) => {
          if (err) {
            for (const p of pending.values()) p.reject(err);
            pending.clear();
            return;
          }
          const token = m.subject.slice(inbox.length + 1);
          const waiter = pending.get(token);
          if (!waiter) return;
          pending.delete(token);
          if (m.data.length === 0) return waiter.reject(new Error(`no stream took ${subject}`));
          const ack = JSON.parse(Buffer.from(m.data).toString()) as { error?: { description?: string } };
          if (ack.error) waiter.reject(new Error(`publish refused: ${ack.error.description ?? "?"}`));
          else waiter.resolve();
        },
      });
      const publishOne = (payload: BenchPayload) =>
        new Promise<void>((resolve, reject) => {
          const token = String(next++);
          pending.set(token, { resolve, reject });
          nc.publish(subject, encode(payload), { reply: `${inbox}.${token}` });
        });
      return {
        maxBatch: 1,
        async publish(payloads) {
          await Promise.all(payloads.map(publishOne));
        },
        close: () => nc.drain(),
      };
    },

    async idle(id) {
      const nc = await connect({ ...CLIENT, servers: servers(endpoint), name: id });
      return { close: () => nc.close() };
    },
  };
}

async function manage<T>(endpoint: Endpoint, work: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: servers(endpoint) });
  try {
    return await work(nc);
  } finally {
    await nc.close();
  }
}

export const natsJetstream: SystemDef = {
  name: "nats-jetstream",
  durability: "file storage; fsync every 2 min by default (sync_interval), not per message",
  disk: "no fsync per msg",
  hasQueue: true,
  async start() {
    const url = new URL(process.env.BENCH_NATS_URL ?? DEFAULT_URL);
    const error = await tcpProbe(url.hostname, Number(url.port || 4222));
    if (error) throw new Unavailable(`not reachable: ${url.host}: ${error}`);
    return {
      endpoint: { url: url.href },
      pid: findPidByName("nats-server"),
      owned: false,
      describe: `shared nats-server at ${url.host}`,
      stop: async () => {},
    };
  },
  async setup(server, plan) {
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: servers(server.endpoint) });
    } catch (err) {
      throw new Unavailable(`not reachable: ${err instanceof Error ? err.message : String(err)}`);
    }
    try {
      let jsm: Awaited<ReturnType<NatsConnection["jetstreamManager"]>>;
      try {
        jsm = await nc.jetstreamManager();
      } catch (err) {
        throw new Unavailable(`JetStream not available: ${err instanceof Error ? err.message : String(err)}`);
      }
      await jsm.streams.add({
        name: streamOf(plan),
        subjects: [subjectOf(plan)],
        storage: StorageType.File,
        retention: RetentionPolicy.Interest,
      });
      for (let i = 0; i < plan.subscribers; i++) {
        await jsm.consumers.add(streamOf(plan), {
          durable_name: consumerOf(i),
          // Acking one message acks every earlier one: acks batch as AMQP's `multiple` does.
          ack_policy: AckPolicy.All,
          deliver_policy: DeliverPolicy.All,
          max_ack_pending: plan.prefetch,
        });
      }
    } finally {
      await nc.close();
    }
  },
  async teardown(server, plan) {
    await manage(server.endpoint, async (nc) => {
      const jsm = await nc.jetstreamManager();
      await jsm.streams.delete(streamOf(plan));
    });
  },
  client,
};
