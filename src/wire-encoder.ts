// Deliveries leave with the payload's JSON text the publish already made, instead of serialising
// it again (and walking it for binary attachments) once per delivery.
//
// A publish serialises its payload anyway (the size limit counts its bytes, the SQLite store keeps
// the text): `keepPayloadJson` remembers that text by message id for the most recent publishes,
// which is where deliveries come from on a busy hub (a fresh message is handed over at once); a
// message read back later (a backlog, a redelivery) is serialised by the parser as before. The
// hub's Socket.IO server encodes with `HubEncoder`, socket.io-parser's own encoder, which writes a
// delivery event whose message it knows that way and hands every other packet to the parser
// unchanged. The bytes on the wire are what socket.io-parser writes. A host's server (attachHub)
// keeps its own parser: deliveries are then serialised as before.
import { Decoder, Encoder, type Packet, PacketType, protocol } from "socket.io-parser";

/**
 * Payload texts kept per generation. Small on purpose: a fresh message is delivered within
 * milliseconds of its publish (handed over with the publish's own commit), and texts kept much
 * longer outlive young-generation collections, which then copy them (measured: 8,192 per
 * generation cost more in garbage collection than the serialising it saved).
 */
const GENERATION = 1_024;

/**
 * Message id → its payload's JSON text, for the most recent publishes, in two generations: when
 * the newer fills, the older is dropped whole (no per-entry eviction). Keyed by id, not by the
 * payload object: a WeakMap entry per message made each garbage collection slower than the
 * serialising it saved. A message id always names the same payload.
 */
let newer = new Map<string, string>();
let older = new Map<string, string>();

/**
 * Remembers a published payload's JSON text for its deliveries. Only plain JSON: a payload that
 * held binary data (serialised by Buffer's toJSON) goes out as Socket.IO attachments, as before.
 */
export function keepPayloadJson(messageId: string, json: string): void {
  if (json.includes('"type":"Buffer"')) return;
  if (newer.size >= GENERATION) {
    older = newer;
    newer = new Map();
  }
  newer.set(messageId, json);
}

function keptPayloadJson(messageId: string): string | undefined {
  return newer.get(messageId) ?? older.get(messageId);
}

/** `"key":`, for the few keys a delivery has. */
const keyTexts = new Map<string, string>();
function keyText(key: string): string {
  let text = keyTexts.get(key);
  if (text === undefined) {
    text = `${JSON.stringify(key)}:`;
    if (keyTexts.size < 64) keyTexts.set(key, text);
  }
  return text;
}

/**
 * The JSON text of a delivered message whose payload text is kept; undefined for anything else
 * (no kept text, a field besides the payload that is not a primitive): the parser encodes it.
 */
function messageJson(message: unknown): string | undefined {
  if (typeof message !== "object" || message === null || Array.isArray(message)) return undefined;
  const fields = message as Record<string, unknown>;
  const id = fields.messageId;
  const json = typeof id === "string" ? keptPayloadJson(id) : undefined;
  if (json === undefined) return undefined;
  let out = "{";
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    let text: string;
    if (key === "payload") text = json;
    else if (typeof value === "string") text = JSON.stringify(value);
    else if (typeof value === "number") text = Number.isFinite(value) ? String(value) : "null";
    else if (value === null || typeof value === "boolean") text = String(value);
    // Skipped, as JSON.stringify skips them.
    else if (value === undefined || typeof value === "function" || typeof value === "symbol") continue;
    else return undefined;
    out += `${out.length === 1 ? "" : ","}${keyText(key)}${text}`;
  }
  return `${out}}`;
}

/** A delivery's arguments as JSON (one message, or the `deliveries` array), or undefined. */
function argumentJson(arg: unknown): string | undefined {
  if (!Array.isArray(arg)) return messageJson(arg);
  const texts: string[] = [];
  for (const message of arg) {
    const text = messageJson(message);
    if (text === undefined) return undefined;
    texts.push(text);
  }
  return `[${texts.join(",")}]`;
}

/** socket.io-parser's encoder, with delivery events written from their payloads' JSON text. */
export class HubEncoder extends Encoder {
  override encode(packet: Packet): ReturnType<Encoder["encode"]> {
    const data = packet.data as unknown[] | undefined;
    if (packet.type === PacketType.EVENT && packet.id === undefined && data?.length === 2) {
      const event = data[0];
      const text = typeof event === "string" ? argumentJson(data[1]) : undefined;
      if (text !== undefined) {
        const nsp = packet.nsp && packet.nsp !== "/" ? `${packet.nsp},` : "";
        return [`${PacketType.EVENT}${nsp}[${JSON.stringify(event)},${text}]`];
      }
    }
    return super.encode(packet);
  }
}

/** The parser the hub's own Socket.IO server uses (ServerOptions.parser). */
export const hubParser = { protocol, PacketType, Encoder: HubEncoder, Decoder };
