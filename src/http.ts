// HTTP beside the sockets: health, metrics, publish, and operators' JSON views.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Registry } from "prom-client";
import { clientAddress } from "./address.js";
import type { ConnectedClient } from "./cluster.js";
import type { HubConfig } from "./config.js";
import { DEV_TOKEN_PATH, mintDevToken } from "./dev-tokens.js";
import type { Logger } from "./log.js";
import { answerCors, type OriginPolicy } from "./origins.js";
import {
  type ErrorCode,
  failure,
  isValidClientId,
  isValidNamespace,
  type Reply,
  toNamespace,
} from "./protocol.js";
import type { QueueCore } from "./queue.js";
import { serveStatic } from "./static.js";
import {
  decodeCursor,
  encodeCursor,
  type NamespaceSummary,
  type PageRequest,
  publisherScope,
  type QueueStore,
  StoreError,
} from "./store/store.js";
import { allows, type Claims, roomAccess, type TokenVerifier } from "./token.js";
import { parsePublish } from "./validate.js";

const STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  BATCH_TOO_LARGE: 400,
  IDENTITY_REQUIRED: 400,
  IDENTITY_MISMATCH: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  QUEUE_FULL: 429,
  UNAVAILABLE: 503,
};

export interface HttpDeps {
  config: HubConfig;
  /** The registry /metrics answers from. */
  registry: Registry;
  core: QueueCore;
  store: QueueStore;
  log: Logger;
  verifier: TokenVerifier | null;
  /** Which pages may call the routes from a browser. */
  origins: OriginPolicy;
  namespaceAllowed(ns: string): boolean;
  connections(): number;
  /** Connected, identified sockets (in one namespace, or all). */
  clients(ns?: string): Promise<{ clients: ConnectedClient[]; complete: boolean }>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reply: Reply<object>,
  ) {
    super(reply.ok ? "ok" : reply.error.message);
  }
}

export function createHttpHandler(deps: HttpDeps) {
  return (req: IncomingMessage, res: ServerResponse) => {
    if (answerCors(deps.origins, req, res)) return;
    route(deps, req, res).catch((err: unknown) => {
      if (err instanceof HttpError) return send(res, err.status, err.reply);
      // A store refusal (a bad cursor, the store cannot write): its code, its status.
      if (err instanceof StoreError) return send(res, STATUS[err.code], failure(err.code, err.message));
      deps.log.error({ url: req.url, err }, "http handler failed");
      send(res, 500, failure("UNAVAILABLE", "internal error; retry"));
    });
  };
}

async function route(deps: HttpDeps, req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? "/", "http://hub");
  // A page the hub does not allow gets nothing, not even a read: a rebound page is same-origin.
  if (!deps.origins.allows(req)) {
    req.resume();
    throw new HttpError(403, failure("FORBIDDEN", deps.origins.refusal(req)));
  }
  // A malformed %-escape anywhere in the path is a bad request, before anything reads the path.
  const parts = pathParts(url.pathname);
  if (await serveStatic(req, res, url.pathname)) return;
  if (req.method !== "GET" && req.method !== "HEAD") requireJson(req);
  if (req.method === "GET" && url.pathname === "/healthz") {
    const healthy = await deps.store.healthy().catch(() => false);
    return send(res, healthy ? 200 : 503, {
      ok: healthy,
      store: deps.store.kind,
      status: healthy ? "healthy" : "degraded",
      connections: deps.connections(),
    });
  }
  if (req.method === "GET" && url.pathname === "/metrics") return await sendMetrics(deps, res);
  if (
    parts[0] === "dead-letters" ||
    ["/namespaces", "/queues", "/subscriptions", "/rooms", "/clients"].includes(url.pathname)
  ) {
    const claims = await authorize(deps, req);
    if (claims && claims.role !== "operator") {
      throw new HttpError(
        403,
        failure("FORBIDDEN", 'the operator views and actions need a token with role "operator"'),
      );
    }
    return operatorView(deps, req, res, url, parts);
  }
  if (
    req.method === "POST" &&
    url.pathname === DEV_TOKEN_PATH &&
    deps.config.devTokens &&
    deps.config.secret
  ) {
    const { status, reply } = await mintDevToken(
      deps.config.secret,
      req.socket.remoteAddress,
      await readJson(req),
    );
    return send(res, status, reply);
  }
  if (req.method === "POST" && parts[0] === "publish" && (parts.length === 2 || parts.length === 3)) {
    const [ns, event] = parts.length === 2 ? ["/", parts[1]] : [`/${parts[1]}`, parts[2]];
    return publish(deps, req, res, ns, event ?? "", url);
  }
  send(res, 404, failure("INVALID_ARGUMENT", `no route ${req.method} ${url.pathname}`));
}

async function publish(
  deps: HttpDeps,
  req: IncomingMessage,
  res: ServerResponse,
  ns: string,
  event: string,
  url: URL,
) {
  const claims = await authorize(deps, req);
  if (!isValidNamespace(ns)) {
    throw new HttpError(400, failure("INVALID_ARGUMENT", `namespace "${ns}" is not a valid name`));
  }
  if (!deps.namespaceAllowed(ns)) {
    throw new HttpError(400, failure("INVALID_ARGUMENT", `namespace "${ns}" is not served by this hub`));
  }
  if (!allows(claims, "ns", ns)) {
    throw new HttpError(403, failure("FORBIDDEN", `this token may not publish to namespace ${ns}`));
  }
  const body = await readBody(req, deps.config.maxPayloadBytes);
  let payload: unknown;
  try {
    payload = body.length === 0 ? null : JSON.parse(body);
  } catch {
    throw new HttpError(400, failure("INVALID_ARGUMENT", "body: not valid JSON"));
  }
  const toParam = url.searchParams.get("to");
  const to = toParam?.split(",").filter(Boolean);
  // An empty list names nobody: refused, never taken as "everyone".
  if (to?.length === 0) {
    throw new HttpError(400, failure("INVALID_ARGUMENT", "to: name at least one clientId (?to=a,b)"));
  }
  const room = url.searchParams.get("room");
  const key = req.headers["idempotency-key"];
  const parsed = parsePublish(
    {
      event,
      payload,
      ...(to?.length ? { to } : {}),
      ...(room !== null ? { room } : {}),
      ...(typeof key === "string" ? { key } : {}),
    },
    1,
  );
  if (!parsed.ok) throw new HttpError(STATUS[parsed.error.code], parsed);
  // With a secret, a room takes publishes from its members' tokens, or from tokens whose rooms claim names it.
  if (room !== null && claims !== null) {
    const access = roomAccess(claims, [room], "POST /publish");
    if (access !== "claimed") {
      const allowed =
        access === "membership" ? await deps.core.memberOf(ns, claims.sub, [room], "POST /publish") : access;
      if (!allowed.ok) throw new HttpError(STATUS[allowed.error.code], allowed);
    }
  }
  // The publisher: the token's sub; in open mode nobody by name, its address for keys and rate.
  const from = claims?.sub ?? null;
  const scope =
    from !== null
      ? publisherScope.identity(from)
      : publisherScope.address(
          clientAddress(req.socket.remoteAddress, req.headers, deps.config.trustedProxies),
        );
  // On an open hub, HTTP publishes are routed by payload, as classroom ones are.
  const result = await deps.core.publish(ns, from, parsed.value.items, scope, deps.verifier === null);
  if (!result.ok) throw new HttpError(STATUS[result.error.code], result);
  send(res, 200, { ok: true, messageId: result.messageIds[0] });
}

/**
 * A request that may change state carries JSON, so it can never be one of the "simple" requests
 * (text/plain, forms) that browsers send cross-site without asking first.
 */
function requireJson(req: IncomingMessage) {
  const type = req.headers["content-type"]?.split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    req.resume();
    throw new HttpError(
      415,
      failure("INVALID_ARGUMENT", `content-type must be application/json, got ${type ?? "none"}`),
    );
  }
}

/** The bearer token's claims; null in open mode. Without a valid token: 401. */
async function authorize(deps: HttpDeps, req: IncomingMessage): Promise<Claims | null> {
  if (!deps.verifier) return null;
  const bearer = req.headers.authorization?.replace(/^Bearer\s+/i, "");
  const claims = await deps.verifier.verify(bearer);
  if ("refused" in claims) {
    throw new HttpError(
      401,
      failure(
        "UNAUTHORIZED",
        `send Authorization: Bearer <token signed with HUB_SECRET> (${claims.refused === "missing" ? "no token" : `token ${claims.refused}`})`,
      ),
    );
  }
  return claims;
}

/** The path's segments, decoded; a malformed escape (`%zz`) is a bad request, not a crash. */
function pathParts(pathname: string): string[] {
  try {
    return pathname.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new HttpError(400, failure("INVALID_ARGUMENT", "path: malformed %-escape"));
  }
}

/** JSON views for operators: queues, subscriptions, connected clients, and dead letters to requeue or drop. */
async function operatorView(
  deps: HttpDeps,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  parts: string[],
) {
  const nsParam = url.searchParams.get("ns") ?? undefined;
  const ns = nsParam === undefined ? undefined : toNamespace(nsParam);
  if (ns === null) {
    throw new HttpError(400, failure("INVALID_ARGUMENT", `ns "${nsParam}" is not a valid namespace`));
  }
  if (req.method === "GET") {
    const page = pageOf(url);
    if (url.pathname === "/namespaces")
      return send(res, 200, { ok: true, ...(await namespacesView(deps, page)) });
    if (url.pathname === "/queues") {
      const { items, next } = await deps.store.stats(page, ns);
      return send(res, 200, { ok: true, queues: items, next });
    }
    if (url.pathname === "/subscriptions") {
      const { items, next } = await deps.store.subscriptions(page, ns);
      return send(res, 200, { ok: true, subscriptions: items, next });
    }
    const room = url.searchParams.get("room");
    if (url.pathname === "/rooms" && room !== null)
      return send(res, 200, await membersView(deps, ns ?? "/", room, page));
    if (url.pathname === "/rooms") {
      const { items, next } = await deps.store.rooms(ns ?? "/", page);
      return send(res, 200, { ok: true, ns: ns ?? "/", rooms: items, next });
    }
    if (url.pathname === "/clients") {
      const { clients, complete } = await deps.clients(ns);
      // In a cluster, `partial` says that a hub did not answer in time.
      return send(res, 200, {
        ok: true,
        ...clientsPage(clients, page),
        ...(complete ? {} : { partial: true }),
      });
    }
  }
  const deadNs = ns ?? "/";
  if (req.method === "GET" && parts.length === 1) {
    const { items, next } = await deps.store.listDead(deadNs, pageOf(url));
    return send(res, 200, { ok: true, ns: deadNs, deadLetters: items, next });
  }
  if (req.method === "POST" && parts.length === 2 && (parts[1] === "requeue" || parts[1] === "drop")) {
    const body = await readBody(req, 1024 * 1024);
    let messageIds: unknown;
    try {
      messageIds = (JSON.parse(body) as { messageIds?: unknown }).messageIds;
    } catch {
      throw new HttpError(400, failure("INVALID_ARGUMENT", "body: not valid JSON"));
    }
    if (!Array.isArray(messageIds) || !messageIds.every((id) => typeof id === "string")) {
      throw new HttpError(400, failure("INVALID_ARGUMENT", "body: messageIds must be an array of strings"));
    }
    if (parts[1] === "drop") {
      return send(res, 200, { ok: true, dropped: await deps.store.dropDead(deadNs, messageIds) });
    }
    const queues = await deps.core.requeueDead(deadNs, messageIds);
    return send(res, 200, { ok: true, queues });
  }
  send(res, 404, failure("INVALID_ARGUMENT", `no route ${req.method} ${url.pathname}`));
}

/** `/rooms?room=`: a room's members, each with whether it is connected now (to any hub). */
async function membersView(deps: HttpDeps, ns: string, room: string, page: PageRequest) {
  if (!isValidClientId(room)) {
    throw new HttpError(
      400,
      failure("INVALID_ARGUMENT", `room "${String(room).slice(0, 80)}" is not a valid room name`),
    );
  }
  const [{ items, next }, { clients }] = await Promise.all([
    deps.store.roomMembers(ns, room, page),
    deps.clients(ns),
  ]);
  const online = new Set(clients.map((c) => c.clientId));
  return {
    ok: true,
    ns,
    room,
    members: items.map((clientId) => ({ clientId, online: online.has(clientId) })),
    next,
  };
}

/** `?limit=` (default 100, at most 1000) and `?cursor=` (a view's `next`). */
function pageOf(url: URL): PageRequest {
  const raw = url.searchParams.get("limit");
  const limit = raw === null ? 100 : Number(raw);
  if (!Number.isInteger(limit) || limit < 1) {
    throw new HttpError(
      400,
      failure("INVALID_ARGUMENT", `limit must be a whole number from 1 to 1000, got "${raw}"`),
    );
  }
  return { limit: Math.min(limit, 1000), after: url.searchParams.get("cursor") };
}

type ClientKey = [ns: string, clientId: string, socketId: string];
const clientKey = (c: ConnectedClient): ClientKey => [c.ns, c.clientId, c.socketId];
const isClientKey = (v: unknown): v is ClientKey =>
  Array.isArray(v) && v.length === 3 && v.every((part) => typeof part === "string");
const compareKeys = (a: ClientKey, b: ClientKey) => {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return (a[i] as string) < (b[i] as string) ? -1 : 1;
  return 0;
};

/** A page of connected clients, by namespace, clientId and socket (as many as the connection limits allow). */
function clientsPage(clients: ConnectedClient[], page: PageRequest) {
  const after = page.after ? decodeCursor(page.after, isClientKey) : null;
  const sorted = clients
    .filter((c) => after === null || compareKeys(clientKey(c), after) > 0)
    .sort((a, b) => compareKeys(clientKey(a), clientKey(b)));
  const items = sorted.slice(0, page.limit);
  const last = items.at(-1);
  return {
    clients: items,
    next: sorted.length > page.limit && last ? encodeCursor(clientKey(last)) : null,
  };
}

type NamespaceRow = NamespaceSummary & { clients: number };

/**
 * The namespaces view: the store's namespaces with their connected clients, and those that have
 * connections only, each on the page whose range of names holds it. Its cursor is the store's,
 * with the page's last name beside it.
 */
async function namespacesView(deps: HttpDeps, page: PageRequest) {
  let after: { store: string | null; last: string } | undefined;
  if (page.after) {
    try {
      after = JSON.parse(Buffer.from(page.after, "base64url").toString("utf8"));
    } catch {
      after = undefined;
    }
    if (typeof after?.last !== "string" || !(after.store === null || typeof after.store === "string")) {
      throw new HttpError(
        400,
        failure("INVALID_ARGUMENT", "cursor: not a cursor of this view; start again without one"),
      );
    }
  }
  const [{ items, next }, { clients }] = await Promise.all([
    deps.store.namespaces({ limit: page.limit, after: after?.store }),
    deps.clients(),
  ]);
  const connected = new Map<string, number>();
  for (const c of clients) connected.set(c.ns, (connected.get(c.ns) ?? 0) + 1);
  const rows: NamespaceRow[] = items.map((s) => ({ ...s, clients: connected.get(s.ns) ?? 0 }));
  const listed = new Set(items.map((s) => s.ns));
  const last = items.at(-1)?.ns ?? after?.last ?? "";
  for (const [ns, clients] of connected) {
    if (listed.has(ns) || (after && ns <= after.last) || (next !== null && ns > last)) continue;
    rows.push({ ns, queues: 0, pending: 0, subscriptions: 0, rooms: 0, deadLetters: 0, clients });
  }
  rows.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));
  const cursor =
    next === null ? null : Buffer.from(JSON.stringify({ store: next, last })).toString("base64url");
  return { namespaces: rows, next: cursor };
}

/** A small JSON body (1 KiB at most); 400 when it is not JSON. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = await readBody(req, 1024);
  try {
    return JSON.parse(body);
  } catch {
    throw new HttpError(400, failure("INVALID_ARGUMENT", "body: not valid JSON"));
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const tooLarge = () =>
    new HttpError(413, failure("PAYLOAD_TOO_LARGE", `body is over the ${limit}-byte limit`));
  if (Number(req.headers["content-length"] ?? 0) > limit) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is read and dropped, so the reply still reaches the sender.
      if (size > limit) return reject(tooLarge());
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

async function sendMetrics(deps: HttpDeps, res: ServerResponse) {
  const text = await deps.registry.metrics();
  res.writeHead(200, { "content-type": deps.registry.contentType });
  res.end(text);
}

function send(res: ServerResponse, status: number, body: unknown) {
  if (res.headersSent) return;
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}
