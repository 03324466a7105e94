// Which web pages may use the hub through a visitor's browser (PROTOCOL.md, "Open mode and
// exposure"). A page's origin passes when it is listed (`HUB_CORS_ORIGINS`), or when it is the
// hub's own origin under a host name the hub answers to: its loopback names, the address it
// listens on, the listed origins' hosts. So a page whose name was rebound to the hub's address
// (DNS rebinding: Host evil.example, Origin http://evil.example) is a foreign page. A request
// without `Origin` is not a browser's cross-site request (Node clients, CLIs, curl) and passes.
//
// Browsers send no `Origin` on a page's GET to its own origin, so a rebound page's polling
// handshake or view read would pass as a Node client's. A hub that listens on loopback only can be
// reached under loopback names only, so there every request must name the hub, in `Host`, by a
// host it answers to (as Redis's protected mode and webpack's allowedHosts do): the rebound name
// is refused whatever the headers. A hub that listens beyond loopback has tokens (or was told
// HUB_INSECURE=1), which a rebound page does not get.
import type { IncomingMessage, ServerResponse } from "node:http";
import { isLoopback } from "./address.js";

/** Host names that always mean this machine. */
const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];
/** Listen addresses that name no host (every interface). */
const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]", ""]);

export class OriginError extends Error {
  override name = "OriginError";
}

/**
 * Normalises one `HUB_CORS_ORIGINS` entry to an origin (`https://app.example`, `*` for any);
 * throws OriginError for anything that is not a bare origin.
 */
export function parseOrigin(entry: string): string {
  if (entry === "*") return entry;
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    throw new OriginError(`"${entry}" is not an origin (scheme://host[:port], e.g. https://app.example)`);
  }
  if (!/^https?:$/.test(url.protocol) || url.origin === "null") {
    throw new OriginError(`"${entry}" is not an http or https origin`);
  }
  if (url.pathname !== "/" || url.search || url.hash || url.username || url.password) {
    throw new OriginError(`"${entry}" has more than an origin: write only scheme://host[:port]`);
  }
  return url.origin;
}

/** A listen address as URL writes a host name (`[::1]` for IPv6, lower case), or null. */
function hostnameOf(address: string): string | null {
  const host = address.includes(":") && !address.startsWith("[") ? `[${address}]` : address;
  try {
    return new URL(`http://${host}`).hostname;
  } catch {
    return null;
  }
}

export class OriginPolicy {
  private readonly listed: ReadonlySet<string>;
  private readonly anyOrigin: boolean;
  /** Host names a page of the hub's own origin may use. */
  private readonly ownNames: ReadonlySet<string>;
  /** The hub listens on loopback only: every request must name it by one of ownNames. */
  private readonly loopbackOnly: boolean;

  /**
   * @param origins the allowed origins (`HUB_CORS_ORIGINS`, normalised by parseOrigin)
   * @param listenHost the address the hub listens on (`HUB_HOST`), one of its names unless it is a wildcard
   */
  constructor(origins: readonly string[], listenHost = "") {
    this.anyOrigin = origins.includes("*");
    this.listed = new Set(origins.filter((o) => o !== "*"));
    const names = new Set(LOOPBACK_NAMES);
    if (!WILDCARD_HOSTS.has(listenHost)) {
      const name = hostnameOf(listenHost);
      if (name) names.add(name);
    }
    for (const origin of this.listed) names.add(new URL(origin).hostname);
    this.ownNames = names;
    this.loopbackOnly = isLoopback(listenHost);
  }

  /** True when the request may use the hub: not a browser's, or from a page allowed to. */
  allows(req: IncomingMessage): boolean {
    const { origin, host } = req.headers;
    if (this.loopbackOnly && host !== undefined && !this.isOwnHost(host)) return false;
    return origin === undefined || this.isListed(origin) || this.isOwn(origin, host);
  }

  /** The origin to answer with in `Access-Control-Allow-Origin`, or null for none. */
  corsOrigin(origin: string | undefined): string | null {
    return origin !== undefined && this.isListed(origin) ? origin : null;
  }

  /** Why a request is refused, for the refusal's message. */
  refusal(req: IncomingMessage): string {
    const { origin, host } = req.headers;
    if (origin === undefined || (this.loopbackOnly && host !== undefined && !this.isOwnHost(host))) {
      return `this hub listens on loopback and answers to localhost, 127.0.0.1 and [::1], not ${String(host).slice(0, 200)}: use one of those names, or list the page's origin in HUB_CORS_ORIGINS`;
    }
    return `origin ${origin.slice(0, 200)} is not allowed: list it in HUB_CORS_ORIGINS`;
  }

  private isListed(origin: string): boolean {
    return this.anyOrigin || this.listed.has(origin);
  }

  private isOwnHost(host: string): boolean {
    try {
      return this.ownNames.has(new URL(`http://${host}`).hostname);
    } catch {
      return false;
    }
  }

  /** The page is the hub's own: the host and port of the request's Host, under a name the hub answers to. */
  private isOwn(origin: string, host: string | undefined): boolean {
    if (host === undefined) return false;
    try {
      const page = new URL(origin);
      if (!/^https?:$/.test(page.protocol)) return false;
      return page.host === new URL(`${page.protocol}//${host}`).host && this.ownNames.has(page.hostname);
    } catch {
      return false;
    }
  }
}

/** Request headers a page may send to the hub's HTTP routes. */
const ALLOWED_HEADERS = "authorization, content-type, idempotency-key";

/**
 * CORS on the hub's own HTTP routes: `Access-Control-Allow-Origin` for a listed origin, and
 * preflight requests (`OPTIONS`) answered here. Returns true when it answered the request.
 */
export function answerCors(policy: OriginPolicy, req: IncomingMessage, res: ServerResponse): boolean {
  const allowed = policy.corsOrigin(req.headers.origin);
  res.setHeader("Vary", "Origin");
  if (allowed) res.setHeader("Access-Control-Allow-Origin", allowed);
  if (req.method !== "OPTIONS") return false;
  if (allowed) {
    res.writeHead(204, {
      "Access-Control-Allow-Methods": "GET, POST",
      "Access-Control-Allow-Headers": ALLOWED_HEADERS,
      "Access-Control-Max-Age": "600",
    });
    res.end();
  } else {
    res.writeHead(403, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: false, error: { code: "FORBIDDEN", message: policy.refusal(req) } }));
  }
  return true;
}
