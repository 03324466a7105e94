// Baseline server: a bare Socket.IO relay that speaks queuehub's wire pattern with no storage and no
// queue, the limit for that pattern on this machine. `subscribe { event }` registers the socket;
// any other event (or `publish` with an array) is relayed at once to every other subscriber of it
// as queuehub delivers (`{ messageId, event, payload, publishedAt, from, deliveries }`, one event
// per message, or one `deliveries` array for `auth.batch` sockets) and acked to the publisher right
// away (`{ ok, messageId }`); `received { messageIds }` is accepted and ignored.
// Prints {"msg":"listening","url":...} on stdout when ready. GET /metrics answers prom-client's
// default metrics, as queuehub's /metrics does: the sweep reads the event-loop delay of both alike.

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Registry } from "prom-client";
import { Server, type Socket } from "socket.io";

interface RelayMessage {
  messageId: string;
  event: string;
  payload: unknown;
  publishedAt: number;
  from: string;
  deliveries: number;
}

type Ack = (reply: unknown) => void;

const registry = new Registry();
collectDefaultMetrics({ register: registry });

// Socket.IO passes every request outside its own path on to this handler.
const http = createServer((req, res) => {
  if (req.method !== "GET" || req.url !== "/metrics") {
    res.writeHead(404).end();
    return;
  }
  void registry.metrics().then((text) => {
    res.writeHead(200, { "content-type": registry.contentType });
    res.end(text);
  });
});
const io = new Server(http, { serveClient: false });
const nsp = io.of("/bench");
/** Subscribers by event name. */
const subscribers = new Map<string, Set<Socket>>();
let nextId = 0;

function relay(from: Socket, items: { event: string; payload: unknown }[]): string[] {
  const clientId = String((from.handshake.auth as { clientId?: unknown }).clientId ?? "");
  const now = Date.now();
  const messages: RelayMessage[] = items.map(({ event, payload }) => ({
    messageId: `m${nextId++}`,
    event,
    payload,
    publishedAt: now,
    from: clientId,
    deliveries: 1,
  }));
  for (const m of messages) {
    for (const sub of subscribers.get(m.event) ?? []) {
      if (sub === from) continue;
      if (sub.data.batch) sub.emit("deliveries", [m]);
      else sub.emit(m.event, m);
    }
  }
  return messages.map((m) => m.messageId);
}

nsp.on("connection", (socket) => {
  socket.data.batch = (socket.handshake.auth as { batch?: unknown }).batch === true;
  const events = new Set<string>();
  socket.onAny((event: string, ...args: unknown[]) => {
    const ack = typeof args.at(-1) === "function" ? (args.pop() as Ack) : undefined;
    const arg = args[0] as Record<string, unknown> | unknown[] | undefined;
    if (event === "subscribe") {
      const wanted = (arg as { event?: unknown })?.event;
      const names = (Array.isArray(wanted) ? wanted : [wanted]).map(String);
      for (const name of names) {
        events.add(name);
        if (!subscribers.has(name)) subscribers.set(name, new Set());
        subscribers.get(name)?.add(socket);
      }
      ack?.({ ok: true, events: names });
    } else if (event === "received") {
      const ids = (arg as { messageIds?: unknown })?.messageIds;
      ack?.({ ok: true, removed: Array.isArray(ids) ? ids.length : 0 });
    } else if (event === "publish") {
      const items = (Array.isArray(arg) ? arg : [arg]) as { event: string; payload: unknown }[];
      const ids = relay(socket, items);
      ack?.(Array.isArray(arg) ? { ok: true, messageIds: ids } : { ok: true, messageId: ids[0] });
    } else {
      ack?.({ ok: true, messageId: relay(socket, [{ event, payload: arg }])[0] });
    }
  });
  socket.on("disconnect", () => {
    for (const name of events) subscribers.get(name)?.delete(socket);
  });
});

http.listen(0, "127.0.0.1", () => {
  const { port } = http.address() as AddressInfo;
  console.log(JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${port}` }));
});

process.on("SIGTERM", () => process.exit(0));
