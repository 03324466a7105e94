// Durable rooms on the wire (PROTOCOL.md, "Rooms"), for identified connections: membership is the
// store's, by clientId; presence is live, through hub-internal Socket.IO rooms that span the hubs of
// a cluster through the adapter. Their names hold "#", outside the room-name pattern, so no client
// can join one: `#client:<clientId>` holds every connection of a client, `#room:<room>` the
// connections of a room's members.
import type { Namespace } from "socket.io";
import type { HubSocket } from "./connection.js";
import type { Logger } from "./log.js";
import type { Failure, OkReply, PresenceEvent, Reply, RoomMember } from "./protocol.js";
import type { QueueCore } from "./queue.js";
import type { PageRequest } from "./store/store.js";
import { roomAccess } from "./token.js";

const clientRoom = (clientId: string) => `#client:${clientId}`;
const ROOM_PREFIX = "#room:";
const memberRoom = (room: string) => `${ROOM_PREFIX}${room}`;

type AnyNamespace = Pick<Namespace, "in" | "to" | "local">;

/** What a connection's room handling keeps: its start-up, and the rooms it left meanwhile. */
interface Member {
  /** Settles when the connection has joined its rooms' presence (connected). */
  ready: Promise<void>;
  /** Rooms this connection left while it was still joining its rooms: not to be joined again. */
  left: Set<string>;
  /** Rooms it joined meanwhile: their members heard of it already. */
  joined: Set<string>;
}

export class Rooms {
  private readonly memberships = new WeakMap<HubSocket, Member>();

  constructor(
    private readonly core: QueueCore,
    private readonly log: Logger,
  ) {}

  /**
   * An identified connection opened: it joins its client's presence rooms, and when it is the
   * client's first connection (on any hub) the other members of its rooms hear it is online.
   */
  connected(socket: HubSocket, clientId: string): void {
    const member: Member = { ready: Promise.resolve(), left: new Set(), joined: new Set() };
    this.memberships.set(socket, member);
    member.ready = this.joinPresence(socket, clientId, member);
  }

  private async joinPresence(socket: HubSocket, clientId: string, member: Member): Promise<void> {
    const nsp = socket.nsp;
    const rooms = await this.storedRooms(nsp.name, clientId, member);
    if (rooms === null || rooms.length === 0) {
      // In no room, nothing to say: its connections need no counting across hubs (a connect stays cheap).
      if (!socket.disconnected) socket.join(clientRoom(clientId));
      return;
    }
    // Counted before this one joins: two first connections at once both say "online", never neither.
    const others = (await this.socketsIn(nsp, [clientRoom(clientId)])).length;
    if (socket.disconnected) return;
    socket.join(clientRoom(clientId));
    // From here a join of this client reaches this socket (socketsJoin); one before is in this answer.
    const now = await this.storedRooms(nsp.name, clientId, member);
    if (socket.disconnected || now === null || now.length === 0) return;
    socket.join(now.map(memberRoom));
    if (others > 0) return;
    for (const room of now)
      if (!member.joined.has(room)) this.presence(nsp, { room, clientId, online: true });
  }

  /** The client's rooms, less those this connection left meanwhile; null when the store cannot say. */
  private async storedRooms(ns: string, clientId: string, member: Member): Promise<string[] | null> {
    try {
      return (await this.core.clientRooms(ns, clientId)).filter((room) => !member.left.has(room));
    } catch (err) {
      this.log.warn({ ns, clientId, err }, "presence: rooms not joined");
      return null;
    }
  }

  /**
   * The sockets in these rooms on every hub; when another hub does not answer (it is gone, or its
   * namespace was just emptied and dropped), this hub's own.
   */
  private async socketsIn(nsp: AnyNamespace, rooms: string[]) {
    try {
      return await nsp.in(rooms).fetchSockets();
    } catch (err) {
      this.log.debug({ err }, "presence: another hub did not answer; counting this hub's sockets");
      return nsp.local.in(rooms).fetchSockets();
    }
  }

  /** The rooms a closing connection was in, read before Socket.IO takes it out of them ("disconnecting"). */
  roomsOf(socket: HubSocket): string[] {
    return [...socket.rooms].filter((r) => r.startsWith(ROOM_PREFIX)).map((r) => r.slice(ROOM_PREFIX.length));
  }

  /** A connection closed: when it was its client's last (on any hub), the other members hear it is offline. */
  async disconnected(nsp: AnyNamespace, clientId: string, rooms: string[]): Promise<void> {
    if (rooms.length === 0) return;
    if ((await this.socketsIn(nsp, [clientRoom(clientId)])).length > 0) return;
    for (const room of rooms) this.presence(nsp, { room, clientId, online: false });
  }

  /**
   * May this connection's client publish to (or list) these rooms? Its members may (with a secret,
   * so may a token whose rooms claim names them; one outside its claim may not). Answered at
   * once, without waiting, when the connection is in the rooms already, so that publishes keep
   * their order; else the store says.
   */
  mayUse(
    socket: HubSocket,
    clientId: string,
    rooms: string[],
    what: "publish" | "members",
  ): OkReply | Promise<OkReply> {
    // A token's rooms claim decides first: a room outside it is forbidden, one it names allowed.
    const access = roomAccess(socket.data.claims, rooms, what);
    if (access !== "membership") return access === "claimed" ? { ok: true } : access;
    if (rooms.every((room) => socket.rooms.has(memberRoom(room)))) return { ok: true };
    return this.core.memberOf(socket.nsp.name, clientId, rooms, what);
  }

  /** `join` on an identified connection: a durable membership; every connection of the client joins the room's presence. */
  async join(socket: HubSocket, clientId: string, room: string): Promise<OkReply> {
    const nsp = socket.nsp;
    const member = this.memberships.get(socket);
    member?.left.delete(room);
    member?.joined.add(room);
    // At once, so that a publish to the room sent right after the join is taken.
    const already = socket.rooms.has(memberRoom(room));
    socket.join(memberRoom(room));
    const reply = await this.core.joinRoom(nsp.name, room, clientId);
    if (!reply.ok) {
      if (!already) socket.leave(memberRoom(room));
      return reply;
    }
    nsp.in(clientRoom(clientId)).socketsJoin(memberRoom(room));
    if (reply.joined) this.presence(nsp, { room, clientId, online: true }, socket.id);
    return { ok: true };
  }

  /** `leave`: the membership ends (queued room messages stay); the other members hear it left. */
  async leave(socket: HubSocket, clientId: string, room: string): Promise<OkReply> {
    const nsp = socket.nsp;
    const left = this.memberships.get(socket)?.left;
    left?.add(room);
    const was = socket.rooms.has(memberRoom(room));
    socket.leave(memberRoom(room));
    const reply = await this.core.leaveRoom(nsp.name, room, clientId);
    if (!reply.ok) {
      left?.delete(room);
      if (was) socket.join(memberRoom(room));
      return reply;
    }
    nsp.in(clientRoom(clientId)).socketsLeave(memberRoom(room));
    if (reply.left) this.presence(nsp, { room, clientId, online: false }, socket.id);
    return { ok: true };
  }

  /** `members`: a page of the room's members, each online when it has a connection to the namespace (on any hub). */
  async members(
    socket: HubSocket,
    clientId: string,
    room: string,
    page: PageRequest,
  ): Promise<Reply<{ members: RoomMember[]; next: string | null }> | Failure> {
    const nsp = socket.nsp;
    await this.memberships.get(socket)?.ready;
    const allowed = await this.mayUse(socket, clientId, [room], "members");
    if (!allowed.ok) return allowed;
    const listed = await this.core.roomMembers(nsp.name, room, page);
    if (!listed.ok) return listed;
    const online = new Set<string>();
    if (listed.items.length > 0) {
      const sockets = await this.socketsIn(nsp, listed.items.map(clientRoom));
      for (const s of sockets) online.add((s.data as { clientId: string }).clientId);
    }
    const members = listed.items.map((id) => ({ clientId: id, online: online.has(id) }));
    return { ok: true, members, next: listed.next };
  }

  /** To the room's connected members other than the client itself (and the connection that says it, which may not be counted yet). */
  private presence(nsp: AnyNamespace, event: PresenceEvent, from?: string) {
    const self = clientRoom(event.clientId);
    nsp
      .to(memberRoom(event.room))
      .except(from === undefined ? self : [self, from])
      .emit("presence", event);
  }
}
