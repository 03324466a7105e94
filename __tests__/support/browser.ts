// Test support for the Chromium tests: Debian's Chromium driven by playwright-core (never a
// browser download), and a tiny static server on port 0 that serves pages from a second origin.
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
/** A name the browser resolves to this machine, as an attacker's name rebound to it would be (DNS rebinding). */
export const REBOUND_HOST = "rebound.example";

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      `--host-resolver-rules=MAP ${REBOUND_HOST} 127.0.0.1`,
    ],
    timeout: 60_000,
  });
}

/** Collects a page's uncaught errors and failed requests' console lines, for assertions. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  return errors;
}

export interface StaticSite {
  /** http://127.0.0.1:<port> */
  origin: string;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

/** An empty page every StaticSite serves, for tests that build their page themselves. */
export const BLANK = "/blank.html";

/** Serves the files of `dir` at `/` from an origin of its own, as another site would (and BLANK). */
export async function serveFolder(dir: string): Promise<StaticSite> {
  const root = normalize(dir);
  const server: Server = createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://site").pathname;
    if (path === BLANK) {
      res.writeHead(200, { "content-type": TYPES[".html"] });
      return void res.end("<!doctype html><title>blank</title>");
    }
    const file = normalize(join(root, path.endsWith("/") ? `${path}index.html` : path));
    if (!file.startsWith(root + sep)) return void res.writeHead(404).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
