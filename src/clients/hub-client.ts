// HubClient: the typed client library over socket.io-client, in Node and in a browser. It takes
// socket.io-client's options, shares the hub's event map (protocol.ts), acks each message after
// its handlers resolve (acks are batched on the wire), drops redeliveries of what it handled,
// keeps deliveries that have no handler yet, and fetches a fresh token when the hub says its
// token expired.
import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import type {
  ClientToHubEvents,
  ErrorCode,
  HubErrorEvent,
  HubToClientEvents,
  Message,
  PresenceEvent,
  PublishRequest,
  Reply,
  RoomMember,
} from "../protocol.js";
import { Listeners } from "./listeners.js";

export type {
  ErrorCode,
  HubErrorEvent,
  Message,
  PresenceEvent,
  PublishRequest,
  RoomMember,
} from "../protocol.js";

/** socket.io-client's own options, as `io(url, options)` takes them. */
export type SocketIoOptions = Partial<ManagerOptions & SocketOptions>;

/** Handshake fields besides the hub's own, or socket.io-client's callback that supplies them. */
export type AuthOption = Record<string, unknown> | ((callback: (data: object) => void) => void);

/** Supplies a token: called before connecting, and again when the hub refuses or ends the old one. */
export type TokenSource = () => string | Promise<string>;

export interface HubClientOptions extends Omit<SocketIoOptions, "auth"> {
  /** Hub address, e.g. http://localhost:3000. @default the page's own origin (in a browser) */
  url?: string;
  /** @default "/" */
  namespace?: string;
  clientId: string;
  /**
   * The JWT for hubs that run with HUB_SECRET, or a function that returns one. A function is
   * asked again whenever the hub refuses the token or ends the connection because it expired
   * (it says so with `hub:error` UNAUTHORIZED first), and the client reconnects with the new one.
   */
  token?: string | TokenSource;
  /** Further handshake fields (an object, or socket.io-client's `auth` callback); the hub's own win. */
  auth?: AuthOption;
  /** Receive deliveries as arrays (fewer frames). @default true */
  batch?: boolean;
  /** How long to wait for a reply from the hub. @default 10000 */
  replyTimeoutMs?: number;
  /** Old names of `reconnectionDelay` and `reconnectionDelayMax`. @default 500 and 5000 */
  reconnectDelayMs?: number;
  reconnectDelayMaxMs?: number;
}

/** A delivered message whose payload has the type its event's handler expects. */
export type Delivery<T = unknown> = Omit<Message, "payload"> & { payload: T };

/** Handles one message; the message is acked once it resolves (and every other handler of its event has). */
export type Handler<T = unknown> = (payload: T, message: Delivery<T>) => unknown;

/** Events about the connection and the hub, besides deliveries. */
export interface HubClientEvents {
  connect: () => void;
  disconnect: (reason: Socket.DisconnectReason, description?: unknown) => void;
  /** A connection attempt failed: the hub refused it (`err.message` is the contract's reason) or could not be reached. */
  connect_error: (err: Error) => void;
  /** A handler threw (its message stays unacked and comes again), or a background request failed. */
  error: (err: Error) => void;
  /** A member of one of this client's rooms came or went. */
  presence: (event: PresenceEvent) => void;
  /** The hub refused a request that had no reply callback, or is ending the connection (UNAUTHORIZED). */
  "hub:error": (error: HubErrorEvent) => void;
}
type LifecycleName = keyof HubClientEvents;
const LIFECYCLE: ReadonlySet<string> = new Set<LifecycleName>([
  "connect",
  "disconnect",
  "connect_error",
  "error",
  "presence",
  "hub:error",
]);

/** A refusal from the hub, with its stable code. */
export class HubError extends Error {
  override name = "HubError";
  constructor(
    readonly code: ErrorCode | "TIMEOUT" | "CONNECT" | "CLOSED",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What a publish's reply carries: one id, or a batch's ids. */
type PublishResult = { messageId: string } | { messageIds: string[] };

const RECENT_ACKS = 10_000;
const ACK_BATCH = 256;

/** Runs `fn` after the current turn's I/O: setImmediate in Node, a zero timeout in a browser. */
const soon: (fn: () => void) => void = globalThis.setImmediate ?? ((fn) => setTimeout(fn, 0));

/**
 * A durable-queue client. `Payloads` maps event names to their payload types (optional):
 * `new HubClient<{ pickup: Order }>(...)` types `on("pickup", (order) => ...)`.
 */
export class HubClient<Payloads extends object = Record<string, unknown>> {
  readonly socket: Socket<HubToClientEvents, ClientToHubEvents>;
  private readonly lifecycle = new Listeners();
  private readonly handlers = new Listeners<Handler>();
  /** Deliveries of events that have no handler yet, in arrival order: kept unacked until one is added. */
  private parked: Message[] = [];
  /** Ids handled lately: a redelivery of one is acked again, not handled twice. */
  private readonly recent = new Set<string>();
  private pendingAcks: string[] = [];
  private ackScheduled = false;
  private readonly replyTimeoutMs: number;
  /** Cancels each request still waiting for its reply (see close). */
  private readonly waiting = new Set<() => void>();
  /** The token in use; null until a token source has been asked. */
  private token: string | null;
  /** The hub refused or ended the token: ask the source for a new one before the next handshake. */
  private tokenStale = false;
  /** A refused token was replaced once since the last connection; a second refusal is final. */
  private tokenRetried = false;

  constructor(readonly options: HubClientOptions) {
    const {
      url,
      namespace,
      clientId,
      token,
      auth,
      batch,
      replyTimeoutMs,
      reconnectDelayMs,
      reconnectDelayMaxMs,
      ...socketOptions
    } = options;
    this.replyTimeoutMs = replyTimeoutMs ?? 10_000;
    this.token = typeof token === "string" ? token : null;
    const ns = namespace ?? "/";
    const path = ns.startsWith("/") ? ns : `/${ns}`;
    this.socket = io(url === undefined ? path : `${url.replace(/\/+$/, "")}${path}`, {
      reconnectionDelay: reconnectDelayMs ?? 500,
      reconnectionDelayMax: reconnectDelayMaxMs ?? 5000,
      ...socketOptions,
      autoConnect: false,
      // Asked at every handshake, so a reconnect carries a fresh token.
      auth: (callback) => {
        this.handshakeAuth(auth, batch ?? true).then(callback, (err: unknown) => {
          this.reportError(err instanceof Error ? err : new Error(String(err)));
          callback({ clientId, batch: batch ?? true });
        });
      },
    });
    // Listeners are attached before connecting: the hub delivers as soon as we are identified.
    this.socket.on("deliveries", (messages) => {
      for (const m of messages) this.dispatch(m);
    });
    this.socket.onAny((event: string, message: unknown) => {
      if (!LIFECYCLE.has(event) && event !== "deliveries" && isMessage(message)) this.dispatch(message);
    });
    this.socket.on("connect", () => {
      this.tokenRetried = false;
      this.flushAcks();
      this.getAll().catch((err: HubError) => {
        if (err.code !== "CLOSED") this.reportError(err);
      });
      this.emit("connect");
    });
    this.socket.on("connect_error", (err) => {
      // A refused token is replaced once by the token source, then the client tries again.
      if (err.message === "unauthorized" && typeof token === "function" && !this.tokenRetried) {
        this.tokenRetried = true;
        this.tokenStale = true;
        this.socket.connect();
      }
      this.emit("connect_error", err);
    });
    this.socket.on("disconnect", (reason, description) => {
      // The hub ended the connection for its token: reconnect with a fresh one.
      if (reason === "io server disconnect" && this.tokenStale && typeof token === "function") {
        this.socket.connect();
      }
      this.emit("disconnect", reason, description);
    });
    this.socket.on("presence", (event) => this.emit("presence", event));
    this.socket.on("hub:error", (error) => {
      if (error.code === "UNAUTHORIZED") this.tokenStale = true;
      this.emit("hub:error", error);
    });
    if (options.autoConnect) this.socket.connect();
  }

  /** Listens to a connection event (`connect`, `disconnect`, `presence`, ...). */
  on<K extends LifecycleName>(event: K, listener: HubClientEvents[K]): this;
  /**
   * Handles every message of `event` delivered to this client (subscribed, addressed with `to`,
   * or from a room); each is acked once all its handlers resolve. Messages that came before the
   * first handler are handed over now, in arrival order.
   */
  on<E extends keyof Payloads & string>(event: E, handler: Handler<Payloads[E]>): this;
  on(event: string, fn: (...args: never[]) => unknown): this {
    return this.add(event, fn, false);
  }

  /** As `on`, for the next event (or message) only. */
  once<K extends LifecycleName>(event: K, listener: HubClientEvents[K]): this;
  once<E extends keyof Payloads & string>(event: E, handler: Handler<Payloads[E]>): this;
  once(event: string, fn: (...args: never[]) => unknown): this {
    return this.add(event, fn, true);
  }

  /** Removes a listener or handler; without one, all of `event`'s; without arguments, all. */
  off<K extends LifecycleName>(event?: K, listener?: HubClientEvents[K]): this;
  off<E extends keyof Payloads & string>(event?: E, handler?: Handler<Payloads[E]>): this;
  off(event?: string, fn?: (...args: never[]) => unknown): this {
    if (event === undefined) {
      this.lifecycle.remove();
      this.handlers.remove();
    } else if (LIFECYCLE.has(event)) this.lifecycle.remove(event, fn as () => void);
    else this.handlers.remove(event, fn as Handler);
    return this;
  }

  private add(event: string, fn: (...args: never[]) => unknown, once: boolean): this {
    if (LIFECYCLE.has(event)) {
      this.lifecycle.add(event, fn as () => void, once);
      return this;
    }
    this.handlers.add(event, fn as Handler, once);
    this.releaseParked();
    return this;
  }

  /** Handles messages of an event without subscribing: `on(event, handler)`. */
  handle<E extends keyof Payloads & string>(event: E, handler: Handler<Payloads[E]>): this {
    return this.on(event, handler);
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
        // Refusals by the hub are final; transport errors are retried by socket.io-client, and
        // a refused token once by the token source.
        if (this.socket.active) return;
        this.socket.off("connect", onConnect);
        this.socket.off("connect_error", onError);
        reject(new HubError("CONNECT", err.message, { cause: err }));
      };
      this.socket.once("connect", onConnect);
      this.socket.on("connect_error", onError);
      this.socket.connect();
    });
  }

  /**
   * Durably subscribes to these events; with a handler, also handles them (`on`). Messages are
   * acked after their handlers resolve.
   */
  async subscribe<E extends keyof Payloads & string>(
    event: E | E[],
    handler?: Handler<Payloads[E]>,
    options: { group?: string } = {},
  ): Promise<void> {
    const events = Array.isArray(event) ? event : [event];
    // All handlers first, then the parked messages: their order across these events is kept.
    if (handler) for (const e of events) this.handlers.add(e, handler as Handler);
    this.releaseParked();
    const req = { event: events, ...(options.group ? { group: options.group } : {}) };
    await this.request<{ events: string[] }>("subscribe", (ack) => this.socket.emit("subscribe", req, ack));
  }

  /** Ends the subscriptions (the hub drops their queued messages) and their handlers. */
  async unsubscribe(event: string | string[]): Promise<void> {
    for (const e of Array.isArray(event) ? event : [event]) this.handlers.remove(e);
    await this.request<object>("unsubscribe", (ack) => this.socket.emit("unsubscribe", { event }, ack));
  }

  /** Becomes a durable member of a room: its messages are queued for this client, online or not. */
  async join(room: string): Promise<void> {
    await this.request<object>("join", (ack) => this.socket.emit("join", room, ack));
  }

  /** Ends the membership; room messages already queued stay. */
  async leave(room: string): Promise<void> {
    await this.request<object>("leave", (ack) => this.socket.emit("leave", room, ack));
  }

  /** The room's members, each with whether it is connected now. */
  async members(room: string): Promise<RoomMember[]> {
    const reply = await this.request<{ members: RoomMember[] }>("members", (ack) =>
      this.socket.emit("members", { room }, ack),
    );
    return reply.members;
  }

  /**
   * Publishes; resolves with the messageId once the hub has stored it. `{ to }` addresses
   * clients, `{ room }` the room's members (except this client, unless `echo`).
   */
  async publish<E extends keyof Payloads & string>(
    event: E,
    payload: Payloads[E],
    options: Omit<PublishRequest, "event" | "payload"> = {},
  ): Promise<string> {
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

  /** Sends the acks still waiting, then closes the connection (no reconnect). */
  close(): void {
    this.flushAcks();
    this.socket.close();
    // Requests still waiting for a reply end now: their timers would keep a Node process alive.
    for (const cancel of [...this.waiting]) cancel();
  }

  /** socket.io-client's name for `close`. */
  disconnect(): void {
    this.close();
  }

  /** The handshake's `auth`: the caller's fields, then the hub's own (clientId, token, batch). */
  private async handshakeAuth(extra: AuthOption | undefined, batch: boolean): Promise<object> {
    const base =
      typeof extra === "function" ? await new Promise<object>((resolve) => extra(resolve)) : (extra ?? {});
    const source = this.options.token;
    if (typeof source === "function" && (this.token === null || this.tokenStale)) {
      this.token = await source();
      this.tokenStale = false;
    }
    return {
      ...base,
      clientId: this.options.clientId,
      batch,
      ...(this.token !== null ? { token: this.token } : {}),
    };
  }

  /** Sends one request through `send` and waits for its reply: the success, or a HubError. */
  private request<T extends object>(
    event: keyof ClientToHubEvents,
    send: (ack: (reply: Reply<T>) => void) => void,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(cancel);
      };
      const cancel = () => {
        done();
        reject(new HubError("CLOSED", `${event}: the client was closed before the hub replied`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new HubError("TIMEOUT", `no reply to ${event} within ${this.replyTimeoutMs} ms`));
      }, this.replyTimeoutMs);
      this.waiting.add(cancel);
      send((reply) => {
        done();
        if (reply.ok) resolve(reply);
        else reject(new HubError(reply.error.code, reply.error.message));
      });
    });
  }

  private emit<K extends LifecycleName>(event: K, ...args: Parameters<HubClientEvents[K]>) {
    for (const fn of this.lifecycle.take(event)) {
      try {
        (fn as (...a: unknown[]) => void)(...args);
      } catch (err) {
        // A listener's bug must not stop the others, nor the client; an error listener's bug ends here.
        if (event !== "error") this.reportError(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  /** Dispatches the parked messages that now have a handler, in the order they arrived. */
  private releaseParked() {
    const ready = this.parked.filter((m) => this.handlers.has(m.event));
    if (ready.length === 0) return;
    this.parked = this.parked.filter((m) => !this.handlers.has(m.event));
    for (const m of ready) this.dispatch(m);
  }

  private dispatch(message: Message) {
    if (this.recent.has(message.messageId)) return this.queueAck(message.messageId);
    const handlers = this.handlers.take(message.event);
    if (handlers.length === 0) {
      // A redelivery of a message already parked replaces nothing: it is parked once.
      if (!this.parked.some((m) => m.messageId === message.messageId)) this.parked.push(message);
      return;
    }
    Promise.all(
      handlers.map((handler) => Promise.resolve().then(() => handler(message.payload, message))),
    ).then(
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
    this.emit("error", err);
  }
}

function isMessage(value: unknown): value is Message {
  return typeof value === "object" && value !== null && "messageId" in value && "event" in value;
}
