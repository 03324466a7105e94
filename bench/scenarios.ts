// One (scenario, system) run: start (or find) the server, fork the load processes, drive them,
// measure, clean up. Every run gets a fresh server process where the benchmark starts it, so a
// run's peak RSS (VmHWM) is its own.

import type { IdleStats, PublishRequest, PublishStats, SubscriberStats } from "./load.js";
import { LoadProcess, RssSampler, readCpuMs, readMemory, sleep, TimeoutError } from "./proc.js";
import { Histogram } from "./stats.js";
import { loadSystem } from "./systems/index.js";
import {
  type LoopDelay,
  type RunPlan,
  type ScenarioName,
  type ServerHandle,
  type SystemDef,
  Unavailable,
} from "./types.js";

export interface BenchOptions {
  scenarios: ScenarioName[];
  /** The systems each scenario runs, in table order. */
  systems: Partial<Record<ScenarioName, string[]>>;
  throughputMessages: number;
  singlesMessages: number;
  /** Publishes in flight in the singles scenario and the sweep (the issue's 256). */
  singlesWindow: number;
  /**
   * Rounds of the singles scenario: every system once per round, in turn; each reported row is
   * the system's median round by msg/s (see medianRounds).
   */
  singlesRounds: number;
  /** Seconds each rate of the latency sweep lasts; the warm-up lasts a fifth of it. */
  sweepSeconds: number;
  /** Rates of the sweep, in percent of each system's singles peak. */
  sweepPercents: number[];
  fanoutMessages: number;
  fanoutSubscribers: number;
  backlogMessages: number;
  connections: number;
  connectionProcs: number;
  connectionMessages: number;
  /** Load processes the fan-out subscribers are spread over. */
  subProcs: number;
  payloadBytes: number;
  window: number;
  batch: number;
  prefetch: number;
  /** Longest a run may take, seconds. */
  timeoutS: number;
  /** A run with no progress at all for this long is aborted, seconds. */
  stallS: number;
  smoke: boolean;
}

export type RowStatus = "ok" | "not reachable" | "n/a" | "timeout" | "error";

/**
 * Each system's median round, from rounds that ran every system once each, in turn. On a shared
 * 2-core VM the machine's speed drifts by more than a tenth within minutes; a system measured once
 * gets whatever moment it ran in, and a ratio of two such moments says more about the machine than
 * about the systems. Every system gets the same number of rounds and its median (a round that did
 * not finish counts as the slowest), so no one is picked at its best.
 */
export function medianRounds(rounds: ResultRow[][]): ResultRow[] {
  const [first] = rounds;
  if (!first || rounds.length === 1) return first ?? [];
  return first.map((row, i) => {
    const runs = rounds.map((round) => round[i]).filter((r): r is ResultRow => r?.system === row.system);
    const rate = (r: ResultRow) => (r.status === "ok" ? (r.msgPerSec ?? 0) : -1);
    const sorted = [...runs].sort((a, b) => rate(a) - rate(b));
    const median = sorted[Math.floor((sorted.length - 1) / 2)] ?? row;
    return { ...median, roundsMsgPerSec: runs.map((r) => (r.status === "ok" ? (r.msgPerSec ?? 0) : 0)) };
  });
}

/** One rate of the latency sweep. */
export interface SweepPoint {
  /** Percent of the system's singles peak. */
  percent: number;
  /** The paced publisher's rate, msg/s. */
  targetRate: number;
  /** Messages delivered per second, from the phase's first publish to its last arrival. */
  achievedRate: number;
  messages: number;
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  /** The server's own event-loop delay during this rate, when it reports it (ServerHandle.loopDelay). */
  serverLoop?: LoopDelay;
}

export interface ResultRow {
  system: string;
  status: RowStatus;
  /** Why a row has no figures (reason, error), or a caveat on its figures. */
  note?: string;
  durability: string;
  disk: string;
  server?: string;
  /** Headline rate: deliveries per second end to end (replay rate in the backlog scenario). */
  msgPerSec?: number;
  /** With several rounds (singles): each round's msg/s, in order; the row is the median one. */
  roundsMsgPerSec?: number[];
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  peakRssMb?: number;
  /**
   * The server's CPU time (user + system, every process of it) while the messages flowed, per
   * delivered message, in µs: the server's own share of the CPU that msg/s depends on. For a
   * shared service (RabbitMQ, NATS) its own background work counts too.
   */
  serverCpuUsPerMsg?: number;
  /** "VmHWM": exact peak of a process this run started; "sampled": every 100 ms, shared service. */
  rssSource?: "VmHWM" | "sampled";
  published?: number;
  delivered?: number;
  duplicates?: number;
  /** Publisher side: acked publishes per second. */
  publishPerSec?: number;
  elapsedS?: number;
  /** Backlog: publish rate into the offline queue, RSS once queued, replay rate. */
  enqueuePerSec?: number;
  queuedRssMb?: number;
  /** Connections scenario. */
  clients?: number;
  connected?: number;
  connectS?: number;
  idleRssMb?: number;
  connectedRssMb?: number;
  kbPerClient?: number;
  /** Wall time of the whole run, setup and clean-up included; and of the clean-up alone. */
  runS?: number;
  cleanupS?: number;
  /** Last lines of the server's output, when the run failed. */
  serverLog?: string[];
  /** Latency sweep: the singles peak it is paced from, and each rate's figures. */
  peakMsgPerSec?: number;
  sweep?: SweepPoint[];
}

/** queuehub's msg/s divided by each baseline's: ratios[queuehubSystem][baseline]. */
export type Ratios = Record<string, Record<string, number>>;

/** What the issues ask of queuehub, checked on each run's own figures. */
export interface Target {
  issue: number;
  /** e.g. "queuehub-sqlite ÷ mosquitto" or "queuehub-sqlite p99". */
  label: string;
  value?: number;
  op: ">=" | "<=";
  limit: number;
  unit: "×" | "ms";
  met?: boolean;
}

export interface ScenarioResult {
  rows: ResultRow[];
  ratios: Ratios;
  targets: Target[];
}

/** The JSON a run writes (bench/results/<date>.json), from which the chart is drawn. */
export interface BenchResults {
  date: string;
  durationS: number;
  machine: {
    cpuModel?: string;
    cpus: number;
    memoryGb: number;
    os: string;
    node: string;
    commit?: string;
    /** os.loadavg() when the run started: 1, 5 and 15 minutes. */
    loadAverage: number[];
  };
  loadAverageAtEnd?: number[];
  options: BenchOptions;
  scenarios: Partial<Record<ScenarioName, ScenarioResult>>;
}

/**
 * Load processes kept between runs. Only smoke runs reuse them (to save the boot of a few dozen
 * processes); real runs give every system fresh, cold client processes.
 */
export class LoadPool {
  private readonly idle: LoadProcess[] = [];

  constructor(private readonly reuse: boolean) {}

  acquire(label: string): LoadProcess {
    const reused = this.reuse ? this.idle.pop() : undefined;
    if (!reused) return new LoadProcess(label);
    reused.label = label;
    reused.progress = {};
    return reused;
  }

  /** Returns processes that closed their clients cleanly; kills the others. */
  async release(procs: LoadProcess[], closed: boolean[]): Promise<void> {
    await Promise.all(
      procs.map(async (p, i) => {
        if (this.reuse && closed[i] && p.alive) this.idle.push(p);
        else await p.kill();
      }),
    );
  }

  async drain(): Promise<void> {
    await Promise.all(this.idle.splice(0).map((p) => p.kill()));
  }
}

export interface Ui {
  status(text: string): void;
}

/** A phase of the latency sweep: the warm-up (percent 0: not reported) or one rate. */
interface SweepPhase {
  percent: number;
  rate: number;
  count: number;
}

/** The sweep's phases for a system whose singles peak is `peak` msg/s. */
export function sweepPhases(opts: BenchOptions, peak: number): SweepPhase[] {
  const phase = (percent: number, seconds: number, ratePercent = percent) => {
    const rate = (peak * ratePercent) / 100;
    return { percent, rate, count: Math.max(10, Math.round(rate * seconds)) };
  };
  const first = opts.sweepPercents[0] ?? 25;
  return [
    phase(0, opts.sweepSeconds / 5, first),
    ...opts.sweepPercents.map((p) => phase(p, opts.sweepSeconds)),
  ];
}

export function planFor(scenario: ScenarioName, opts: BenchOptions, peak?: number): RunPlan {
  const singles = scenario === "singles" || scenario === "sweep";
  const messages = {
    throughput: opts.throughputMessages,
    singles: opts.singlesMessages,
    sweep: sweepPhases(opts, peak ?? 0).reduce((sum, p) => sum + p.count, 0),
    fanout: opts.fanoutMessages,
    backlog: opts.backlogMessages,
    connections: opts.connectionMessages,
  }[scenario];
  return {
    runId: Math.random().toString(36).slice(2, 8),
    scenario,
    subscribers: scenario === "fanout" ? opts.fanoutSubscribers : 1,
    messages,
    payloadBytes: opts.payloadBytes,
    prefetch: opts.prefetch,
    window: singles ? opts.singlesWindow : opts.window,
    batch: singles ? 1 : opts.batch,
    mode: singles ? "singles" : "batch",
  };
}

/** Spreads `n` items over `parts` groups as evenly as possible (no empty groups). */
function split(n: number, parts: number): number[] {
  const groups = Math.max(1, Math.min(parts, n));
  return Array.from({ length: groups }, (_, i) => Math.floor(n / groups) + (i < n % groups ? 1 : 0));
}

const mb = (kb: number | undefined) => (kb === undefined || Number.isNaN(kb) ? undefined : kb / 1024);

/** How much of a run's work is done: published plus received messages, against the total. */
interface Goal {
  done(): number;
  total: number;
}

/** Seconds of progress history the watchdog projects from. */
const PROJECTION_WINDOW_S = 30;

/**
 * Runs `work`, aborting it when the load processes stop making progress, when the run takes
 * longer than the time limit, or (given a goal) as soon as the rate of the last 30 s projects a
 * finish far beyond that limit: a system that slows down quadratically is not waited for.
 */
function watchdog<T>(
  work: Promise<T>,
  procs: LoadProcess[],
  opts: BenchOptions,
  describe: () => string,
  goal?: Goal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const started = Date.now();
    let last = "";
    let lastChange = started;
    const history: [number, number][] = [];
    const fail = (message: string) => {
      clearInterval(timer);
      reject(new TimeoutError(`${message} (${describe()})`));
    };
    const timer = setInterval(() => {
      const now = Date.now();
      const snapshot = JSON.stringify(procs.map((p) => p.progress));
      if (snapshot !== last) {
        last = snapshot;
        lastChange = now;
      }
      if (now - lastChange > opts.stallS * 1000) return fail(`no progress for ${opts.stallS} s`);
      if (now - started > opts.timeoutS * 1000) return fail(`still running after ${opts.timeoutS} s`);
      if (!goal) return;
      const done = goal.done();
      history.push([now, done]);
      while (history.length > 1 && (history[0]?.[0] ?? now) < now - PROJECTION_WINDOW_S * 1000)
        history.shift();
      const [then, doneThen] = history[0] ?? [now, done];
      if (now - started < PROJECTION_WINDOW_S * 1000 || now - then < (PROJECTION_WINDOW_S - 1) * 1000) return;
      const rate = (done - doneThen) / ((now - then) / 1000);
      const etaS = rate > 0 ? (goal.total - done) / rate : Number.POSITIVE_INFINITY;
      if ((now - started) / 1000 + etaS > 2 * opts.timeoutS) {
        fail(
          `given up after ${Math.round((now - started) / 1000)} s: at the last ${PROJECTION_WINDOW_S} s' ` +
            `${Math.round(rate).toLocaleString("en-US")} msg/s it would need ~${Math.round(etaS / 60)} min more ` +
            `(limit --timeout ${opts.timeoutS} s)`,
        );
      }
    }, 250);
    work.then(
      (value) => {
        clearInterval(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearInterval(timer);
        reject(err);
      },
    );
  });
}

interface Flow {
  subs: LoadProcess[];
  pub: LoadProcess;
  groups: number[][];
}

function progressText(flow: Flow, plan: RunPlan): string {
  const published = flow.pub.progress.published ?? 0;
  const received = flow.subs.reduce((sum, p) => sum + (p.progress.unique ?? 0), 0);
  const dups = flow.subs.reduce((sum, p) => sum + ((p.progress.received ?? 0) - (p.progress.unique ?? 0)), 0);
  return `published ${published.toLocaleString("en-US")}/${plan.messages.toLocaleString("en-US")}, received ${received.toLocaleString("en-US")}/${(plan.messages * plan.subscribers).toLocaleString("en-US")}${dups ? ` (+${dups} duplicates)` : ""}`;
}

interface Measured {
  pubStats: PublishStats;
  subStats: SubscriberStats[];
}

/** The summed CPU time of some processes, in ms; undefined when there are none or one is gone. */
function cpuMsOf(pids: number[]): number | undefined {
  if (pids.length === 0) return undefined;
  let total = 0;
  for (const pid of pids) {
    const ms = readCpuMs(pid);
    if (ms === undefined) return undefined;
    total += ms;
  }
  return total;
}

function summarize(row: ResultRow, m: Measured, from: "publish" | "subscribe"): void {
  const latency = new Histogram();
  for (const s of m.subStats) latency.merge(Histogram.fromJSON(s.latency));
  const delivered = m.subStats.reduce((sum, s) => sum + s.unique, 0);
  const start = from === "publish" ? m.pubStats.firstAt : Math.min(...m.subStats.map((s) => s.startedAt));
  const end = Math.max(...m.subStats.map((s) => s.lastAt));
  const elapsed = (end - start) / 1000;
  row.published = m.pubStats.published;
  row.delivered = delivered;
  row.duplicates = m.subStats.reduce((sum, s) => sum + s.duplicates, 0);
  row.elapsedS = elapsed;
  row.msgPerSec = delivered / elapsed;
  row.publishPerSec = m.pubStats.published / ((m.pubStats.lastAckAt - m.pubStats.firstAt) / 1000);
  if (from === "publish") {
    row.p50Ms = latency.quantile(0.5);
    row.p99Ms = latency.quantile(0.99);
    row.maxMs = latency.count ? latency.max : undefined;
  }
}

/** Subscribers connected, then the publisher sends everything; done when all is received. */
async function liveFlow(flow: Flow, plan: RunPlan, ui: Ui, label: string): Promise<Measured> {
  ui.status(`${label}: subscribing`);
  await Promise.all(flow.subs.map((p, i) => p.call("subscribe", { indices: flow.groups[i] })));
  await flow.pub.call("connectPublisher");
  const received = flow.subs.map((p) => p.call<SubscriberStats>("waitReceived"));
  // A rejection is handled by Promise.all below; keep it from counting as unhandled meanwhile.
  for (const r of received) r.catch(() => {});
  const ticker = setInterval(() => ui.status(`${label}: ${progressText(flow, plan)}`), 250);
  try {
    const pubStats = await flow.pub.call<PublishStats>("publish");
    const subStats = await Promise.all(received);
    return { pubStats, subStats };
  } finally {
    clearInterval(ticker);
  }
}

/**
 * The latency sweep: one subscriber connected, then a paced publisher at each rate in turn, each
 * phase drained before the next starts. The first phase warms up and is not reported.
 */
async function sweepFlow(
  flow: Flow,
  server: ServerHandle,
  phases: SweepPhase[],
  ui: Ui,
  label: string,
): Promise<SweepPoint[]> {
  const [sub] = flow.subs;
  if (!sub || flow.subs.length !== 1) throw new Error("the sweep runs one subscriber process");
  ui.status(`${label}: subscribing`);
  await sub.call("subscribe", { indices: flow.groups[0], phases: phases.map((p) => p.count) });
  await flow.pub.call("connectPublisher");
  const points: SweepPoint[] = [];
  let from = 0;
  for (const [i, phase] of phases.entries()) {
    const what = phase.percent ? `${phase.percent}% of peak` : "warming up";
    ui.status(`${label}: ${what}, ${fmtRate(phase.rate)} msg/s for ${fmtRate(phase.count)} messages`);
    const request: PublishRequest = { from, count: phase.count, rate: phase.rate };
    await server.loopDelay?.(); // starts the server's count for this rate
    const pubStats = await flow.pub.call<PublishStats>("publish", request);
    from += phase.count;
    const subStats = await sub.call<SubscriberStats>("waitReceived", { count: from });
    const serverLoop = await server.loopDelay?.();
    const stats = subStats.phases[i];
    if (!phase.percent || !stats) continue;
    const latency = Histogram.fromJSON(stats.latency);
    points.push({
      percent: phase.percent,
      targetRate: phase.rate,
      achievedRate: phase.count / ((stats.lastAt - pubStats.firstAt) / 1000),
      messages: phase.count,
      p50Ms: latency.quantile(0.5),
      p99Ms: latency.quantile(0.99),
      maxMs: latency.count ? latency.max : undefined,
      ...(serverLoop ? { serverLoop } : {}),
    });
  }
  return points;
}

const fmtRate = (n: number) => Math.round(n).toLocaleString("en-US");

/** Longest wait for a broker's per-run setup (queues, streams) or teardown. */
const SETUP_TIMEOUT_MS = 20_000;

/** Awaits `work`; if it takes longer than `ms`, calls `onTimeout` (which throws) instead. */
async function withTimeout<T>(
  work: Promise<T> | undefined,
  ms: number,
  onTimeout: () => never,
): Promise<T | undefined> {
  if (!work) return undefined;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        onTimeout();
      } catch (err) {
        reject(err);
      }
    }, ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function recordPeak(row: ResultRow, server: ServerHandle, sampler: RssSampler): void {
  if (server.pid === undefined) return;
  const peakKb = server.owned ? readMemory(server.pid)?.hwmKb : sampler.stop();
  row.peakRssMb = mb(peakKb);
  row.rssSource = server.owned ? "VmHWM" : "sampled";
}

/**
 * Runs one system in one scenario. The sweep needs the system's singles peak (msg/s, from the
 * singles scenario of the same run): without it the row says so.
 */
export async function runOne(
  scenario: ScenarioName,
  name: string,
  opts: BenchOptions,
  ui: Ui,
  pool: LoadPool,
  peak?: number,
): Promise<ResultRow> {
  const def: SystemDef = await loadSystem(name);
  const row: ResultRow = { system: name, status: "ok", durability: def.durability, disk: def.disk };
  if (scenario === "backlog" && !def.hasQueue) {
    return { ...row, status: "n/a", note: "no queue: messages for an offline client are dropped" };
  }
  if (scenario === "sweep" && !(peak && peak > 0)) {
    return { ...row, status: "n/a", note: "no singles peak in this run to pace the sweep from" };
  }
  const label = `${scenario} › ${name}`;
  const runStarted = performance.now();
  const plan = planFor(scenario, opts, peak);
  const groups: number[][] = [];
  let first = 0;
  for (const size of split(plan.subscribers, scenario === "fanout" ? opts.subProcs : 1)) {
    groups.push(Array.from({ length: size }, (_, i) => first + i));
    first += size;
  }
  // Fork the load processes while the server starts: both take a moment to boot.
  const flow: Flow = {
    subs: groups.map((_, i) => pool.acquire(`${scenario}-${name}-sub${i}`)),
    pub: pool.acquire(`${scenario}-${name}-pub`),
    groups,
  };
  const idleShares = scenario === "connections" ? split(opts.connections, opts.connectionProcs) : [];
  const idleProcs = idleShares.map((_, i) => pool.acquire(`${scenario}-${name}-idle${i}`));
  const procs = [...flow.subs, flow.pub, ...idleProcs];
  let server: ServerHandle | undefined;
  let sampler: RssSampler | undefined;
  let setUp = false;
  try {
    ui.status(`${label}: starting`);
    try {
      server = await def.start({ prefetch: opts.prefetch, scenario });
    } catch (err) {
      if (err instanceof Unavailable) return { ...row, status: "not reachable", note: err.message };
      throw err;
    }
    row.server = server.describe;
    row.durability = server.durability ?? row.durability;
    row.disk = server.disk ?? row.disk;
    sampler = new RssSampler(server.pid);
    try {
      await withTimeout(def.setup?.(server, plan), SETUP_TIMEOUT_MS, () => {
        throw new Unavailable(`not reachable: no answer to the setup within ${SETUP_TIMEOUT_MS / 1000} s`);
      });
      setUp = true;
    } catch (err) {
      if (err instanceof Unavailable) return { ...row, status: "not reachable", note: err.message };
      throw err;
    }
    const endpoint = server.endpoint;
    await Promise.all(procs.map((p) => p.call("init", { system: name, endpoint, plan })));
    const describe = () => progressText(flow, plan);
    const goal: Goal = {
      done: () =>
        (flow.pub.progress.published ?? 0) + flow.subs.reduce((sum, p) => sum + (p.progress.unique ?? 0), 0),
      total: plan.messages * (1 + plan.subscribers),
    };

    if (scenario === "throughput" || scenario === "singles" || scenario === "fanout") {
      const cpuPids = server.cpuPids ?? (server.pid === undefined ? [] : [server.pid]);
      const cpuBefore = cpuMsOf(cpuPids);
      const measured = await watchdog(liveFlow(flow, plan, ui, label), procs, opts, describe, goal);
      summarize(row, measured, "publish");
      const cpuAfter = cpuMsOf(cpuPids);
      if (cpuBefore !== undefined && cpuAfter !== undefined && row.delivered) {
        row.serverCpuUsPerMsg = ((cpuAfter - cpuBefore) * 1000) / row.delivered;
      }
    } else if (scenario === "sweep") {
      row.peakMsgPerSec = peak;
      row.sweep = await watchdog(
        sweepFlow(flow, server, sweepPhases(opts, peak ?? 0), ui, label),
        procs,
        opts,
        describe,
        goal,
      );
    } else if (scenario === "backlog") {
      const measured = await watchdog(
        (async () => {
          ui.status(`${label}: subscribing, then going offline`);
          await Promise.all(flow.subs.map((p, i) => p.call("subscribe", { indices: groups[i] })));
          await Promise.all(flow.subs.map((p) => p.call("closeSubscribers")));
          await sleep(200);
          const ticker = setInterval(() => ui.status(`${label}: queueing, ${describe()}`), 250);
          const pubStats = await flow.pub.call<PublishStats>("publish").finally(() => clearInterval(ticker));
          row.enqueuePerSec = pubStats.published / ((pubStats.lastAckAt - pubStats.firstAt) / 1000);
          row.queuedRssMb = mb(server?.pid === undefined ? undefined : readMemory(server.pid)?.rssKb);
          ui.status(`${label}: reconnecting to drain`);
          const drainTicker = setInterval(() => ui.status(`${label}: draining, ${describe()}`), 250);
          try {
            await Promise.all(flow.subs.map((p, i) => p.call("subscribe", { indices: groups[i] })));
            const subStats = await Promise.all(flow.subs.map((p) => p.call<SubscriberStats>("waitReceived")));
            return { pubStats, subStats };
          } finally {
            clearInterval(drainTicker);
          }
        })(),
        procs,
        opts,
        describe,
        goal,
      );
      summarize(row, measured, "subscribe");
    } else {
      // connections: idle clients first, memory per client, then throughput while they stay.
      const limit = def.connectionLimit?.(server);
      const wanted = limit ? Math.min(opts.connections, limit.limit) : opts.connections;
      const shares = split(wanted, idleProcs.length);
      row.clients = opts.connections;
      await sleep(opts.smoke ? 50 : 300);
      const idleRss = server.pid === undefined ? undefined : readMemory(server.pid)?.rssKb;
      const idleText = () =>
        `connecting ${idleProcs.reduce((s, p) => s + (p.progress.idle ?? 0), 0).toLocaleString("en-US")}/${wanted.toLocaleString("en-US")} idle clients`;
      const ticker = setInterval(() => ui.status(`${label}: ${idleText()}`), 250);
      const idleStats = await watchdog(
        Promise.all(
          idleProcs.map((p, i) =>
            p.call<IdleStats>("idle", {
              prefix: `i${plan.runId}-${i}`,
              count: shares[i] ?? 0,
              concurrency: 50,
            }),
          ),
        ),
        procs,
        opts,
        idleText,
      ).finally(() => clearInterval(ticker));
      row.connected = idleStats.reduce((s, x) => s + x.connected, 0);
      row.connectS = Math.max(...idleStats.map((x) => x.ms)) / 1000;
      await sleep(opts.smoke ? 50 : 1000);
      const connectedRss = server.pid === undefined ? undefined : readMemory(server.pid)?.rssKb;
      row.idleRssMb = mb(idleRss);
      row.connectedRssMb = mb(connectedRss);
      if (idleRss !== undefined && connectedRss !== undefined && row.connected > 0) {
        row.kbPerClient = (connectedRss - idleRss) / row.connected;
      }
      const notes: string[] = [];
      if (limit && wanted < opts.connections) notes.push(`capped at ${wanted}: ${limit.reason}`);
      const firstError = idleStats.find((x) => x.firstError)?.firstError;
      if (row.connected < wanted) notes.push(`${wanted - row.connected} refused: ${firstError ?? "?"}`);
      const measured = await watchdog(liveFlow(flow, plan, ui, label), procs, opts, describe, goal);
      summarize(row, measured, "publish");
      if (notes.length) row.note = notes.join("; ");
    }

    recordPeak(row, server, sampler);
    return row;
  } catch (err) {
    if (err instanceof TimeoutError && server && sampler) recordPeak(row, server, sampler);
    row.status = err instanceof TimeoutError ? "timeout" : "error";
    row.note = err instanceof Error ? err.message : String(err);
    row.serverLog = server?.logTail?.().slice(-15);
    return row;
  } finally {
    const cleanupStarted = performance.now();
    sampler?.stop();
    ui.status(`${label}: cleaning up`);
    const closed = procs.map(() => false);
    await Promise.race([
      Promise.allSettled(procs.map((p, i) => p.call("closeAll").then(() => (closed[i] = true)))),
      sleep(3000),
    ]);
    await pool.release(procs, closed);
    if (server && setUp && def.teardown) {
      await withTimeout(def.teardown(server, plan), SETUP_TIMEOUT_MS, () => {
        throw new Error(`no answer within ${SETUP_TIMEOUT_MS / 1000} s`);
      }).catch((err: unknown) => {
        row.note = `${row.note ? `${row.note}; ` : ""}teardown failed: ${err instanceof Error ? err.message : err}`;
      });
    }
    await server?.stop();
    row.cleanupS = (performance.now() - cleanupStarted) / 1000;
    row.runS = (performance.now() - runStarted) / 1000;
  }
}
