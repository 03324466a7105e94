// Attacks on the hub's resources, each against a live hub on port 0: big frames before
// authentication, connection floods (from one address and in all), many connections of one
// clientId, namespaces made up by the thousand, oversized batches.
import { type Socket as NetSocket, connect as tcpConnect } from "node:net";
import { io, type Socket } from "socket.io-client";
import { frameLimit } from "../src/options.js";
import { settle, startHub, type TestContext, waitUntil } from "./support/hub.js";

let ctx: TestContext;
const opened: Socket[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) s.close();
  await ctx?.close();
});

/** A socket.io-client connection; resolves once it connected or was refused. */
function open(
  ns: string,
  options: { auth?: Record<string, unknown>; from?: string; transports?: ("polling" | "websocket")[] } = {},
): Promise<{ socket: Socket; error: string | null }> {
  const socket = io(`${ctx.url}${ns}`, {
    transports: options.transports ?? ["websocket"],
    reconnection: false,
    forceNew: true,
    ...(options.auth ? { auth: options.auth } : {}),
    ...(options.from ? { extraHeaders: { "x-forwarded-for": options.from } } : {}),
  });
  opened.push(socket);
  return new Promise((resolve) => {
    socket.once("connect", () => resolve({ socket, error: null }));
    socket.once("connect_error", (err) => resolve({ socket, error: err.message }));
  });
}

/** A polling handshake as a browser or a script makes it: the HTTP status and body. */
async function handshake(from?: string) {
  const res = await fetch(`${ctx.url}/socket.io/?EIO=4&transport=polling`, {
    headers: from ? { "x-forwarded-for": from } : {},
  });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: await res.text() };
}

describe("frames", () => {
  test("one small frame limit, from the batch-bytes limit: a bigger frame before authentication is cut off", async () => {
    ctx = await startHub({ secret: "frames-secret", maxPayloadBytes: 16_384, maxBatchBytes: 65_536 });
    const limit = frameLimit({ maxPayloadBytes: 16_384, maxBatchBytes: 65_536 });
    expect(ctx.hub.io.engine.opts.maxHttpBufferSize).toBe(limit);
    // With the defaults: about 1.25 MiB, not payload × batch (28.8 MB).
    expect(frameLimit({ maxPayloadBytes: 262_144, maxBatchBytes: 1_048_576 })).toBe(1_310_720);

    // A stranger with no token sends one frame over the limit, before any namespace handshake.
    const stranger = io(ctx.url, {
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
      autoConnect: false,
    });
    opened.push(stranger);
    const closed = new Promise<string>((resolve) =>
      stranger.io.on("close", (reason) => resolve(String(reason))),
    );
    stranger.io.open(() => {
      (stranger.io.engine as unknown as { send(s: string): void }).send(`0${"x".repeat(limit + 1)}`);
    });
    expect(await closed).toBe("transport close");
    expect((await fetch(`${ctx.url}/healthz`)).status).toBe(200);
  });

  test("a batch over HUB_MAX_BATCH_BYTES is BATCH_TOO_LARGE, naming the setting, and nothing is stored", async () => {
    ctx = await startHub({ maxPayloadBytes: 1000, maxBatchBytes: 2500 });
    const sub = await ctx.client("/", { clientId: "sub" });
    await sub.request("subscribe", { event: "e" });
    const pub = await ctx.client("/", { clientId: "pub" });
    const batch = Array.from({ length: 3 }, () => ({ event: "e", payload: "x".repeat(900) }));
    expect(await pub.request("publish", batch)).toEqual({
      ok: false,
      error: { code: "BATCH_TOO_LARGE", message: expect.stringContaining("HUB_MAX_BATCH_BYTES") },
    });
    expect(await pub.request("publish", batch.slice(0, 2))).toMatchObject({ ok: true });
    await sub.received(2);
    await settle();
    expect(sub.messages).toHaveLength(2);
  });
});

describe("connection limits", () => {
  test("per remote address: past the limit the handshake gets HTTP 503, over polling and WebSocket; other addresses still connect", async () => {
    // Clients reach the hub through a proxy on loopback that names them in X-Forwarded-For.
    ctx = await startHub({ maxConnectionsPerAddress: 3, trustedProxies: ["127.0.0.1"] });
    const attacker = "203.0.113.66";
    for (let i = 0; i < 3; i++) expect((await open("/", { from: attacker })).error).toBeNull();
    const refused = await handshake(attacker);
    expect(refused.status).toBe(503);
    expect(refused.retryAfter).toBe("5");
    expect(JSON.parse(refused.body).message).toContain("HUB_MAX_CONNECTIONS_PER_ADDRESS");
    expect((await open("/", { from: attacker })).error).toBe("websocket error");
    expect((await open("/", { from: attacker, transports: ["polling"] })).error).toBe("xhr poll error");
    // Someone else is not held up by the attacker.
    expect((await open("/", { from: "198.51.100.1" })).error).toBeNull();
    // Once one of the attacker's connections closes, it may open one again.
    opened[0]?.close();
    await waitUntil(
      () => ctx.hub.io.engine.clientsCount === 3,
      3000,
      () => `${ctx.hub.io.engine.clientsCount}`,
    );
    expect((await open("/", { from: attacker })).error).toBeNull();
  });

  test("loopback is exempt by default, and limited with HUB_LIMIT_LOOPBACK", async () => {
    ctx = await startHub({ maxConnectionsPerAddress: 2 });
    for (let i = 0; i < 5; i++) expect((await open("/")).error).toBeNull();
    await ctx.close();
    for (const s of opened.splice(0)) s.close();
    ctx = await startHub({ maxConnectionsPerAddress: 2, limitLoopback: true });
    for (let i = 0; i < 2; i++) expect((await open("/")).error).toBeNull();
    expect((await handshake()).status).toBe(503);
  });

  test("in all: past HUB_MAX_CONNECTIONS every handshake gets 503, loopback too", async () => {
    ctx = await startHub({ maxConnections: 4 });
    for (let i = 0; i < 4; i++) expect((await open("/")).error).toBeNull();
    const refused = await handshake();
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body).message).toContain("HUB_MAX_CONNECTIONS");
    expect((await fetch(`${ctx.url}/healthz`)).status).toBe(200);
  });

  test("idle TCP connections from one address are capped beneath HTTP", async () => {
    ctx = await startHub({ maxConnectionsPerAddress: 2, limitLoopback: true });
    const { port } = ctx.hub;
    const sockets: NetSocket[] = [];
    let closedByHub = 0;
    try {
      for (let i = 0; i < 30; i++) {
        const s = tcpConnect(port, "127.0.0.1");
        s.on("error", () => {});
        s.on("close", () => closedByHub++);
        sockets.push(s);
      }
      // 2 × 2 + 16 = 20 stay open; the other 10 are closed at once.
      await waitUntil(
        () => closedByHub >= 10,
        5000,
        () => `${closedByHub} closed`,
      );
      await settle(200);
      expect(closedByHub).toBe(10);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});

describe("connections of one clientId", () => {
  test("past HUB_MAX_CONNECTIONS_PER_CLIENT the oldest are closed, never the reconnect", async () => {
    ctx = await startHub({ maxConnectionsPerClient: 3 });
    const conns: Socket[] = [];
    const reasons: string[][] = [];
    for (let i = 0; i < 6; i++) {
      const { socket, error } = await open("/caps", { auth: { clientId: "dup" } });
      expect(error).toBeNull();
      const mine: string[] = [];
      socket.on("disconnect", (reason) => mine.push(reason));
      conns.push(socket);
      reasons.push(mine);
    }
    await waitUntil(
      () => reasons.filter((r) => r.length > 0).length === 3,
      3000,
      () => JSON.stringify(reasons),
    );
    expect(reasons.map((r) => r[0] ?? "open")).toEqual([
      "io server disconnect",
      "io server disconnect",
      "io server disconnect",
      "open",
      "open",
      "open",
    ]);
    // The newest receives.
    const got: unknown[] = [];
    conns[5]?.on("note", (m: { payload: unknown }) => got.push(m.payload));
    const pub = await ctx.client("/caps", { clientId: "pub" });
    await pub.request("publish", { event: "note", payload: 1, to: "dup" });
    await waitUntil(() => got.length === 1);
  });
});

describe("namespaces", () => {
  test("at most HUB_MAX_NAMESPACES in use when HUB_NAMESPACES is unset", async () => {
    ctx = await startHub({ maxNamespaces: 3 });
    const a1 = await open("/a", { auth: { clientId: "x" } });
    expect(a1.error).toBeNull();
    expect((await open("/b", { auth: { clientId: "x" } })).error).toBeNull();
    expect((await open("/c", { auth: { clientId: "x" } })).error).toBe("Invalid namespace");
    // Names in use are still served.
    const a2 = await open("/a", { auth: { clientId: "y" } });
    expect(a2.error).toBeNull();
    a1.socket.close();
    a2.socket.close();
    await waitUntil(() => !ctx.hub.io._nsps.has("/a"));
    expect((await open("/c", { auth: { clientId: "x" } })).error).toBeNull();
  });
});
