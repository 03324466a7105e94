// The CAPS lab's own clients (PROTOCOL.md, "Lab clients"): what a classroom connection (no `auth`,
// open mode) may send beyond the protocol's own forms, read here into those forms, so that one
// validation (validate.ts) serves both. Only the arguments of queue operations and pure envelopes
// are read this way: the fields of an ordinary payload are never taken for an identity.
import { type Failure, failure, isValidClientId, type Message } from "./protocol.js";

type Fields = Record<string, unknown>;
type Read<T> = { ok: true; value: T } | Failure;

/** Spellings of one thing, the protocol's own first. */
const IDENTITY = ["clientId", "clientID", "queueId"] as const;
const EVENT = ["event", "eventName"] as const;
const MESSAGE_ID = ["messageId", "messageID"] as const;
const SPELLINGS: ReadonlySet<string> = new Set([...IDENTITY, ...EVENT, ...MESSAGE_ID]);
/** An envelope holds these and nothing else: identity, event, and the payload it carries. */
const ENVELOPE: ReadonlySet<string> = new Set([...IDENTITY, ...EVENT, "payload"]);

/** The protocol's own client → hub events, by their lower-case spelling. */
const PROTOCOL_EVENTS = new Map(
  ["subscribe", "unsubscribe", "publish", "received", "getAll", "join", "leave", "members"].map((name) => [
    name.toLowerCase(),
    name,
  ]),
);

/** A classroom connection's event name as the protocol spells it (`getall`, `GetAll` → `getAll`); others as sent. */
export function protocolEventName(name: string): string {
  return PROTOCOL_EVENTS.get(name.toLowerCase()) ?? name;
}

const isFields = (value: unknown): value is Fields =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The value of whichever spelling is present; two spellings with different values are refused. */
function pick(fields: Fields, names: readonly string[], what: string): Read<unknown> {
  let found: { name: string; value: unknown } | undefined;
  for (const name of names) {
    const value = fields[name];
    if (value === undefined) continue;
    if (found && found.value !== value)
      return failure("INVALID_ARGUMENT", `${what}: ${found.name} and ${name} differ`);
    found ??= { name, value };
  }
  return { ok: true, value: found?.value };
}

/**
 * The lab's spellings of one argument in the protocol's own: `clientID`/`queueId` → `clientId`,
 * `eventName` → `event`, `messageID` → `messageId`; every other field as it is.
 */
function canonical(fields: Fields, what: string): Read<Fields> {
  const out: Fields = {};
  for (const [name, value] of Object.entries(fields)) if (!SPELLINGS.has(name)) out[name] = value;
  for (const [target, names] of [
    ["clientId", IDENTITY],
    ["event", EVENT],
    ["messageId", MESSAGE_ID],
  ] as const) {
    const read = pick(fields, names, what);
    if (!read.ok) return read;
    if (read.value !== undefined) out[target] = read.value;
  }
  return { ok: true, value: out };
}

/** `subscribe`, `unsubscribe`, `received` (also the delivered message sent back as it came). */
export function readRequest(input: unknown, what: string): Read<unknown> {
  return isFields(input) ? canonical(input, what) : { ok: true, value: input };
}

/**
 * `getAll`: `{ clientId, event }`, `{ clientID, payload: "<event>" }` (the lab's reference
 * solution), a bare event name, or `{ queueId }` alone (every event of that client).
 */
export function readGetAll(input: unknown): Read<unknown> {
  if (typeof input === "string") return { ok: true, value: { event: input } };
  if (!isFields(input)) return { ok: true, value: input };
  const read = canonical(input, "getAll");
  if (!read.ok) return read;
  const { payload, ...rest } = read.value;
  if (rest.event === undefined && typeof payload === "string") rest.event = payload;
  return { ok: true, value: rest };
}

/** A publish as the lab sends it: what to publish, and the identity it names (if any). */
export interface LabPublish {
  /** The protocol's publish argument: one request, or a batch. */
  request: unknown;
  clientId: string | undefined;
}

/** `publish`: each request may name its sender (`clientID`, `queueId`) and its event as `eventName`. */
export function readPublish(input: unknown): Read<LabPublish> {
  const items = Array.isArray(input) ? input : [input];
  const requests: unknown[] = [];
  let clientId: string | undefined;
  for (const item of items) {
    if (!isFields(item)) {
      requests.push(item);
      continue;
    }
    const read = canonical(item, "publish");
    if (!read.ok) return read;
    const { clientId: named, ...request } = read.value;
    const identity = readIdentity(named, clientId, "publish");
    if (!identity.ok) return identity;
    clientId = identity.value;
    requests.push(request);
  }
  return { ok: true, value: { request: Array.isArray(input) ? requests : requests[0], clientId } };
}

/**
 * A publish under the event's own name (`emit("pickup", ...)`). An envelope, an object of only
 * identity and event fields plus `payload` (`{ clientID: "acme-widgets", payload: order }`),
 * publishes its `payload` and names its sender; anything else is the payload, read no further.
 */
export function readShorthand(event: string, input: unknown): Read<LabPublish> {
  const envelope =
    isFields(input) &&
    "payload" in input &&
    Object.keys(input).length > 1 &&
    Object.keys(input).every((name) => ENVELOPE.has(name));
  if (!envelope) return { ok: true, value: { request: { event, payload: input }, clientId: undefined } };
  const read = canonical(input, event);
  if (!read.ok) return read;
  const { clientId, event: named, payload } = read.value;
  if (named !== undefined && named !== event) {
    return failure("INVALID_ARGUMENT", `${event}: the envelope's event "${String(named)}" is not "${event}"`);
  }
  const identity = readIdentity(clientId, undefined, event);
  if (!identity.ok) return identity;
  return { ok: true, value: { request: { event, payload }, clientId: identity.value } };
}

function readIdentity(value: unknown, before: string | undefined, what: string): Read<string | undefined> {
  if (value === undefined) return { ok: true, value: before };
  if (!isValidClientId(value))
    return failure("INVALID_ARGUMENT", `${what}: clientId must be 1–128 letters, digits, spaces or ._:@-`);
  if (before !== undefined && before !== value)
    return failure("INVALID_ARGUMENT", `${what}: a batch names two clients, ${before} and ${value}`);
  return { ok: true, value };
}

/** A delivery as a classroom connection gets it: with the lab's `messageID` beside `messageId`. */
export function labDelivery(message: Message): Message & { messageID: string } {
  return { ...message, messageID: message.messageId };
}
