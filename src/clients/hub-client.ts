// HubClient: the typed client library over socket.io-client. It shares the hub's event
// map (protocol.ts), acks each message after its handler resolves (acks are batched on
// the wire), asks for what it missed on every (re)connect, and reconnects with backoff.
import { io, type Socket } from "socket.io-client";
import type {
  ClientToHubEvents,
  ErrorCode,
  HubToClientEvents,
  Message,
  PublishRequest,
  Reply,
} from "../protocol.js";

export type { ErrorCode, Message, PublishRequest } from "../protocol.js";

export interface HubClientOptions {
  /** Hub address, e.g. http://localhost:3000 */
  url: string;
  /** @default "/" */
  namespace?: string;
  clientId: string;
  /** JWT for hubs that run with HUB_SECRET. */
  token?: string;
  /** Receive deliveries as arrays (fewer frames). @default true */
  batch?: boolean;
  /** How long to wait for a reply from the hub. @default 10000 */
  replyTimeoutMs?: number;
  /** Reconnect backoff. @default 500 and 5000 */
  reconnectDelayMs?: number;
  reconnectDelayMaxMs?: number;
}

export type Handler = (payload: unknown, message: Message) => unknown;

/** A refusal from the hub, with its stable code. */
export class HubError extends Error {
  override name = "HubError";
  constructor(
    readonly code: ErrorCode | "TIMEOUT" | "CONNECT",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

type Listener = {
  connect: () => void;
  disconnect: (reason: string) => void;
  error: (err: Error) => void;
};

/** What a publish's reply carries: one id, or a batch's ids. */
type PublishResult = { messageId: string } | { messageIds: string[] };

const RECENT_ACKS = 10_000;
const ACK_BATCH = 256;

/** Runs `fn` after the current turn's I/O: setImmediate in Node, a zero timeout in a browser. */
const soon: (fn: () => void) => void = globalThis.setImmediate ?? ((fn) => setTimeout(fn, 0));

export class HubClient {
  readonly socket: Socket<HubToClientEvents, ClientToHubEvents>;
  private readonly handlers = new Map<string, Handler>();
  /** Deliveries of events that have no handler yet, in arrival order: kept unacked until one is added. */
  private parked: Message[] = [];
  /** Ids handled lately: a redelivery of one is acked again, not handled twice. */
  private readonly recent = new Set<string>();
  private pendingAcks: string[] = [];
  private ackScheduled = false;
  private readonly listeners: { [K in keyof Listener]: Listener[K][] } = {
    connect: [],
    disconnect: [],
    error: [],
  };
  private readonly replyTimeoutMs: number;

  constructor(readonly options: HubClientOptions) {
    this.replyTimeoutMs = options.replyTimeoutMs ?? 10_000;
    const ns = options.namespace ?? "/";
    const base = options.url.replace(/\/+$/, "");
    this.socket = io(`${base}${ns.startsWith("/") ? ns : `/${ns}`}`, {
      autoConnect: false,
      transports: ["websocket"],
      auth: { clientId: options.clientId, token: options.token, batch: options.batch ?? true },
      reconnectionDelay: options.reconnectDelayMs ?? 500,
      reconnectionDelayMax: options.reconnectDelayMaxMs ?? 5000,
    });
    // Listeners are attached before connecting: the hub delivers as soon as we are identified.
    this.socket.on("deliveries", (messages) => {
      for (const m of messages) this.dispatch(m);
    });
    this.socket.onAny((event: string, message: Message) => {
      if (event !== "deliveries" && isMessage(message)) this.dispatch(message);
    });
    this.socket.on("connect", () => {
      this.flushAcks();
      this.getAll().catch((err: Error) => this.reportError(err));
      for (const fn of this.listeners.connect) fn();
    });
    this.socket.on("disconnect", (reason) => {
      for (const fn of this.listeners.disconnect) fn(reason);
    });
  }

  on<K extends keyof Listener>(what: K, fn: Listener[K]): this {
    this.listeners[what].push(fn);
    return this;
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  /** Connects; rejects with the hub's connect_error message (e.g. "unauthorized"). */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onConnect = () => {
        this.socket.off("connect_error", onError);
        resolve();
      };
      const onError = (err: Error) => {
        this.socket.off("connect", onConnect);
        // Refusals by the hub are final; transport errors are retried by socket.io-client.
        if (!this.socket.active) reject(new HubError("CONNECT", err.message, { cause: err }));
        else this.socket.once("connect_error", onError);
      };
      this.socket.once("connect", onConnect);
      this.socket.once("connect_error", onError);
      this.socket.connect();
    });
  }

  /** Durably subscribes and handles each message of these events; acks after `handler` resolves. */
  async subscribe(
    event: string | string[],
    handler: Handler,
    options: { group?: string } = {},
  ): Promise<void> {
    const events = Array.isArray(event) ? event : [event];
    // All handlers first, then the parked messages: their order across these events is kept.
    for (const e of events) this.handlers.set(e, handler);
    this.releaseParked();
    const req = { event: events, ...(options.group ? { group: options.group } : {}) };
    await this.request<{ events: string[] }>("subscribe", (ack) => this.socket.emit("subscribe", req, ack));
  }

  /** Handles messages of an event without subscribing (e.g. ones addressed to us with `to`). */
  handle(event: string, handler: Handler): this {
    this.handlers.set(event, handler);
    this.releaseParked();
    return this;
  }

  /** Dispatches the parked messages that now have a handler, in the order they arrived. */
  private releaseParked() {
    const ready = this.parked.filter((m) => this.handlers.has(m.event));
    if (ready.length === 0) return;
    this.parked = this.parked.filter((m) => !this.handlers.has(m.event));
    for (const m of ready) this.dispatch(m);
  }

  async unsubscribe(event: string | string[]): Promise<void> {
    for (const e of Array.isArray(event) ? event : [event]) this.handlers.delete(e);
    await this.request<object>("unsubscribe", (ack) => this.socket.emit("unsubscribe", { event }, ack));
  }

  /** Publishes once stored by the hub; returns the messageId. */
  async publish(event: string, payload: unknown, options: Omit<PublishRequest, "event" | "payload"> = {}) {
    const req = { event, payload, ...options };
    const reply = await this.request<PublishResult>("publish", (ack) =>
      this.socket.emit("publish", req, ack),
    );
    if ("messageId" in reply) return reply.messageId;
    throw new HubError("UNAVAILABLE", "the hub answered a single publish with a batch reply");
  }

  /** Publishes several messages, all or nothing. */
  async publishBatch(items: PublishRequest[]): Promise<string[]> {
    const reply = await this.request<PublishResult>("publish", (ack) =>
      this.socket.emit("publish", items, ack),
    );
    if ("messageIds" in reply) return reply.messageIds;
    throw new HubError("UNAVAILABLE", "the hub answered a batch publish with a single reply");
  }

  /** Asks the hub to stream what is pending; returns how many messages that is. */
  async getAll(event?: string): Promise<number> {
    const req = event === undefined ? {} : { event };
    const reply = await this.request<{ count: number }>("getAll", (ack) =>
      this.socket.emit("getAll", req, ack),
    );
    return reply.count;
  }

  /** Acks now (handlers are acked automatically). Returns how many entries the hub removed. */
  async ack(messageIds: string[]): Promise<number> {
    const reply = await this.request<{ removed: number }>("received", (ack) =>
      this.socket.emit("received", { messageIds }, ack),
    );
    return reply.removed;
  }

  close(): void {
    this.flushAcks();
    this.socket.close();
  }

  /** Sends one request through `send` and waits for its reply: the success, or a HubError. */
  private request<T extends object>(
    event: keyof ClientToHubEvents,
    send: (ack: (reply: Reply<T>) => void) => void,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new HubError("TIMEOUT", `no reply to ${event} within ${this.replyTimeoutMs} ms`)),
        this.replyTimeoutMs,
      );
      send((reply) => {
        clearTimeout(timer);
        if (reply.ok) resolve(reply);
        else reject(new HubError(reply.error.code, reply.error.message));
      });
    });
  }

  private dispatch(message: Message) {
    if (this.recent.has(message.messageId)) return this.queueAck(message.messageId);
    const handler = this.handlers.get(message.event);
    if (!handler) {
      // A redelivery of a message already parked replaces nothing: it is parked once.
      if (!this.parked.some((m) => m.messageId === message.messageId)) this.parked.push(message);
      return;
    }
    Promise.resolve()
      .then(() => handler(message.payload, message))
      .then(
        () => {
          this.remember(message.messageId);
          this.queueAck(message.messageId);
        },
        // Not acked: the hub sends it again after its ack timeout.
        (err: unknown) => this.reportError(err instanceof Error ? err : new Error(String(err))),
      );
  }

  private remember(id: string) {
    this.recent.add(id);
    if (this.recent.size > RECENT_ACKS) this.recent.delete(this.recent.values().next().value as string);
  }

  private queueAck(id: string) {
    this.pendingAcks.push(id);
    if (this.pendingAcks.length >= ACK_BATCH) return this.flushAcks();
    if (!this.ackScheduled) {
      this.ackScheduled = true;
      soon(() => this.flushAcks());
    }
  }

  private flushAcks() {
    this.ackScheduled = false;
    if (this.pendingAcks.length === 0 || !this.socket.connected) return;
    const messageIds = this.pendingAcks;
    this.pendingAcks = [];
    this.socket.emit("received", { messageIds });
  }

  private reportError(err: Error) {
    if (this.listeners.error.length === 0) return;
    for (const fn of this.listeners.error) fn(err);
  }
}

function isMessage(value: unknown): value is Message {
  return typeof value === "object" && value !== null && "messageId" in value && "event" in value;
}
