// Baseline server: a bare Socket.IO server that forwards `tick` from publishers to every connected
// subscriber. No queue, no storage. With BENCH_ACK=1 each message is acked end to end: the
// publisher's ack is called once every subscriber acked its copy.
// Prints {"msg":"listening","url":...} on stdout when ready.

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server, type Socket } from "socket.io";

const ackMode = process.env.BENCH_ACK === "1";
const http = createServer();
const io = new Server(http, { serveClient: false });
const nsp = io.of("/bench");
const subscribers = new Set<Socket>();

nsp.on("connection", (socket) => {
  const role = (socket.handshake.auth as { role?: string }).role;
  if (role === "sub") {
    subscribers.add(socket);
    socket.join("subs");
    socket.on("disconnect", () => subscribers.delete(socket));
  } else if (role === "pub") {
    if (ackMode) {
      socket.on("tick", (payload: unknown, ack?: () => void) => {
        if (subscribers.size === 0) return ack?.();
        if (subscribers.size === 1) {
          for (const sub of subscribers) sub.emit("tick", payload, () => ack?.());
          return;
        }
        let pending = subscribers.size;
        for (const sub of subscribers) {
          sub.emit("tick", payload, () => {
            if (--pending === 0) ack?.();
          });
        }
      });
    } else {
      socket.on("tick", (payload: unknown) => {
        nsp.to("subs").emit("tick", payload);
      });
    }
  }
});

http.listen(0, "127.0.0.1", () => {
  const { port } = http.address() as AddressInfo;
  console.log(JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${port}` }));
});

process.on("SIGTERM", () => process.exit(0));
