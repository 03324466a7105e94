// The files the hub serves to browsers (the dashboard, the chat example, the client library's
// browser build), and the rooms view's members with their presence.
import { request } from "node:http";
import { startHub, type TestContext } from "./support/hub.js";

let ctx: TestContext;
beforeAll(async () => {
  ctx = await startHub({ corsOrigins: ["http://app.example"] });
});
afterAll(async () => {
  await ctx.close();
});

/** GET with the path sent as written (fetch would normalise `..` away). */
function get(path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>(
    (resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: ctx.hub.port, path, headers }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on("error", reject);
      req.end();
    },
  );
}

test("the dashboard's files, with a policy that keeps other sites' scripts out and the page unframed", async () => {
  const page = await get("/dashboard/");
  expect(page.status).toBe(200);
  expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
  expect(page.body).toContain('<script type="module" src="dashboard.js">');
  expect(page.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
  expect(page.headers["content-security-policy"]).toContain("script-src 'self'");
  expect(page.headers["x-frame-options"]).toBe("DENY");
  const script = await get("/dashboard/dashboard.js");
  expect([script.status, script.headers["content-type"]]).toEqual([200, "text/javascript; charset=utf-8"]);
  expect((await get("/dashboard/dashboard.css")).headers["content-type"]).toBe("text/css; charset=utf-8");
  // Revalidated, never stale: an unchanged file answers 304.
  const again = await get("/dashboard/dashboard.js", { "if-none-match": String(script.headers.etag) });
  expect(again.status).toBe(304);
});

test("/ and /dashboard lead to /dashboard/, relative so a host's prefix is kept", async () => {
  for (const path of ["/", "/dashboard"]) {
    const res = await get(path);
    expect([path, res.status, res.headers.location]).toEqual([path, 302, "dashboard/"]);
  }
  expect((await get("/examples/chat")).headers.location).toBe("chat/");
});

test("the client library's browser build is served as one ES module, with CORS for listed origins", async () => {
  const res = await get("/queuehub/client.js", { origin: "http://app.example" });
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toBe("text/javascript; charset=utf-8");
  expect(res.headers["access-control-allow-origin"]).toBe("http://app.example");
  expect(res.body).toMatch(/export\s*\{[^}]*as HubClient/);
  expect((await get("/queuehub/client.js.map")).status).toBe(200);
  expect((await get("/queuehub/client.js", { origin: "http://evil.example" })).headers).not.toHaveProperty(
    "access-control-allow-origin",
  );
});

test("paths outside the served folders are not found", async () => {
  for (const path of [
    "/dashboard/../package.json",
    "/dashboard/%2e%2e/%2e%2e/package.json",
    "/dashboard/..%2f..%2fpackage.json",
    "/queuehub/../clients/hub-client.js",
    "/dashboard/%00index.html",
    "/dashboard/..\\..\\package.json",
  ]) {
    const res = await get(path);
    expect([path, res.status]).toEqual([path, 404]);
    expect(res.body).not.toContain('"name": "queuehub"');
  }
  // A malformed %-escape is a bad request wherever it is (issue 13).
  const malformed = await get("/dashboard/%E0%A4%A");
  expect(malformed.status).toBe(400);
  expect(malformed.body).not.toContain('"name": "queuehub"');
  expect((await get("/dashboard/nothing.js")).status).toBe(404);
});

test("GET /rooms?room= lists a room's members with their presence; a bad name is refused", async () => {
  await ctx.hub.store.joinRoom("/caps", "lobby", "ada");
  await ctx.hub.store.joinRoom("/caps", "lobby", "grace");
  const ada = await ctx.client("/caps", { clientId: "ada" });
  const res = await fetch(`${ctx.url}/rooms?ns=caps&room=lobby`);
  expect(await res.json()).toEqual({
    ok: true,
    ns: "/caps",
    room: "lobby",
    members: [
      { clientId: "ada", online: true },
      { clientId: "grace", online: false },
    ],
    next: null,
  });
  ada.close();
  const bad = await fetch(`${ctx.url}/rooms?ns=caps&room=${encodeURIComponent("no/slash")}`);
  expect(bad.status).toBe(400);
  expect(await bad.json()).toMatchObject({ ok: false, error: { code: "INVALID_ARGUMENT" } });
});
