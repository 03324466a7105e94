// A summary of a V8 CPU profile (`node --cpu-prof`): where the hub spent its time, by function
// (self time) and by place (a file of src/, a package, Node's internals, the garbage collector).
// `npm run bench -- --cpu-prof` prints one per hub run and writes it as summary.txt beside the
// profile; `npm run bench -- --profile-summary FILE.cpuprofile` summarises any profile.

import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { REPO_DIR } from "./proc.js";
import type { ScenarioName } from "./types.js";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  ms: number;
  /** Share of the busy time (everything but idle), 0..1. */
  share: number;
}

export interface ProfileSummary {
  /** Sampled after the boot; busy = not idle. */
  totalMs: number;
  busyMs: number;
  /** Sampled before the first wire-library function ran: module loading, compiling. */
  bootMs: number;
  functions: ProfileEntry[];
  places: ProfileEntry[];
  text: string;
}

/** Nodes that are not JavaScript functions: V8 names them in parentheses. */
const SPECIAL = new Set(["(idle)", "(program)", "(garbage collector)", "(root)"]);

/** A script's URL as a short place: src/store/sqlite.ts, socket.io-parser, node:internal/streams. */
function placeOf(frame: CallFrame): string {
  if (SPECIAL.has(frame.functionName) && !frame.url) return frame.functionName;
  const url = frame.url;
  if (!url) return "(native)";
  if (url.startsWith("node:")) return url.split("/").slice(0, 2).join("/");
  let path = url;
  try {
    path = url.startsWith("file:") ? fileURLToPath(url) : url;
  } catch {
    // not a file URL: keep it
  }
  const modules = path.lastIndexOf("node_modules/");
  if (modules >= 0) {
    const rest = path.slice(modules + "node_modules/".length).split("/");
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] ?? path);
  }
  return path.startsWith(REPO_DIR) ? relative(REPO_DIR, path) : path;
}

function shortUrl(url: string): string {
  if (!url) return "";
  try {
    const path = url.startsWith("file:") ? fileURLToPath(url) : url;
    const modules = path.lastIndexOf("node_modules/");
    if (modules >= 0) return path.slice(modules + "node_modules/".length);
    return path.startsWith(REPO_DIR) ? relative(REPO_DIR, path) : path;
  } catch {
    return url;
  }
}

function top(map: Map<string, number>, busyMs: number, n: number): ProfileEntry[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, ms]) => ({ name, ms, share: busyMs > 0 ? ms / busyMs : 0 }));
}

/** Wire libraries: the first sample in one of their functions marks the end of the process's boot. */
const WIRE = new Set([
  "ws",
  "engine.io",
  "engine.io-client",
  "engine.io-parser",
  "socket.io-parser",
  "mqtt-packet",
  "amqplib",
  "nats",
]);

/**
 * Self time by function and by place, `n` of each, from a parsed profile. The boot (loading and
 * compiling modules through tsx, up to the first sample in a wire library's function) is left out
 * and reported apart, so the figures are those of the process at work.
 */
export function summarizeProfile(profile: CpuProfile, n = 15): Omit<ProfileSummary, "text"> {
  const frames = new Map<number, CallFrame>();
  for (const node of profile.nodes) frames.set(node.id, node.callFrame);
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  let bootMs = 0;
  const { samples, timeDeltas } = profile;
  let first = samples.findIndex((id) => {
    const frame = frames.get(id);
    return frame !== undefined && frame.functionName !== "" && WIRE.has(placeOf(frame));
  });
  if (first < 0) first = 0;
  for (let i = 0; i < first; i++) bootMs += (timeDeltas[i + 1] ?? 0) / 1000;
  for (let i = first; i < samples.length; i++) {
    // A sample stands for the time until the next one (the delta V8 records before that next one).
    const ms = (timeDeltas[i + 1] ?? 0) / 1000;
    const frame = frames.get(samples[i] ?? -1);
    if (!frame || ms <= 0) continue;
    totalMs += ms;
    if (frame.functionName === "(idle)") {
      idleMs += ms;
      continue;
    }
    const where = shortUrl(frame.url);
    // tsx runs src/ as compiled code: its line numbers say nothing, so only the file is named.
    const line = frame.lineNumber > 0 && !where.endsWith(".ts") ? `:${frame.lineNumber + 1}` : "";
    const name = `${frame.functionName || "(anonymous)"}${where ? `  ${where}${line}` : ""}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
    const place = placeOf(frame);
    byPlace.set(place, (byPlace.get(place) ?? 0) + ms);
  }
  const busyMs = totalMs - idleMs;
  return { totalMs, busyMs, bootMs, functions: top(byFunction, busyMs, n), places: top(byPlace, busyMs, n) };
}

function render(summary: Omit<ProfileSummary, "text">, title: string): string {
  const line = (e: ProfileEntry) =>
    `  ${(e.share * 100).toFixed(1).padStart(5)}%  ${(e.ms / 1000).toFixed(2).padStart(6)} s  ${e.name}`;
  return [
    `${title}: ${(summary.totalMs / 1000).toFixed(1)} s sampled after ${(summary.bootMs / 1000).toFixed(1)} s of boot, ${(summary.busyMs / 1000).toFixed(1)} s busy (${((1 - summary.busyMs / Math.max(1, summary.totalMs)) * 100).toFixed(0)}% idle)`,
    "top self time (share of busy time):",
    ...summary.functions.map(line),
    "by place:",
    ...summary.places.map(line),
  ].join("\n");
}

export function summarizeProfileFile(file: string, n = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const summary = summarizeProfile(profile, n);
  return { ...summary, text: render(summary, relative(process.cwd(), file) || file) };
}

/** The main-thread profile in a run's folder: the largest (under tsx, its loader thread writes a small one). */
function mainProfile(dir: string): string | undefined {
  let best: { file: string; size: number } | undefined;
  for (const name of readdirSync(dir)) {
    if (!name.endsWith(".cpuprofile")) continue;
    const file = join(dir, name);
    const size = statSync(file).size;
    if (!best || size > best.size) best = { file, size };
  }
  return best?.file;
}

/** The runs of a scenario under `root` (folders `<scenario>-...`), each main profile summarised into summary.txt beside it. */
function summarizeRuns(
  root: string,
  scenario: ScenarioName,
): { name: string; file: string; summary: ProfileSummary }[] {
  let folders: string[];
  try {
    folders = readdirSync(root).filter((name) => name.startsWith(`${scenario}-`));
  } catch {
    return [];
  }
  const runs: { name: string; file: string; summary: ProfileSummary }[] = [];
  for (const folder of folders.sort()) {
    const file = mainProfile(join(root, folder));
    if (!file) continue;
    const summary = summarizeProfileFile(file, 25);
    writeFileSync(join(root, folder, "summary.txt"), `${summary.text}\n`);
    runs.push({ name: folder.slice(scenario.length + 1), file, summary });
  }
  return runs;
}

type Paint = { bold(t: string): string; dim(t: string): string };

/**
 * After a scenario ran with --cpu-prof and/or --cpu-prof-clients: summarises each hub run's
 * profile (the folders `<scenario>-<hub>` that bench/systems/queuehub.ts names) and prints the top
 * of it, then one line per load process (`clients/<scenario>-<system>-<role>`): how busy, and on what.
 */
export function printProfiles(scenario: ScenarioName, paint: Paint): void {
  const hubs = process.env.BENCH_HUB_CPU_PROF_DIR;
  for (const run of hubs ? summarizeRuns(hubs, scenario) : []) {
    const brief = {
      ...run.summary,
      functions: run.summary.functions.slice(0, 10),
      places: run.summary.places.slice(0, 8),
    };
    console.log(`\n${paint.bold(`cpu profile, ${scenario} › ${run.name}`)}`);
    console.log(paint.dim(render(brief, relative(process.cwd(), run.file))));
  }
  const clients = process.env.BENCH_CLIENT_CPU_PROF_DIR;
  const loads = clients ? summarizeRuns(clients, scenario) : [];
  if (loads.length) console.log(`\n${paint.bold(`cpu profiles of the load processes, ${scenario}`)}`);
  for (const { name, summary } of loads) {
    const busy = summary.busyMs / Math.max(1, summary.totalMs);
    const top3 = summary.functions
      .slice(0, 3)
      .map((f) => `${f.name.split("  ")[0]} ${(f.share * 100).toFixed(0)}%`)
      .join(", ");
    console.log(
      paint.dim(
        `  ${name.padEnd(32)} busy ${(busy * 100).toFixed(0).padStart(3)}% of ${(summary.totalMs / 1000).toFixed(1)} s; top: ${top3}`,
      ),
    );
  }
}
