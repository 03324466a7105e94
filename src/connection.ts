// One socket's conversation with the hub: identity, then the protocol's events.
// Handlers hand their work to the core synchronously, in the order the events arrive,
// so `join` then `publish` sent back to back are processed in that order.
import type { Socket } from "socket.io";
import type { Logger } from "./log.js";
import {
  type AnyReply,
  type ClientToHubEvents,
  emitDelivery,
  failure,
  type HubToClientEvents,
  isValidEventName,
  type Message,
} from "./protocol.js";
import type { Consumer, QueueCore } from "./queue.js";
import {
  parseGetAll,
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
}

export type HubSocket = Socket<ClientToHubEvents, HubToClientEvents, Record<string, never>, SocketData>;
type AckFn = (reply: AnyReply) => void;

export interface ConnectionOptions {
  maxBatch: number;
}

export function handleConnection(
  socket: HubSocket,
  core: QueueCore,
  log: Logger,
  options: ConnectionOptions,
) {
  const ns = socket.nsp.name;
  let consumer: Consumer | null = null;

  const identify = (clientId: string) => {
    socket.data.clientId = clientId;
    const batch = socket.data.batch;
    consumer = {
      id: socket.id,
      ns,
      clientId,
      send: (messages: Message[]) => {
        if (batch) socket.emit("deliveries", messages);
        else for (const m of messages) emitDelivery(socket, m);
      },
    };
    void core.attach(consumer);
  };

  /** The connection's identity; a classroom connection takes `claimed` as its own. */
  const identity = (claimed: string | undefined) => {
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
    identify(claimed);
    return claimed;
  };

  // One dispatch table behind onAny: Socket.IO calls onAny listeners synchronously but event
  // listeners after its middleware tick, and the contract wants arrival order for all events.
  const handlers = new Map<string, (arg: unknown) => Promise<AnyReply> | AnyReply>();
  const on = (event: string, handler: (arg: unknown) => Promise<AnyReply> | AnyReply) => {
    handlers.set(event, handler);
  };

  const respond = async (event: string, ack: AckFn | undefined, work: () => Promise<AnyReply> | AnyReply) => {
    let reply: AnyReply;
    try {
      reply = await work();
    } catch (err) {
      log.error({ event, ns, err }, "handler failed");
      reply = failure("UNAVAILABLE", "the hub could not process this; nothing was changed, retry");
    }
    if (!reply.ok)
      log.debug({ event, ns, clientId: socket.data.clientId, code: reply.error.code }, "error reply");
    ack?.(reply);
  };

  const publish = async (arg: unknown): Promise<AnyReply> => {
    const parsed = parsePublish(arg, options.maxBatch);
    if (!parsed.ok) return parsed;
    const from = identity(undefined);
    if (typeof from !== "string") return from;
    const result = await core.publish(ns, from, parsed.value.items);
    if (!result.ok || parsed.value.batch) return result;
    return { ok: true, messageId: result.messageIds[0] as string };
  };

  on("join", (arg) => {
    const room = parseRoom(arg);
    if (!room.ok) return room;
    void socket.join(room.value);
    if (socket.data.clientId === null) identify(room.value);
    return { ok: true };
  });

  on("subscribe", async (arg) => {
    const parsed = parseSubscribe(arg);
    if (!parsed.ok) return parsed;
    const clientId = identity(parsed.value.clientId);
    if (typeof clientId !== "string") return clientId;
    const reply = await core.subscribe(ns, clientId, parsed.value.events, parsed.value.group);
    return reply.ok ? { ok: true, events: parsed.value.events } : reply;
  });

  on("unsubscribe", async (arg) => {
    const parsed = parseUnsubscribe(arg);
    if (!parsed.ok) return parsed;
    const clientId = identity(parsed.value.clientId);
    if (typeof clientId !== "string") return clientId;
    return core.unsubscribe(ns, clientId, parsed.value.events);
  });

  on("publish", publish);

  on("received", async (arg) => {
    const parsed = parseReceived(arg);
    if (!parsed.ok) return parsed;
    const clientId = identity(parsed.value.clientId);
    if (typeof clientId !== "string") return clientId;
    return core.ack(ns, clientId, parsed.value.ids);
  });

  on("getAll", async (arg) => {
    const parsed = parseGetAll(arg);
    if (!parsed.ok) return parsed;
    const { clientId: claimed, event } = parsed.value;
    const clientId = identity(claimed);
    if (typeof clientId !== "string" || !consumer)
      return typeof clientId === "string" ? { ok: true } : clientId;
    if (claimed !== undefined && event !== undefined) {
      // Classroom form: getAll { clientId, event } also subscribes durably.
      const subscribed = await core.subscribe(ns, clientId, [event], null);
      if (!subscribed.ok) return subscribed;
    }
    return core.getAll(consumer, event);
  });

  socket.onAny((event: unknown, ...args: unknown[]) => {
    const ack = typeof args.at(-1) === "function" ? (args.pop() as AckFn) : undefined;
    const name = String(event);
    const handler = handlers.get(name);
    void respond(name, ack, () => {
      if (handler) return handler(args[0]);
      // Any other event name is shorthand for publish { event, payload }.
      if (isValidEventName(name)) return publish({ event: name, payload: args[0] });
      return failure("INVALID_ARGUMENT", `event name "${name.slice(0, 80)}" is not allowed`);
    });
  });

  socket.on("disconnect", () => {
    if (consumer) core.detach(consumer);
  });

  if (socket.data.clientId !== null) identify(socket.data.clientId);
}
