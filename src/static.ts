// The files the hub serves to browsers: the dashboard (public/dashboard/), the chat example
// (examples/chat/) and the client library's browser build (dist/browser/, at /queuehub/). They
// are read from the package's own folders, found relative to this module (src/ or dist/ alike).
// Only GET and HEAD; a path outside its folder is not found; pages may not be framed.
import { readFile, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** URL prefix → folder, each prefix ending in a slash. */
const MOUNTS: ReadonlyMap<string, string> = new Map([
  ["/dashboard/", join(ROOT, "public", "dashboard")],
  ["/examples/chat/", join(ROOT, "examples", "chat")],
  ["/queuehub/", join(ROOT, "dist", "browser")],
]);

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
};

/**
 * The hub's own pages load scripts, styles and data from the hub only and are never framed by
 * another site (so no page can trick an operator into clicking the dashboard's buttons).
 */
const PAGE_HEADERS = {
  "content-security-policy":
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-frame-options": "DENY",
};

/** The folder-less paths that lead to a folder: `/` and `/dashboard` to the dashboard, and so on. */
const REDIRECTS: ReadonlyMap<string, string> = new Map([
  ["/", "dashboard/"],
  ["/dashboard", "dashboard/"],
  ["/examples/chat", "chat/"],
]);

/** Serves the request when its path is one of the static files; false when it is not theirs. */
export async function serveStatic(
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
): Promise<boolean> {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  const redirect = REDIRECTS.get(pathname);
  if (redirect !== undefined) {
    // Relative, so it holds when a host mounts the hub's routes under a prefix of its own.
    res.writeHead(302, { location: redirect });
    res.end();
    return true;
  }
  const file = fileFor(pathname);
  if (file === undefined) return false;
  const info = file === null ? null : await stat(file).catch(() => null);
  if (file === null || info === null || !info.isFile()) {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
    res.end("not found");
    return true;
  }
  const etag = `"${info.size.toString(36)}-${Math.floor(info.mtimeMs).toString(36)}"`;
  const type = TYPES[extname(file)] ?? "application/octet-stream";
  const headers = {
    "content-type": type,
    "cache-control": "no-cache",
    etag,
    "x-content-type-options": "nosniff",
    ...(type.startsWith("text/html") ? PAGE_HEADERS : {}),
  };
  if (req.headers["if-none-match"] === etag) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  const body = await readFile(file);
  res.writeHead(200, { ...headers, "content-length": String(body.length) });
  res.end(req.method === "HEAD" ? undefined : body);
  return true;
}

/** The file a path names: undefined when no mount holds the path, null when it escapes its folder. */
function fileFor(pathname: string): string | null | undefined {
  for (const [prefix, dir] of MOUNTS) {
    if (!pathname.startsWith(prefix)) continue;
    let rest: string;
    try {
      rest = decodeURIComponent(pathname.slice(prefix.length)) || "index.html";
    } catch {
      return null;
    }
    if (rest.includes("\0") || rest.includes("\\")) return null;
    const file = normalize(join(dir, rest.endsWith("/") ? `${rest}index.html` : rest));
    return file.startsWith(dir + sep) ? file : null;
  }
  return undefined;
}
