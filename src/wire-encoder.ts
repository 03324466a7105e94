// Deliveries leave with the payload's JSON text the publish already made, instead of serialising
// it again (and walking it for binary attachments) once per delivery.
//
// A publish serialises its payload anyway (the size limit counts its bytes, the SQLite store keeps
// the text). A fresh message handed over to its consumer with the publish's own write is sent from
// memory: `attachPayloadJson` gives it that text under a symbol, which JSON and socket.io-parser
// never see. The hub's Socket.IO server encodes with `HubEncoder`, socket.io-parser's own
// encoder, which writes such a delivery from the text and hands every other packet (a message
// read back from the store, anything else) to the parser unchanged. The bytes on the wire are
// what socket.io-parser writes. A host's server (attachHub) keeps its own parser: deliveries are
// then serialised as before.
import { createRequire } from "node:module";
import type * as SocketIoParser from "socket.io-parser";
import type { Packet } from "socket.io-parser";
import type { Message } from "./protocol.js";

// The CommonJS build, the very module socket.io loads (its ESM build would be a second copy).
const parser = createRequire(import.meta.url)("socket.io-parser") as typeof SocketIoParser;
const { Decoder, Encoder, PacketType, protocol } = parser;

/** Where a delivered message keeps its payload's JSON text (set by attachPayloadJson). */
const PAYLOAD_JSON = Symbol("queuehub.payloadJson");
type WithPayloadJson = { [PAYLOAD_JSON]?: string };

/**
 * Gives messages handed over from a publish the JSON text of their payloads, from the publish's
 * own messages (`payloadJson`), which hold them in the same order. Only plain JSON: a payload
 * that held binary data (serialised by Buffer's toJSON) goes out as Socket.IO attachments.
 */
export function attachPayloadJson(
  delivered: readonly Message[],
  published: readonly { messageId: string; payloadJson?: string }[],
): void {
  let k = 0;
  for (const message of delivered) {
    while (k < published.length && (published[k] as { messageId: string }).messageId !== message.messageId)
      k++;
    const json = published[k++]?.payloadJson;
    if (json === undefined) return;
    if (!json.includes('"type":"Buffer"')) (message as WithPayloadJson)[PAYLOAD_JSON] = json;
  }
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
 * JSON of a value made of primitives, arrays and plain objects nested at most `depth` deep, as
 * JSON.stringify writes it; undefined for anything else (the parser then encodes the packet).
 */
function plainJson(value: unknown, depth: number): string | undefined {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      return Number.isFinite(value) ? String(value) : "null";
    case "boolean":
      return String(value);
    case "object":
      break;
    default:
      return undefined;
  }
  if (value === null) return "null";
  if (depth === 0) return undefined;
  if (Array.isArray(value)) {
    let out = "[";
    for (const item of value) {
      const text = plainJson(item, depth - 1);
      if (text === undefined) return undefined;
      out += `${out.length === 1 ? "" : ","}${text}`;
    }
    return `${out}]`;
  }
  return objectJson(value, depth);
}

/**
 * `plainJson` of an object, one level down for its fields; `payloadJson` is written as the text of
 * its `payload` field. Undefined unless it is a plain object without toJSON (Buffers go as
 * attachments; dates and class instances serialise themselves).
 */
function objectJson(value: object, depth: number, payloadJson?: string): string | undefined {
  if (Object.getPrototypeOf(value) !== Object.prototype) return undefined;
  const fields = value as Record<string, unknown>;
  if (typeof fields.toJSON === "function") return undefined;
  let out = "{";
  for (const key of Object.keys(fields)) {
    const field = fields[key];
    // Skipped, as JSON.stringify skips them.
    if (field === undefined || typeof field === "function" || typeof field === "symbol") continue;
    const text = payloadJson !== undefined && key === "payload" ? payloadJson : plainJson(field, depth - 1);
    if (text === undefined) return undefined;
    out += `${out.length === 1 ? "" : ","}${keyText(key)}${text}`;
  }
  return `${out}}`;
}

/**
 * The JSON text of a delivered message that carries its payload's text; undefined for anything
 * else (no text, a field besides the payload that is not a primitive): the parser encodes it.
 */
function messageJson(message: unknown): string | undefined {
  if (typeof message !== "object" || message === null) return undefined;
  const json = (message as WithPayloadJson)[PAYLOAD_JSON];
  return json === undefined ? undefined : objectJson(message, 1, json);
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

/** A packet's namespace as socket.io-parser writes it: nothing for `/`. */
function namespacePrefix(nsp: string): string {
  return nsp && nsp !== "/" ? `${nsp},` : "";
}

/** How deep a reply written without the parser nests: `{ error: { code, message } }`, `{ messageIds: [...] }`. */
const REPLY_DEPTH = 2;

/**
 * socket.io-parser's encoder, with delivery events written from their payloads' JSON text and
 * replies (acks: `{ ok, messageIds }`, `{ ok: false, error: { code, message } }`) written without
 * the parser's walk for binary data: both are most of what a busy hub sends.
 */
export class HubEncoder extends Encoder {
  override encode(packet: Packet): ReturnType<SocketIoParser.Encoder["encode"]> {
    const data = packet.data as unknown[] | undefined;
    if (packet.type === PacketType.EVENT && packet.id === undefined && data?.length === 2) {
      const event = data[0];
      const text = typeof event === "string" ? argumentJson(data[1]) : undefined;
      if (text !== undefined)
        return [`${PacketType.EVENT}${namespacePrefix(packet.nsp)}[${JSON.stringify(event)},${text}]`];
    } else if (packet.type === PacketType.ACK && packet.id !== undefined && data?.length === 1) {
      const text = plainJson(data[0], REPLY_DEPTH);
      if (text !== undefined) return [`${PacketType.ACK}${namespacePrefix(packet.nsp)}${packet.id}[${text}]`];
    }
    return super.encode(packet);
  }
}

/** The parser the hub's own Socket.IO server uses (ServerOptions.parser). */
export const hubParser = { protocol, PacketType, Encoder: HubEncoder, Decoder };
