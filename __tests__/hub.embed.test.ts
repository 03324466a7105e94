// Embedding: queuehub attached to a host's own Socket.IO (or plain HTTP) server, on chosen
// namespaces only; the host's events and routes keep working, before and after close().
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { io as connect, type Socket } from "socket.io-client";
import { type AttachedHub, attachHub } from "../src/hub.js";
import { createLogger } from "../src/log.js";
import { MemoryStore } from "../src/store/memory.js";
import { connectError, TestClient } from "./support/hub.js";

interface Host {
  url: string;
  http: HttpServer;
  io: Server | null;
  hub: AttachedHub;
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

const sockets: Socket[] = [];
const testClients: TestClient[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
  for (const c of testClients.splice(0)) c.close();
});

/** A host app: an HTTP route of its own, and (unless `plainHttp`) a Socket.IO server with an `echo` event on `/`. */
async function startHost(
  hubOptions: Partial<Parameters<typeof attachHub>[1]> = {},
  serverOptions: ConstructorParameters<typeof Server>[1] = {},
  plainHttp = false,
): Promise<Host> {
  const http = createServer((req, res) => {
    if (req.url?.startsWith("/queuehub/")) {
      req.url = req.url.slice("/queuehub".length);
      return host.hub.handleHttp(req, res);
    }
    res.writeHead(200, { "content-type": "text/plain" }).end(`host says hi to ${req.url}`);
  });
  const io = plainHttp ? null : new Server(http, serverOptions);
  io?.on("connection", (socket) => {
    socket.on("echo", (value: unknown, ack: (v: unknown) => void) => ack({ echoed: value }));
  });
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger("info", (line) => logs.push(JSON.parse(line)));
  const hub = await attachHub(io ?? http, {
    namespaces: ["/caps"],
    queueStore: new MemoryStore(),
    logger,
    ...hubOptions,
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const host: Host = {
    url,
    http,
    io,
    hub,
    logs,
    async close() {
      await hub.close();
      if (io) await io.close();
      else await new Promise((resolve) => http.close(resolve));
    },
  };
  return host;
}

function client(url: string, auth?: Record<string, unknown>): Promise<Socket> {
  const socket = connect(url, { transports: ["websocket"], reconnection: false, forceNew: true, auth });
  sockets.push(socket);
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  });
}

async function queueClient(url: string, clientId: string): Promise<TestClient> {
  const c = new TestClient(url, "/caps", { clientId });
  testClients.push(c);
  await c.connected;
  return c;
}

/** A publish on /caps reaches a subscriber there, and its ack removes it. */
async function expectQueueWorks(url: string) {
  const sub = await queueClient(url, "driver");
  expect(await sub.request("subscribe", { event: "pickup" })).toEqual({ ok: true, events: ["pickup"] });
  const pub = await queueClient(url, "vendor");
  const reply = await pub.request("pickup", { orderId: 1 });
  expect(reply).toEqual({ ok: true, messageId: expect.any(String) });
  const [m] = await sub.received(1);
  expect(m).toMatchObject({
    messageId: reply.messageId,
    event: "pickup",
    payload: { orderId: 1 },
    from: "vendor",
  });
  expect(await sub.ackAll()).toBe(1);
}

test("attached to a host's Socket.IO server on /caps: the host keeps / and its routes, the queue works on /caps", async () => {
  const host = await startHost();
  try {
    // The host's own event on /, with an auth the hub would refuse: the hub's middleware is not on /.
    const mine = await client(host.url, { clientId: "not/valid" });
    expect(await mine.timeout(2000).emitWithAck("echo", 42)).toEqual({ echoed: 42 });
    // `/` is not the queue's: a publish there gets no hub reply.
    await expect(mine.timeout(300).emitWithAck("publish", { event: "pickup", payload: 1 })).rejects.toThrow();

    await expectQueueWorks(host.url);
    expect(await connectError(`${host.url}/caps`, { clientId: "not/valid" })).toBe("invalid clientId");
    // Names the hub does not serve stay Socket.IO's.
    expect(await connectError(`${host.url}/orders`, { clientId: "a" })).toBe("Invalid namespace");

    // The host's HTTP routes, and the hub's own mounted where the host chose.
    expect(await (await fetch(`${host.url}/hello`)).text()).toBe("host says hi to /hello");
    const health = await fetch(`${host.url}/queuehub/healthz`);
    expect(await health.json()).toMatchObject({ ok: true, status: "healthy" });
  } finally {
    await host.close();
  }
});

test("attachHub warns when the host's maxHttpBufferSize is too small, naming the setting and both values", async () => {
  // The frame limit: the larger of a payload and a batch's bytes, and 256 KiB of envelope.
  const small = await startHost({ maxPayloadBytes: 100_000, maxBatchBytes: 2_000_000 });
  await small.close();
  const warning = small.logs.find((l) => l.setting === "maxHttpBufferSize");
  expect(warning).toMatchObject({ level: "warn", host: 1e6, recommended: 2_262_144 });
  expect(String(warning?.msg)).toMatch(/maxHttpBufferSize is 1000000, queuehub recommends 2262144/);

  const fitting = await startHost(
    { maxPayloadBytes: 100_000, maxBatchBytes: 2_000_000 },
    { maxHttpBufferSize: 3e6 },
  );
  await fitting.close();
  expect(fitting.logs.filter((l) => l.setting !== undefined)).toEqual([]);
});

test("close() detaches the queue: /caps refuses, the host's / and HTTP server keep running", async () => {
  const host = await startHost();
  try {
    await expectQueueWorks(host.url);
    await host.hub.close();
    expect(await connectError(`${host.url}/caps`, { clientId: "driver" })).toBe("queuehub closed");
    const mine = await client(host.url);
    expect(await mine.timeout(2000).emitWithAck("echo", "still here")).toEqual({ echoed: "still here" });
    expect((await fetch(`${host.url}/hello`)).status).toBe(200);
  } finally {
    await host.close();
  }
});

test("attached to a plain HTTP server: the queue gets a Socket.IO server of its own, removed again on close", async () => {
  const host = await startHost({}, {}, true);
  try {
    await expectQueueWorks(host.url);
    expect(await connectError(`${host.url}/`, { clientId: "a" })).toBe("Invalid namespace");
    await host.hub.close();
    for (const c of testClients) c.close();
    // The host's request handler is the only one again: Socket.IO's path falls through to it.
    const res = await fetch(`${host.url}/socket.io/?EIO=4&transport=polling`);
    expect(await res.text()).toBe("host says hi to /socket.io/?EIO=4&transport=polling");
    expect(host.http.listenerCount("upgrade")).toBe(0);
  } finally {
    await host.close();
  }
});

test("namespaces chosen by a predicate are served on demand; the host's own namespaces stay the host's", async () => {
  const host = await startHost(
    { namespaces: (name) => name.startsWith("/team-") || name === "/chat" },
    { cleanupEmptyChildNamespaces: true },
  );
  // A namespace of the host's own, created before or after attaching, is never the queue's.
  host.io
    ?.of("/chat")
    .on("connection", (socket) => socket.on("echo", (v: unknown, ack: (v: unknown) => void) => ack(v)));
  try {
    const sub = new TestClient(host.url, "/team-a", { clientId: "sub" });
    testClients.push(sub);
    await sub.connected;
    expect(await sub.request("subscribe", { event: "note" })).toEqual({ ok: true, events: ["note"] });
    expect(await connectError(`${host.url}/other`, { clientId: "a" })).toBe("Invalid namespace");
    expect(await connectError(`${host.url}/team-Bad`, { clientId: "a" })).toBe("Invalid namespace");
    const chat = await client(`${host.url}/chat`, { clientId: "not/valid" });
    expect(await chat.timeout(2000).emitWithAck("echo", "hi")).toBe("hi");
    expect(host.hub.serves("/team-b")).toBe(true);
    expect(host.hub.serves("/")).toBe(false);
    expect(host.logs.filter((l) => l.setting === "cleanupEmptyChildNamespaces")).toEqual([]);
  } finally {
    await host.close();
  }
  // Without cleanupEmptyChildNamespaces, namespaces served on demand would pile up: the hub says so.
  const keeping = await startHost({ namespaces: () => true });
  await keeping.close();
  expect(keeping.logs.find((l) => l.setting === "cleanupEmptyChildNamespaces")).toMatchObject({
    level: "warn",
    host: false,
    recommended: true,
  });
});

test("attachHub needs its namespaces named, and valid", async () => {
  const http = createServer();
  const io = new Server(http);
  await expect(
    // @ts-expect-error namespaces is required
    attachHub(io, { queueStore: new MemoryStore(), logLevel: "silent" }),
  ).rejects.toThrow(/say which namespaces/);
  await expect(attachHub(io, { namespaces: ["/Caps!"], logLevel: "silent" })).rejects.toThrow(
    /"\/Caps!" is not a valid namespace/,
  );
  await io.close();
});
