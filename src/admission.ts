// Who may open a connection. Engine.IO asks one function at each handshake (`allowRequest`, over
// polling and WebSocket alike, before any open packet is sent), so every check of a new connection
// is listed here, in order (admissionChecks): the page's origin first, then the connection limits.
// A refused origin gets Engine.IO's own answer (HTTP 403 over polling, 400 on an upgrade); a limit
// gets 503 with a JSON reason and Retry-After, written here.
//
// The connection limits count Engine.IO connections: all of them (HUB_MAX_CONNECTIONS, kept under
// the process's open-file limit) and those of each remote address (HUB_MAX_CONNECTIONS_PER_ADDRESS;
// loopback exempt unless HUB_LIMIT_LOOPBACK). Raw TCP connections that never make a handshake
// (idle sockets) are capped too, beneath HTTP, so they cannot use up the file descriptors either.
import { readFileSync } from "node:fs";
import {
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import type { Socket as NetSocket } from "node:net";
import type { ServerOptions } from "socket.io";
import { clientAddress, isLoopback, plainAddress } from "./address.js";
import type { HubConfig } from "./config.js";
import type { Logger } from "./log.js";
import type { OriginPolicy } from "./origins.js";

/** What the limits need of Engine.IO's server: its connections as they open and close. */
interface EngineConnections {
  on(event: "connection", listener: (socket: EngineConnection) => void): unknown;
}
interface EngineConnection {
  /** The handshake request. */
  request: IncomingMessage;
  once(event: "close", listener: () => void): unknown;
}

/** Why a handshake is refused: the HTTP status and a reason the client can read. */
export interface Refusal {
  status: number;
  message: string;
}

/** One check of a new connection: null lets it through, else why it is refused. */
export type AdmissionCheck = (req: IncomingMessage) => Refusal | null;

/**
 * The checks the hub's own Socket.IO server runs, the first refusal winning. The limits come last:
 * a handshake they let through counts against them until its connection opens.
 */
export function admissionChecks(parts: {
  origins: OriginPolicy;
  limits?: ConnectionLimits;
}): AdmissionCheck[] {
  const { origins, limits } = parts;
  return [
    // A page from a foreign origin never connects through its visitor's browser (CSRF, rebinding).
    (req) => (origins.allows(req) ? null : { status: 403, message: origins.refusal(req) }),
    ...(limits ? [limits.check] : []),
  ];
}

/** Engine.IO's `allowRequest` running `checks` in order. */
export function allowRequestOf(
  checks: readonly AdmissionCheck[],
): NonNullable<ServerOptions["allowRequest"]> {
  return (req, done) => {
    for (const check of checks) {
      const refusal = check(req);
      if (refusal) return refuse(req, refusal, done);
    }
    done(null, true);
  };
}

/**
 * Answers a refused handshake. A 403 is Engine.IO's own answer; any other status (503) Engine.IO
 * cannot give, so it is written here, on the polling response Engine.IO hands over (`req.res`) or
 * on the socket of an upgrade, and Engine.IO, told once it is flushed, only closes the connection.
 */
function refuse(req: IncomingMessage, refusal: Refusal, done: (err: string, success: boolean) => void) {
  if (refusal.status === 403) return done(refusal.message, false);
  const body = JSON.stringify({ code: refusal.status, message: refusal.message });
  const headers = {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
    ...(refusal.status === 503 ? { "retry-after": "5" } : {}),
    connection: "close",
  };
  const res = (req as IncomingMessage & { res?: ServerResponse }).res;
  if (res && !res.headersSent) {
    res.writeHead(refusal.status, headers);
    res.end(body);
    return done(refusal.message, false);
  }
  const socket = req.socket;
  if (!socket.writable) return done(refusal.message, false);
  const head = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  socket.end(
    `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? "Refused"}\r\n${head}\r\n${body}`,
    () => done(refusal.message, false),
  );
}

export type ConnectionLimitSettings = Pick<
  HubConfig,
  "maxConnections" | "maxConnectionsPerAddress" | "limitLoopback" | "trustedProxies"
>;

/** A handshake let through whose connection has not opened yet: it counts meanwhile. */
interface Pending {
  address: string;
  at: number;
}

/** How long a handshake let through may take to open before it stops counting. */
const PENDING_MS = 10_000;

/** Connections, all and per remote address, against their limits. */
export class ConnectionLimits {
  private total = 0;
  private readonly byAddress = new Map<string, number>();
  private readonly pending = new Map<IncomingMessage, Pending>();
  /** Refusals since the last log line, so a flood logs a line a second, not a line a connection. */
  private refused = 0;
  private lastLog = 0;

  constructor(
    private readonly settings: ConnectionLimitSettings,
    private readonly log: Logger,
  ) {}

  /** The handshake check: 503 over either limit. */
  readonly check: AdmissionCheck = (req) => {
    const now = Date.now();
    this.expirePending(now);
    const address = this.addressOf(req);
    const { maxConnections, maxConnectionsPerAddress } = this.settings;
    let refusal: Refusal | null = null;
    if (maxConnections > 0 && this.total + this.pending.size >= maxConnections) {
      refusal = {
        status: 503,
        message: `the hub is at its limit of ${maxConnections} connections (HUB_MAX_CONNECTIONS); retry later`,
      };
    } else if (this.limited(address) && this.count(address) >= maxConnectionsPerAddress) {
      refusal = {
        status: 503,
        message: `too many connections from ${address}: at most ${maxConnectionsPerAddress} (HUB_MAX_CONNECTIONS_PER_ADDRESS)`,
      };
    }
    if (refusal) {
      this.noteRefusal(now, address, refusal.message);
      return refusal;
    }
    this.pending.set(req, { address, at: now });
    return null;
  };

  /** Counts the engine's connections as they open and close. */
  track(engine: EngineConnections): void {
    engine.on("connection", (socket) => {
      const reserved = this.pending.get(socket.request);
      this.pending.delete(socket.request);
      const address = reserved?.address ?? this.addressOf(socket.request);
      this.total++;
      this.byAddress.set(address, (this.byAddress.get(address) ?? 0) + 1);
      socket.once("close", () => {
        this.total--;
        const left = (this.byAddress.get(address) ?? 1) - 1;
        if (left > 0) this.byAddress.set(address, left);
        else this.byAddress.delete(address);
      });
    });
  }

  /**
   * Caps raw TCP connections beneath HTTP: in all (a margin over HUB_MAX_CONNECTIONS, for HTTP
   * requests and polling's second request) and per peer address (twice the per-address limit, and
   * some), so idle sockets that never handshake cannot take every file descriptor. Warns when the
   * cap is over the process's open-file limit.
   */
  guard(server: HttpServer): void {
    const { maxConnections, maxConnectionsPerAddress } = this.settings;
    if (maxConnections > 0) {
      server.maxConnections = maxConnections + Math.max(100, Math.ceil(maxConnections / 10));
      const files = openFileLimit();
      if (files !== null && server.maxConnections + 100 > files) {
        this.log.warn(
          { maxConnections, openFileLimit: files },
          `HUB_MAX_CONNECTIONS=${maxConnections} is close to this process's open-file limit (${files}): lower it, or raise the limit (ulimit -n)`,
        );
      }
    }
    if (maxConnectionsPerAddress === 0) return;
    const perPeer = maxConnectionsPerAddress * 2 + 16;
    const peers = new Map<string, number>();
    server.on("connection", (socket: NetSocket) => {
      const peer = plainAddress(socket.remoteAddress ?? "unknown");
      // A trusted proxy carries many clients: its own sockets are not capped per address.
      if (!this.limited(peer) || this.settings.trustedProxies.includes(peer)) return;
      const open = (peers.get(peer) ?? 0) + 1;
      if (open > perPeer) {
        this.noteRefusal(Date.now(), peer, `over ${perPeer} TCP connections from one address`);
        socket.destroy();
        return;
      }
      peers.set(peer, open);
      socket.once("close", () => {
        const left = (peers.get(peer) ?? 1) - 1;
        if (left > 0) peers.set(peer, left);
        else peers.delete(peer);
      });
    });
  }

  /** Open connections now (for tests and metrics). */
  connections(): number {
    return this.total;
  }

  private addressOf(req: IncomingMessage): string {
    return clientAddress(req.socket?.remoteAddress, req.headers, this.settings.trustedProxies);
  }

  /** True when the per-address limit applies to this address. */
  private limited(address: string): boolean {
    return (
      this.settings.maxConnectionsPerAddress > 0 && (this.settings.limitLoopback || !isLoopback(address))
    );
  }

  private count(address: string): number {
    let n = this.byAddress.get(address) ?? 0;
    for (const p of this.pending.values()) if (p.address === address) n++;
    return n;
  }

  private expirePending(now: number) {
    for (const [req, p] of this.pending) {
      if (now - p.at < PENDING_MS) break;
      this.pending.delete(req);
    }
  }

  private noteRefusal(now: number, address: string, reason: string) {
    this.refused++;
    if (now - this.lastLog < 1000) return;
    this.log.warn({ address, refused: this.refused, reason }, "connections refused");
    this.refused = 0;
    this.lastLog = now;
  }
}

/** The soft limit on open files of this process (Linux), or null where it cannot be read. */
function openFileLimit(): number | null {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(soft) ? soft : null;
  } catch {
    return null;
  }
}
