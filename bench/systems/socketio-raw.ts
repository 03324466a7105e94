// Baseline: a bare Socket.IO server (bench/servers/socketio-raw-server.ts) that forwards `tick`
// from the publisher to the subscribers. `socketio-raw` is fire-and-forget; `socketio-raw-ack`
// acks each message end to end (subscriber → server → publisher). No queue: an offline client
// gets nothing, so the backlog scenario does not apply.

import { io, type Socket } from "socket.io-client";
import { decode } from "../payload.js";
import { sleep, startBenchServer } from "../proc.js";
import type { BenchPayload, ClientDriver, Endpoint, SystemDef } from "../types.js";

/** Bytes the publisher lets the WebSocket buffer before it waits (fire-and-forget pacing). */
const MAX_BUFFERED = 1 << 20;

function connect(url: string, role: string): Promise<Socket> {
  const socket = io(`${url}/bench`, {
    auth: { role },
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    timeout: 10000,
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      reject(err);
    });
  });
}

/** Bytes waiting in the client's WebSocket (engine.io write buffer not included). */
function buffered(socket: Socket): number {
  const engine = socket.io.engine as unknown as { transport?: { ws?: { bufferedAmount?: number } } };
  return engine.transport?.ws?.bufferedAmount ?? 0;
}

function client(ack: boolean) {
  return async (endpoint: Endpoint): Promise<ClientDriver> => ({
    async subscriber(_index, onMessage) {
      const socket = io(`${endpoint.url}/bench`, {
        auth: { role: "sub" },
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
      });
      socket.on("tick", (payload: unknown, done?: () => void) => {
        onMessage(decode(payload));
        done?.();
      });
      socket.on("disconnect", (reason) => {
        if (reason !== "io client disconnect") console.error(`subscriber disconnected: ${reason}`);
      });
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", reject);
      });
      return { close: async () => void socket.close() };
    },

    async publisher() {
      const socket = await connect(endpoint.url, "pub");
      return {
        maxBatch: 1,
        async publish(payloads: BenchPayload[]) {
          if (ack) {
            await Promise.all(
              payloads.map((p) => new Promise<void>((resolve) => socket.emit("tick", p, resolve))),
            );
            return;
          }
          for (const p of payloads) socket.emit("tick", p);
          // Fire-and-forget: the only bound on what is in flight is the socket's buffer.
          while (buffered(socket) > MAX_BUFFERED) await sleep(1);
        },
        close: async () => void socket.close(),
      };
    },

    async idle() {
      const socket = await connect(endpoint.url, "idle");
      return { close: async () => void socket.close() };
    },
  });
}

function system(name: string, ack: boolean): SystemDef {
  return {
    name,
    durability: ack ? "none: no queue, no storage (ack per message)" : "none: no queue, no storage, no ack",
    disk: "none",
    hasQueue: false,
    async start() {
      return startBenchServer(
        name,
        "socketio-raw-server.ts",
        (url) => `bare Socket.IO server process at ${url}`,
        {
          BENCH_ACK: ack ? "1" : "0",
        },
      );
    },
    client: client(ack),
  };
}

export const socketioRaw = system("socketio-raw", false);
export const socketioRawAck = system("socketio-raw-ack", true);
