// Deliveries on the wire: the hub writes them from the payload text each publish made
// (wire-encoder.ts), and the bytes are exactly those socket.io-parser would have written.

import { Encoder, type Packet, PacketType } from "socket.io-parser";
import { attachPayloadJson, HubEncoder } from "../src/wire-encoder.js";
import { startHub, type TestClient } from "./support/hub.js";

/**
 * The text frames of one Socket.IO packet type a client receives, as they came off the socket:
 * PacketType.EVENT (deliveries) or PacketType.ACK (replies).
 */
function framesOf(client: TestClient, type: PacketType): string[] {
  const frames: string[] = [];
  client.socket.io.engine.on("packet", (packet: { type: string; data?: unknown }) => {
    if (
      packet.type === "message" &&
      typeof packet.data === "string" &&
      packet.data.startsWith(String(type))
    ) {
      frames.push(packet.data);
    }
  });
  return frames;
}

/** What socket.io-parser writes for the ack a frame carries. */
function parserAckEncoding(frame: string, nsp: string): string {
  const match = /^3(?:(\/[^,]+),)?(\d+)(\[.*)$/s.exec(frame);
  expect(match?.[1] ?? "/").toBe(nsp);
  const data = JSON.parse(match?.[3] ?? "null") as unknown[];
  return new Encoder().encode({ type: PacketType.ACK, nsp, id: Number(match?.[2]), data })[0] as string;
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
        const frames = framesOf(sub, PacketType.EVENT);
        expect(await sub.request("subscribe", { event: "order" })).toMatchObject({ ok: true });
        const pub = await ctx.client(nsp, { clientId: "pub" });
        for (const payload of PAYLOADS) {
          expect(await pub.request("order", payload)).toMatchObject({ ok: true });
        }
        await sub.received(PAYLOADS.length);
        expect(sub.payloads()).toEqual(PAYLOADS);
        expect(frames.length).toBeGreaterThan(0);
        for (const frame of frames) expect(frame).toBe(parserEncoding(frame, nsp));
        // The publisher's replies, an error among them.
        const acks = framesOf(pub, PacketType.ACK);
        expect(await pub.request("order", { fine: true })).toMatchObject({ ok: true });
        expect(await pub.request("publish", { event: "order", surprise: 1 })).toMatchObject({ ok: false });
        expect(acks).toHaveLength(2);
        for (const frame of acks) expect(frame).toBe(parserAckEncoding(frame, nsp));
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
  /** A message handed over from a publish whose payload text was `json`. */
  const handed = (messageId: string, payload: unknown, json: string) => {
    const m = message(messageId, payload);
    attachPayloadJson([m], [{ messageId, payloadJson: json }]);
    return m;
  };

  test("writes a handed-over message's payload by its publish's text, not by serialising it again", () => {
    // Spaced on purpose: JSON.stringify would not write it so.
    const m = handed("m-1", { a: 1 }, '{"a": 1}');
    expect(encoder.encode(event(["order", m]))).toEqual([
      '2["order",{"messageId":"m-1","event":"order","payload":{"a": 1},"publishedAt":1700000000000,"from":null,"deliveries":1}]',
    ]);
    // The lab's deliveries are copies with messageID: the text goes with them.
    expect(encoder.encode(event(["deliveries", [{ ...m, messageID: "m-1" }]], { nsp: "/caps" }))[0]).toBe(
      '2/caps,["deliveries",[{"messageId":"m-1","event":"order","payload":{"a": 1},"publishedAt":1700000000000,"from":null,"deliveries":1,"messageID":"m-1"}]]',
    );
  });

  test("each handed-over message gets its own publish's text, in order, skipping those not handed over", () => {
    const delivered = [message("a", 1), message("c", 3), message("z", 26)];
    attachPayloadJson(delivered, [
      { messageId: "a", payloadJson: " 1" },
      { messageId: "b", payloadJson: " 2" },
      { messageId: "c", payloadJson: " 3" },
    ]);
    const texts = delivered.map((m) => encoder.encode(event(["order", m]))[0] as string);
    expect(texts[0]).toContain('"payload": 1,');
    expect(texts[1]).toContain('"payload": 3,');
    // Not among the publish's messages: serialised by the parser.
    expect(texts[2]).toBe(new Encoder().encode(event(["order", delivered[2]]))[0]);
  });

  test("leaves every other packet to socket.io-parser", () => {
    const binary = { data: Buffer.from([1]) };
    const parser = new Encoder();
    const packets: Packet[] = [
      event(["order", message("read-back", { a: 1 })]), // no text: read back from the store
      event(["order", handed("m-2", { a: 1 }, '{"a": 1}')], { id: 7 }), // an emit waiting for an ack
      event(["order", { ...handed("m-3", { a: 1 }, '{"a": 1}'), extra: { nested: true } }]), // a field that is not a primitive
      event(["order", handed("m-4", binary, JSON.stringify(binary))]), // binary: attachments
      event(["deliveries", [handed("m-5", { a: 1 }, '{"a":1}'), message("read-back", { a: 1 })]]),
      // Replies: written without the parser, the same bytes.
      { type: PacketType.ACK, nsp: "/", id: 3, data: [{ ok: true, messageIds: ["a", "b"] }] },
      { type: PacketType.ACK, nsp: "/caps", id: 12, data: [{ ok: true, removed: 0 }] },
      {
        type: PacketType.ACK,
        nsp: "/",
        id: 4,
        data: [{ ok: false, error: { code: "INVALID_ARGUMENT", message: 'a "quoted" é \u2028' } }],
      },
      { type: PacketType.ACK, nsp: "/", id: 5, data: [{ ok: true, skipped: undefined, n: Number.NaN }] },
      // Too deep, binary, or not plain: the parser's own.
      { type: PacketType.ACK, nsp: "/", id: 6, data: [{ ok: true, messages: [{ payload: { a: 1 } }] }] },
      { type: PacketType.ACK, nsp: "/", id: 7, data: [{ ok: true, file: Buffer.from([1]) }] },
      { type: PacketType.ACK, nsp: "/", id: 8, data: [{ ok: true, at: new Date(0) }] },
      { type: PacketType.ACK, nsp: "/", id: 10, data: [{ ok: true, toJSON: () => "custom" }] },
      { type: PacketType.ACK, nsp: "/", id: 9, data: [1, 2] },
    ];
    for (const packet of packets) expect(encoder.encode(packet)).toEqual(parser.encode(packet));
  });
});
