// Test support: real hub PROCESSES (`node dist/main.js`, the compiled build), for tests that
// kill a hub (SIGKILL), restart it, or take its store away. Any store: pass the environment the
// hub should see (HUB_STORE, REDIS_URL, HUB_DB, ...). Call killHubs() in afterAll; a leftover
// child is also SIGKILLed when the test process exits.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the hub's relative paths resolve from here. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * A file of the compiled build, e.g. `built("clients/vendor.js")`. Child processes run what
 * users run: jest's globalSetup (support/build.ts) builds dist/ once before the suite.
 */
export const built = (file: string) => join(ROOT, "dist", file);

/**
 * The package's dependencies the client library must not load: all but socket.io-client and what
 * it depends on itself (socket.io-parser, which the hub's encoder builds on too).
 */
export function hubOnlyDependencies(): string[] {
  const deps = (dir: string) =>
    Object.keys(
      (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { dependencies?: object })
        .dependencies ?? {},
    );
  const client = new Set(["socket.io-client", ...deps(join(ROOT, "node_modules", "socket.io-client"))]);
  return deps(ROOT).filter((name) => !client.has(name));
}

export interface HubExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface HubProcess {
  /** http://127.0.0.1:<port>, from the hub's "hub listening" log line. */
  url: string;
  port: number;
  pid: number;
  /** Resolves when the process has exited (never rejects). */
  exited: Promise<HubExit>;
  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<HubExit>;
  /** True until the process exits. */
  alive(): boolean;
  /** Everything the hub wrote so far (the last 1 MiB of each stream). */
  stdout(): string;
  stderr(): string;
  /** stdout's JSON log lines, parsed (other lines skipped). */
  logs(): Record<string, unknown>[];
  /** A short description with the tail of the output, for failure messages. */
  describe(): string;
}

export interface SpawnOptions {
  /** How long to wait for the "hub listening" line. @default 20000 */
  startTimeoutMs?: number;
  /** Working directory (relative HUB_DB paths resolve from it). @default the repository root */
  cwd?: string;
}

const MAX_OUTPUT = 1024 * 1024;
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Starts a hub process and waits until it listens. `env` is laid over the test's own
 * environment with every hub setting (PORT, HUB_*, REDIS_URL, LOG_LEVEL) and NODE_OPTIONS
 * removed, so only what the caller passes applies; PORT defaults to 0 (a free port),
 * HUB_HOST to 127.0.0.1 and LOG_LEVEL to info (the url is read from an info line).
 * Rejects with the hub's output if it exits or stays silent instead.
 */
export async function spawnHub(
  env: Record<string, string | undefined>,
  options: SpawnOptions = {},
): Promise<HubProcess> {
  const level = env.LOG_LEVEL ?? "info";
  if (level !== "info" && level !== "debug") {
    throw new Error(`spawnHub needs LOG_LEVEL info or debug to read the url, got "${level}"`);
  }
  const base: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(HUB_.*|PORT|REDIS_URL|LOG_LEVEL|NODE_OPTIONS)$/.test(name)) base[name] = value;
  }
  const child = spawn(process.execPath, [built("main.js")], {
    cwd: options.cwd ?? ROOT,
    env: { ...base, PORT: "0", HUB_HOST: "127.0.0.1", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  installExitHook();

  let out = "";
  let err = "";
  const keep = (text: string, chunk: string) => {
    const next = text + chunk;
    return next.length > MAX_OUTPUT ? next.slice(next.length - MAX_OUTPUT) : next;
  };
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    err = keep(err, chunk);
  });

  let exit: HubExit | null = null;
  const exited = new Promise<HubExit>((resolve) => {
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      live.delete(child);
      resolve(exit);
    });
  });
  const describe = () =>
    `hub pid ${child.pid} (${exit ? `exited: code ${exit.code}, signal ${exit.signal}` : "running"})\n` +
    `--- stdout (tail) ---\n${out.slice(-4000)}\n--- stderr (tail) ---\n${err.slice(-4000)}`;

  const listening = new Promise<{ url: string; port: number }>((resolve, reject) => {
    let partial = "";
    child.stdout?.on("data", (chunk: string) => {
      out = keep(out, chunk);
      partial += chunk;
      const lines = partial.split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        const entry = parseLine(line);
        if (entry?.msg === "hub listening" && typeof entry.url === "string") {
          resolve({ url: entry.url, port: Number(entry.port) });
        }
      }
    });
    child.once("error", (e) => reject(new Error(`cannot spawn the hub: ${e.message}`)));
    void exited.then(() => reject(new Error(`the hub exited before listening\n${describe()}`)));
  });

  const timeoutMs = options.startTimeoutMs ?? 20_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the hub did not listen within ${timeoutMs} ms\n${describe()}`)),
      timeoutMs,
    );
  });
  let address: { url: string; port: number };
  try {
    address = await Promise.race([listening, timeout]);
    // One HTTP reply proves the hub's event loop has run past its start-up code: main.ts
    // installs its SIGTERM/SIGINT handlers just after logging "hub listening", and a signal
    // sent before that would kill it without a clean shutdown. Any status will do.
    await Promise.race([fetch(`${address.url}/healthz`).then((res) => res.arrayBuffer()), timeout]);
  } catch (e) {
    if (!exit) {
      child.kill("SIGKILL");
      await exited;
    }
    throw e;
  } finally {
    clearTimeout(timer);
  }

  return {
    ...address,
    pid: child.pid as number,
    exited,
    async kill(signal: NodeJS.Signals = "SIGTERM") {
      if (!exit) child.kill(signal);
      return exited;
    },
    alive: () => exit === null,
    stdout: () => out,
    stderr: () => err,
    logs: () =>
      out.split("\n").flatMap((line) => {
        const entry = parseLine(line);
        return entry ? [entry] : [];
      }),
    describe,
  };
}

/** SIGKILLs every hub process still running and waits for them to exit. */
export async function killHubs(): Promise<void> {
  await Promise.all(
    [...live].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
        }),
    ),
  );
}

function parseLine(line: string): Record<string, unknown> | null {
  if (!line.startsWith("{")) return null;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
}

function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}
