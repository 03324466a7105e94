// Input validation at the edge: every client argument is parsed here into a typed value,
// or refused with INVALID_ARGUMENT and a message naming the field.
import { z } from "zod";
import {
  CLIENT_ID_PATTERN,
  EVENT_PATTERN,
  type Failure,
  failure,
  isValidEventName,
  type PublishRequest,
  RESERVED_EVENTS,
} from "./protocol.js";
import { PAGE_LIMIT_MAX } from "./store/store.js";

const clientId = z.string().regex(CLIENT_ID_PATTERN, "must be 1–128 letters, digits, spaces or ._:@-");
/** A room name follows the clientId rules. */
const roomName = z
  .string()
  .regex(CLIENT_ID_PATTERN, "must be a room name: 1–128 letters, digits, spaces or ._:@-");
const eventName = z
  .string()
  .regex(EVENT_PATTERN, "must be 1–64 letters, digits, spaces or ._:@-")
  .refine((name) => !RESERVED_EVENTS.has(name), "is a reserved event name");
const events = z.union([eventName, z.array(eventName).min(1).max(100)], {
  error: "must be an event name or an array of 1–100 event names",
});
const messageId = z.string().min(1).max(64);

/** Nesting a payload may have: far beyond any real message, far below what overflows a stack. */
export const MAX_PAYLOAD_DEPTH = 64;

/** True when arrays and objects nest deeper than `limit` (it looks no deeper than that). */
function deeperThan(value: unknown, limit: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (limit === 0) return true;
  for (const child of Object.values(value)) if (deeperThan(child, limit - 1)) return true;
  return false;
}

const publishItem = z
  .object({
    event: eventName,
    payload: z
      .unknown()
      .refine(
        (payload) => !deeperThan(payload, MAX_PAYLOAD_DEPTH),
        `is nested more than ${MAX_PAYLOAD_DEPTH} levels deep (the limit)`,
      )
      .optional(),
    to: z
      .union([clientId, z.array(clientId).min(1).max(1000)], {
        error: "must be a clientId or an array of 1–1000 clientIds",
      })
      .optional(),
    room: roomName.optional(),
    key: z.string().min(1).max(256).optional(),
    echo: z.boolean().optional(),
    ttl: z.number().int().positive().optional(),
  })
  .strict();

/** A batch is parsed in one pass (one parse per batch, not per message). */
const publishBatch = z.array(publishItem);

const subscribe = z.object({ event: events, group: clientId.optional(), clientId: clientId.optional() });
const unsubscribe = z.object({ event: events, clientId: clientId.optional() });
const received = z
  .object({
    messageId: messageId.optional(),
    messageID: messageId.optional(),
    messageIds: z.array(messageId).max(10_000).optional(),
    clientId: clientId.optional(),
    event: z.string().optional(),
  })
  .refine((r) => r.messageId ?? r.messageID ?? r.messageIds, {
    message: "messageId or messageIds is required",
    path: ["messageId"],
  });
const members = z
  .object({
    room: roomName,
    limit: z.number().int().min(1).max(PAGE_LIMIT_MAX).optional(),
    cursor: z.string().min(1).max(1024).optional(),
  })
  .strict();
const getAll = z.object({ event: eventName.optional(), clientId: clientId.optional() }).optional();

type Parsed<T> = { ok: true; value: T } | Failure;

/** INVALID_ARGUMENT naming the request and the field (`publish: payload is ...`), or the request alone. */
function invalid(what: string, path: PropertyKey[], message = "is invalid"): Failure {
  const field = path.length ? `${path.map(String).join(".")} ` : "";
  return failure("INVALID_ARGUMENT", `${what}: ${field}${message}`);
}

function parse<T>(schema: z.ZodType<T>, input: unknown, what: string): Parsed<T> {
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  return invalid(what, issue?.path ?? [], issue?.message);
}

const toList = (value: string | string[]) => (Array.isArray(value) ? value : [value]);

export interface ParsedPublish extends Omit<PublishRequest, "to"> {
  to?: string[];
}

/**
 * The everyday publish, `{ event, payload }` and nothing else, checked by the schema's own rules
 * without its machinery (one publish per emit is the hot path). Undefined for anything else, and
 * for anything these rules refuse: the schema then parses it and names what is wrong.
 */
function plainPublish(input: unknown): ParsedPublish | undefined {
  if (typeof input !== "object" || input === null || Object.getPrototypeOf(input) !== Object.prototype) {
    return undefined;
  }
  for (const key in input) if (key !== "event" && key !== "payload") return undefined;
  const { event, payload } = input as { event?: unknown; payload?: unknown };
  if (typeof event !== "string" || !isValidEventName(event)) return undefined;
  if (deeperThan(payload, MAX_PAYLOAD_DEPTH)) return undefined;
  return Object.hasOwn(input, "payload") ? { event, payload } : { event };
}

export function parsePublish(
  input: unknown,
  maxBatch: number,
): Parsed<{ items: ParsedPublish[]; batch: boolean }> {
  const batch = Array.isArray(input);
  if (batch && input.length === 0)
    return failure("INVALID_ARGUMENT", "publish: a batch needs at least one message");
  if (batch && input.length > maxBatch) {
    return failure(
      "BATCH_TOO_LARGE",
      `publish: a batch holds at most ${maxBatch} messages, got ${input.length}`,
    );
  }
  if (!batch) {
    const plain = plainPublish(input);
    if (plain !== undefined) return { ok: true, value: { items: [plain], batch } };
  }
  const parsed = batch ? publishBatch.safeParse(input) : publishItem.safeParse(input);
  if (!parsed.success) {
    // Named as the message's own parse would name it: publish[i]: field ...
    const issue = parsed.error.issues[0];
    const path = issue?.path ?? [];
    const what = batch ? `publish[${String(path[0])}]` : "publish";
    return invalid(what, batch ? path.slice(1) : path, issue?.message);
  }
  const items: ParsedPublish[] = [];
  for (const [i, value] of (Array.isArray(parsed.data) ? parsed.data : [parsed.data]).entries()) {
    const { to, ...rest } = value;
    if (to !== undefined && rest.room !== undefined) {
      return failure(
        "INVALID_ARGUMENT",
        `${batch ? `publish[${i}]` : "publish"}: to and room cannot be used together`,
      );
    }
    items.push(to === undefined ? rest : { ...rest, to: [...new Set(toList(to))] });
  }
  if (batch) {
    const keys = items.filter((item) => item.key !== undefined);
    if (keys.length > 0 && (keys.length !== items.length || new Set(keys.map((k) => k.key)).size !== 1)) {
      return failure(
        "INVALID_ARGUMENT",
        "publish: a batch takes one key, the same on every message, or none",
      );
    }
  }
  return { ok: true, value: { items, batch } };
}

export function parseSubscribe(input: unknown) {
  const parsed = parse(subscribe, input, "subscribe");
  if (!parsed.ok) return parsed;
  const { event, group, clientId } = parsed.value;
  return { ok: true as const, value: { events: toList(event), group: group ?? null, clientId } };
}

export function parseUnsubscribe(input: unknown) {
  const parsed = parse(unsubscribe, input, "unsubscribe");
  if (!parsed.ok) return parsed;
  return {
    ok: true as const,
    value: { events: toList(parsed.value.event), clientId: parsed.value.clientId },
  };
}

export function parseReceived(input: unknown) {
  const parsed = parse(received, input, "received");
  if (!parsed.ok) return parsed;
  const { messageId, messageID, messageIds, clientId } = parsed.value;
  const ids = [...(messageIds ?? []), ...[messageId ?? messageID].filter((id) => id !== undefined)];
  return { ok: true as const, value: { ids, clientId } };
}

export function parseGetAll(input: unknown) {
  const parsed = parse(getAll, input ?? undefined, "getAll");
  if (!parsed.ok) return parsed;
  return { ok: true as const, value: { event: parsed.value?.event, clientId: parsed.value?.clientId } };
}

/** The room of `join` or `leave`. */
export function parseRoom(input: unknown, what: "join" | "leave" = "join") {
  return parse(roomName, input, what);
}

/** `members { room, limit?, cursor? }`: a page of the room's members (100 unless `limit` says). */
export function parseMembers(input: unknown) {
  const parsed = parse(members, input, "members");
  if (!parsed.ok) return parsed;
  const { room, limit, cursor } = parsed.value;
  return { ok: true as const, value: { room, page: { limit: limit ?? 100, after: cursor ?? null } } };
}
