// The system under test: queuehub, spawned as `node dist/main.js` (the build `npm start` runs;
// one process, so its pid is the hub's) with PORT=0 and a fresh store; its URL comes from the
// "hub listening" log line.
// Its clients are in queuehub-client.ts.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  makeTempDir,
  REPO_DIR,
  removeTempDir,
  SERVER_READY_TIMEOUT_MS,
  scrapeLoopDelay,
  spawnServer,
  TSX_EXEC_ARGV,
  tcpProbe,
} from "../proc.js";
import { type StartOptions, type SystemDef, Unavailable } from "../types.js";
import { queuehubClient as client } from "./queuehub-client.js";

/** Extra hub environment from BENCH_HUB_ENV ("KEY=VALUE,KEY=VALUE"), set by run.ts's --hub-env. */
function extraEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of (process.env.BENCH_HUB_ENV ?? "").split(",")) {
    const eq = pair.indexOf("=");
    if (eq > 0) env[pair.slice(0, eq).trim()] = pair.slice(eq + 1);
  }
  return env;
}

/** `--cpu-prof` for the hub when run.ts's --cpu-prof set BENCH_HUB_CPU_PROF_DIR. */
function cpuProfileArgs(name: string, scenario: string): string[] {
  const dir = process.env.BENCH_HUB_CPU_PROF_DIR;
  if (!dir) return [];
  // One folder per run (under tsx, its loader thread writes a second, smaller profile there).
  return ["--cpu-prof", `--cpu-prof-dir=${join(dir, `${scenario}-${name}`)}`];
}

/** What the hub's SQLite synchronous level (its "hub listening" line says which) means on disk. */
function sqliteDurability(sync: string): { durability: string; disk: string } {
  if (sync === "full") {
    return {
      durability:
        "SQLite WAL, HUB_SYNC=full: the WAL fdatasync'd after each group commit (thread pool), before the ack",
      disk: "fsync per commit",
    };
  }
  if (sync === "normal") {
    return {
      durability:
        "SQLite WAL, synchronous=NORMAL: committed before the ack, no fsync per commit (survives kill -9, not power loss)",
      disk: "no fsync per msg",
    };
  }
  return { durability: `SQLite, synchronous=${sync.toUpperCase()}`, disk: `sync=${sync}` };
}

let built = false;

/**
 * The hub's command line: `node dist/main.js`, the compiled JavaScript `npm start` runs, built
 * once per benchmark (`scripts/build.mjs`, ~0.5 s when dist/ is up to date); from src/ through
 * tsx on a tree without that build script.
 */
function hubCommand(): { execArgv: string[]; script: string } {
  const build = join(REPO_DIR, "scripts", "build.mjs");
  if (!existsSync(build)) {
    const main = join(REPO_DIR, "src", "main.ts");
    if (!existsSync(main)) throw new Error(`the hub's entry point ${main} does not exist`);
    return { execArgv: TSX_EXEC_ARGV, script: main };
  }
  if (!built) {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const result = spawnSync(process.execPath, [build], { cwd: REPO_DIR, env, encoding: "utf8" });
    if (result.status !== 0) {
      throw new Error(`npm run build failed:\n${result.stdout ?? ""}${result.stderr ?? ""}`.trim());
    }
    built = true;
  }
  return { execArgv: [], script: join(REPO_DIR, "dist", "main.js") };
}

/** Starts one hub process and waits for its "hub listening" line. */
async function spawnHub(name: string, scenario: string, env: Record<string, string>) {
  const { execArgv, script } = hubCommand();
  let sync: string | undefined;
  const server = await spawnServer({
    name,
    command: process.execPath,
    args: [...execArgv, ...cpuProfileArgs(name, scenario), script],
    env: { PORT: "0", HUB_HOST: "127.0.0.1", LOG_LEVEL: "info", ...env },
    // Generous: on a machine busy with other work (or a smoke run starting many processes at
    // once) a boot that takes a second alone can take tens of seconds.
    timeoutMs: SERVER_READY_TIMEOUT_MS,
    ready: (line) => {
      if (!line.startsWith("{")) return undefined;
      try {
        const parsed = JSON.parse(line) as { msg?: unknown; url?: unknown; sync?: unknown };
        if (parsed.msg !== "hub listening" || typeof parsed.url !== "string") return undefined;
        if (typeof parsed.sync === "string") sync = parsed.sync;
        return parsed.url;
      } catch {
        return undefined;
      }
    },
  });
  return { server, sync };
}

function system(store: "sqlite" | "memory", sqliteSync?: "full"): SystemDef {
  const name = `queuehub-${store}${sqliteSync ? `-${sqliteSync}` : ""}`;
  return {
    name,
    durability:
      store === "sqlite"
        ? "SQLite (WAL): committed before the publish ack, commits grouped"
        : "memory only: nothing on disk",
    disk: store === "sqlite" ? "SQLite commit per group" : "memory only",
    hasQueue: true,
    async start({ prefetch, scenario }: StartOptions) {
      const dir = makeTempDir("bench-queuehub-");
      const hub = await spawnHub(name, scenario, {
        HUB_STORE: store,
        HUB_DB: join(dir, "hub.db"),
        HUB_PREFETCH: String(prefetch),
        // The scenario holds --connections idle clients and its load beside them: past the
        // hub's default limit of 10,000 connections (issue 13) the last of them were refused.
        ...(scenario === "connections" ? { HUB_MAX_CONNECTIONS: "0" } : {}),
        ...extraEnv(),
        ...(sqliteSync ? { HUB_SYNC: sqliteSync } : {}),
      }).catch((err: Error) => {
        removeTempDir(dir);
        throw err;
      });
      const { server, sync } = hub;
      const url = server.ready.replace(/\/$/, "");
      return {
        endpoint: { url },
        pid: server.pid,
        owned: true,
        describe: `queuehub (HUB_STORE=${store}${sync ? `, HUB_SYNC=${sync}` : ""}) at ${server.ready}`,
        ...(store === "sqlite" && sync ? sqliteDurability(sync) : {}),
        logTail: server.logTail,
        loopDelay: () => scrapeLoopDelay(`${url}/metrics`),
        async stop() {
          await server.stop();
          removeTempDir(dir);
        },
      };
    },
    client,
  };
}

export const queuehubSqlite = system("sqlite");
/** The SQLite store with HUB_SYNC=full: an fsync per group commit, like RabbitMQ's confirms. */
export const queuehubSqliteFull = system("sqlite", "full");
export const queuehubMemory = system("memory");

/**
 * Two hubs on one Redis (HUB_STORE=redis, a fresh key prefix per run): publishers on the first,
 * subscribers on the second, so every message crosses hubs. Memory is the first hub's.
 */
export const queuehubRedis2Hubs: SystemDef = {
  name: "queuehub-redis-2hubs",
  durability: "Redis (the shared 127.0.0.1:6379, no AOF here): in Redis memory before the ack",
  disk: "Redis memory",
  hasQueue: true,
  async start({ prefetch, scenario }: StartOptions) {
    const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
    const { hostname, port } = new URL(redisUrl);
    const error = await tcpProbe(hostname, Number(port || 6379));
    if (error) throw new Unavailable(`not reachable: Redis at ${redisUrl}: ${error}`);
    const prefix = `qhbench:${Date.now().toString(36)}:`;
    const env = {
      HUB_STORE: "redis",
      REDIS_URL: redisUrl,
      HUB_REDIS_PREFIX: prefix,
      HUB_PREFETCH: String(prefetch),
      ...extraEnv(),
    };
    const a = await spawnHub("queuehub-redis-a", scenario, env);
    const b = await spawnHub("queuehub-redis-b", scenario, env).catch(async (err: Error) => {
      await a.server.stop();
      throw err;
    });
    const urls = [a.server.ready, b.server.ready].map((u) => u.replace(/\/$/, ""));
    return {
      endpoint: { url: urls[0] as string, urls },
      pid: a.server.pid,
      cpuPids: [a.server.pid, b.server.pid],
      owned: true,
      describe: `two queuehub processes (HUB_STORE=redis, prefix ${prefix}) at ${urls.join(" and ")}`,
      logTail: () => [...a.server.logTail(), ...b.server.logTail()],
      async stop() {
        await Promise.all([a.server.stop(), b.server.stop()]);
        const { deleteKeysWithPrefix } = await import("../../src/store/redis/index.js");
        await deleteKeysWithPrefix(redisUrl, prefix);
      },
    };
  },
  client,
};
