#!/usr/bin/env node
// `npm run token`: mints a token for a hub that runs with HUB_SECRET, for local use (a CLI, a
// test client, an operator's dashboard). A real application's server mints its users' tokens itself.
import "dotenv/config";
import { parseArgs } from "node:util";
import { isValidClientId, toNamespace } from "../protocol.js";
import { signToken } from "../token.js";

const USAGE = `Usage: queuehub-token --sub <clientId> [options]
       (from a clone: npm run token -- --sub <clientId> ...)

Prints a JWT (HS256, signed with HUB_SECRET) whose sub is the clientId, for a hub that runs with
HUB_SECRET. Claims narrow what it may do; without them it may use any namespace, group and room.

Options:
  --sub <clientId>     the clientId it binds (required)
  --role operator      an operator token: the HTTP views, dead-letter actions and the dashboard
  --ns <list>          namespaces it may use, comma-separated (/caps,/orders)
  --groups <list>      groups it may subscribe with, comma-separated
  --rooms <list>       rooms it may join, publish to and list, comma-separated
  --expires <time>     how long it is valid: 30m, 1h, 7d (default: 1h); "never" for a token
                       without exp, which a hub refuses unless HUB_REQUIRE_EXP=false
  --secret <secret>    the hub's secret (default: $HUB_SECRET, also read from ./.env)
  -h, --help           show this help

Examples:
  npm run token -- --sub ops --role operator --expires 8h
  HUB_TOKEN=$(npm run -s token -- --sub driver-1 --ns /caps --groups drivers) npm run driver -- --id driver-1
`;

function fail(message: string): never {
  process.stderr.write(`error: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function parse() {
  return parseArgs({
    options: {
      sub: { type: "string" },
      role: { type: "string" },
      ns: { type: "string" },
      groups: { type: "string" },
      rooms: { type: "string" },
      expires: { type: "string" },
      secret: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

/** A comma-separated list of names, each checked. */
function names(flag: string, raw: string | undefined, check: (name: string) => string | null) {
  if (raw === undefined) return undefined;
  const list = raw
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean);
  if (list.length === 0) fail(`--${flag} needs at least one name`);
  return list.map((name) => check(name) ?? fail(`--${flag}: "${name}" is not a valid name`));
}

async function main() {
  let values: ReturnType<typeof parse>["values"];
  try {
    ({ values } = parse());
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) return void process.stdout.write(USAGE);
  const secret = values.secret ?? process.env.HUB_SECRET;
  if (!secret) fail("no secret: set HUB_SECRET (as the hub has it) or pass --secret");
  if (values.sub === undefined) fail("--sub is required");
  if (!isValidClientId(values.sub)) fail(`--sub "${values.sub}" is not a valid clientId`);
  if (values.role !== undefined && values.role !== "operator" && values.role !== "client")
    fail(`--role is operator or client, got "${values.role}"`);
  const expires = values.expires ?? "1h";
  if (
    expires !== "never" &&
    !/^\d+\s*(s|sec|secs|m|min|mins|h|hr|hrs|hours?|d|days?|w|weeks?)$/i.test(expires)
  )
    fail(`--expires "${expires}" is not a time such as 30m, 1h or 7d`);
  const named = (name: string) => (isValidClientId(name) ? name : null);
  const token = await signToken(secret, values.sub, {
    expiresIn: expires === "never" ? null : expires,
    ...(values.role === "operator" ? { role: "operator" as const } : {}),
    ns: names("ns", values.ns, toNamespace),
    groups: names("groups", values.groups, named),
    rooms: names("rooms", values.rooms, named),
  });
  process.stdout.write(`${token}\n`);
}

void main();
