// The client side of queuehub's wire protocol, with socket.io-client, in the plan's mode:
// - "batch": batch publishes (arrays of up to `batch`, acked once durable), `auth.batch: true` so
//   deliveries arrive as arrays, acks sent once per delivery array (`received { messageIds }`).
// - "singles": what an ordinary Socket.IO user writes: `socket.emit("tick", payload, ack)` per
//   message, one `tick` event per delivery, acks batched every 100 messages or 5 ms.
// The bare Socket.IO relay (bench/servers/socketio-relay-server.ts) speaks the same protocol, so
// both run exactly this client code.

import { io, type Socket } from "socket.io-client";
import { decode } from "../payload.js";
import type { ClientDriver, Endpoint, RunPlan } from "../types.js";
import { batchedAcks } from "./acks.js";

/** The largest batch the hub takes in one publish (protocol: a configured size, 100 by default). */
export const MAX_PUBLISH_BATCH = 100;

const NAMESPACE = "/bench";
const EVENT = "tick";

interface WireMessage {
  messageId: string;
  event: string;
  payload: unknown;
}

type Reply =
  | { ok: true; [key: string]: unknown }
  | { ok: false; error?: { code?: string; message?: string } };

function refusal(what: string, reply: Reply): Error {
  if (reply.ok) return new Error(`${what}: unexpected reply ${JSON.stringify(reply)}`);
  return new Error(
    `${what} refused: ${reply.error?.code ?? "?"}: ${reply.error?.message ?? JSON.stringify(reply)}`,
  );
}

/** Opens a connection with the handlers attached first, then waits until it is connected. */
function connect(
  url: string,
  clientId: string,
  batch: boolean,
  setup?: (socket: Socket) => void,
): Promise<Socket> {
  const socket = io(url + NAMESPACE, {
    auth: batch ? { clientId, batch: true } : { clientId },
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    timeout: 10000,
  });
  setup?.(socket);
  return new Promise((resolve, reject) => {
    socket.once("connect", () => {
      socket.on("disconnect", (reason) => {
        if (reason !== "io client disconnect")
          console.error(`queuehub client ${clientId} disconnected: ${reason}`);
      });
      resolve(socket);
    });
    socket.once("connect_error", (err) => {
      socket.close();
      reject(new Error(`connect_error: ${err.message}`));
    });
  });
}

export async function queuehubClient(endpoint: Endpoint, plan: RunPlan): Promise<ClientDriver> {
  const singles = plan.mode === "singles";
  // In a cluster the publisher talks to the first hub and subscribers to the others, so every
  // message crosses from one hub to another.
  const urls = endpoint.urls ?? [endpoint.url];
  const subscriberUrl = (index: number) =>
    urls[urls.length === 1 ? 0 : 1 + (index % (urls.length - 1))] ?? endpoint.url;
  return {
    async subscriber(index, onMessage) {
      let socket: Socket | undefined;
      const acks = batchedAcks<string>(plan, (messageIds) => socket?.emit("received", { messageIds }));
      const handle = (m: WireMessage) => {
        onMessage(decode(m.payload));
        acks.add(m.messageId);
      };
      socket = await connect(subscriberUrl(index), `s${plan.runId}-${index}`, !singles, (s) => {
        s.on("deliveries", (messages: WireMessage[]) => {
          for (const m of messages) handle(m);
        });
        // Singles mode, or a hub that ignores auth.batch: one event per message.
        s.on(EVENT, (m: WireMessage) => handle(m));
      });
      const reply = (await socket.timeout(10000).emitWithAck("subscribe", { event: EVENT })) as Reply;
      if (!reply.ok) throw refusal("subscribe", reply);
      const connected = socket;
      return {
        async close() {
          acks.flush();
          connected.close();
        },
      };
    },

    async publisher() {
      const socket = await connect(endpoint.url, `p${plan.runId}`, !singles);
      if (singles) {
        // The shorthand a Socket.IO user writes: the event name is the event, one message per emit.
        const publishOne = (payload: unknown) =>
          new Promise<void>((resolve, reject) => {
            socket.emit(EVENT, payload, (reply: Reply) => {
              if (!reply.ok) return reject(refusal("publish", reply));
              if (typeof reply.messageId !== "string") {
                return reject(new Error(`publish ack without a messageId: ${JSON.stringify(reply)}`));
              }
              resolve();
            });
          });
        return {
          maxBatch: 1,
          async publish(payloads) {
            await Promise.all(payloads.map(publishOne));
          },
          close: async () => void socket.close(),
        };
      }
      return {
        maxBatch: MAX_PUBLISH_BATCH,
        publish(payloads) {
          const items = payloads.map((payload) => ({ event: EVENT, payload }));
          return new Promise<void>((resolve, reject) => {
            socket.emit("publish", items, (reply: Reply) => {
              if (!reply.ok) return reject(refusal("publish", reply));
              const ids = reply.messageIds;
              if (!Array.isArray(ids) || ids.length !== items.length) {
                return reject(
                  new Error(`publish ack without ${items.length} messageIds: ${JSON.stringify(reply)}`),
                );
              }
              resolve();
            });
          });
        },
        close: async () => void socket.close(),
      };
    },

    async idle(id) {
      const socket = await connect(
        urls[Number.parseInt(id.replace(/\D/g, "") || "0", 10) % urls.length] ?? endpoint.url,
        id,
        !singles,
      );
      return { close: async () => void socket.close() };
    },
  };
}
