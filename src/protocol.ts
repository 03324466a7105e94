// The wire contract (../shared/PROTOCOL.md, v1.1) as types. The hub uses these as
// `Server<ClientToHubEvents, HubToClientEvents>` and the client library as
// `Socket<HubToClientEvents, ClientToHubEvents>`, so both sides are checked by the compiler.

/** Stable error codes on the wire. New codes go here and into README's table together. */
export const ERROR_CODES = [
  "INVALID_ARGUMENT",
  "IDENTITY_REQUIRED",
  "IDENTITY_MISMATCH",
  "UNAUTHORIZED",
  "PAYLOAD_TOO_LARGE",
  "BATCH_TOO_LARGE",
  "QUEUE_FULL",
  "RATE_LIMITED",
  "UNAVAILABLE",
  "FORBIDDEN",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface WireError {
  code: ErrorCode;
  message: string;
}

export type Failure = { ok: false; error: WireError };
export type Reply<T extends object = object> = ({ ok: true } & T) | Failure;
/** Any reply, for code that forwards replies of every event. */
export type AnyReply = Reply<Record<string, unknown>>;

/** A message as it is delivered to a client. */
export interface Message {
  /** UUIDv7, time-ordered. */
  messageId: string;
  event: string;
  payload: unknown;
  /** Epoch milliseconds at which the hub stored it. */
  publishedAt: number;
  /** Publisher's clientId, or null for HTTP publishes. */
  from: string | null;
  /** 1 on the first send; counts every send. */
  deliveries: number;
  /** The room it was published to, for a room delivery. */
  room?: string;
}

export interface PublishRequest {
  event: string;
  payload?: unknown;
  to?: string | string[];
  /** Every member of this room except the publisher (unless `echo`); never with `to`. */
  room?: string;
  key?: string;
  echo?: boolean;
  /** Per-message time to live in milliseconds (overrides the hub's default). */
  ttl?: number;
}

export interface SubscribeRequest {
  event: string | string[];
  group?: string;
  /** Classroom form: must match the connection's identity. */
  clientId?: string;
}

export interface UnsubscribeRequest {
  event: string | string[];
  clientId?: string;
}

export interface ReceivedRequest {
  messageId?: string;
  messageIds?: string[];
  /** Classroom spelling of messageId. */
  messageID?: string;
  clientId?: string;
  event?: string;
}

export interface GetAllRequest {
  event?: string;
  clientId?: string;
}

export interface MembersRequest {
  room: string;
  /** Members per page, 1–1000. @default 100 */
  limit?: number;
  /** The previous page's `next`: where this page starts. */
  cursor?: string;
}

export interface RoomMember {
  clientId: string;
  /** The member has a connection open to the namespace now. */
  online: boolean;
}

export type SubscribeReply = Reply<{ events: string[] }>;
export type OkReply = Reply;
export type PublishReply = Reply<{ messageId: string }>;
export type PublishBatchReply = Reply<{ messageIds: string[] }>;
export type ReceivedReply = Reply<{ removed: number }>;
export type GetAllReply = Reply<{ count: number }>;
/** A page of a room's members, by clientId; `next` is the cursor of the following page, null after the last. */
export type MembersReply = Reply<{ members: RoomMember[]; next: string | null }>;

type Ack<R> = (reply: R) => void;

/** Client → hub. Every event takes an optional ack callback. Any other event name is a publish shorthand. */
export interface ClientToHubEvents {
  subscribe: (req: SubscribeRequest, ack?: Ack<SubscribeReply>) => void;
  unsubscribe: (req: UnsubscribeRequest, ack?: Ack<OkReply>) => void;
  join: (room: string, ack?: Ack<OkReply>) => void;
  leave: (room: string, ack?: Ack<OkReply>) => void;
  members: (req: MembersRequest, ack?: Ack<MembersReply>) => void;
  publish: (req: PublishRequest | PublishRequest[], ack?: Ack<PublishReply | PublishBatchReply>) => void;
  received: (req: ReceivedRequest, ack?: Ack<ReceivedReply>) => void;
  getAll: (req: GetAllRequest | undefined, ack?: Ack<GetAllReply>) => void;
}

/** A room member came or went (live only, never queued). */
export interface PresenceEvent {
  room: string;
  clientId: string;
  online: boolean;
}

/** A refusal sent to a connection whose request carried no ack callback (lab clients). */
export interface HubErrorEvent {
  /** The event that was refused. */
  event: string;
  code: ErrorCode;
  message: string;
}

/**
 * Hub → client events with fixed names. Besides these, each delivery is emitted under its
 * message's own event name (see DeliveryEvents and emitDelivery); batch clients get `deliveries`.
 */
export interface HubToClientEvents {
  deliveries: (messages: Message[]) => void;
  presence: (event: PresenceEvent) => void;
  "hub:error": (error: HubErrorEvent) => void;
}

/**
 * Hub → client deliveries: any other event name carries one message. A separate map, because one
 * map cannot say "any name but the fixed ones" (an index signature would have to admit theirs).
 */
export type DeliveryEvents = Record<string, (message: Message) => void>;

/** Anything Socket.IO emits through (a socket, a namespace, a broadcast): event names are free at run time. */
export interface DeliveryEmitter {
  emit(event: string, ...args: unknown[]): boolean;
}

/** Emits one delivery under its message's event name, as DeliveryEvents says. */
export function emitDelivery(to: DeliveryEmitter, message: Message): void {
  to.emit(message.event, message);
}

/** Handshake `auth` object. */
export interface HandshakeAuth {
  clientId?: string;
  token?: string;
  /** Receive deliveries as one `deliveries` array event. */
  batch?: boolean;
}

/** connect_error messages of the contract. */
export const CONNECT_ERRORS = {
  clientIdRequired: "clientId required",
  invalidClientId: "invalid clientId",
  unauthorized: "unauthorized",
} as const;

/** A topic namespace (`/caps`); the default namespace `/` is the other valid name. */
export const NAMESPACE_PATTERN = /^\/[a-z0-9][a-z0-9_-]{0,63}$/;
/** Printable characters allowed in ids and event names: letters, digits, space and `._:@-`. */
export const CLIENT_ID_PATTERN = /^[A-Za-z0-9 ._:@-]{1,128}$/;
export const EVENT_PATTERN = /^[A-Za-z0-9 ._:@-]{1,64}$/;

/** Names an event may not take: the protocol's own and Socket.IO's reserved ones. */
export const RESERVED_EVENTS: ReadonlySet<string> = new Set([
  "subscribe",
  "unsubscribe",
  "publish",
  "received",
  "getAll",
  "join",
  "leave",
  "members",
  "deliveries",
  "presence",
  "hub:error",
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
]);

export function isValidClientId(id: unknown): id is string {
  return typeof id === "string" && CLIENT_ID_PATTERN.test(id);
}

/** `/` or a topic namespace such as `/caps`. */
export function isValidNamespace(name: string): boolean {
  return name === "/" || NAMESPACE_PATTERN.test(name);
}

/** A namespace as users write it, with or without its slash (`caps`, `/caps`), as the hub writes it; null when it is not a valid name. */
export function toNamespace(input: string): string | null {
  const name = input.startsWith("/") ? input : `/${input}`;
  return isValidNamespace(name) ? name : null;
}

export function isValidEventName(name: string): boolean {
  return EVENT_PATTERN.test(name) && !RESERVED_EVENTS.has(name);
}

export function failure(code: ErrorCode, message: string): Failure {
  return { ok: false, error: { code, message } };
}
