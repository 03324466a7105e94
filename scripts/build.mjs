// Builds src/ into dist/: `tsc -b tsconfig.build.json` (JavaScript, declarations, source maps
// with the sources inlined), then the files the code reads at run time that tsc does not emit
// (src/**/*.lua) copied beside the compiled JavaScript, the client library bundled for browsers
// (dist/browser/client.js: ESM with socket.io-client inside, served by the hub at
// /queuehub/client.js), and the bin entries made executable.
// `tsc -b` skips the compile while dist is up to date (~0.5 s), so `npm start`, the CLIs and
// the test suite build every time. Outputs whose source is gone (a deleted or renamed file) are
// removed first, so they never ship, and dist/ is never emptied under a running hub or test.
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SRC = join(ROOT, "src");
const DIST = join(ROOT, "dist");
const ASSET = /\.lua$/;
/** dist/browser/: the client's browser build (esbuild's output, no source of its own in src/). */
const BROWSER = "browser";
/** What tsc emits for src/x.ts: dist/x.js, dist/x.js.map, dist/x.d.ts. */
const EMITTED = /\.(js|js\.map|d\.ts)$/;

function sourceOf(output) {
  if (ASSET.test(output)) return output;
  if (EMITTED.test(output)) return output.replace(EMITTED, ".ts");
  return null;
}

if (existsSync(DIST)) {
  for (const entry of readdirSync(DIST, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const output = join(entry.parentPath ?? entry.path, entry.name).slice(DIST.length + 1);
    const source = sourceOf(output);
    if (output.startsWith(`${BROWSER}/`)) continue; // the browser build, remade below
    if (source === null || !existsSync(join(SRC, source))) rmSync(join(DIST, output));
  }
}

const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin/tsc");
const compiled = spawnSync(process.execPath, [tsc, "-b", "tsconfig.build.json"], {
  cwd: ROOT,
  stdio: "inherit",
});
if (compiled.status !== 0) {
  process.stderr.write("build: tsc failed (see above)\n");
  process.exit(compiled.status ?? 1);
}

for (const file of readdirSync(SRC, { recursive: true, encoding: "utf8" })) {
  if (!ASSET.test(file)) continue;
  mkdirSync(dirname(join(DIST, file)), { recursive: true });
  copyFileSync(join(SRC, file), join(DIST, file));
}

// The browser build: the compiled client and socket.io-client's browser files in one ES module.
await build({
  entryPoints: [join(DIST, "clients/hub-client.js")],
  outfile: join(DIST, BROWSER, "client.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  minify: true,
  sourcemap: true,
  logLevel: "warning",
});

const { bin } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
for (const target of Object.values(bin)) chmodSync(join(ROOT, target), 0o755);
