// Type test of the wire contract (src/protocol.ts), checked by `npm run typecheck` (tsc), never
// run. Each `@ts-expect-error` line fails the check when it compiles, i.e. when an event's
// argument type drifts from the contract; the lines without it must keep compiling.
import type { Server, Socket as ServerSocket } from "socket.io";
import type { Socket } from "socket.io-client";
import {
  type ClientToHubEvents,
  type ErrorCode,
  emitDelivery,
  type HubToClientEvents,
  type MembersReply,
  type Message,
  type PublishReply,
  type SubscribeReply,
} from "../src/protocol.js";

/** True only when A and B are the same type (not merely assignable). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<A>(_value: A) {}
function same<A, B>(_proof: Equal<A, B>) {}

declare const io: Server<ClientToHubEvents, HubToClientEvents>;
declare const hubSocket: ServerSocket<ClientToHubEvents, HubToClientEvents>;
declare const client: Socket<HubToClientEvents, ClientToHubEvents>;
declare const message: Message;

export function hubToClient() {
  // deliveries: an array of messages, to batch clients
  hubSocket.emit("deliveries", [message]);
  io.of("/caps").to("room").emit("deliveries", [message]);
  // @ts-expect-error a batch is an array
  hubSocket.emit("deliveries", message);
  // @ts-expect-error a batch holds messages
  io.emit("deliveries", [{ messageId: "m" }]);

  // presence: { room, clientId, online }
  hubSocket.emit("presence", { room: "r", clientId: "a", online: true });
  // @ts-expect-error online is a boolean
  hubSocket.emit("presence", { room: "r", clientId: "a", online: "yes" });
  // @ts-expect-error room is required
  io.to("r").emit("presence", { clientId: "a", online: false });

  // hub:error: { event, code, message } with a code of the contract's table
  hubSocket.emit("hub:error", { event: "publish", code: "FORBIDDEN", message: "not your room" });
  // @ts-expect-error codes come from the table
  hubSocket.emit("hub:error", { event: "publish", code: "NOPE", message: "" });

  // every other name: one delivery, through the typed helper
  emitDelivery(hubSocket, message);
  emitDelivery(io.of("/caps").to("room"), { ...message, room: "room" });
  // @ts-expect-error a delivery is a whole message
  emitDelivery(hubSocket, { messageId: "m", event: "pickup" });
  // @ts-expect-error the fixed map has no per-event delivery names
  hubSocket.emit("pickup", message);

  // the client's listeners get the same types
  client.on("deliveries", (messages) => same<typeof messages, Message[]>(true));
  client.on("presence", (p) => same<typeof p, { room: string; clientId: string; online: boolean }>(true));
  client.on("hub:error", (e) => same<typeof e.code, ErrorCode>(true));
  // @ts-expect-error deliveries come as an array
  client.on("deliveries", (m: Message) => m);
  // @ts-expect-error presence has no `user` field
  client.on("presence", (p: { user: string }) => p);
}

export function clientToHub() {
  client.emit("subscribe", { event: ["a", "b"], group: "g" }, (reply) =>
    same<typeof reply, SubscribeReply>(true),
  );
  // @ts-expect-error event is a string or strings
  client.emit("subscribe", { event: 1 });
  client.emit("join", "room");
  client.emit("leave", "room", (reply) => expectType<boolean>(reply.ok));
  // @ts-expect-error leave takes the room name
  client.emit("leave", { room: "room" });
  client.emit("members", { room: "room" }, (reply) => {
    same<typeof reply, MembersReply>(true);
    if (reply.ok) for (const m of reply.members) expectType<[string, boolean]>([m.clientId, m.online]);
  });
  // @ts-expect-error members takes { room }
  client.emit("members", "room");
  client.emit("publish", { event: "x", payload: 1, room: "room", key: "k", echo: true, ttl: 1000 });
  client.emit("publish", [{ event: "x", to: ["a", "b"] }]);
  // @ts-expect-error ttl is a number of milliseconds
  client.emit("publish", { event: "x", ttl: "1s" });
  client.emit("received", { messageIds: ["m"] }, (reply) => {
    if (reply.ok) expectType<number>(reply.removed);
  });
  // @ts-expect-error ids are strings
  client.emit("received", { messageIds: [1] });
  client.emit("getAll", undefined, (reply) => {
    if (reply.ok) expectType<number>(reply.count);
  });

  // the hub's listeners: the argument, and an optional ack (lab clients pass none)
  hubSocket.on("publish", (req, ack) => {
    expectType<string>(Array.isArray(req) ? (req[0]?.event ?? "") : req.event);
    ack?.({ ok: true, messageId: "m" } satisfies PublishReply);
  });
  hubSocket.on("members", (req, ack) => {
    expectType<string>(req.room);
    ack?.({ ok: true, members: [{ clientId: "a", online: true }], next: null });
    // @ts-expect-error a member says whether it is online
    ack?.({ ok: true, members: [{ clientId: "a" }], next: null });
    // @ts-expect-error a page says where the next one starts (null after the last)
    ack?.({ ok: true, members: [] });
  });
  hubSocket.on("received", (req, ack) => {
    // @ts-expect-error the reply counts what was removed
    ack?.({ ok: true, removed: "1" });
    return req;
  });
  // @ts-expect-error codes come from the table
  hubSocket.on("leave", (_room, ack) => ack?.({ ok: false, error: { code: "GONE", message: "" } }));
}
