// Origins, as an attacker's page would try them against a live hub: a foreign page connecting
// over polling and over WebSocket, a foreign page's text/plain POST, and DNS rebinding (the
// attacker's name resolved to the hub's address). Plus the served client and CORS for listed pages.

import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { parseConfig } from "../src/config.js";
import { startHub, type TestContext } from "./support/hub.js";

const LISTED = "http://app.example:8080";
const FOREIGN = "http://evil.example";

let ctx: TestContext;
let port: number;
beforeAll(async () => {
  ctx = await startHub({ corsOrigins: [LISTED], namespaces: ["/caps"] });
  port = ctx.hub.port;
});
afterAll(async () => {
  await ctx.close();
});

interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request with exactly these headers (Host included, as a rebinding page's browser sends it). */
function raw(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * A WebSocket opening (Engine.IO straight to websocket): "101" when let in, else the refusal's
 * status and text (Engine.IO refuses upgrades with 400 and the reason).
 */
function upgrade(headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1",
      port,
      path: "/socket.io/?EIO=4&transport=websocket",
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": randomBytes(16).toString("base64"),
        ...headers,
      },
    });
    req.on("upgrade", (_res, socket) => {
      socket.destroy();
      resolve("101");
    });
    req.on("response", (res) => {
      let text = "";
      res.on("data", (c: Buffer) => {
        text += c.toString();
      });
      res.on("end", () => resolve(`${res.statusCode} ${text}`));
    });
    req.on("error", reject);
    req.end();
  });
}

const POLL = "/socket.io/?EIO=4&transport=polling";
const own = () => ({ host: `localhost:${port}`, origin: `http://localhost:${port}` });

describe("the Engine.IO handshake", () => {
  test("over polling: a foreign origin gets 403 and no open packet; listed, own and Node clients connect", async () => {
    const before = ctx.hub.io.engine.clientsCount;
    const refused = await raw("GET", POLL, { origin: FOREIGN });
    expect(refused.status).toBe(403);
    expect(refused.body).not.toContain('"sid"');
    expect(refused.headers["access-control-allow-origin"]).toBeUndefined();
    expect(ctx.hub.io.engine.clientsCount).toBe(before);

    const listed = await raw("GET", POLL, { origin: LISTED });
    expect(listed.status).toBe(200);
    expect(listed.body).toMatch(/^0\{"sid"/);
    expect(listed.headers["access-control-allow-origin"]).toBe(LISTED);
    expect((await raw("GET", POLL, own())).body).toMatch(/^0\{"sid"/);
    expect((await raw("GET", POLL, {})).body).toMatch(/^0\{"sid"/);
  });

  test("over WebSocket: a foreign origin's upgrade is refused; listed, own and Node clients upgrade", async () => {
    expect(await upgrade({ origin: FOREIGN })).toBe(
      `400 origin ${FOREIGN} is not allowed: list it in HUB_CORS_ORIGINS`,
    );
    expect(await upgrade({ origin: LISTED })).toBe("101");
    expect(await upgrade(own())).toBe("101");
    expect(await upgrade({})).toBe("101");
  });

  test("DNS rebinding: the attacker's name on the hub's address is a foreign origin", async () => {
    const rebound = { host: `evil.example:${port}`, origin: `http://evil.example:${port}` };
    expect((await raw("GET", POLL, rebound)).status).toBe(403);
    expect(await upgrade(rebound)).toMatch(/^400 this hub listens on loopback and answers to localhost/);
    // The hub's own name on another port, or another scheme, is not its own origin either.
    expect((await raw("GET", POLL, { host: `localhost:${port}`, origin: "http://localhost:1" })).status).toBe(
      403,
    );
    expect(
      (await raw("GET", POLL, { host: `localhost:${port}`, origin: `https://localhost:${port}` })).status,
    ).toBe(200);
  });
});

test("DNS rebinding as a browser sends it: a page's GETs to its own origin carry no Origin; a loopback hub refuses its name", async () => {
  const rebound = { host: `evil.example:${port}` };
  const handshake = await raw("GET", POLL, rebound);
  expect(handshake.status).toBe(403);
  expect(handshake.body).not.toContain('"sid"');
  for (const path of ["/dead-letters?ns=caps", "/queues", "/clients", "/dashboard/", "/healthz"]) {
    const res = await raw("GET", path, rebound);
    expect([path, res.status]).toEqual([path, 403]);
    expect(JSON.parse(res.body)).toMatchObject({ ok: false, error: { code: "FORBIDDEN" } });
  }
  // Its loopback names, and the hosts of listed origins, are the hub's own.
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `app.example:${port}`]) {
    expect([host, (await raw("GET", "/queues", { host })).status]).toEqual([host, 200]);
  }
});

test("an open hub left to its default address (loopback) refuses a rebound name too", async () => {
  const plain = await startHub({ host: null });
  const loopbackPort = port;
  port = plain.hub.port;
  try {
    expect((await raw("GET", "/queues", { host: `evil.example:${port}` })).status).toBe(403);
    expect((await raw("GET", "/queues", { host: `localhost:${port}` })).status).toBe(200);
  } finally {
    port = loopbackPort;
    await plain.close();
  }
});

test("a hub that listens beyond loopback (it has tokens) takes Node clients under any name, but no rebound page", async () => {
  const wide = await startHub({ host: "0.0.0.0", secret: "wide-secret" });
  const loopbackPort = port;
  port = wide.hub.port;
  try {
    expect((await raw("GET", POLL, { host: `hub.internal:${port}` })).body).toMatch(/^0\{"sid"/);
    const rebound = { host: `evil.example:${port}`, origin: `http://evil.example:${port}` };
    expect((await raw("GET", POLL, rebound)).status).toBe(403);
    expect(await upgrade(rebound)).toMatch(/^400 origin http:\/\/evil.example:\d+ is not allowed/);
    // Its own page under its own name is fine.
    expect((await raw("GET", POLL, own())).body).toMatch(/^0\{"sid"/);
  } finally {
    port = loopbackPort;
    await wide.close();
  }
});

describe("HTTP requests that change state", () => {
  const json = { "content-type": "application/json" };

  test("a foreign page's text/plain POST /publish is refused and stores nothing", async () => {
    const driver = await ctx.client("/caps", { clientId: "csrf-driver" });
    await driver.request("subscribe", { event: "pickup" });
    const attempts: [Record<string, string>, number, string][] = [
      [{ origin: FOREIGN, "content-type": "text/plain" }, 403, "FORBIDDEN"],
      [{ origin: FOREIGN, ...json }, 403, "FORBIDDEN"],
      [{ origin: LISTED, "content-type": "text/plain" }, 415, "INVALID_ARGUMENT"],
      [{ origin: LISTED, "content-type": "application/x-www-form-urlencoded" }, 415, "INVALID_ARGUMENT"],
      [{ origin: LISTED }, 415, "INVALID_ARGUMENT"],
      [{ host: `evil.example:${port}`, origin: `http://evil.example:${port}`, ...json }, 403, "FORBIDDEN"],
    ];
    for (const [headers, status, code] of attempts) {
      const res = await raw("POST", "/publish/caps/pickup", headers, '{"orderId":1}');
      expect([headers, res.status, JSON.parse(res.body).error.code]).toEqual([headers, status, code]);
    }
    expect(await ctx.hub.store.pending("/caps", "csrf-driver", Date.now())).toBe(0);

    // A listed page, the hub's own page and a Node client (no Origin) publish with JSON.
    const senders: Record<string, string>[] = [{ origin: LISTED }, own(), {}];
    for (const headers of senders) {
      const res = await raw("POST", "/publish/caps/pickup", { ...headers, ...json }, '{"orderId":2}');
      expect([headers, res.status]).toEqual([headers, 200]);
    }
    expect(await ctx.hub.store.pending("/caps", "csrf-driver", Date.now())).toBe(3);
  });

  test("a foreign page cannot drop or requeue dead letters", async () => {
    const hub = await startHub({ corsOrigins: [LISTED], maxDeliveries: 1, ackTimeoutMs: 50 });
    try {
      const victim = await hub.client("/", { clientId: "victim" });
      await victim.request("subscribe", { event: "order" });
      const publisher = await hub.client("/", { clientId: "shop" });
      await publisher.request("order", { n: 1 });
      let dead: { messageId: string }[] = [];
      for (const deadline = Date.now() + 5000; dead.length === 0 && Date.now() < deadline; ) {
        await new Promise((r) => setTimeout(r, 20));
        dead = (await hub.hub.store.listDead("/", { limit: 10 })).items;
      }
      expect(dead).toHaveLength(1);
      const body = JSON.stringify({ messageIds: dead.map((d) => d.messageId) });
      for (const action of ["drop", "requeue"]) {
        const res = await fetch(`${hub.url}/dead-letters/${action}`, {
          method: "POST",
          body,
          headers: { origin: FOREIGN, "content-type": "text/plain" },
        });
        expect([action, res.status]).toEqual([action, 403]);
      }
      expect((await hub.hub.store.listDead("/", { limit: 10 })).items).toHaveLength(1);
      const dropped = await fetch(`${hub.url}/dead-letters/drop`, {
        method: "POST",
        body,
        headers: { origin: LISTED, ...json },
      });
      expect(await dropped.json()).toEqual({ ok: true, dropped: 1 });
    } finally {
      await hub.close();
    }
  });

  test("CORS preflight: answered for listed origins, refused for others", async () => {
    const preflight = (origin: string) =>
      raw("OPTIONS", "/publish/caps/pickup", {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
      });
    const listed = await preflight(LISTED);
    expect(listed.status).toBe(204);
    expect(listed.headers).toMatchObject({
      "access-control-allow-origin": LISTED,
      "access-control-allow-methods": "GET, POST",
    });
    expect(listed.headers["access-control-allow-headers"]).toContain("content-type");
    const foreign = await preflight(FOREIGN);
    expect(foreign.status).toBe(403);
    expect(foreign.headers["access-control-allow-origin"]).toBeUndefined();
    // Views answer a listed page with its origin, and no one else.
    expect((await raw("GET", "/healthz", { origin: LISTED })).headers["access-control-allow-origin"]).toBe(
      LISTED,
    );
    expect(
      (await raw("GET", "/healthz", { origin: FOREIGN })).headers["access-control-allow-origin"],
    ).toBeUndefined();
  });
});

test("the served Socket.IO client: plain, minified and ESM builds, with CORS for listed origins", async () => {
  for (const file of ["socket.io.js", "socket.io.min.js", "socket.io.esm.min.js"]) {
    const res = await raw("GET", `/socket.io/${file}`, { origin: LISTED });
    expect([file, res.status, res.headers["content-type"]]).toEqual([
      file,
      200,
      "application/javascript; charset=utf-8",
    ]);
    expect(res.body.length).toBeGreaterThan(10_000);
    expect(res.headers["access-control-allow-origin"]).toBe(LISTED);
    expect(
      (await raw("GET", `/socket.io/${file}`, { origin: FOREIGN })).headers["access-control-allow-origin"],
    ).toBe(undefined);
  }
});

test("HUB_CORS_ORIGINS: bare origins, normalised; anything else stops the start naming the setting", () => {
  expect(
    parseConfig({ HUB_CORS_ORIGINS: "https://App.example/, http://localhost:5173" }).corsOrigins,
  ).toEqual(["https://app.example", "http://localhost:5173"]);
  expect(parseConfig({}).corsOrigins).toEqual([]);
  expect(parseConfig({ HUB_CORS_ORIGINS: "*" }).corsOrigins).toEqual(["*"]);
  for (const bad of [
    "app.example",
    "https://app.example/path",
    "ftp://app.example",
    "https://a.example?x=1",
  ]) {
    expect(() => parseConfig({ HUB_CORS_ORIGINS: bad })).toThrow(/HUB_CORS_ORIGINS/);
  }
});
