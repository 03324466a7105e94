// One socket's conversation with the hub: identity, then the protocol's events.
// Handlers hand their work to the core synchronously, in the order the events arrive,
// so `join` then `publish` sent back to back are processed in that order.
//
// Two kinds of connection: identified ones (`auth.clientId`, and a token with a secret), which
// receive from the moment they connect and speak the protocol exactly; and classroom ones (no
// `auth`, open mode only), the CAPS lab's own clients, which name themselves in their messages,
// may spell things the lab's way (classroom.ts) and receive only once they consume.
import type { Socket } from "socket.io";
import {
  labDelivery,
  protocolEventName,
  readGetAll,
  readPublish,
  readRequest,
  readShorthand,
} from "./classroom.js";
import type { Logger } from "./log.js";
import {
  type AnyReply,
  type ClientToHubEvents,
  emitDelivery,
  type Failure,
  failure,
  type HubToClientEvents,
  isValidEventName,
  type Message,
} from "./protocol.js";
import type { Consumer, QueueCore } from "./queue.js";
import type { Rooms } from "./rooms.js";
import { publisherScope } from "./store/store.js";
import { allows, type Claims } from "./token.js";
import {
  parseGetAll,
  parseMembers,
  parsePublish,
  parseReceived,
  parseRoom,
  parseSubscribe,
  parseUnsubscribe,
} from "./validate.js";

export interface SocketData {
  /** null until a classroom connection names itself. */
  clientId: string | null;
  batch: boolean;
  /** Connected without a clientId (open mode): the CAPS lab's way. */
  classroom: boolean;
  /** What the connection's token allows (with a secret); null in open mode. */
  claims: Claims | null;
  /** The client's remote address (X-Forwarded-For's, behind a trusted proxy). */
  address: string;
}

export type HubSocket = Socket<ClientToHubEvents, HubToClientEvents, Record<string, never>, SocketData>;
type AckFn = (reply: AnyReply) => void;

export interface ConnectionOptions {
  maxBatch: number;
}

/** Refusals logged per connection when the client gave no ack callback: a burst, then one a while. */
const REFUSAL_LOG_BURST = 10;
const REFUSAL_LOG_EVERY_MS = 6000;

export function handleConnection(
  socket: HubSocket,
  core: QueueCore,
  rooms: Rooms,
  log: Logger,
  options: ConnectionOptions,
) {
  const ns = socket.nsp.name;
  const { classroom } = socket.data;
  /** An identified connection's clientId, fixed when it connected; null on a classroom connection. */
  const identified = classroom ? null : socket.data.clientId;
  /** Unnamed classroom publishers share one rate bucket and key scope per remote address. */
  const addressScope = publisherScope.address(socket.data.address);
  let consumer: Consumer | null = null;

  /** Makes this connection its client's consumer: it takes over the client's deliveries. */
  const consume = (clientId: string): Consumer => {
    if (consumer) return consumer;
    const batch = socket.data.batch;
    consumer = {
      id: socket.id,
      ns,
      clientId,
      send: (sent: Message[]) => {
        const messages = classroom ? sent.map(labDelivery) : sent;
        if (batch) socket.emit("deliveries", messages);
        else for (const m of messages) emitDelivery(socket, m);
      },
      close: () => socket.disconnect(),
    };
    void core.attach(consumer);
    return consumer;
  };

  /** The connection's identity; an unnamed classroom connection takes `claimed` as its own. */
  const identity = (claimed: string | undefined): string | Failure => {
    const current = socket.data.clientId;
    if (current !== null) {
      if (claimed !== undefined && claimed !== current) {
        return failure("IDENTITY_MISMATCH", `this connection is ${current}, not ${claimed}`);
      }
      return current;
    }
    if (claimed === undefined) {
      return failure("IDENTITY_REQUIRED", "name this connection first: join a room or send your clientId");
    }
    socket.data.clientId = claimed;
    return claimed;
  };

  // One dispatch table behind onAny: Socket.IO calls onAny listeners synchronously but event
  // listeners after its middleware tick, and the contract wants arrival order for all events.
  const handlers = new Map<string, (arg: unknown) => Promise<AnyReply> | AnyReply>();
  const on = (event: string, handler: (arg: unknown) => Promise<AnyReply> | AnyReply) => {
    handlers.set(event, handler);
  };

  const refusals = { tokens: REFUSAL_LOG_BURST, at: Date.now(), suppressed: 0 };
  /** A refusal the client cannot see in an ack: a `hub:error` event, and a log line now and then. */
  const tellRefused = (event: string, { code, message }: Failure["error"]) => {
    socket.emit("hub:error", { event, code, message });
    const now = Date.now();
    refusals.tokens = Math.min(
      REFUSAL_LOG_BURST,
      refusals.tokens + (now - refusals.at) / REFUSAL_LOG_EVERY_MS,
    );
    refusals.at = now;
    if (refusals.tokens < 1) {
      refusals.suppressed++;
      return;
    }
    refusals.tokens--;
    const { suppressed } = refusals;
    refusals.suppressed = 0;
    log.info(
      {
        ns,
        event,
        clientId: socket.data.clientId,
        code,
        reason: message,
        ...(suppressed ? { suppressed } : {}),
      },
      "request refused",
    );
  };

  const respond = async (event: string, ack: AckFn | undefined, work: () => Promise<AnyReply> | AnyReply) => {
    let reply: AnyReply;
    try {
      reply = await work();
    } catch (err) {
      log.error({ event, ns, err }, "handler failed");
      reply = failure("UNAVAILABLE", "the hub could not process this; nothing was changed, retry");
    }
    if (ack) {
      if (!reply.ok)
        log.debug({ event, ns, clientId: socket.data.clientId, code: reply.error.code }, "error reply");
      ack(reply);
    } else if (!reply.ok) tellRefused(event, reply.error);
  };

  /** Publishes one request or a batch; `claimed` is the identity a classroom publish names. */
  const publish = async (request: unknown, claimed?: string): Promise<AnyReply> => {
    const parsed = parsePublish(request, options.maxBatch);
    if (!parsed.ok) return parsed;
    // A classroom connection may publish before it has a name (the lab's API servers do).
    const from =
      classroom && claimed === undefined && socket.data.clientId === null ? null : identity(claimed);
    if (from !== null && typeof from !== "string") return from;
    const toRooms = parsed.value.items.flatMap((item) => (item.room === undefined ? [] : [item.room]));
    if (toRooms.length > 0) {
      // Members may publish to their rooms.
      if (from === null || identified === null) return roomsForbidden("publish");
      const allowed = rooms.mayUse(socket, from, toRooms, "publish");
      // Awaited only when the store must say: a publish that waits could be overtaken by a later one.
      const answer = allowed instanceof Promise ? await allowed : allowed;
      if (!answer.ok) return answer;
    }
    // Classroom publishes are routed by payload (the lab's store routing); identified ones never are.
    const scope = from === null ? addressScope : undefined;
    const result = await core.publish(ns, from, parsed.value.items, scope, classroom);
    if (!result.ok || parsed.value.batch) return result;
    return { ok: true, messageId: result.messageIds[0] as string };
  };

  /** Durable rooms are for identified connections; a classroom connection's rooms are Socket.IO's live ones. */
  const roomsForbidden = (what: string) =>
    failure("FORBIDDEN", `${what}: durable rooms are for connections that connect with auth.clientId`);

  on("join", (arg) => {
    const room = parseRoom(arg);
    if (!room.ok) return room;
    if (!allows(socket.data.claims, "rooms", room.value))
      return failure("FORBIDDEN", `join: this token may not join room "${room.value}"`);
    if (identified !== null) return rooms.join(socket, identified, room.value);
    // The lab's join: a live Socket.IO room (which carries no deliveries), and a name if it has none.
    void socket.join(room.value);
    if (socket.data.clientId === null) identity(room.value);
    return { ok: true };
  });

  on("leave", (arg) => {
    const room = parseRoom(arg, "leave");
    if (!room.ok) return room;
    if (identified !== null) return rooms.leave(socket, identified, room.value);
    void socket.leave(room.value);
    return { ok: true };
  });

  on("members", (arg) => {
    const parsed = parseMembers(arg);
    if (!parsed.ok) return parsed;
    if (identified === null) return roomsForbidden("members");
    return rooms.members(socket, identified, parsed.value.room, parsed.value.page);
  });

  on("subscribe", async (arg) => {
    const input = classroom ? readRequest(arg, "subscribe") : { ok: true as const, value: arg };
    if (!input.ok) return input;
    const parsed = parseSubscribe(input.value);
    if (!parsed.ok) return parsed;
    const { group } = parsed.value;
    if (group !== null && !allows(socket.data.claims, "groups", group))
      return failure("FORBIDDEN", `subscribe: this token may not join group "${group}"`);
    const clientId = identity(parsed.value.clientId);
    if (typeof clientId !== "string") return clientId;
    consume(clientId);
    const reply = await core.subscribe(ns, clientId, parsed.value.events, parsed.value.group);
    return reply.ok ? { ok: true, events: parsed.value.events } : reply;
  });

  on("unsubscribe", async (arg) => {
    const input = classroom ? readRequest(arg, "unsubscribe") : { ok: true as const, value: arg };
    if (!input.ok) return input;
    const parsed = parseUnsubscribe(input.value);
    if (!parsed.ok) return parsed;
    const clientId = identity(parsed.value.clientId);
    if (typeof clientId !== "string") return clientId;
    return core.unsubscribe(ns, clientId, parsed.value.events);
  });

  on("publish", (arg) => {
    if (!classroom) return publish(arg);
    const read = readPublish(arg);
    return read.ok ? publish(read.value.request, read.value.clientId) : read;
  });

  on("received", async (arg) => {
    const input = classroom ? readRequest(arg, "received") : { ok: true as const, value: arg };
    if (!input.ok) return input;
    const parsed = parseReceived(input.value);
    if (!parsed.ok) return parsed;
    const clientId = identity(parsed.value.clientId);
    if (typeof clientId !== "string") return clientId;
    consume(clientId);
    return core.ack(ns, clientId, parsed.value.ids);
  });

  on("getAll", async (arg) => {
    const input = classroom ? readGetAll(arg) : { ok: true as const, value: arg };
    if (!input.ok) return input;
    const parsed = parseGetAll(input.value);
    if (!parsed.ok) return parsed;
    const { event } = parsed.value;
    const clientId = identity(parsed.value.clientId);
    if (typeof clientId !== "string") return clientId;
    const reader = consume(clientId);
    if (classroom && event !== undefined) {
      // The lab's getAll names the event it wants, and subscribes to it durably, as the lab's hub does.
      const subscribed = await core.subscribe(ns, clientId, [event], null);
      if (!subscribed.ok) return subscribed;
    }
    return core.getAll(reader, event);
  });

  socket.onAny((event: unknown, ...args: unknown[]) => {
    const ack = typeof args.at(-1) === "function" ? (args.pop() as AckFn) : undefined;
    const name = classroom ? protocolEventName(String(event)) : String(event);
    const handler = handlers.get(name);
    void respond(name, ack, () => {
      if (handler) return handler(args[0]);
      // Any other event name is shorthand for publish { event, payload }.
      if (!isValidEventName(name))
        return failure("INVALID_ARGUMENT", `event name "${name.slice(0, 80)}" is not allowed`);
      if (!classroom) return publish({ event: name, payload: args[0] });
      const read = readShorthand(name, args[0]);
      return read.ok ? publish(read.value.request, read.value.clientId) : read;
    });
  });

  // Socket.IO takes a closing socket out of its rooms between these two events.
  let memberOf: string[] = [];
  socket.on("disconnecting", () => {
    memberOf = rooms.roomsOf(socket);
  });
  socket.on("disconnect", () => {
    if (consumer) core.detach(consumer);
    if (identified !== null) void rooms.disconnected(socket.nsp, identified, memberOf);
  });

  if (identified !== null) {
    consume(identified);
    rooms.connected(socket, identified);
  }
}
