#!/usr/bin/env node
// `npm run dead-letters`: an operator's view of a namespace's dead letters over the hub's
// HTTP endpoints — list them, requeue them to their queues, or drop them.
import { parseArgs } from "node:util";
import { toNamespace } from "../protocol.js";

const USAGE = `Usage: queuehub-dead-letters <list|requeue|drop> [options] [messageId ...]
       (from a clone: npm run dead-letters -- <list|requeue|drop> ...)

Lists the dead letters of a namespace (messages delivered HUB_MAX_DELIVERIES times without an ack,
or dropped by HUB_OVERFLOW=drop-oldest), or requeues or drops the ones named (--all: every one listed).

Options:
  --namespace <ns>     namespace (default: /caps)
  --limit <n>          how many to list or act on with --all (default: 100, at most 1000)
  --cursor <cursor>    the page after the one a list ended with (it prints the cursor)
  --all                requeue or drop every dead letter listed
  --json               print the hub's JSON reply as it is
  --url <url>          hub address (default: $HUB_URL or http://localhost:3000)
  --token <jwt>        an operator token, for a hub that runs with HUB_SECRET (default: $HUB_TOKEN;
                       npm run token -- --sub ops --role operator mints one)
  -h, --help           show this help

Examples:
  npm run dead-letters -- list --namespace /caps
  npm run dead-letters -- requeue 01a2083a-0f3e-7000-8000-0123456789ab
  npm run dead-letters -- drop --all
`;

interface DeadLetter {
  messageId: string;
  queue: string;
  event: string;
  reason: string;
  deliveries: number;
  deadAt: number;
  payload: unknown;
}

function fail(message: string, code: number): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(code);
}

async function main() {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse();
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  const { values, positionals } = parsed;
  if (values.help) return void process.stdout.write(USAGE);
  const [command, ...ids] = positionals;
  if (command !== "list" && command !== "requeue" && command !== "drop") {
    process.stderr.write(`error: say list, requeue or drop\n\n${USAGE}`);
    process.exit(2);
  }
  const ns = toNamespace(values.namespace ?? "/caps");
  if (ns === null) fail(`--namespace "${values.namespace}" is not a valid namespace`, 2);
  const limit = Number(values.limit ?? 100);
  if (!Number.isInteger(limit) || limit < 1)
    fail(`--limit must be a whole number ≥ 1, got "${values.limit}"`, 2);
  const base = (values.url ?? process.env.HUB_URL ?? "http://localhost:3000").replace(/\/+$/, "");
  const token = values.token ?? process.env.HUB_TOKEN;
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};

  const call = async (path: string, body?: unknown) => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: { ...headers, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      fail(
        `cannot reach the hub at ${base} (${(err as Error).message}); start it with npm start or pass --url`,
        1,
      );
    }
    const reply = (await res.json()) as { ok: boolean; error?: { code: string; message: string } } & Record<
      string,
      unknown
    >;
    if (!reply.ok) fail(`${reply.error?.code}: ${reply.error?.message}`, 1);
    return reply;
  };
  const query = `?ns=${encodeURIComponent(ns)}`;
  const page = values.cursor ? `&cursor=${encodeURIComponent(values.cursor)}` : "";

  if (command === "list") {
    const reply = await call(`/dead-letters${query}&limit=${limit}${page}`);
    if (values.json) return void process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`);
    const letters = reply.deadLetters as DeadLetter[];
    if (letters.length === 0 && !values.cursor)
      return void process.stdout.write(`no dead letters in ${ns}\n`);
    for (const d of letters) {
      const payload = JSON.stringify(d.payload) ?? "null";
      process.stdout.write(
        `${d.messageId}  ${d.queue}  ${d.event}  ${d.reason} after ${d.deliveries} deliveries  ` +
          `${new Date(d.deadAt).toISOString()}  ${payload.length > 80 ? `${payload.slice(0, 77)}...` : payload}\n`,
      );
    }
    if (typeof reply.next === "string")
      process.stdout.write(`more: list again with --cursor ${reply.next}\n`);
    return;
  }
  let messageIds = ids;
  if (values.all) {
    const listed = await call(`/dead-letters${query}&limit=${limit}${page}`);
    messageIds = (listed.deadLetters as DeadLetter[]).map((d) => d.messageId);
  }
  if (messageIds.length === 0) fail(`name the messageIds to ${command}, or pass --all`, 2);
  const reply = await call(`/dead-letters/${command}${query}`, { messageIds });
  if (values.json) return void process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`);
  process.stdout.write(
    command === "drop"
      ? `dropped ${reply.dropped} dead letter(s) from ${ns}\n`
      : `requeued ${messageIds.length} message(s) to ${(reply.queues as string[]).join(", ") || "no queue"}\n`,
  );
}

function parse() {
  return parseArgs({
    options: {
      namespace: { type: "string" },
      limit: { type: "string" },
      cursor: { type: "string" },
      all: { type: "boolean" },
      json: { type: "boolean" },
      url: { type: "string" },
      token: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
}

main().catch((err: unknown) => fail(err instanceof Error ? err.message : String(err), 1));
