// Socket.IO's admin UI (@socket.io/admin-ui) instruments a hub's Socket.IO server: its `/admin`
// namespace answers beside the queue's namespaces, and the hub's on-demand topic namespaces
// (every valid name, `/admin` included) never take it over.
import { instrument } from "@socket.io/admin-ui";
import { io, type Socket } from "socket.io-client";
import { signToken } from "../src/token.js";
import { connectError, startHub, type TestContext } from "./support/hub.js";

let ctx: TestContext;
let admin: Socket | null = null;
afterEach(async () => {
  admin?.close();
  await ctx?.close();
});

test("instrument(hub.io) serves /admin: config, the hub's sockets and stats, with no hub handshake", async () => {
  // With a secret, the hub refuses any connection without a clientId and token: /admin is not the hub's.
  const secret = "admin-ui-test-secret";
  ctx = await startHub({ secret });
  instrument(ctx.hub.io, { auth: false, mode: "development" });
  const acme = await ctx.client("/caps", { clientId: "acme", token: await signToken(secret, "acme") });
  expect(await acme.request("subscribe", { event: "pickup" })).toEqual({ ok: true, events: ["pickup"] });
  expect(await connectError(`${ctx.url}/caps`, null)).toBe("clientId required");

  admin = io(`${ctx.url}/admin`, { transports: ["websocket"], reconnection: false, forceNew: true });
  const next = (event: string) => new Promise<unknown>((resolve) => admin?.once(event, resolve));
  const [config, sockets, stats] = [next("config"), next("all_sockets"), next("server_stats")];
  await new Promise<void>((resolve, reject) => {
    admin?.once("connect", resolve);
    admin?.once("connect_error", reject);
  });
  expect(await config).toMatchObject({ supportedFeatures: expect.arrayContaining(["EMIT", "ALL_EVENTS"]) });
  expect(await sockets).toContainEqual(
    expect.objectContaining({ nsp: "/caps", data: expect.objectContaining({ clientId: "acme" }) }),
  );
  const namespaces = ((await stats) as { namespaces: { name: string }[] }).namespaces.map((n) => n.name);
  expect(namespaces).toEqual(expect.arrayContaining(["/", "/caps", "/admin"]));
});
