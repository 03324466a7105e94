// The queue's live sockets, by namespace, and how many connections they make. A socket.io-client
// 2.x client (Engine.IO v3) is always connected to `/` besides the namespace it asked for: that
// implicit `/` socket and the other are one connection, so the pair is counted once.
import type { Socket } from "socket.io";

/** What is counted of a socket: its namespace and its Engine.IO connection. */
type LiveSocket = Pick<Socket, "nsp" | "conn">;

/** An Engine.IO v3 connection's sockets here: whether `/` is one, and how many others. */
interface V3Sockets {
  root: boolean;
  others: number;
}

/** A v3 connection counts its other namespaces' sockets, or 1 for `/` alone. */
const counted = (v3: V3Sockets) => (v3.others > 0 ? v3.others : v3.root ? 1 : 0);

export class LiveSockets<S extends LiveSocket> {
  private readonly byNs = new Map<string, Set<S>>();
  private readonly v3 = new Map<LiveSocket["conn"], V3Sockets>();
  private connections = 0;

  add(socket: S): void {
    const ns = socket.nsp.name;
    const live = this.byNs.get(ns) ?? new Set();
    this.byNs.set(ns, live);
    live.add(socket);
    this.count(socket, +1);
  }

  delete(socket: S): void {
    const ns = socket.nsp.name;
    const live = this.byNs.get(ns);
    if (!live?.delete(socket)) return;
    if (live.size === 0) this.byNs.delete(ns);
    this.count(socket, -1);
  }

  /** Connections, as a user counts them (see above). */
  size(): number {
    return this.connections;
  }

  /** The live sockets of one namespace, or of all. */
  *sockets(ns?: string): Iterable<S> {
    for (const [name, live] of this.byNs) if (ns === undefined || name === ns) yield* live;
  }

  private count(socket: S, change: 1 | -1) {
    if (socket.conn.protocol !== 3) {
      this.connections += change;
      return;
    }
    const entry = this.v3.get(socket.conn) ?? { root: false, others: 0 };
    const before = counted(entry);
    if (socket.nsp.name === "/") entry.root = change > 0;
    else entry.others += change;
    this.connections += counted(entry) - before;
    if (entry.root || entry.others > 0) this.v3.set(socket.conn, entry);
    else this.v3.delete(socket.conn);
  }
}
