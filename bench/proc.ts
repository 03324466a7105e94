// Child-process helpers: servers under test, load processes (with an RPC over the IPC channel),
// memory readings from /proc, ports.

import { type ChildProcess, fork, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { LoopDelay, ServerHandle } from "./types.js";

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = dirname(BENCH_DIR);

/** `node --import <tsx loader>`: runs a .ts file in ONE process (unlike the tsx CLI, which forks). */
export const TSX_EXEC_ARGV = ["--import", pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href];

const TAIL_LINES = 40;

/** How long a server under test may take to say it is ready. */
export const SERVER_READY_TIMEOUT_MS = 90_000;

/** Every child this process started and that may still run: killed if the benchmark exits early. */
const children = new Set<ChildProcess>();

function track(child: ChildProcess): void {
  children.add(child);
  child.once("exit", () => children.delete(child));
}

/** Temporary directories still in use: removed if the benchmark exits early. */
const tempDirs = new Set<string>();

/** Makes a temporary directory that {@link removeTempDir} (or an early exit) deletes. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Kills every child still running and removes the temporary directories (synchronous: safe in an "exit" handler). */
export function cleanUpOnExit(): void {
  for (const child of children) child.kill("SIGKILL");
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}

/** Keeps the last lines of a stream for error reports; calls `onLine` for each line. */
function tailLines(
  stream: NodeJS.ReadableStream | null,
  tail: string[],
  onLine?: (line: string) => void,
): void {
  if (!stream) return;
  let partial = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    for (const line of parts) {
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      onLine?.(line);
    }
  });
}

export interface SpawnedServer {
  child: ChildProcess;
  pid: number;
  /** What `ready` extracted from the server's output (a URL or a port). */
  ready: string;
  logTail(): string[];
  stop(): Promise<void>;
}

export interface SpawnServerOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Looks at each stdout/stderr line; returns a value once the server is ready. */
  ready: (line: string) => string | undefined;
  /** Alternatively: resolves once the server is ready (e.g. a port accepts connections). */
  probe?: () => Promise<string | undefined>;
  timeoutMs?: number;
}

/** Spawns a server process and waits until it says (or a probe finds) that it is ready. */
export function spawnServer(opts: SpawnServerOptions): Promise<SpawnedServer> {
  const child = spawn(opts.command, opts.args, {
    cwd: opts.cwd ?? REPO_DIR,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  track(child);
  const tail: string[] = [];
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.once("exit", () => {
      exited = true;
      resolve();
    });
  });
  const stop = async () => {
    if (exited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exitPromise;
    clearTimeout(timer);
  };
  return new Promise<SpawnedServer>((resolve, reject) => {
    let settled = false;
    const done = (err: Error | undefined, value?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        void stop().then(() => reject(err));
        return;
      }
      resolve({ child, pid: child.pid ?? 0, ready: value ?? "", logTail: () => [...tail], stop });
    };
    const timer = setTimeout(
      () => done(new Error(`${opts.name} not ready after ${opts.timeoutMs ?? 20000} ms\n${tail.join("\n")}`)),
      opts.timeoutMs ?? 20000,
    );
    const onLine = (line: string) => {
      const value = opts.ready(line);
      if (value !== undefined) done(undefined, value);
    };
    tailLines(child.stdout, tail, onLine);
    tailLines(child.stderr, tail, onLine);
    child.once("error", (err) => done(err));
    child.once("exit", (code, signal) =>
      done(
        new Error(
          `${opts.name} exited (${signal ?? `code ${code}`}) before it was ready\n${tail.join("\n")}`,
        ),
      ),
    );
    if (opts.probe) {
      const poll = async () => {
        while (!settled) {
          const value = await opts.probe?.().catch(() => undefined);
          if (value !== undefined) return done(undefined, value);
          await sleep(50);
        }
      };
      void poll();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Memory

export interface ProcMemory {
  /** Resident set size now, KiB. */
  rssKb: number;
  /** Peak resident set size since the process started (VmHWM), KiB. */
  hwmKb: number;
}

export function readMemory(pid: number): ProcMemory | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
    return { rssKb: field("VmRSS"), hwmKb: field("VmHWM") };
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process has used so far, in ms; undefined once it is gone. */
export function readCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return undefined;
  }
}

/** Linux's USER_HZ, the unit of /proc/<pid>/stat's times (100 on every mainstream architecture). */
const CLOCK_TICKS_PER_S = 100;

/** The pid of a running process whose command name (/proc/<pid>/comm) is `comm`, if exactly findable. */
export function findPidByName(comm: string): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === comm) return Number(entry);
    } catch {
      // the process went away
    }
  }
  return undefined;
}

/** Samples a process's RSS: the peak over the sampling period (for processes we did not start). */
export class RssSampler {
  peakKb = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pid: number | undefined,
    intervalMs = 100,
  ) {
    if (pid === undefined) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): number | undefined {
    if (this.pid === undefined) return undefined;
    const mem = readMemory(this.pid);
    if (mem && mem.rssKb > this.peakKb) this.peakKb = mem.rssKb;
    return mem?.rssKb;
  }

  stop(): number {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    return this.peakKb;
  }
}

// ---------------------------------------------------------------------------------------------
// Network

/**
 * How often prom-client's event-loop monitor samples (its default `eventLoopMonitoringPrecision`,
 * which the hub keeps; the bench's relay serves the same metrics). Each sample is the time between two
 * of its timer ticks, so an idle loop reads this much: it is taken off every figure.
 */
export const LOOP_SAMPLE_MS = 10;

/**
 * A server's event-loop delay from its Prometheus text at `metricsUrl` (prom-client's default
 * `nodejs_eventloop_lag_p99_seconds` and `_max_seconds`, reset by each scrape), beyond the
 * sampling interval; undefined when it does not answer with them. It counts the time the loop was
 * busy and the time the process was not running at all (a busy machine's share).
 */
export async function scrapeLoopDelay(metricsUrl: string): Promise<LoopDelay | undefined> {
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return undefined;
    const text = await res.text();
    const delayMs = (name: string) => {
      const seconds = Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
      return Math.max(0, seconds * 1000 - LOOP_SAMPLE_MS);
    };
    const p99Ms = delayMs("nodejs_eventloop_lag_p99_seconds");
    const maxMs = delayMs("nodejs_eventloop_lag_max_seconds");
    return Number.isFinite(p99Ms) && Number.isFinite(maxMs) ? { p99Ms, maxMs } : undefined;
  } catch {
    return undefined;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves with undefined if host:port accepts a TCP connection, or with the error message. */
export function tcpProbe(host: string, port: number, timeoutMs = 1500): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const finish = (error?: string) => {
      socket.destroy();
      resolve(error);
    };
    socket.setTimeout(timeoutMs, () => finish(`no answer within ${timeoutMs} ms`));
    socket.once("connect", () => finish());
    socket.once("error", (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
  });
}

// ---------------------------------------------------------------------------------------------
// Load processes

export interface LoadMessage {
  type: "reply" | "progress";
  id?: number;
  ok?: boolean;
  result?: unknown;
  error?: string;
  progress?: Record<string, number>;
}

/** A `bench/load.ts` child process, driven by request/reply calls over the IPC channel. */
export class LoadProcess {
  readonly child: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly tail: string[] = [];
  private exitError: Error | undefined;
  progress: Record<string, number> = {};

  constructor(public label: string) {
    // --cpu-prof-clients: each load process writes a profile when it exits (see kill()).
    const profileDir = process.env.BENCH_CLIENT_CPU_PROF_DIR;
    const profile = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${join(profileDir, label)}`] : [];
    this.child = fork(join(BENCH_DIR, "load.ts"), [label], {
      cwd: REPO_DIR,
      execArgv: [...TSX_EXEC_ARGV, "--max-old-space-size=4096", ...profile],
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    track(this.child);
    tailLines(this.child.stdout, this.tail);
    tailLines(this.child.stderr, this.tail);
    this.child.on("message", (raw) => {
      const msg = raw as LoadMessage;
      if (msg.type === "progress" && msg.progress) {
        this.progress = msg.progress;
        return;
      }
      if (msg.type !== "reply" || msg.id === undefined) return;
      const call = this.pending.get(msg.id);
      if (!call) return;
      this.pending.delete(msg.id);
      if (msg.ok) call.resolve(msg.result);
      else call.reject(new Error(msg.error ?? "load process error"));
    });
    this.child.on("exit", (code, signal) => {
      this.exitError = new Error(
        `load process ${this.label} exited (${signal ?? `code ${code}`})${this.tail.length ? `:\n${this.tail.join("\n")}` : ""}`,
      );
      for (const call of this.pending.values()) call.reject(this.exitError);
      this.pending.clear();
    });
  }

  /** Calls `method` in the child; rejects after `timeoutMs` (0: no limit) or if the child dies. */
  call<T>(method: string, params: unknown = {}, timeoutMs = 0): Promise<T> {
    if (this.exitError) return Promise.reject(this.exitError);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          this.pending.delete(id);
          reject(
            new TimeoutError(`${this.label}: ${method} timed out after ${Math.round(timeoutMs / 1000)} s`),
          );
        }, timeoutMs);
      }
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, method, params });
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.exitError === undefined;
  }

  /** Ends the process: it exits by itself once the IPC channel closes (writing its profile, if any), else SIGKILL. */
  async kill(): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 2000);
    if (this.child.connected) this.child.disconnect();
    else this.child.kill("SIGKILL");
    await exited;
    clearTimeout(timer);
  }
}

export class TimeoutError extends Error {
  override name = "TimeoutError";
}

/**
 * Starts a TypeScript server script in its own Node process (one process: its pid is the server)
 * and waits for the JSON line `{"msg":"listening","url":...}` it prints when ready.
 */
export async function spawnTsServer(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv = {},
  readyMsg = "listening",
): Promise<SpawnedServer> {
  return spawnServer({
    name,
    command: process.execPath,
    args: [...TSX_EXEC_ARGV, script],
    env,
    // Generous: on a machine busy with other work (or a smoke run starting many processes at
    // once) a boot that takes a second alone can take tens of seconds.
    timeoutMs: SERVER_READY_TIMEOUT_MS,
    ready: (line) => {
      if (!line.startsWith("{")) return undefined;
      try {
        const parsed = JSON.parse(line) as { msg?: unknown; url?: unknown };
        return parsed.msg === readyMsg && typeof parsed.url === "string" ? parsed.url : undefined;
      } catch {
        return undefined;
      }
    },
  });
}

/**
 * Starts one of the benchmark's own servers (`bench/servers/<file>`) as a system's server:
 * `describe` gets the URL it listens on.
 */
export async function startBenchServer(
  name: string,
  file: string,
  describe: (url: string) => string,
  env: NodeJS.ProcessEnv = {},
): Promise<ServerHandle> {
  const server = await spawnTsServer(name, join(BENCH_DIR, "servers", file), env);
  return {
    endpoint: { url: server.ready },
    pid: server.pid,
    owned: true,
    describe: describe(server.ready),
    stop: server.stop,
    logTail: server.logTail,
    // The bench's Socket.IO servers answer GET /metrics with their event-loop delay.
    ...(server.ready.startsWith("http")
      ? { loopDelay: () => scrapeLoopDelay(`${server.ready}/metrics`) }
      : {}),
  };
}
