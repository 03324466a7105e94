// Test support: a real hub on port 0 and real socket.io clients, with their cleanup.
import { io, type Socket } from "socket.io-client";
import { createHub, type Hub, type HubOptions } from "../../src/hub.js";
import type { AnyReply, HubErrorEvent, Message } from "../../src/protocol.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { QueueStore } from "../../src/store/store.js";

export interface TestContext {
  hub: Hub;
  url: string;
  /** Connects a client; listeners are attached before connecting. */
  client(ns: string, auth?: Record<string, unknown> | null): Promise<TestClient>;
  /** Closes every client, then the hub. */
  close(): Promise<void>;
}

/** A hub on port 0 with a memory store unless given one; any option overridden (a logger, say). */
export async function startHub(overrides: HubOptions = {}, store?: QueueStore): Promise<TestContext> {
  const hub = await createHub({
    port: 0,
    host: "127.0.0.1",
    logLevel: "silent",
    ...overrides,
    queueStore: store ?? overrides.queueStore ?? new MemoryStore(),
  });
  const clients: TestClient[] = [];
  return {
    hub,
    url: hub.url,
    async client(ns, auth = null) {
      const client = new TestClient(hub.url, ns, auth);
      clients.push(client);
      await client.connected;
      return client;
    },
    async close() {
      for (const c of clients) c.close();
      await hub.close();
    },
  };
}

export class TestClient {
  readonly socket: Socket;
  /** Every delivery, in arrival order (single events and batches alike). */
  readonly messages: Message[] = [];
  /** Every `hub:error` (refusals of requests sent without an ack callback). */
  readonly errors: HubErrorEvent[] = [];
  readonly connected: Promise<void>;

  constructor(url: string, ns: string, auth: Record<string, unknown> | null) {
    this.socket = io(`${url}${ns}`, {
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
      ...(auth ? { auth } : {}),
    });
    this.socket.onAny((event: string, arg: unknown) => {
      if (event === "deliveries") this.messages.push(...(arg as Message[]));
      else if (event === "hub:error") this.errors.push(arg as HubErrorEvent);
      else if (arg && typeof arg === "object" && "messageId" in arg) this.messages.push(arg as Message);
    });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once("connect", () => resolve());
      this.socket.once("connect_error", reject);
    });
  }

  /** Emits with an ack and returns the hub's reply. */
  request(event: string, ...args: unknown[]): Promise<AnyReply & Record<string, unknown>> {
    return this.socket.timeout(3000).emitWithAck(event, ...args) as Promise<
      AnyReply & Record<string, unknown>
    >;
  }

  /** Waits until at least `n` deliveries arrived; returns them. */
  async received(n: number, timeoutMs = 3000): Promise<Message[]> {
    await waitUntil(
      () => this.messages.length >= n,
      timeoutMs,
      () => `${this.messages.length} of ${n} deliveries`,
    );
    return this.messages;
  }

  payloads(): unknown[] {
    return this.messages.map((m) => m.payload);
  }

  async ackAll(): Promise<number> {
    const reply = await this.request("received", { messageIds: this.messages.map((m) => m.messageId) });
    return reply.removed as number;
  }

  close(): void {
    this.socket.close();
  }
}

/** Polls until `check` is true, instead of sleeping. */
export async function waitUntil(check: () => boolean, timeoutMs = 3000, what: () => string = () => "") {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Lets in-flight frames arrive, to check that nothing more comes. */
export function settle(ms = 100): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Connects and expects a refusal; returns the connect_error message. */
export async function connectError(url: string, auth: Record<string, unknown> | null): Promise<string> {
  return (await connectRefusal(url, auth)).message;
}

/** Connects and expects a refusal; returns the connect_error's message and data. */
export function connectRefusal(
  url: string,
  auth: Record<string, unknown> | null,
): Promise<{ message: string; data: unknown }> {
  const socket = io(url, {
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    ...(auth ? { auth } : {}),
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => {
      socket.close();
      reject(new Error("connected, but a refusal was expected"));
    });
    socket.once("connect_error", (err) => {
      socket.close();
      resolve({ message: err.message, data: (err as Error & { data?: unknown }).data });
    });
  });
}
