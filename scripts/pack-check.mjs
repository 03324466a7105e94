// The packed package, used as a stranger would: `npm pack`, install the tarball into a new
// project, then start a hub with `createHub` (memory store and the default SQLite store) on
// port 0, connect `queuehub/client`, publish and receive; type-check both entry points with
// the package's own declarations; start the `queuehub` bin and run every bin's --help.
// Quick: the install skips install scripts and reuses the better-sqlite3 addon built here.
// Usage: node scripts/pack-check.mjs [--keep]   (--keep leaves the temporary project for a look)
import { execFileSync, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SHIPPED =
  /^(package\.json|README\.md|LICENSE|dist\/.+\.(js|js\.map|d\.ts|lua)|public\/.+|examples\/.+)$/;
const started = Date.now();
const tmp = mkdtempSync(join(tmpdir(), "queuehub-pack-check-"));
const app = join(tmp, "app");
const env = { ...process.env };
for (const name of Object.keys(env))
  if (/^(HUB_.*|PORT|REDIS_URL|LOG_LEVEL|NODE_OPTIONS)$/.test(name)) delete env[name];

let stepStarted = started;
const step = (what) => {
  const now = Date.now();
  process.stdout.write(`pack-check: (+${((now - stepStarted) / 1000).toFixed(1)} s) ${what}\n`);
  stepStarted = now;
};
const sh = (cmd, args, cwd, extra = {}) =>
  execFileSync(cmd, args, {
    cwd,
    env: { ...env, ...extra },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
const fail = (message) => {
  process.stderr.write(`pack-check: FAILED: ${message}\n(the project is kept in ${tmp})\n`);
  process.exit(1);
};

try {
  step("npm pack (its `prepare` builds first)");
  // npm prints the lifecycle scripts' banners before its JSON.
  const packed = sh("npm", ["pack", "--json", "--pack-destination", tmp], ROOT);
  const [{ filename, files, size }] = JSON.parse(packed.slice(packed.indexOf("[")));
  const paths = files.map((f) => f.path);
  const stray = paths.filter((path) => !SHIPPED.test(path) || /(?<!\.d)\.ts$/.test(path));
  if (stray.length > 0) fail(`the tarball ships files it should not: ${stray.join(", ")}`);
  step(`${filename}: ${paths.length} files, ${(size / 1024).toFixed(0)} KiB`);

  mkdirSync(app);
  writeFileSync(
    join(app, "package.json"),
    JSON.stringify({ name: "queuehub-pack-check", private: true, type: "module" }, null, 2),
  );
  step("npm install the tarball into a new project (no install scripts, registry cache first)");
  sh(
    "npm",
    ["install", join(tmp, filename), "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"],
    app,
  );
  reuseSqliteAddon();

  step("createHub (memory, SQLite) and attachHub, with queuehub/client");
  cpSync(join(ROOT, "scripts/pack-check/app.mjs"), join(app, "app.mjs"));
  sh(process.execPath, ["app.mjs"], app, { CHECK_DB: join(tmp, "data", "hub.db") });

  step("tsc on both entry points, with the package's own declarations (skipLibCheck off)");
  cpSync(join(ROOT, "scripts/pack-check/types.ts"), join(app, "types.ts"));
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify(tsconfig(), null, 2));
  const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin/tsc");
  sh(process.execPath, [tsc, "-p", app], app);

  step("the bins: --help; `queuehub` starts a hub that serves its browser files, and stops on SIGTERM");
  const { bin } = JSON.parse(readFileSync(join(app, "node_modules/queuehub/package.json"), "utf8"));
  for (const name of Object.keys(bin)) {
    const help = sh("npx", ["--no-install", name, "--help"], app);
    if (!help.startsWith(`Usage: ${name} `) && !help.includes(`\nUsage: ${name} `)) {
      fail(`npx ${name} --help printed:\n${help}`);
    }
  }
  await startBinHub();
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
step(`passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (process.argv.includes("--keep")) process.stdout.write(`pack-check: kept ${tmp}\n`);
else rmSync(tmp, { recursive: true, force: true });

/** Copies the addon built by this project's install, when the installed version is the same. */
function reuseSqliteAddon() {
  const version = (dir) => JSON.parse(readFileSync(join(dir, "better-sqlite3/package.json"), "utf8")).version;
  const ours = join(ROOT, "node_modules");
  const theirs = join(app, "node_modules");
  if (version(ours) === version(theirs)) {
    cpSync(join(ours, "better-sqlite3/build"), join(theirs, "better-sqlite3/build"), { recursive: true });
  } else {
    step(
      `better-sqlite3 ${version(theirs)} differs from ours (${version(ours)}): building it (about a minute)`,
    );
    sh("npm", ["rebuild", "better-sqlite3"], app);
  }
}

/**
 * The `queuehub` bin as the project's npm scripts and PATH run it (node_modules/.bin, through
 * its shebang; not npx, which does not pass SIGTERM on), on the default SQLite store: waits
 * for "hub listening", asks /healthz and the files it serves to browsers from the installed
 * package (the dashboard, the chat example when shipped, the client's browser build), and stops it
 * with SIGTERM.
 */
function startBinHub() {
  const child = spawn(join(app, "node_modules/.bin/queuehub"), [], {
    cwd: app,
    env: { ...env, PORT: "0", HUB_HOST: "127.0.0.1", HUB_DB: join(tmp, "bin", "hub.db") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const stopWith = (message) => {
    child.kill("SIGKILL");
    fail(`${message}\n${out}`);
  };
  const timer = setTimeout(() => stopWith("the queuehub bin did not listen within 30 s:"), 30_000);
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    out += chunk;
  });
  child.stdout.on("data", (chunk) => {
    out += chunk;
    const line = out.split("\n").find((l) => l.includes('"hub listening"'));
    if (!line || child.killed) return;
    clearTimeout(timer);
    const { url } = JSON.parse(line);
    const installed = join(app, "node_modules/queuehub");
    const paths = ["/healthz", "/dashboard/", "/queuehub/client.js"];
    if (existsSync(join(installed, "examples/chat"))) paths.push("/examples/chat/");
    Promise.all(
      paths.map(async (path) => {
        const res = await fetch(`${url}${path}`);
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`GET ${path} of the bin's hub: ${res.status}`);
      }),
    ).then(
      () => child.kill("SIGTERM"),
      (err) => stopWith(err.message),
    );
  });
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code !== 0)
        fail(`the queuehub bin exited with code ${code} (signal ${signal}) after SIGTERM:\n${out}`);
      resolve();
    });
  });
}

function tsconfig() {
  return {
    compilerOptions: {
      target: "ES2022",
      module: "nodenext",
      moduleResolution: "nodenext",
      strict: true,
      noEmit: true,
      skipLibCheck: false,
    },
    files: ["types.ts"],
  };
}
