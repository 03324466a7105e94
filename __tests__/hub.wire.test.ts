// Deliveries on the wire: the hub writes them from the payload text each publish made
// (wire-encoder.ts), and the bytes are exactly those socket.io-parser would have written.

import { Encoder, type Packet, PacketType } from "socket.io-parser";
import { HubEncoder, keepPayloadJson } from "../src/wire-encoder.js";
import { startHub, type TestClient } from "./support/hub.js";

/** The text frames of Socket.IO events a client receives, as they came off the socket. */
function eventFrames(client: TestClient): string[] {
  const frames: string[] = [];
  client.socket.io.engine.on("packet", (packet: { type: string; data?: unknown }) => {
    if (packet.type === "message" && typeof packet.data === "string" && packet.data.startsWith("2")) {
      frames.push(packet.data);
    }
  });
  return frames;
}

/** What socket.io-parser writes for the event a frame carries. */
function parserEncoding(frame: string, nsp: string): string {
  const prefix = nsp === "/" ? "2" : `2${nsp},`;
  expect(frame.startsWith(prefix)).toBe(true);
  const data = JSON.parse(frame.slice(prefix.length)) as unknown[];
  return new Encoder().encode({ type: PacketType.EVENT, nsp, data })[0] as string;
}

const PAYLOADS: unknown[] = [
  { orderId: "o-1", store: "acme", items: [{ sku: "a", qty: 2 }], note: 'quote " and é \u2028 \n' },
  { nested: { deeper: { list: [1, 2.5, -3e-7, null, true, "x"] } } },
  "just text",
  42,
  null,
  [],
];

describe("deliveries on the wire", () => {
  test.each([
    ["/", false],
    ["/caps", false],
    ["/caps", true],
  ])(
    "namespace %s (batch %s): every delivery is byte for byte what socket.io-parser writes",
    async (nsp, batch) => {
      const ctx = await startHub();
      try {
        const sub = await ctx.client(nsp, { clientId: "sub", batch });
        const frames = eventFrames(sub);
        expect(await sub.request("subscribe", { event: "order" })).toMatchObject({ ok: true });
        const pub = await ctx.client(nsp, { clientId: "pub" });
        for (const payload of PAYLOADS) {
          expect(await pub.request("order", payload)).toMatchObject({ ok: true });
        }
        await sub.received(PAYLOADS.length);
        expect(sub.payloads()).toEqual(PAYLOADS);
        expect(frames.length).toBeGreaterThan(0);
        for (const frame of frames) expect(frame).toBe(parserEncoding(frame, nsp));
      } finally {
        await ctx.close();
      }
    },
  );

  test("a payload holding binary data still arrives as binary", async () => {
    const ctx = await startHub();
    try {
      const sub = await ctx.client("/", { clientId: "sub" });
      expect(await sub.request("subscribe", { event: "file" })).toMatchObject({ ok: true });
      const pub = await ctx.client("/", { clientId: "pub" });
      expect(await pub.request("file", { name: "a.bin", data: Buffer.from([1, 2, 3]) })).toMatchObject({
        ok: true,
      });
      const [got] = await sub.received(1);
      const payload = got?.payload as { name: string; data: unknown };
      expect(payload.name).toBe("a.bin");
      expect(Buffer.isBuffer(payload.data)).toBe(true);
      expect([...(payload.data as Buffer)]).toEqual([1, 2, 3]);
    } finally {
      await ctx.close();
    }
  });
});

describe("HubEncoder", () => {
  const encoder = new HubEncoder();
  const message = (messageId: string, payload: unknown) => ({
    messageId,
    event: "order",
    payload,
    publishedAt: 1_700_000_000_000,
    from: null,
    deliveries: 1,
    room: undefined,
  });
  const event = (data: unknown[], extra: Partial<Packet> = {}): Packet => ({
    type: PacketType.EVENT,
    nsp: "/",
    data,
    ...extra,
  });

  test("writes a kept payload by its text, not by serialising it again", () => {
    // Spaced on purpose: JSON.stringify would not write it so.
    keepPayloadJson("kept-1", '{"a": 1}');
    expect(encoder.encode(event(["order", message("kept-1", { a: 1 })]))).toEqual([
      '2["order",{"messageId":"kept-1","event":"order","payload":{"a": 1},"publishedAt":1700000000000,"from":null,"deliveries":1}]',
    ]);
    expect(encoder.encode(event(["deliveries", [message("kept-1", { a: 1 })]], { nsp: "/caps" }))[0]).toBe(
      '2/caps,["deliveries",[{"messageId":"kept-1","event":"order","payload":{"a": 1},"publishedAt":1700000000000,"from":null,"deliveries":1}]]',
    );
  });

  test("leaves every other packet to socket.io-parser", () => {
    keepPayloadJson("kept-2", '{"a": 1}');
    const binary = { data: Buffer.from([1]) };
    keepPayloadJson("binary", JSON.stringify(binary));
    const parser = new Encoder();
    const packets: Packet[] = [
      event(["order", message("not-kept", { a: 1 })]),
      event(["order", message("kept-2", { a: 1 })], { id: 7 }), // an emit waiting for an ack
      event(["order", { ...message("kept-2", { a: 1 }), extra: { nested: true } }]), // a field that is not a primitive
      event(["order", message("binary", binary)]), // binary: attachments
      event(["deliveries", [message("kept-2", { a: 1 }), message("not-kept", { a: 1 })]]),
      { type: PacketType.ACK, nsp: "/", id: 3, data: [{ ok: true }] },
    ];
    for (const packet of packets) expect(encoder.encode(packet)).toEqual(parser.encode(packet));
  });
});
