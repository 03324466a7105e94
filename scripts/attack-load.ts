// Load figures for issue 13, run by hand (not in npm test): each scenario starts a hub process
// (`node dist/main.js`, built first) and attacks it as a stranger would, measuring what the hub
// and its other clients feel meanwhile. Figures vary with the machine's load: quote them with it.
//
//   npx tsx scripts/attack-load.ts views [--sizes 30000,100000]   views at N subscriptions (and queues, rooms, dead letters)
//   npx tsx scripts/attack-load.ts frames [--old]                 RSS under 40 connections × 2 max-size frames
//   npx tsx scripts/attack-load.ts flood                          idle TCP and handshake floods from one address
//   npx tsx scripts/attack-load.ts takeover [--per-client 0]      8,000 connections of one clientId
import { spawnSync } from "node:child_process";
import { type Socket as NetSocket, connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { io, type Socket } from "socket.io-client";
import {
  cleanUpOnExit,
  makeTempDir,
  REPO_DIR,
  RssSampler,
  readMemory,
  removeTempDir,
  type SpawnedServer,
  sleep,
  spawnServer,
} from "../bench/proc.js";
import { percentile } from "../bench/stats.js";
import { SqliteStore } from "../src/store/sqlite/index.js";

const USAGE = `Usage: npx tsx scripts/attack-load.ts <views|frames|flood|takeover> [options]

  views     fills a hub's store with N subscriptions (and as many queued entries, N/10 room
            memberships, N/10 dead letters), then reads every view page by page while another
            client publishes and waits for its acks; prints each view's latency and the acks'
  frames    40 connections each send 2 frames of the largest size the hub reads, before any
            authentication; prints the hub's RSS and /healthz latency meanwhile
            (--old: with the frame limit the hub had before, payload × batch × 1.1 ≈ 28.8 MB)
  flood     15,000 idle TCP connections, then 2,000 Engine.IO handshakes, from one address
            (127.0.0.1, with HUB_LIMIT_LOOPBACK=true standing for a stranger's address); meanwhile
            a client from 127.0.0.2 connects and publishes (--off: with the connection limits off)
  takeover  8,000 connections of one clientId, then 8,000 of distinct ids; the time of the last
            1,000 connects of each (--per-client sets HUB_MAX_CONNECTIONS_PER_CLIENT, 0: none)

Options:
  --sizes <list>     views: subscription counts (default 30000,100000)
  --old              frames: the old frame limit
  --off              flood: HUB_MAX_CONNECTIONS=0 and HUB_MAX_CONNECTIONS_PER_ADDRESS=0
  --per-client <n>   takeover: HUB_MAX_CONNECTIONS_PER_CLIENT (default: the hub's default, 10)
  -h, --help
`;

interface Hub {
  url: string;
  pid: number;
  server: SpawnedServer;
}

function build() {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const result = spawnSync(process.execPath, [join(REPO_DIR, "scripts/build.mjs")], { cwd: REPO_DIR, env });
  if (result.status !== 0) throw new Error("npm run build failed");
}

async function startHub(env: Record<string, string>): Promise<Hub> {
  const server = await spawnServer({
    name: "hub",
    command: process.execPath,
    args: [join(REPO_DIR, "dist/main.js")],
    env: { PORT: "0", HUB_HOST: "127.0.0.1", LOG_LEVEL: "info", HUB_STORE: "memory", ...env },
    timeoutMs: 120_000,
    ready: (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: unknown; url?: unknown };
        return entry.msg === "hub listening" && typeof entry.url === "string" ? entry.url : undefined;
      } catch {
        return undefined;
      }
    },
  });
  return { url: server.ready, pid: server.pid, server };
}

const ms = (n: number | undefined) => (n === undefined ? "-" : `${n.toFixed(1)} ms`);
const mib = (kb: number | undefined) => (kb === undefined ? "-" : `${(kb / 1024).toFixed(0)} MiB`);

/** Publishes with an ack every few ms on a connection of its own; the round trips, in ms. */
function ackProbe(url: string) {
  const pub = io(`${url}/probe`, {
    auth: { clientId: "probe-pub" },
    transports: ["websocket"],
    forceNew: true,
  });
  const samples: number[] = [];
  let running = true;
  const done = (async () => {
    await new Promise<void>((resolve) => pub.once("connect", () => resolve()));
    while (running) {
      const start = performance.now();
      await pub.timeout(120_000).emitWithAck("publish", { event: "ping", payload: 1, to: "nobody" });
      samples.push(performance.now() - start);
      await sleep(5);
    }
  })();
  return {
    /** Drops what was measured so far (a new phase begins). */
    reset: () => samples.splice(0),
    summary: () => ({
      n: samples.length,
      p50: percentile(samples, 50),
      p99: percentile(samples, 99),
      max: samples.length ? Math.max(...samples) : undefined,
    }),
    async stop() {
      running = false;
      await done;
      pub.close();
    },
  };
}

function summaryLine(name: string, s: { n: number; p50?: number; p99?: number; max?: number }) {
  return `${name}: ${s.n} acks, p50 ${ms(s.p50)}, p99 ${ms(s.p99)}, max ${ms(s.max)}`;
}

// ---------------------------------------------------------------------------------------------

async function views(sizes: number[]) {
  for (const n of sizes) {
    const dir = makeTempDir("view-load-");
    const file = join(dir, "hub.db");
    const filled = performance.now();
    await fill(file, n);
    console.log(
      `\n== ${n} subscriptions: store filled in ${((performance.now() - filled) / 1000).toFixed(1)} s`,
    );
    const hub = await startHub({ HUB_STORE: "sqlite", HUB_DB: file });
    const probe = ackProbe(hub.url);
    await sleep(1000);
    console.log(summaryLine("acks, idle", probe.summary()));
    const paths = [
      "/namespaces",
      "/queues",
      "/subscriptions",
      "/subscriptions?ns=/ns0",
      "/rooms?ns=/ns0",
      "/dead-letters?ns=/ns0",
      "/clients",
    ];
    for (const path of paths) {
      probe.reset();
      const times: number[] = [];
      let items = 0;
      let cursor: string | null = null;
      const started = performance.now();
      do {
        const sep = path.includes("?") ? "&" : "?";
        const t0 = performance.now();
        const res = await fetch(
          `${hub.url}${path}${sep}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
        );
        const body = (await res.json()) as { next: string | null } & Record<string, unknown>;
        times.push(performance.now() - t0);
        if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
        const list = Object.values(body).find(Array.isArray) as unknown[] | undefined;
        items += list?.length ?? 0;
        cursor = body.next;
      } while (cursor !== null);
      const total = performance.now() - started;
      const acks = probe.summary();
      console.log(
        `${path.padEnd(24)} ${String(items).padStart(7)} items in ${String(times.length).padStart(4)} pages: ` +
          `first ${ms(times[0])}, page p50 ${ms(percentile(times, 50))}, max ${ms(Math.max(...times))}, ` +
          `all ${ms(total)} | meanwhile ${summaryLine("acks", acks)}`,
      );
    }
    const metrics = await (await fetch(`${hub.url}/metrics`)).text();
    const lag = (name: string) =>
      Number(new RegExp(`^nodejs_eventloop_lag_${name}_seconds (\\S+)`, "m").exec(metrics)?.[1]) * 1000;
    console.log(
      `the hub's event-loop delay over the run (/metrics): p99 ${ms(lag("p99"))}, max ${ms(lag("max"))}`,
    );
    await probe.stop();
    await hub.server.stop();
    removeTempDir(dir);
  }
}

/** N subscriptions over 10 namespaces, one message to each subscriber, N/10 room memberships, N/10 dead letters. */
async function fill(file: string, n: number) {
  const store = await SqliteStore.open({ file, sync: "off", flushIntervalMs: 0, reserveBytes: 0 });
  const chunk = async (count: number, fn: (i: number) => Promise<unknown>) => {
    for (let i = 0; i < count; i += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, count - i) }, (_, j) => fn(i + j)));
    }
  };
  await chunk(n, (i) => store.subscribe(`/ns${i % 10}`, `client-${i}`, ["e"], null));
  const now = Date.now();
  const base = { dedupWindowMs: 120_000, maxQueueLength: 0, overflow: "reject" as const };
  for (let k = 0; k < 10; k++) {
    await store.enqueue({ ...base, ns: `/ns${k}`, now, messages: [message(`fill-${k}`, now)] });
  }
  await chunk(n / 10, (i) => store.joinRoom("/ns0", `room-${i % 100}`, `client-${i}`));
  // Dead letters: a queue of one entry with drop-oldest moves each earlier message there.
  await chunk(n / 10, (i) =>
    store.enqueue({
      ...base,
      maxQueueLength: 1,
      overflow: "drop-oldest",
      ns: "/ns0",
      now,
      messages: [{ ...message(`dead-${i}`, now), to: ["dead-end"] }],
    }),
  );
  await store.close();
}

let seq = 0;
function message(payload: string, now: number) {
  const id = `01a20000-0000-7000-8000-${String(seq++).padStart(12, "0")}`;
  return { messageId: id, event: "e", payload, publishedAt: now, from: null, expiresAt: null };
}

// ---------------------------------------------------------------------------------------------

async function frames(old: boolean) {
  // The old limit: payload × batch × 1.1 = 256 KiB × 100 × 1.1.
  const env: Record<string, string> = old
    ? { HUB_MAX_BATCH_BYTES: String(Math.ceil(262_144 * 100 * 1.1) - 262_144) }
    : {};
  const hub = await startHub(env);
  const limit = old ? Math.ceil(262_144 * 100 * 1.1) : 1_310_720;
  const before = readMemory(hub.pid);
  const rss = new RssSampler(hub.pid, 20);
  // /healthz is polled from a thread of its own, so the senders' work does not count against the hub.
  const health = healthPoller(hub.url);
  // A publish packet just under the limit, sent before any namespace handshake (no auth): the hub
  // reads and parses it whole before it can tell that the connection may not publish.
  const frame = `2["publish",{"event":"e","payload":"${"x".repeat(limit - 100)}"}]`;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 40 }, async () => {
      const socket = io(hub.url, {
        transports: ["websocket"],
        forceNew: true,
        autoConnect: false,
        reconnection: false,
      });
      await new Promise<void>((resolve) => socket.io.open(() => resolve()));
      const engine = socket.io.engine as unknown as { send(data: string): void };
      engine.send(frame);
      engine.send(frame);
      await sleep(500);
      socket.io.engine.close();
    }),
  );
  const elapsed = performance.now() - started;
  await sleep(1000);
  const healthTimes = await health.stop();
  const peak = rss.stop();
  console.log(
    `frames (${old ? "old" : "new"} limit ${(limit / 1e6).toFixed(2)} MB): 40 connections × 2 frames in ${ms(elapsed)}; ` +
      `hub RSS ${mib(before?.rssKb)} → peak ${mib(peak)} (after ${mib(readMemory(hub.pid)?.rssKb)}); ` +
      `/healthz p50 ${ms(percentile(healthTimes, 50))}, max ${ms(Math.max(...healthTimes))}`,
  );
  await hub.server.stop();
}

/** Polls GET /healthz every 20 ms from a worker thread; stop() gives the latencies, in ms. */
function healthPoller(url: string) {
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const times = []; let running = true;
     parentPort.on("message", () => { running = false; });
     (async () => {
       while (running) {
         const t0 = performance.now();
         try { await (await fetch(workerData + "/healthz")).arrayBuffer(); } catch {}
         times.push(performance.now() - t0);
         await new Promise((r) => setTimeout(r, 20));
       }
       parentPort.postMessage(times);
     })();`,
    { eval: true, workerData: url },
  );
  return {
    stop: () =>
      new Promise<number[]>((resolve) => {
        worker.once("message", (times: number[]) => {
          void worker.terminate();
          resolve(times);
        });
        worker.postMessage("stop");
      }),
  };
}

// ---------------------------------------------------------------------------------------------

async function flood(off: boolean) {
  const limits: Record<string, string> = off
    ? { HUB_MAX_CONNECTIONS: "0", HUB_MAX_CONNECTIONS_PER_ADDRESS: "0" }
    : {};
  const hub = await startHub({ HUB_LIMIT_LOOPBACK: "true", ...limits });
  const port = Number(new URL(hub.url).port);
  const before = readMemory(hub.pid);
  const rss = new RssSampler(hub.pid, 50);
  const sockets: NetSocket[] = [];
  let closedByHub = 0;
  const t0 = performance.now();
  for (let i = 0; i < 15_000; i++) {
    const s = tcpConnect({ port, host: "127.0.0.1" });
    s.on("error", () => {});
    s.on("close", () => closedByHub++);
    sockets.push(s);
    if (i % 500 === 499) await sleep(10);
  }
  await sleep(2000);
  console.log(
    `idle TCP: 15000 opened from 127.0.0.1 in ${ms(performance.now() - t0)}, ${closedByHub} closed by the hub at once, ${15000 - closedByHub} held`,
  );
  const healthy = await healthyClient(hub.url);
  console.log(`meanwhile a client from 127.0.0.2: ${healthy}`);

  const handshakes = await Promise.all(
    Array.from({ length: 2000 }, () =>
      fetch(`${hub.url}/socket.io/?EIO=4&transport=polling`).then(
        (r) => r.status,
        () => 0,
      ),
    ),
  );
  const counts = new Map<number, number>();
  for (const status of handshakes) counts.set(status, (counts.get(status) ?? 0) + 1);
  console.log(
    `handshakes from 127.0.0.1 (while its idle sockets are held): ${[...counts].map(([s, c]) => `${c} × ${s || "refused"}`).join(", ")}`,
  );
  for (const s of sockets) s.destroy();
  await sleep(1000);
  const handshakes2 = await Promise.all(
    Array.from({ length: 2000 }, () =>
      fetch(`${hub.url}/socket.io/?EIO=4&transport=polling`).then(
        (r) => r.status,
        () => 0,
      ),
    ),
  );
  counts.clear();
  for (const status of handshakes2) counts.set(status, (counts.get(status) ?? 0) + 1);
  console.log(
    `2000 handshakes from 127.0.0.1: ${[...counts].map(([s, c]) => `${c} × ${s || "refused"}`).join(", ")}`,
  );
  console.log(`meanwhile a client from 127.0.0.2: ${await healthyClient(hub.url)}`);
  console.log(`hub RSS ${mib(before?.rssKb)} → peak ${mib(rss.stop())}`);
  await hub.server.stop();
}

/** Connects from 127.0.0.2 and publishes once: how long each took, or why it failed. */
async function healthyClient(url: string): Promise<string> {
  const t0 = performance.now();
  const socket = io(url, {
    auth: { clientId: "healthy" },
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    localAddress: "127.0.0.2",
  } as Parameters<typeof io>[1]);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("connect_error", reject);
      setTimeout(() => reject(new Error("no connection in 10 s")), 10_000);
    });
    const connected = performance.now() - t0;
    await socket.timeout(10_000).emitWithAck("publish", { event: "hello", payload: 1 });
    return `connected in ${ms(connected)}, publish acked ${ms(performance.now() - t0 - connected)} later`;
  } catch (err) {
    return `FAILED: ${(err as Error).message}`;
  } finally {
    socket.close();
  }
}

// ---------------------------------------------------------------------------------------------

async function takeover(perClient: string | undefined) {
  const hub = await startHub(perClient === undefined ? {} : { HUB_MAX_CONNECTIONS_PER_CLIENT: perClient });
  for (const same of [true, false]) {
    const sockets: Socket[] = [];
    const times: number[] = [];
    for (let i = 0; i < 8000; i++) {
      const t0 = performance.now();
      const socket = io(`${hub.url}/caps`, {
        auth: { clientId: same ? "one-client" : `client-${i}` },
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
      });
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", () => resolve());
        socket.once("connect_error", reject);
      });
      times.push(performance.now() - t0);
    }
    const last = times.slice(-1000).reduce((a, b) => a + b, 0);
    const open = sockets.filter((s) => s.connected).length;
    console.log(
      `${same ? "one clientId " : "distinct ids "}: 8000 connects, the last 1000 took ${ms(last)} in all; ${open} still open; hub RSS ${mib(readMemory(hub.pid)?.rssKb)}`,
    );
    for (const s of sockets) s.close();
    await sleep(1000);
  }
  await hub.server.stop();
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      sizes: { type: "string" },
      old: { type: "boolean" },
      off: { type: "boolean" },
      "per-client": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [scenario] = positionals;
  if (values.help || scenario === undefined) return void process.stdout.write(USAGE);
  process.on("exit", cleanUpOnExit);
  process.on("SIGINT", () => process.exit(130));
  build();
  if (scenario === "views") await views((values.sizes ?? "30000,100000").split(",").map(Number));
  else if (scenario === "frames") await frames(values.old === true);
  else if (scenario === "flood") await flood(values.off === true);
  else if (scenario === "takeover") await takeover(values["per-client"]);
  else {
    process.stderr.write(`unknown scenario ${scenario}\n\n${USAGE}`);
    process.exit(2);
  }
  process.exit(0);
}

void main();
