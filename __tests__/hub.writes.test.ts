// How the hub writes to its sockets: a turn's frames leave in one socket write (src/cork.ts),
// over a real WebSocket connection, and polling connections are served as before.
import type { Socket as TcpSocket } from "node:net";
import { io } from "socket.io-client";
import { startHub, waitUntil } from "./support/hub.js";

/** Counts the writes a TCP socket hands to the operating system (each `_write`/`_writev` is one). */
function countWrites(tcp: TcpSocket): { readonly count: number } {
  const counter = { count: 0 };
  const target = tcp as unknown as Record<
    "_write" | "_writev",
    ((...args: unknown[]) => unknown) | undefined
  >;
  for (const name of ["_write", "_writev"] as const) {
    const original = target[name];
    if (typeof original !== "function") continue;
    target[name] = function (this: unknown, ...args: unknown[]) {
      counter.count++;
      return original.apply(this, args);
    };
  }
  return counter;
}

test("fifty deliveries sent in one turn leave in a few socket writes, not one per event", async () => {
  const ctx = await startHub();
  try {
    const upgraded: TcpSocket[] = [];
    ctx.hub.httpServer.on("upgrade", (_req, socket: TcpSocket) => upgraded.push(socket));
    const sub = await ctx.client("/", { clientId: "sub" });
    expect(await sub.request("subscribe", { event: "tick" })).toMatchObject({ ok: true });
    const [subscriberSocket] = upgraded;
    if (subscriberSocket === undefined) throw new Error("the subscriber's connection was not seen");
    const pub = await ctx.client("/", { clientId: "pub" });
    const writes = countWrites(subscriberSocket);
    const batch = Array.from({ length: 50 }, (_, n) => ({ event: "tick", payload: { n } }));
    expect(await pub.request("publish", batch)).toMatchObject({ ok: true });
    const received = await sub.received(50);
    expect(received.map((m) => (m.payload as { n: number }).n)).toEqual(batch.map((b) => b.payload.n));
    // One event per message (no auth.batch): uncorked, each of the 50 frames was its own write.
    expect(writes.count).toBeGreaterThan(0);
    expect(writes.count).toBeLessThanOrEqual(4);
  } finally {
    await ctx.close();
  }
});

test("a client on HTTP long-polling gets its deliveries and publish acks", async () => {
  const ctx = await startHub();
  const socket = io(`${ctx.url}/`, {
    transports: ["polling"],
    auth: { clientId: "poller" },
    reconnection: false,
    forceNew: true,
  });
  try {
    const got: unknown[] = [];
    socket.on("tick", (m: { payload: unknown }) => got.push(m.payload));
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    expect(socket.io.engine.transport.name).toBe("polling");
    expect(await socket.timeout(3000).emitWithAck("subscribe", { event: "tick" })).toMatchObject({
      ok: true,
    });
    const pub = await ctx.client("/", { clientId: "pub" });
    for (let n = 0; n < 20; n++) expect(await pub.request("tick", n)).toMatchObject({ ok: true });
    await waitUntil(
      () => got.length >= 20,
      5000,
      () => "20 deliveries over polling",
    );
    expect(got).toEqual(Array.from({ length: 20 }, (_, n) => n));
    expect(
      await socket
        .timeout(3000)
        .emitWithAck("publish", { event: "tick", payload: "from a poller", echo: true }),
    ).toMatchObject({ ok: true });
    await waitUntil(
      () => got.length >= 21,
      5000,
      () => "the poller's own message",
    );
  } finally {
    socket.close();
    // The hub hears the close over a request of its own: closing it first leaves that request hanging.
    await waitUntil(
      () => ctx.hub.io.of("/").sockets.size <= 1,
      5000,
      () => "the poller gone",
    );
    await ctx.close();
  }
});
