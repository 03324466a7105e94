// Corked writes: every frame a connection sends in one turn of the event loop leaves in one
// socket write. Each Socket.IO emit on the websocket transport is otherwise its own `writev`
// system call (ws writes a frame as soon as the socket is free), and on the singles path (an ack
// per publish, an event per delivery) those calls were the hub's biggest single cost.
//
// Engine.IO says when it hands packets to its transport (its documented `flush` event); there the
// TCP socket under a websocket transport is corked until the end of the turn (process.nextTick
// runs after the turn's promise continuations, where deliveries and publish acks are sent).
// Polling transports write HTTP responses of their own, batched already: they are left alone.
import type { Socket as TcpSocket } from "node:net";
import type { Socket } from "socket.io";

/** Engine.IO's connection under a Socket.IO socket (engine.io is socket.io's, not a dependency of ours). */
type EngineSocket = Socket["conn"];

/** Engine.IO connections already watched (one per client, whatever its namespaces). */
const watched = new WeakSet<EngineSocket>();

/** Corks the connection's TCP socket for the rest of the turn whenever Engine.IO flushes packets to it. */
export function corkWritesPerTurn(conn: EngineSocket): void {
  if (watched.has(conn)) return;
  watched.add(conn);
  let corked: TcpSocket | null = null;
  const uncork = () => {
    const tcp = corked;
    corked = null;
    tcp?.uncork();
  };
  conn.on("flush", () => {
    if (corked !== null) return;
    const tcp = tcpSocketOf(conn);
    if (tcp === undefined) return;
    corked = tcp;
    tcp.cork();
    process.nextTick(uncork);
  });
}

/**
 * The TCP socket under a websocket transport. ws keeps it as `_socket`, with no public accessor
 * (Engine.IO itself reaches into ws's `_sender`); anything else (polling, another transport, a
 * future ws) gets undefined and is written as before.
 */
function tcpSocketOf(conn: EngineSocket): TcpSocket | undefined {
  const transport = conn.transport as { name?: string; socket?: { _socket?: unknown } } | undefined;
  if (transport?.name !== "websocket") return undefined;
  const tcp = transport.socket?._socket as TcpSocket | null | undefined;
  return tcp && typeof tcp.cork === "function" && !tcp.destroyed ? tcp : undefined;
}
