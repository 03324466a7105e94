// HTTP beside the sockets: health, metrics and publish, answered like the socket ack.
import { Agent, get, request } from "node:http";
import { startHub, type TestContext } from "./support/hub.js";

let ctx: TestContext;
afterEach(async () => {
  await ctx?.close();
});

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });

test("GET /healthz answers JSON, naming the store the hub was given", async () => {
  ctx = await startHub(); // a MemoryStore instance
  const res = await fetch(`${ctx.url}/healthz`);
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ ok: true, status: "healthy", store: "memory" });
});

test("close() ends although a page goes on polling on a keep-alive connection that was busy", async () => {
  const started = await startHub();
  const agent = new Agent({ keepAlive: true, maxSockets: 1 }); // one connection, as a page reuses
  const answered = (req: ReturnType<typeof request>) =>
    new Promise<void>((resolve) => {
      req.on("response", (res) => res.resume().on("end", resolve));
      req.on("error", () => resolve());
    });
  // A publish under way when close() begins: its headers are in, its body is not.
  const arrived = new Promise((resolve) => started.hub.httpServer.once("request", resolve));
  const publish = request(`${started.url}/publish/caps/job`, {
    agent,
    method: "POST",
    headers: { "content-type": "application/json" },
  });
  const publishAnswered = answered(publish);
  publish.write('{"payload":');
  await arrived;
  let closed = false;
  const closing = started.close().then(() => {
    closed = true;
  });
  publish.end("1}");
  await publishAnswered;
  // The page polls again and again on the same connection; Node alone would keep serving it.
  for (const deadline = Date.now() + 15_000; !closed && Date.now() < deadline; ) {
    await answered(get(`${started.url}/healthz`, { agent }));
  }
  agent.destroy();
  expect(closed).toBe(true);
  await closing;
});

test("POST /publish/:namespace/:event and /publish/:event store and deliver, with from null", async () => {
  ctx = await startHub();
  const caps = await ctx.client("/caps", { clientId: "driver" });
  await caps.request("subscribe", { event: "pickup" });
  const root = await ctx.client("/", { clientId: "root" });
  await root.request("subscribe", { event: "ping" });
  const res = await post(`${ctx.url}/publish/caps/pickup`, JSON.stringify({ orderId: 7 }));
  expect(res.status).toBe(200);
  const reply = await res.json();
  expect(reply).toEqual({ ok: true, messageId: expect.any(String) });
  const [m] = await caps.received(1);
  expect(m).toMatchObject({
    messageId: reply.messageId,
    event: "pickup",
    payload: { orderId: 7 },
    from: null,
  });
  expect((await post(`${ctx.url}/publish/ping`, "1")).status).toBe(200);
  await root.received(1);
  expect(root.payloads()).toEqual([1]);
});

test("?to= addresses clients and Idempotency-Key dedups", async () => {
  ctx = await startHub();
  const headers = { "idempotency-key": "order-9" };
  const first = await (await post(`${ctx.url}/publish/caps/note?to=a,b`, '"hi"', headers)).json();
  const again = await (await post(`${ctx.url}/publish/caps/note?to=a,b`, '"hi"', headers)).json();
  expect(again).toEqual(first);
  const a = await ctx.client("/caps", { clientId: "a" });
  const b = await ctx.client("/caps", { clientId: "b" });
  await a.received(1);
  await b.received(1);
  expect(await a.request("getAll", {})).toEqual({ ok: true, count: 1 });
});

test("bad HTTP publishes get the contract's status and code", async () => {
  ctx = await startHub({ maxPayloadBytes: 100, namespaces: ["/caps"] });
  const cases: [string, string, number, string][] = [
    ["/publish/caps/pickup", "{not json", 400, "INVALID_ARGUMENT"],
    ["/publish/caps/subscribe", "1", 400, "INVALID_ARGUMENT"],
    ["/publish/orders/pickup", "1", 400, "INVALID_ARGUMENT"],
    ["/publish/caps/pickup?to=bad/id", "1", 400, "INVALID_ARGUMENT"],
    ["/publish/caps/pickup", JSON.stringify("x".repeat(200)), 413, "PAYLOAD_TOO_LARGE"],
  ];
  for (const [path, body, status, code] of cases) {
    const res = await post(`${ctx.url}${path}`, body);
    expect([path, res.status]).toEqual([path, status]);
    expect(await res.json()).toEqual({ ok: false, error: { code, message: expect.any(String) } });
  }
  expect((await ctx.hub.store.stats({ limit: 10 })).items).toEqual([]);
  expect((await fetch(`${ctx.url}/nothing-here`)).status).toBe(404);
});

test("with a secret, HTTP publishes need a bearer token", async () => {
  const { signToken } = await import("../src/token.js");
  ctx = await startHub({ secret: "http-secret" });
  const denied = await post(`${ctx.url}/publish/caps/pickup`, "1");
  expect(denied.status).toBe(401);
  expect(await denied.json()).toMatchObject({ ok: false, error: { code: "UNAUTHORIZED" } });
  const token = await signToken("http-secret", "ops");
  const ok = await post(`${ctx.url}/publish/caps/pickup`, "1", { authorization: `Bearer ${token}` });
  expect(ok.status).toBe(200);
});

test("GET /metrics is Prometheus text with the counters", async () => {
  ctx = await startHub();
  const sub = await ctx.client("/", { clientId: "sub" });
  await sub.request("subscribe", { event: "e" });
  await post(`${ctx.url}/publish/e`, "1");
  await sub.received(1);
  await sub.ackAll();
  const text = await (await fetch(`${ctx.url}/metrics`)).text();
  expect(text).toContain("queuehub_published_total 1");
  expect(text).toContain("queuehub_delivered_total 1");
  expect(text).toContain("queuehub_acked_total 1");
  expect(text).toMatch(/queuehub_connections 1/);
});

test("GET /dashboard serves the live page built on the JSON views", async () => {
  ctx = await startHub();
  const res = await fetch(`${ctx.url}/dashboard`);
  expect(res.status).toBe(200);
  expect(res.url).toBe(`${ctx.url}/dashboard/`);
  expect(res.headers.get("content-type")).toContain("text/html");
  const script = await (await fetch(`${ctx.url}/dashboard/dashboard.js`)).text();
  for (const view of [
    '"healthz"',
    '"namespaces"',
    "`queues?ns=",
    "`clients?ns=",
    "`dead-letters?ns=",
    '"metrics"',
  ])
    expect(script).toContain(view);
  const sub = await ctx.client("/caps", { clientId: "sub" });
  await sub.request("subscribe", { event: "e" });
  await post(`${ctx.url}/publish/caps/e`, "1");
  await sub.received(1);
  const queues = await (await fetch(`${ctx.url}/queues?ns=caps`)).json();
  expect(queues).toEqual({
    ok: true,
    queues: [{ ns: "/caps", queue: "c:sub", pending: 1, inFlight: 1 }],
    next: null,
  });
  const clients = await (await fetch(`${ctx.url}/clients?ns=/caps`)).json();
  expect(clients.clients).toEqual([{ ns: "/caps", clientId: "sub", socketId: expect.any(String) }]);
  const namespaces = await (await fetch(`${ctx.url}/namespaces`)).json();
  expect(namespaces).toEqual({
    ok: true,
    namespaces: [
      { ns: "/caps", queues: 1, pending: 1, subscriptions: 1, rooms: 0, deadLetters: 0, clients: 1 },
    ],
    next: null,
  });
});

test("the operator views are paged: ?limit= and ?cursor=, each reply with its next cursor", async () => {
  ctx = await startHub();
  const { store } = ctx.hub;
  for (let i = 0; i < 7; i++) await store.subscribe("/caps", `c${i}`, ["e"], null);
  for (let i = 0; i < 5; i++) await store.joinRoom("/caps", `room${i}`, "c0");
  for (const ns of ["/a", "/b", "/c"]) await store.subscribe(ns, "x", ["e"], null);
  await post(`${ctx.url}/publish/caps/e`, "1");
  const pages = async (path: string, field: string, limit: number) => {
    const items: unknown[] = [];
    let cursor: string | null = null;
    for (let n = 0; n < 100; n++) {
      const page: string = `limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const reply: { ok: boolean; next: string | null } & Record<string, unknown[]> = await (
        await fetch(`${ctx.url}${path}${path.includes("?") ? "&" : "?"}${page}`)
      ).json();
      expect(reply.ok).toBe(true);
      items.push(...(reply[field] ?? []));
      if (reply.next === null) return items;
      cursor = reply.next;
    }
    throw new Error("no last page");
  };
  expect(await pages("/subscriptions?ns=caps", "subscriptions", 2)).toHaveLength(7);
  expect(await pages("/queues?ns=caps", "queues", 2)).toHaveLength(7);
  expect(await pages("/rooms?ns=caps", "rooms", 2)).toEqual(
    [0, 1, 2, 3, 4].map((i) => ({ ns: "/caps", room: `room${i}`, members: 1 })),
  );
  // a namespace with connections only is listed too, in its place by name
  await ctx.client("/b2", { clientId: "watcher" });
  const namespaces = (await pages("/namespaces", "namespaces", 1)) as { ns: string; clients: number }[];
  expect(namespaces.map((n) => [n.ns, n.clients])).toEqual([
    ["/a", 0],
    ["/b", 0],
    ["/b2", 1],
    ["/c", 0],
    ["/caps", 0],
  ]);
  for (const id of ["w3", "w1", "w2"]) await ctx.client("/b2", { clientId: id });
  const clients = (await pages("/clients", "clients", 2)) as { ns: string; clientId: string }[];
  expect(clients.map((c) => c.clientId)).toEqual(["w1", "w2", "w3", "watcher"]);
  const first = await (await fetch(`${ctx.url}/subscriptions?limit=3`)).json();
  expect(first.subscriptions).toHaveLength(3);
  expect(first.next).toEqual(expect.any(String));
  // bad paging input: a clear 400, never a 500
  for (const query of ["limit=0", "limit=-1", "limit=ten", "limit=1.5", "cursor=nonsense", "cursor=e30"]) {
    for (const view of ["/subscriptions", "/queues", "/namespaces", "/rooms", "/dead-letters", "/clients"]) {
      const res = await fetch(`${ctx.url}${view}?${query}`);
      expect([view, query, res.status]).toEqual([view, query, 400]);
      expect((await res.json()).error.code).toBe("INVALID_ARGUMENT");
    }
  }
  // a limit over 1000 is read as 1000
  expect((await fetch(`${ctx.url}/subscriptions?limit=5000`)).status).toBe(200);
});
