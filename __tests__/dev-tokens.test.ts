// The development token endpoint (HUB_DEV_TOKENS=1): off by default, only with a secret, only on
// a loopback hub, only for loopback peers and allowed pages, and never an operator's token.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { decodeJwt } from "jose";
import { parseConfig } from "../src/config.js";
import { attachHub, createHub } from "../src/hub.js";
import { MemoryStore } from "../src/store/memory.js";
import { connectError, startHub, type TestContext } from "./support/hub.js";

const secret = "dev-token-secret";
const json = { "content-type": "application/json" };
const mint = (url: string, body: unknown, headers: Record<string, string> = json) =>
  fetch(`${url}/dev/token`, { method: "POST", headers, body: JSON.stringify(body) });

let ctx: TestContext | undefined;
afterEach(async () => {
  await ctx?.close();
  ctx = undefined;
});

test("off by default, and without a secret: there is no such route", async () => {
  ctx = await startHub({ secret });
  expect((await mint(ctx.url, { clientId: "ada" })).status).toBe(404);
  await ctx.close();
  ctx = await startHub({ devTokens: true });
  expect((await mint(ctx.url, { clientId: "ada" })).status).toBe(404);
  expect(parseConfig({}).devTokens).toBe(false);
  expect(parseConfig({ HUB_DEV_TOKENS: "1" }).devTokens).toBe(true);
});

test("on: a token for the name asked, one hour, no role or claims; it connects as that client only", async () => {
  ctx = await startHub({ secret, devTokens: true });
  const res = await mint(ctx.url, { clientId: "ada" });
  expect(res.status).toBe(200);
  const { token, ...rest } = (await res.json()) as { token: string };
  expect(rest).toEqual({ ok: true, clientId: "ada", expiresIn: "1h" });
  const claims = decodeJwt(token);
  expect(claims.sub).toBe("ada");
  expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(3600);
  expect(Object.keys(claims).sort()).toEqual(["exp", "iat", "sub"]);
  const ada = await ctx.client("/", { clientId: "ada", token });
  expect(ada.socket.connected).toBe(true);
  expect(await connectError(`${ctx.url}/`, { clientId: "grace", token })).toBe("unauthorized");
});

test("refused to foreign pages, to non-JSON bodies and for bad names", async () => {
  ctx = await startHub({ secret, devTokens: true });
  const cases: [Record<string, string>, unknown, number][] = [
    [{ ...json, origin: "http://evil.example" }, { clientId: "ada" }, 403],
    [{ "content-type": "text/plain" }, { clientId: "ada" }, 415],
    [json, { clientId: "no/slash" }, 400],
    [json, {}, 400],
  ];
  for (const [headers, body, status] of cases) {
    const res = await mint(ctx.url, body, headers);
    expect([headers, body, res.status]).toEqual([headers, body, status]);
    expect(await res.json()).not.toHaveProperty("token");
  }
});

test("a hub asked to listen beyond loopback with development tokens does not start", async () => {
  await expect(
    createHub({
      port: 0,
      host: "0.0.0.0",
      secret,
      devTokens: true,
      logLevel: "silent",
      queueStore: new MemoryStore(),
    }),
  ).rejects.toThrow(/HUB_DEV_TOKENS=1 .* HUB_HOST=127\.0\.0\.1/);
});

test("a peer that is not on this machine gets none (an embedding host listening on every interface)", async () => {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === "IPv4" && !i.internal)?.address;
  if (!address) {
    console.warn("skipped: this machine has no non-loopback IPv4 address to connect from");
    return;
  }
  const server = createServer();
  const queue = await attachHub(server, {
    namespaces: ["/chat"],
    secret,
    devTokens: true,
    logLevel: "silent",
    queueStore: new MemoryStore(),
  });
  server.on("request", (req, res) => queue.handleHttp(req, res));
  await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const far = await mint(`http://${address}:${port}`, { clientId: "ada" });
    expect(far.status).toBe(403);
    expect(await far.json()).toMatchObject({ ok: false, error: { code: "FORBIDDEN" } });
    expect((await mint(`http://127.0.0.1:${port}`, { clientId: "ada" })).status).toBe(200);
  } finally {
    await queue.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
