// `npm run bench`: queuehub against raw Socket.IO and real brokers, side by side, in one run.
// Parses the flags, runs each (scenario, system) pair in turn (bench/scenarios.ts), prints a table
// per scenario with queuehub's ratios to each baseline, and writes everything as JSON.

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { renderChart } from "./chart.js";
import { BENCH_DIR, cleanUpOnExit, REPO_DIR } from "./proc.js";
import { printProfiles, summarizeProfileFile } from "./profile.js";
import {
  type BenchOptions,
  type BenchResults,
  LoadPool,
  medianRounds,
  type Ratios,
  type ResultRow,
  runOne,
  type ScenarioResult,
  type Target,
  type Ui,
} from "./scenarios.js";
import { type Column, fmtNumber, fmtRatio, renderTable } from "./stats.js";
import { DEFAULT_SYSTEMS, QUEUEHUB_SYSTEMS, SYSTEM_NAMES } from "./systems/index.js";
import { SCENARIOS, type ScenarioName, SINGLES_ACK_EVERY, SINGLES_ACK_MS } from "./types.js";

const HELP = `npm run bench -- [options]

Benchmarks queuehub against raw Socket.IO, Aedes, Mosquitto, RabbitMQ and NATS JetStream on
this machine, in one run. Servers and load clients run as separate processes; latency is the
publish time stamped in each payload to its arrival at the subscriber; every message is acked.
Writes the results as JSON and a chart (SVG) beside it.

Scenarios (--scenario, default all):
  throughput   1 publisher → 1 subscriber on queuehub's batch path (100 per publish, deliveries
               in arrays), --messages (default 100,000)
  singles      1 → 1 on the ordinary Socket.IO user's path: one publish per emit with an ack,
               --singles-window (default 256) in flight, one delivery event per message, acks
               batched every 100 messages or 5 ms; --singles-messages (default 100,000)
  sweep        latency against rate: a paced publisher at --sweep-percents (25,50,75,100) of each
               system's singles peak (measured first, in the same run), --sweep-seconds (8) each
  fanout       1 publisher → --subscribers (default 100) subscribers, --fanout-messages (default 10,000)
  backlog      --backlog-messages (default 1,000,000) queued for an offline subscriber, which then
               connects and drains them with acks: queue and replay msg/s, server RSS
  connections  --connections (default 10,000) idle clients from --connection-procs (default 4)
               processes: server memory per client, then --messages through 1 → 1 while they stay

Options:
  --scenario NAME[,NAME]   ${SCENARIOS.join("|")}|all (default all)
  --systems A,B,...        ${SYSTEM_NAMES.slice(0, 4).join(", ")},
                           ${SYSTEM_NAMES.slice(4).join(", ")}
                           (default: each scenario's own list, see bench/README.md; "queuehub" and
                           "baselines" = the scenario's default systems of each kind)
  --messages N             messages per run; sets every scenario's count unless its own flag is given
  --singles-messages N     messages of the singles scenario
  --singles-window N       publishes in flight in the singles scenario and the sweep (default 256)
  --singles-rounds N       rounds of the singles scenario, every system once per round in turn;
                           each row is the system's median round (default 3; --smoke 1)
  --sweep-seconds S        how long each rate of the sweep lasts (default 8; the warm-up, a fifth)
  --sweep-percents P,P,... the sweep's rates in percent of each system's singles peak
  --fanout-messages N      fan-out messages (each goes to every subscriber)
  --backlog-messages N     messages queued in the backlog scenario
  --subscribers N          fan-out subscribers (default 100), spread over --sub-procs (default 2)
  --connections N          idle clients in the connections scenario
  --connection-procs N     processes holding them (default 4)
  --payload BYTES          payload size as JSON text (default 150)
  --window N               publishes in flight, unacked (default 1000)
  --batch N                messages per publish where the system batches (queuehub, ≤ 100; default 100)
  --prefetch N             deliveries in flight per subscriber (HUB_PREFETCH, AMQP prefetch,
                           JetStream max_ack_pending, Mosquitto max_inflight_messages; default 1000)
  --timeout S              longest one run may take (default 600): the row then says "timeout"
                           with how far it got; a queuehub timeout fails the run, a baseline's does not
  --stall S                abort a run after S seconds without any progress (default 30)
  --hub-env K=V[,K=V]      extra environment for the hub processes (e.g. HUB_SYNC=full)
  --cpu-prof               profile every hub process (node --cpu-prof) into
                           bench/results/profiles/<date>/<scenario>-<system>/ and print the top
                           self-time functions of each (also written as summary.txt beside)
  --cpu-prof-clients       the same for the load processes (publishers, subscribers), into
                           .../profiles/<date>/clients/: a client busy near 100% means the
                           harness, not the system, sets the pace (not with --smoke, whose
                           load processes serve several runs)
  --profile-summary FILE   print the top self-time functions of a .cpuprofile, then exit
  --chart FILE.json        draw the chart of a saved run (FILE.svg), then exit
  --smoke                  CI check that everything still works, in seconds: tiny counts, several
                           systems at once, load processes reused (figures not comparable)
  --json-out PATH          where to write the JSON results (default bench/results/<date>.json);
                           the chart goes beside it, as .svg
  --no-color               no colour even on a terminal
  -h, --help               this text

N accepts 100k, 1m, 1_000_000. Counts are numbers of messages unless said otherwise.
Brokers: RabbitMQ BENCH_RABBITMQ_URL (amqp://guest:guest@127.0.0.1:5672), NATS BENCH_NATS_URL
(nats://127.0.0.1:4222); Mosquitto runs as a private instance (mosquitto -c <temp conf>) when the
binary is installed, else BENCH_MOSQUITTO_URL (mqtt://127.0.0.1:1883). A broker that cannot be
reached is reported as "not reachable" and does not fail the run, nor does a baseline's timeout;
any other error exits 1.`;

class UsageError extends Error {}

/** Systems a smoke run tests at once. */
const SMOKE_PARALLEL = 4;

/** Maps with at most `limit` calls in flight; results in input order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function parseCount(flag: string, text: string | undefined, min = 1): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(text.replace(/[_,]/g, ""));
  if (!m) throw new UsageError(`--${flag} wants a number, got "${text}"`);
  const value = Math.round(Number(m[1]) * ({ k: 1e3, m: 1e6 }[m[2]?.toLowerCase() ?? ""] ?? 1));
  if (value < min) throw new UsageError(`--${flag} must be at least ${min}`);
  return value;
}

function parseSeconds(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0)
    throw new UsageError(`--${flag} wants seconds > 0, got "${text}"`);
  return value;
}

function parsePercents(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const values = text.split(",").map((x) => Number(x.trim()));
  if (!values.length || values.some((v) => !Number.isFinite(v) || v <= 0 || v > 1000))
    throw new UsageError(`--sweep-percents wants percentages like 25,50,75,100, got "${text}"`);
  return values;
}

interface Cli {
  opts: BenchOptions;
  jsonOut?: string;
  color: boolean;
  hubEnv?: string;
  cpuProf: boolean;
  cpuProfClients: boolean;
  /** Instead of a run: draw the chart of this results file, or summarise this profile. */
  chartFrom?: string;
  profileSummary?: string;
}

function parseCli(argv: string[]): Cli | undefined {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      scenario: { type: "string" },
      systems: { type: "string" },
      messages: { type: "string" },
      "singles-messages": { type: "string" },
      "singles-window": { type: "string" },
      "singles-rounds": { type: "string" },
      "sweep-seconds": { type: "string" },
      "sweep-percents": { type: "string" },
      chart: { type: "string" },
      "profile-summary": { type: "string" },
      "fanout-messages": { type: "string" },
      "backlog-messages": { type: "string" },
      subscribers: { type: "string" },
      "sub-procs": { type: "string" },
      connections: { type: "string" },
      "connection-procs": { type: "string" },
      payload: { type: "string" },
      window: { type: "string" },
      batch: { type: "string" },
      prefetch: { type: "string" },
      timeout: { type: "string" },
      stall: { type: "string" },
      "hub-env": { type: "string" },
      "cpu-prof": { type: "boolean" },
      "cpu-prof-clients": { type: "boolean" },
      smoke: { type: "boolean" },
      "json-out": { type: "string" },
      "no-color": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return undefined;
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const smoke = values.smoke ?? false;

  const scenarioText = values.scenario ?? "all";
  const scenarios: ScenarioName[] = [];
  for (const s of scenarioText.split(",").map((x) => x.trim())) {
    if (s === "all") scenarios.push(...SCENARIOS);
    else if ((SCENARIOS as readonly string[]).includes(s)) scenarios.push(s as ScenarioName);
    else throw new UsageError(`unknown scenario "${s}" (${SCENARIOS.join(", ")}, all)`);
  }

  // Each scenario runs its default systems, or those named: "queuehub" and "baselines" stand for
  // the scenario's own defaults of each kind.
  const named = values.systems?.split(",").map((x) => x.trim());
  for (const s of named ?? []) {
    if (s !== "queuehub" && s !== "baselines" && !SYSTEM_NAMES.includes(s))
      throw new UsageError(`unknown system "${s}" (${SYSTEM_NAMES.join(", ")}, queuehub, baselines)`);
  }
  const systems: Partial<Record<ScenarioName, string[]>> = {};
  for (const scenario of SCENARIOS) {
    const defaults = DEFAULT_SYSTEMS[scenario];
    const list = named
      ? named.flatMap((s) =>
          s === "queuehub"
            ? defaults.filter((n) => QUEUEHUB_SYSTEMS.includes(n))
            : s === "baselines"
              ? defaults.filter((n) => !QUEUEHUB_SYSTEMS.includes(n))
              : [s],
        )
      : defaults;
    systems[scenario] = [...new Set(list)];
  }
  // The sweep paces each system from its singles peak of the same run: measure it first.
  if (scenarios.includes("sweep") && !scenarios.includes("singles")) {
    scenarios.splice(scenarios.indexOf("sweep"), 0, "singles");
    systems.singles = systems.sweep;
  }

  const messages = parseCount("messages", values.messages);
  const batch = parseCount("batch", values.batch) ?? 100;
  const opts: BenchOptions = {
    scenarios: [...new Set(scenarios)],
    systems,
    throughputMessages: messages ?? (smoke ? 300 : 100_000),
    singlesMessages:
      parseCount("singles-messages", values["singles-messages"]) ?? messages ?? (smoke ? 300 : 100_000),
    singlesWindow: parseCount("singles-window", values["singles-window"]) ?? 256,
    singlesRounds: parseCount("singles-rounds", values["singles-rounds"]) ?? (smoke ? 1 : 3),
    sweepSeconds: parseSeconds("sweep-seconds", values["sweep-seconds"]) ?? (smoke ? 0.25 : 8),
    sweepPercents: parsePercents(values["sweep-percents"]) ?? [25, 50, 75, 100],
    fanoutMessages:
      parseCount("fanout-messages", values["fanout-messages"]) ?? messages ?? (smoke ? 100 : 10_000),
    backlogMessages:
      parseCount("backlog-messages", values["backlog-messages"]) ?? messages ?? (smoke ? 300 : 1_000_000),
    connectionMessages: messages ?? (smoke ? 200 : 100_000),
    fanoutSubscribers: parseCount("subscribers", values.subscribers) ?? (smoke ? 3 : 100),
    subProcs: parseCount("sub-procs", values["sub-procs"]) ?? (smoke ? 1 : 2),
    connections: parseCount("connections", values.connections) ?? (smoke ? 20 : 10_000),
    connectionProcs: parseCount("connection-procs", values["connection-procs"]) ?? (smoke ? 1 : 4),
    payloadBytes: parseCount("payload", values.payload, 0) ?? 150,
    window: parseCount("window", values.window) ?? 1000,
    batch,
    prefetch: parseCount("prefetch", values.prefetch) ?? 1000,
    timeoutS: parseCount("timeout", values.timeout) ?? (smoke ? 15 : 600),
    stallS: parseCount("stall", values.stall) ?? (smoke ? 5 : 30),
    smoke,
  };
  const color = Boolean(process.stdout.isTTY) && !values["no-color"] && !process.env.NO_COLOR;
  return {
    opts,
    jsonOut: values["json-out"],
    color,
    hubEnv: values["hub-env"],
    cpuProf: values["cpu-prof"] ?? false,
    cpuProfClients: values["cpu-prof-clients"] ?? false,
    chartFrom: values.chart,
    profileSummary: values["profile-summary"],
  };
}

// ---------------------------------------------------------------------------------------------
// Output

function painter(color: boolean) {
  const wrap = (code: string) => (text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
  return {
    bold: wrap("1"),
    dim: wrap("2"),
    red: wrap("31"),
    green: wrap("32"),
    yellow: wrap("33"),
    cyan: wrap("36"),
  };
}

function makeUi(color: boolean): Ui & { clear(): void } {
  // Progress only on a terminal: a single status line, rewritten in place.
  const tty = Boolean(process.stdout.isTTY);
  let shown = false;
  return {
    status(text) {
      if (!tty) return;
      const width = process.stdout.columns || 100;
      const line = text.length > width - 3 ? `${text.slice(0, width - 4)}…` : text;
      process.stdout.write(`\r\x1b[K${color ? `\x1b[2m${line}\x1b[0m` : line}`);
      shown = true;
    },
    clear() {
      if (tty && shown) process.stdout.write("\r\x1b[K");
      shown = false;
    },
  };
}

const TITLES: Record<ScenarioName, (o: BenchOptions) => string> = {
  throughput: (o) =>
    `throughput: 1 publisher → 1 subscriber, ${fmtNumber(o.throughputMessages)} messages of ~${o.payloadBytes} B, batch path (${o.batch} per publish, deliveries in arrays)`,
  singles: (o) =>
    `singles: 1 → 1, ${fmtNumber(o.singlesMessages)} messages of ~${o.payloadBytes} B, one per emit (${o.singlesWindow} in flight), one delivery event per message, acks every ${SINGLES_ACK_EVERY} or ${SINGLES_ACK_MS} ms`,
  sweep: (o) =>
    `sweep: latency at ${o.sweepPercents.join("/")}% of each system's singles peak, a paced publisher, ${o.sweepSeconds} s per rate`,
  fanout: (o) =>
    `fanout: 1 publisher → ${o.fanoutSubscribers} subscribers, ${fmtNumber(o.fanoutMessages)} messages (msg/s = deliveries/s)`,
  backlog: (o) =>
    `backlog: ${fmtNumber(o.backlogMessages)} messages queued for an offline subscriber, then drained with acks`,
  connections: (o) =>
    `connections: ${fmtNumber(o.connections)} idle clients, then ${fmtNumber(o.connectionMessages)} messages 1 → 1`,
};

function cut(text: string | undefined, max = 70): string {
  if (!text) return "";
  const line = text.split("\n")[0] ?? "";
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function rssText(row: ResultRow, value: number | undefined): string {
  if (value === undefined) return "—";
  return `${fmtNumber(value, 0)}${row.rssSource === "sampled" ? "*" : ""}`;
}

function tableFor(scenario: ScenarioName, rows: ResultRow[]): { columns: Column[]; cells: string[][] } {
  const r = { align: "right" as const };
  const headline = (row: ResultRow) => (row.status === "ok" ? fmtNumber(row.msgPerSec, 0) : row.status);
  // A run that timed out keeps the figures it had measured by then (e.g. the backlog's queue rate).
  const dash = (row: ResultRow, text: string) =>
    row.status === "ok" || row.status === "timeout" ? text : "—";
  if (scenario === "backlog") {
    return {
      columns: [
        { title: "system" },
        { title: "queue msg/s", ...r },
        { title: "replay msg/s", ...r },
        { title: "RSS queued MB", ...r },
        { title: "peak RSS MB", ...r },
        { title: "disk" },
        { title: "notes" },
      ],
      cells: rows.map((row) => [
        row.system,
        dash(row, fmtNumber(row.enqueuePerSec, 0)),
        headline(row),
        dash(row, rssText(row, row.queuedRssMb)),
        dash(row, rssText(row, row.peakRssMb)),
        row.disk,
        cut(row.note),
      ]),
    };
  }
  if (scenario === "sweep") {
    const percents = [...new Set(rows.flatMap((row) => row.sweep?.map((p) => p.percent) ?? []))];
    const point = (row: ResultRow, percent: number) => row.sweep?.find((p) => p.percent === percent);
    return {
      columns: [
        { title: "system" },
        { title: "peak msg/s", ...r },
        ...percents.flatMap((p) => [
          { title: `${p}%: msg/s`, ...r },
          { title: "p50 ms", ...r },
          { title: "p99 ms", ...r },
        ]),
        { title: "notes" },
      ],
      cells: rows.map((row) => [
        row.system,
        row.status === "ok" ? fmtNumber(row.peakMsgPerSec, 0) : row.status,
        ...percents.flatMap((p) => {
          const pt = point(row, p);
          return [fmtNumber(pt?.achievedRate, 0), fmtNumber(pt?.p50Ms), fmtNumber(pt?.p99Ms)];
        }),
        cut(row.note),
      ]),
    };
  }
  if (scenario === "connections") {
    return {
      columns: [
        { title: "system" },
        { title: "clients", ...r },
        { title: "connect s", ...r },
        { title: "KB/client", ...r },
        { title: "RSS idle MB", ...r },
        { title: "RSS conn MB", ...r },
        { title: "msg/s", ...r },
        { title: "p50 ms", ...r },
        { title: "p99 ms", ...r },
        { title: "peak RSS MB", ...r },
        { title: "notes" },
      ],
      cells: rows.map((row) => [
        row.system,
        dash(row, fmtNumber(row.connected, 0)),
        dash(row, fmtNumber(row.connectS, 1)),
        dash(row, fmtNumber(row.kbPerClient, 1)),
        dash(row, rssText(row, row.idleRssMb)),
        dash(row, rssText(row, row.connectedRssMb)),
        headline(row),
        dash(row, fmtNumber(row.p50Ms)),
        dash(row, fmtNumber(row.p99Ms)),
        dash(row, rssText(row, row.peakRssMb)),
        cut(row.note),
      ]),
    };
  }
  return {
    columns: [
      { title: "system" },
      { title: scenario === "fanout" ? "deliveries/s" : "msg/s", ...r },
      { title: "p50 ms", ...r },
      { title: "p99 ms", ...r },
      { title: "server CPU µs/msg", ...r },
      { title: "peak RSS MB", ...r },
      { title: "disk" },
      { title: "notes" },
    ],
    cells: rows.map((row) => [
      row.system,
      headline(row),
      dash(row, fmtNumber(row.p50Ms)),
      dash(row, fmtNumber(row.p99Ms)),
      dash(row, fmtNumber(row.serverCpuUsPerMsg)),
      dash(row, rssText(row, row.peakRssMb)),
      row.disk,
      cut(
        row.status === "ok" && row.duplicates ? `${row.duplicates} duplicates. ${row.note ?? ""}` : row.note,
      ),
    ]),
  };
}

/** queuehub's msg/s divided by each baseline's, for every queuehub row with figures. */
function ratiosFor(rows: ResultRow[]): Ratios {
  const ratios: Ratios = {};
  const ok = rows.filter((r) => r.status === "ok" && r.msgPerSec);
  for (const qh of ok.filter((r) => QUEUEHUB_SYSTEMS.includes(r.system))) {
    const line: Record<string, number> = {};
    for (const base of ok.filter((r) => !QUEUEHUB_SYSTEMS.includes(r.system))) {
      line[base.system] = (qh.msgPerSec ?? 0) / (base.msgPerSec ?? 1);
    }
    ratios[qh.system] = line;
  }
  return ratios;
}

type TargetSpec = Omit<Target, "value" | "met"> & {
  get: (ratios: Ratios, rows: ResultRow[]) => number | undefined;
};

const ratio = (issue: number, system: string, baseline: string, min: number): TargetSpec => ({
  issue,
  label: `${system} ÷ ${baseline}`,
  op: ">=",
  limit: min,
  unit: "×",
  get: (ratios) => ratios[system]?.[baseline],
});

const latency = (issue: number, system: string, field: "p50Ms" | "p99Ms", max: number): TargetSpec => ({
  issue,
  label: `${system} ${field.slice(0, 3)}`,
  op: "<=",
  limit: max,
  unit: "ms",
  get: (_, rows) => rows.find((r) => r.system === system && r.status === "ok")?.[field],
});

const TARGETS: Partial<Record<ScenarioName, TargetSpec[]>> = {
  throughput: [
    ratio(6, "queuehub-sqlite", "mosquitto", 1),
    ratio(6, "queuehub-sqlite", "rabbitmq", 2),
    ratio(6, "queuehub-memory", "socketio-raw-ack", 1),
  ],
  singles: [
    ratio(14, "queuehub-sqlite", "socketio-relay", 1),
    ratio(14, "queuehub-sqlite", "mosquitto", 1.2),
    ratio(14, "queuehub-sqlite", "rabbitmq", 2),
    ratio(14, "queuehub-sqlite-full", "socketio-relay", 0.9),
    latency(14, "queuehub-sqlite", "p50Ms", 20),
    latency(14, "queuehub-sqlite", "p99Ms", 100),
  ],
  sweep: [
    {
      issue: 14,
      label: "queuehub-sqlite (HUB_SYNC=normal) p99 at 50% of its peak",
      op: "<=",
      limit: 10,
      unit: "ms",
      get: (_, rows) =>
        rows.find((r) => r.system === "queuehub-sqlite")?.sweep?.find((p) => p.percent === 50)?.p99Ms,
    },
  ],
};

function targetsFor(scenario: ScenarioName, ratios: Ratios, rows: ResultRow[]): Target[] {
  return (TARGETS[scenario] ?? []).map(({ get, ...t }) => {
    const value = get(ratios, rows);
    if (value === undefined) return t;
    return { ...t, value, met: t.op === ">=" ? value >= t.limit : value <= t.limit };
  });
}

function fmtTarget(value: number, unit: Target["unit"]): string {
  return unit === "×" ? fmtRatio(value) : `${fmtNumber(value)} ms`;
}

function printScenario(
  scenario: ScenarioName,
  opts: BenchOptions,
  rows: ResultRow[],
  ratios: Ratios,
  targets: Target[],
  paint: ReturnType<typeof painter>,
): void {
  const { columns, cells } = tableFor(scenario, rows);
  const out: string[] = ["", paint.bold(TITLES[scenario](opts)), ""];
  out.push(
    renderTable(columns, cells, {
      paintHeader: paint.bold,
      paintRow: (line, i) => {
        const row = rows[i];
        if (!row) return line;
        if (row.status === "error") return paint.red(line);
        if (row.status === "timeout") return paint.yellow(line);
        if (row.status !== "ok") return paint.dim(line);
        return QUEUEHUB_SYSTEMS.includes(row.system) ? paint.cyan(line) : line;
      },
    }),
  );
  if (scenario !== "sweep" && rows.some((r) => r.rssSource === "sampled")) {
    out.push(paint.dim("* shared service: RSS of the whole broker process, sampled every 100 ms"));
  }
  if (scenario === "sweep") out.push(...serverLoopLines(rows));
  out.push(...roundLines(rows));
  const qhNames = Object.keys(ratios);
  const baselines = [...new Set(qhNames.flatMap((q) => Object.keys(ratios[q] ?? {})))];
  if (qhNames.length && baselines.length) {
    out.push("", `queuehub ÷ baseline (${scenario === "backlog" ? "replay msg/s" : "msg/s"}):`);
    out.push(
      renderTable(
        [{ title: "" }, ...baselines.map((b) => ({ title: b, align: "right" as const }))],
        qhNames.map((q) => [q, ...baselines.map((b) => fmtRatio(ratios[q]?.[b]))]),
      ),
    );
  } else if (scenario !== "sweep" && rows.some((r) => QUEUEHUB_SYSTEMS.includes(r.system))) {
    out.push("", paint.yellow("no ratios: queuehub or every baseline has no figures in this scenario"));
  }
  if (targets.some((t) => t.value !== undefined)) {
    out.push("", "targets:");
    for (const t of targets) {
      if (t.value === undefined) continue;
      const mark = t.met ? paint.green("met") : paint.red("not met");
      const limit = t.unit === "×" ? `${t.limit.toFixed(1)}×` : `${t.limit} ms`;
      out.push(
        `  ${t.label} = ${fmtTarget(t.value, t.unit)} (issue ${t.issue}: ${t.op === ">=" ? "≥" : "≤"} ${limit}): ${mark}`,
      );
    }
  }
  const errors = rows.filter((r) => r.status === "error" || r.status === "timeout");
  for (const e of errors) {
    out.push("", paint.red(`${e.system}: ${e.note ?? "error"}`));
    if (e.serverLog?.length) out.push(paint.dim(e.serverLog.map((l) => `  | ${l}`).join("\n")));
  }
  console.log(out.join("\n"));
}

/** With several rounds: that each row is its system's median round, and every round's rate. */
function roundLines(rows: ResultRow[]): string[] {
  const rounds = Math.max(0, ...rows.map((row) => row.roundsMsgPerSec?.length ?? 0));
  if (rounds < 2) return [];
  const width = Math.max(...rows.map((row) => row.system.length));
  return [
    "",
    `each row is the system's median of ${rounds} rounds (every system once per round, in turn); msg/s by round:`,
    ...rows.map(
      (row) =>
        `  ${row.system.padEnd(width)}  ${(row.roundsMsgPerSec ?? []).map((r) => (r > 0 ? fmtNumber(r, 0) : "—")).join(" / ")}`,
    ),
  ];
}

/**
 * The sweep's servers that report their own event-loop delay (queuehub, the relay): a message's
 * p99 far above its server's tells that the tail was made outside the server (load processes,
 * the kernel, the other core), not in it.
 */
function serverLoopLines(rows: ResultRow[]): string[] {
  const reporting = rows.filter((row) => row.sweep?.some((p) => p.serverLoop));
  if (reporting.length === 0) return [];
  const width = Math.max(...reporting.map((row) => row.system.length));
  return [
    "",
    "the server's own event-loop delay at each rate, p99 / max ms (how long an arriving message could wait in it):",
    ...reporting.map(
      (row) =>
        `  ${row.system.padEnd(width)}  ${(row.sweep ?? [])
          .map(
            (p) =>
              `${p.percent}%: ${p.serverLoop ? `${fmtNumber(p.serverLoop.p99Ms)} / ${fmtNumber(p.serverLoop.maxMs)}` : "—"}`,
          )
          .join("   ")}`,
    ),
  ];
}

function machine(): BenchResults["machine"] {
  let commit: string | undefined;
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd: REPO_DIR,
      encoding: "utf8",
    }).trim();
  } catch {
    commit = undefined;
  }
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model,
    cpus: cpus.length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    commit,
    loadAverage: os.loadavg(),
  };
}

async function main(): Promise<number> {
  let cli: Cli | undefined;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : err}\n\nnpm run bench -- --help for the options`);
    return 2;
  }
  if (!cli) {
    console.log(HELP);
    return 0;
  }
  if (cli.profileSummary) {
    console.log(summarizeProfileFile(resolve(cli.profileSummary)).text);
    return 0;
  }
  if (cli.chartFrom) {
    const from = resolve(cli.chartFrom);
    const out = `${from.replace(/\.json$/, "")}.svg`;
    writeFileSync(out, renderChart(JSON.parse(readFileSync(from, "utf8")) as BenchResults));
    console.log(`chart: ${out}`);
    return 0;
  }
  const { opts } = cli;
  if (cli.hubEnv) process.env.BENCH_HUB_ENV = cli.hubEnv;
  const paint = painter(cli.color);
  const ui = makeUi(cli.color);
  const started = new Date();
  const stamp = started
    .toISOString()
    .replace(/:/g, "-")
    .replace(/\.\d+Z$/, "Z");
  const profiles = join(BENCH_DIR, "results", "profiles", stamp);
  if (cli.cpuProf) process.env.BENCH_HUB_CPU_PROF_DIR = profiles;
  if (cli.cpuProfClients) process.env.BENCH_CLIENT_CPU_PROF_DIR = join(profiles, "clients");
  const info = machine();
  console.log(
    paint.bold(
      `queuehub bench ${started.toISOString()}${opts.smoke ? " — smoke: tiny counts, systems run at once, figures not comparable" : ""}`,
    ) +
      paint.dim(
        `\n${info.cpus} × ${info.cpuModel ?? "cpu"}, ${info.memoryGb} GiB, ${info.os}, Node ${info.node}` +
          `${info.commit ? `, commit ${info.commit}` : ""}` +
          `\nload average ${info.loadAverage.map((l) => l.toFixed(2)).join(" ")} (1/5/15 min) at the start: other work on the machine skews every figure` +
          `\nwindow ${opts.window} publishes, batch ${opts.batch} (queuehub), prefetch ${opts.prefetch}, payload ~${opts.payloadBytes} B`,
      ),
  );

  const pool = new LoadPool(opts.smoke);
  const results: Partial<Record<ScenarioName, ScenarioResult>> = {};
  for (const scenario of opts.scenarios) {
    // Real runs go one at a time: every figure has the machine to itself. Smoke runs only check
    // that everything still works, so they run a few systems at once to stay within seconds.
    const peaks = new Map(
      (results.singles?.rows ?? []).filter((r) => r.status === "ok").map((r) => [r.system, r.msgPerSec]),
    );
    const rounds: ResultRow[][] = [];
    for (let round = 0; round < (scenario === "singles" ? opts.singlesRounds : 1); round++) {
      rounds.push(
        await mapLimit(opts.systems[scenario] ?? [], opts.smoke ? SMOKE_PARALLEL : 1, (system) =>
          runOne(scenario, system, opts, ui, pool, peaks.get(system)),
        ),
      );
    }
    const rows = medianRounds(rounds);
    ui.clear();
    const ratios = scenario === "sweep" ? {} : ratiosFor(rows);
    const targets = targetsFor(scenario, ratios, rows);
    results[scenario] = { rows, ratios, targets };
    printScenario(scenario, opts, rows, ratios, targets, paint);
    if (cli.cpuProf || cli.cpuProfClients) printProfiles(scenario, paint);
  }

  await pool.drain();

  const legend = new Map<string, string>();
  for (const { rows } of Object.values(results)) for (const r of rows) legend.set(r.system, r.durability);
  console.log(`\n${paint.bold("what a publish ack means on disk")}`);
  const width = Math.max(0, ...[...legend.keys()].map((k) => k.length));
  for (const [system, durability] of legend) console.log(`  ${system.padEnd(width)}  ${durability}`);

  const file =
    cli.jsonOut !== undefined
      ? resolve(cli.jsonOut)
      : join(
          BENCH_DIR,
          "results",
          `${started
            .toISOString()
            .replace(/:/g, "-")
            .replace(/\.\d+Z$/, "Z")}.json`,
        );
  mkdirSync(dirname(file), { recursive: true });
  const finished = new Date();
  const report: BenchResults = {
    date: started.toISOString(),
    durationS: (finished.getTime() - started.getTime()) / 1000,
    machine: info,
    loadAverageAtEnd: os.loadavg(),
    options: opts,
    scenarios: results,
  };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  const chart = `${file.replace(/\.json$/, "")}.svg`;
  writeFileSync(chart, renderChart(report));
  const failed = Object.values(results).flatMap((s) =>
    s.rows.filter(
      (r) => r.status === "error" || (r.status === "timeout" && QUEUEHUB_SYSTEMS.includes(r.system)),
    ),
  );
  console.log(
    `\n${paint.dim(`results: ${file}, chart: ${chart} (${((finished.getTime() - started.getTime()) / 1000).toFixed(1)} s)`)}` +
      (failed.length
        ? `\n${paint.red(`${failed.length} run(s) failed: ${failed.map((r) => r.system).join(", ")}`)}`
        : ""),
  );
  return failed.length ? 1 : 0;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    cleanUpOnExit();
    process.exit(130);
  });
}
process.on("exit", cleanUpOnExit);

// Exit explicitly: a broker client left half-closed must not keep the benchmark alive.
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
