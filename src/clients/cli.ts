// What the CAPS command-line clients share: flags, one-line output, connecting with
// errors that say what to do, and a clean stop on Ctrl-C.
import { randomUUID } from "node:crypto";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { isValidClientId, toNamespace } from "../protocol.js";
import { type Handler, HubClient } from "./hub-client.js";

/** Exit codes: 0 done or stopped, 1 the hub refused us, 2 bad command line. */
export const EXIT_USAGE = 2;

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Flags every CLI takes besides its own. */
export const COMMON_OPTIONS = {
  url: { type: "string" },
  namespace: { type: "string" },
  token: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies Options;

export const COMMON_USAGE = `  --url <url>          hub address (default: $HUB_URL or http://localhost:3000)
  --namespace <ns>     topic namespace (default: /caps)
  --token <jwt>        token, for a hub that runs with HUB_SECRET (default: $HUB_TOKEN)
  -h, --help           show this help`;

type Parsed<O extends Options> = ReturnType<
  typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>
>;

/** Parses argv strictly: --help prints usage and exits 0; anything unknown prints usage and exits 2. */
export function parseFlags<const O extends Options>(
  options: O,
  usage: string,
  argv = process.argv.slice(2),
): Parsed<O>["values"] {
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (err) {
    usageError(err instanceof Error ? err.message : String(err), usage);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return parsed.values;
}

/** A bad command line: the message, then the usage (or, for a bad value, where to find it); exit 2. */
export function usageError(message: string, usage: string | null): never {
  process.stderr.write(`error: ${message}\n${usage ? `\n${usage}` : "run with --help for the options\n"}`);
  process.exit(EXIT_USAGE);
}

/** A whole number ≥ min from a flag, or the default; anything else is a usage error. */
export function intFlag(name: string, raw: string | undefined, fallback: number, min = 0) {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(value) || value < min) {
    usageError(`--${name} must be a whole number ≥ ${min}, got "${raw}"`, null);
  }
  return value;
}

export interface Connection {
  url: string;
  namespace: string;
  clientId: string;
  token: string | undefined;
}

/** Resolves --url, --namespace, --token and the clientId, or exits 2 saying which is wrong. */
export function connectionFlags(
  values: { url?: string; namespace?: string; token?: string },
  clientId: string,
  idFlag = "--id",
): Connection {
  const url = values.url ?? process.env.HUB_URL ?? "http://localhost:3000";
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(url);
  } catch {
    usageError(`--url "${url}" is not a URL (try http://localhost:3000)`, null);
  }
  if (!/^(https?|wss?):$/.test(parsedUrl.protocol)) {
    usageError(`--url "${url}" must start with http:// or https://`, null);
  }
  if (parsedUrl.pathname !== "/" && parsedUrl.pathname !== "") {
    usageError(`--url "${url}" has a path; give the namespace with --namespace instead`, null);
  }
  const raw = values.namespace ?? "/caps";
  const namespace = toNamespace(raw);
  if (namespace === null) {
    usageError(`--namespace "${raw}" is not a valid namespace (lower-case letters, digits, _ and -)`, null);
  }
  if (!isValidClientId(clientId)) {
    usageError(
      `${idFlag} "${clientId}" is not a valid clientId (1–128 letters, digits, spaces or ._:@-)`,
      null,
    );
  }
  const token = values.token ?? process.env.HUB_TOKEN;
  return { url: url.replace(/\/+$/, ""), namespace, clientId, token: token || undefined };
}

// ---- output ---------------------------------------------------------------------------

const useColour = (stream: NodeJS.WriteStream) => Boolean(stream.isTTY) && !process.env.NO_COLOR;

const paint = (on: boolean, open: string, close: string) => (text: string) =>
  on ? `\x1b[${open}m${text}\x1b[${close}m` : text;
const FG_RESET = "\x1b[39m";

export interface Output {
  info(message: string): void;
  success(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Highlights a value (an id, a name) inside a stdout line. */
  em(text: string): string;
}

/** One line per event: `12:34:56.789 <tag> <message>`; colour only on a terminal without NO_COLOR. */
export function createOutput(tag: string): Output {
  const outColour = useColour(process.stdout);
  const errColour = useColour(process.stderr);
  const line = (stream: NodeJS.WriteStream, colour: boolean, tint: string | null) => (message: string) => {
    const time = paint(colour, "2", "22")(timestamp());
    const label = paint(colour, "1", "22")(tag);
    // A highlighted value inside a tinted line goes back to the line's tint after it.
    const body =
      tint && colour ? paint(true, tint, "39")(message.replaceAll(FG_RESET, `\x1b[${tint}m`)) : message;
    stream.write(`${time} ${label} ${body}\n`);
  };
  return {
    info: line(process.stdout, outColour, null),
    success: line(process.stdout, outColour, "32"),
    warn: line(process.stderr, errColour, "33"),
    error: line(process.stderr, errColour, "31"),
    em: paint(outColour, "36", "39"),
  };
}

function timestamp(now = new Date()) {
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  return `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}.${pad(now.getMilliseconds(), 3)}`;
}

// ---- connecting and stopping ---------------------------------------------------------

/** What to do about a refusal, by the hub's connect_error message. */
function refusalHint(message: string, conn: Connection): string {
  switch (message) {
    case "Invalid namespace":
      return `the hub does not serve ${conn.namespace}: check --namespace, or the hub's HUB_NAMESPACES`;
    case "unauthorized":
    case "clientId required":
      return "this hub runs with HUB_SECRET: pass a token for this clientId with --token or HUB_TOKEN";
    case "invalid clientId":
      return "use 1–128 letters, digits, spaces or ._:@- for the id";
    default:
      return "";
  }
}

/**
 * Makes a HubClient that reports what happens to its connection as it happens: an
 * unreachable hub is retried (with a hint to start it), a refusal by the hub ends the
 * process with exit code 1 and the hub's own message. Connect it with `connect`.
 */
export function createClient(conn: Connection, out: Output): HubClient {
  const client = new HubClient({
    url: conn.url,
    namespace: conn.namespace,
    clientId: conn.clientId,
    token: conn.token,
  });
  let everConnected = false;
  let outage = false;
  client.socket.on("connect_error", (err: Error) => {
    if (!client.socket.active) {
      const hint = refusalHint(err.message, conn);
      out.error(`the hub at ${conn.url} refused ${conn.namespace} as ${conn.clientId}: ${err.message}`);
      if (hint) out.error(hint);
      process.exit(1);
    }
    if (outage) return;
    outage = true;
    out.warn(
      `cannot reach the hub at ${conn.url} (${err.message}). Is it running? Start it with: npm start` +
        " (or pass --url). Retrying…",
    );
  });
  client.on("connect", () => {
    outage = false;
    out.info(`${everConnected ? "reconnected" : "connected"} to ${conn.url}${conn.namespace}`);
    everConnected = true;
  });
  client.on("disconnect", (reason) => {
    if (reason === "io client disconnect") return;
    out.warn(`lost the hub (${reason}); reconnecting…`);
    // The hub said goodbye (e.g. it is shutting down): socket.io-client does not retry by itself.
    if (reason === "io server disconnect") client.socket.connect();
  });
  client.on("error", (err) => out.error(err.message));
  return client;
}

/**
 * Subscribes, and subscribes again on every reconnect. Subscriptions are durable, so this
 * is a no-op for a hub that kept them; a hub that lost them (memory store, restarted) gets
 * them back without a restart of this client.
 */
export async function subscribeDurably(
  client: HubClient,
  out: Output,
  events: string | string[],
  handler: Handler,
  options: { group?: string } = {},
): Promise<void> {
  let first = true;
  client.on("connect", () => {
    if (first) return;
    client.subscribe(events, handler, options).catch((err: Error) => {
      out.error(`could not subscribe again to ${[events].flat().join(", ")}: ${err.message}`);
    });
  });
  await client.subscribe(events, handler, options);
  first = false;
}

/** Resolves once connected (retrying an unreachable hub); a refusal ends the process (see createClient). */
export async function connect(client: HubClient): Promise<void> {
  try {
    await client.connect();
  } catch {
    // Reported, and the process ended, by createClient's connect_error listener.
    await new Promise(() => {});
  }
}

/** For main(): an unexpected failure is one readable line and exit 1, not a stack trace. */
export function runMain(name: string, main: () => Promise<void>) {
  main().catch((err: unknown) => {
    process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

/** On SIGINT/SIGTERM: runs `stop`, closes the client (flushing acks) and exits 0; a second signal exits at once. */
export function stopOnSignals(client: HubClient, out: Output, stop: () => string | undefined) {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    const note = stop();
    out.info(`stopping (${signal})${note ? `: ${note}` : ""}`);
    closeAndExit(client, 0);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

/** Closes the client, letting its last acks reach the hub, and exits. */
export function closeAndExit(client: HubClient, code: number) {
  process.exitCode = code;
  client.close();
  // The process ends by itself once the socket has written its last frames and closed;
  // a pending timer (an order on the road) must not hold it up for long.
  setTimeout(() => process.exit(code), 500).unref();
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---- the CAPS order ------------------------------------------------------------------

/** The payload of `pickup`, `in-transit` and `delivered`. */
export interface Order {
  store: string;
  orderId: string;
  customer: string;
  address: string;
}

const FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Linus", "Radia", "Ken"];
const LAST = [
  "Lovelace",
  "Hopper",
  "Turing",
  "Dijkstra",
  "Liskov",
  "Knuth",
  "Hamilton",
  "Torvalds",
  "Perlman",
];
const STREETS = ["Main St", "Oak Ave", "Elm St", "Maple Dr", "Cedar Ln", "Pine Rd", "Harbor Way", "Hill St"];
const CITIES = ["Seattle, WA", "Portland, OR", "Boise, ID", "Spokane, WA", "Tacoma, WA", "Eugene, OR"];

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;

export function fakeOrder(store: string): Order {
  return {
    store,
    orderId: randomUUID(),
    customer: `${pick(FIRST)} ${pick(LAST)}`,
    address: `${100 + Math.floor(Math.random() * 9900)} ${pick(STREETS)}, ${pick(CITIES)}`,
  };
}

export function isOrder(value: unknown): value is Order {
  const o = value as Partial<Order> | null;
  return (
    typeof o === "object" &&
    o !== null &&
    typeof o.orderId === "string" &&
    typeof o.store === "string" &&
    typeof o.customer === "string" &&
    typeof o.address === "string"
  );
}
