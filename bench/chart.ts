// The chart of a run, as a self-contained SVG written beside the JSON: for each scenario, msg/s
// and p99 latency per system (bars), and the latency sweep (p50 and p99 against the rate, as a
// share of each system's singles peak). Hand-written SVG: no browser, no dependency.

import type { BenchResults, ResultRow, ScenarioResult } from "./scenarios.js";
import { fmtNumber } from "./stats.js";
import type { ScenarioName } from "./types.js";

const WIDTH = 980;
const MARGIN = 24;
const LABEL_W = 170;
const ROW_H = 22;
const BAR_H = 14;
const FONT = "DejaVu Sans, Helvetica, Arial, sans-serif";

/** One colour per system, the same in every panel: queuehub in blues, the baselines apart. */
const COLORS: Record<string, string> = {
  "queuehub-sqlite": "#1d4ed8",
  "queuehub-sqlite-full": "#0891b2",
  "queuehub-memory": "#60a5fa",
  "queuehub-redis-2hubs": "#7c3aed",
  "socketio-raw": "#a8a29e",
  "socketio-raw-ack": "#78716c",
  "socketio-relay": "#57534e",
  aedes: "#d97706",
  mosquitto: "#ea580c",
  rabbitmq: "#dc2626",
  "nats-jetstream": "#16a34a",
};
const colorOf = (system: string) => COLORS[system] ?? "#6b7280";

const SUBTITLES: Record<ScenarioName, string> = {
  throughput: "1 → 1, queuehub's batch path: 100 messages per publish, deliveries in arrays",
  singles:
    "1 → 1, the ordinary Socket.IO path: one publish per emit (256 in flight), one delivery event per message",
  sweep: "latency against rate: a paced publisher at a share of each system's singles peak",
  fanout: "1 publisher → many subscribers (deliveries/s)",
  backlog: "a backlog queued for an offline subscriber, then replayed with acks (replay msg/s)",
  connections: "1 → 1 while thousands of idle clients stay connected",
};

function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function text(x: number, y: number, content: string, attrs = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(content)}</text>`;
}

/** 1, 2 or 5 × a power of ten, so that about `count` steps cover `max`. */
function niceStep(max: number, count: number): number {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

/** Axis labels: 0, 0.1, 1, 10, 250, 1k, 2.5k, 40k, 1.2M. */
function fmtShort(n: number): string {
  const trim = (v: number) => String(Number(v.toPrecision(3)));
  if (n >= 1e6) return `${trim(n / 1e6)}M`;
  if (n >= 1e3) return `${trim(n / 1e3)}k`;
  return trim(n);
}

/** A log10 scale over [lo, hi] (powers of ten) onto [x0, x1]. */
function logScale(values: number[], x0: number, x1: number) {
  const positive = values.filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...positive, 1)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...positive, 10)));
  const at = (v: number) =>
    x0 + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (x1 - x0);
  const ticks: number[] = [];
  for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  return { at, ticks };
}

interface Panel {
  svg: string;
  height: number;
}

/** Two bar charts side by side, one row per system: msg/s (linear) and p99 ms (log) or RSS. */
function barsPanel(scenario: ScenarioName, result: ScenarioResult, top: number): Panel {
  const rows = result.rows;
  const ok = rows.filter((r) => r.status === "ok" && r.msgPerSec);
  const out: string[] = [];
  out.push(text(MARGIN, top + 16, scenario, `font-size="15" font-weight="bold"`));
  out.push(
    // The bold 15 px title is about 9.5 px a character wide.
    text(MARGIN + 14 + scenario.length * 9.5, top + 16, SUBTITLES[scenario], `font-size="12" fill="#4b5563"`),
  );
  const chartTop = top + 44;
  const leftX0 = MARGIN + LABEL_W;
  const leftX1 = leftX0 + 330;
  const rightX0 = leftX1 + 70;
  const rightX1 = WIDTH - MARGIN - 50;
  const bottom = chartTop + rows.length * ROW_H;

  const maxRate = Math.max(1, ...ok.map((r) => r.msgPerSec ?? 0));
  const step = niceStep(maxRate, 4);
  const rateMax = Math.ceil(maxRate / step) * step;
  const rateAt = (v: number) => leftX0 + (v / rateMax) * (leftX1 - leftX0);
  const rateTitle =
    scenario === "fanout" ? "deliveries/s" : scenario === "backlog" ? "replay msg/s" : "msg/s";
  out.push(text(leftX0, chartTop - 8, rateTitle, `font-size="12" font-weight="bold"`));
  for (let t = 0; t <= rateMax + step / 2; t += step) {
    const x = rateAt(t);
    out.push(`<line x1="${x}" y1="${chartTop - 2}" x2="${x}" y2="${bottom}" stroke="#e5e7eb"/>`);
    out.push(text(x, bottom + 14, fmtShort(t), `font-size="10" fill="#6b7280" text-anchor="middle"`));
  }

  const hasLatency = ok.some((r) => r.p99Ms !== undefined);
  const second = (r: ResultRow) => (hasLatency ? r.p99Ms : r.peakRssMb);
  const secondValues = ok.map(second).filter((v): v is number => v !== undefined && v > 0);
  const log = logScale(secondValues.length ? secondValues : [1, 10], rightX0, rightX1);
  out.push(
    text(
      rightX0,
      chartTop - 8,
      hasLatency ? "p99 latency, ms (log scale)" : "peak server RSS, MB (log scale)",
      `font-size="12" font-weight="bold"`,
    ),
  );
  for (const t of log.ticks) {
    const x = log.at(t);
    out.push(`<line x1="${x}" y1="${chartTop - 2}" x2="${x}" y2="${bottom}" stroke="#e5e7eb"/>`);
    out.push(text(x, bottom + 14, fmtShort(t), `font-size="10" fill="#6b7280" text-anchor="middle"`));
  }

  rows.forEach((row, i) => {
    const y = chartTop + i * ROW_H;
    const mid = y + ROW_H / 2 + 4;
    const qh = row.system.startsWith("queuehub");
    out.push(
      text(leftX0 - 8, mid, row.system, `font-size="12" text-anchor="end"${qh ? ` font-weight="bold"` : ""}`),
    );
    if (row.status !== "ok" || !row.msgPerSec) {
      out.push(
        text(
          leftX0 + 4,
          mid,
          row.status === "ok" ? "no figures" : row.status,
          `font-size="11" fill="#9ca3af"`,
        ),
      );
      return;
    }
    const color = colorOf(row.system);
    const barY = y + (ROW_H - BAR_H) / 2;
    const w = Math.max(1, rateAt(row.msgPerSec) - leftX0);
    out.push(
      `<rect x="${leftX0}" y="${barY}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${color}" rx="2"/>`,
    );
    out.push(text(leftX0 + w + 4, mid, fmtNumber(row.msgPerSec, 0), `font-size="11" fill="#111827"`));
    const v = second(row);
    if (v !== undefined && v > 0) {
      const w2 = Math.max(1, log.at(v) - rightX0);
      out.push(
        `<rect x="${rightX0}" y="${barY}" width="${w2.toFixed(1)}" height="${BAR_H}" fill="${color}" opacity="0.8" rx="2"/>`,
      );
      out.push(text(rightX0 + w2 + 4, mid, fmtNumber(v), `font-size="11" fill="#111827"`));
    }
  });
  out.push(`<line x1="${leftX0}" y1="${chartTop - 2}" x2="${leftX0}" y2="${bottom}" stroke="#9ca3af"/>`);
  out.push(`<line x1="${rightX0}" y1="${chartTop - 2}" x2="${rightX0}" y2="${bottom}" stroke="#9ca3af"/>`);

  let height = bottom + 22 - top;
  const ratioLines = targetLines(result);
  ratioLines.forEach((line, i) => {
    out.push(text(MARGIN, bottom + 36 + i * 16, line.text, `font-size="11" fill="${line.color}"`));
  });
  height += ratioLines.length * 16 + (ratioLines.length ? 10 : 0);
  return { svg: out.join("\n"), height };
}

function targetLines(result: ScenarioResult): { text: string; color: string }[] {
  return result.targets
    .filter((t) => t.value !== undefined)
    .map((t) => {
      const value = t.unit === "×" ? `${(t.value ?? 0).toFixed(2)}×` : `${fmtNumber(t.value)} ms`;
      const limit = t.unit === "×" ? `${t.limit.toFixed(1)}×` : `${t.limit} ms`;
      return {
        text: `${t.met ? "✓" : "✗"} ${t.label} = ${value} (issue ${t.issue}: ${t.op === ">=" ? "≥" : "≤"} ${limit})`,
        color: t.met ? "#15803d" : "#b91c1c",
      };
    });
}

/** The sweep: p50 and p99 (log scale) against the rate in percent of each system's peak. */
function sweepPanel(result: ScenarioResult, top: number): Panel {
  const rows = result.rows.filter((r) => r.status === "ok" && r.sweep?.length);
  const out: string[] = [];
  out.push(text(MARGIN, top + 16, "sweep", `font-size="15" font-weight="bold"`));
  out.push(text(MARGIN + 60, top + 16, SUBTITLES.sweep, `font-size="12" fill="#4b5563"`));
  const chartTop = top + 48;
  const chartH = 230;
  const bottom = chartTop + chartH;
  const gap = 60;
  const plotW = (WIDTH - 2 * MARGIN - 50 - gap) / 2;
  const percents = [...new Set(rows.flatMap((r) => r.sweep?.map((p) => p.percent) ?? []))].sort(
    (a, b) => a - b,
  );
  const allLatency = rows.flatMap((r) => r.sweep?.flatMap((p) => [p.p50Ms ?? 0, p.p99Ms ?? 0]) ?? []);
  // The x axis spans the rates measured, with a margin of half a step on each side.
  const pStep = percents.length > 1 ? (percents.at(-1) ?? 100) - (percents.at(-2) ?? 0) : 25;
  const pLo = (percents[0] ?? 25) - pStep / 2;
  const pHi = (percents.at(-1) ?? 100) + pStep / 2;
  const plots = [
    { field: "p50Ms" as const, title: "p50 latency, ms (log scale)", x0: MARGIN + 50 },
    { field: "p99Ms" as const, title: "p99 latency, ms (log scale)", x0: MARGIN + 50 + plotW + gap },
  ];
  for (const plot of plots) {
    const x0 = plot.x0;
    const x1 = x0 + plotW;
    const xAt = (p: number) => x0 + ((p - pLo) / (pHi - pLo)) * (x1 - x0);
    // Same log scale in both plots, vertical: bottom = low latency.
    const log = logScale(allLatency.length ? [...allLatency, 1] : [1, 10], bottom, chartTop);
    out.push(text(x0, chartTop - 10, plot.title, `font-size="12" font-weight="bold"`));
    for (const t of log.ticks) {
      const y = log.at(t);
      out.push(`<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#e5e7eb"/>`);
      out.push(text(x0 - 6, y + 4, fmtShort(t), `font-size="10" fill="#6b7280" text-anchor="end"`));
    }
    for (const p of percents) {
      const x = xAt(p);
      out.push(`<line x1="${x}" y1="${chartTop}" x2="${x}" y2="${bottom}" stroke="#f3f4f6"/>`);
      out.push(text(x, bottom + 14, `${p}%`, `font-size="10" fill="#6b7280" text-anchor="middle"`));
    }
    out.push(
      text(
        (x0 + x1) / 2,
        bottom + 30,
        "rate, % of the system's singles peak",
        `font-size="11" fill="#374151" text-anchor="middle"`,
      ),
    );
    out.push(`<line x1="${x0}" y1="${chartTop}" x2="${x0}" y2="${bottom}" stroke="#9ca3af"/>`);
    out.push(`<line x1="${x0}" y1="${bottom}" x2="${x1}" y2="${bottom}" stroke="#9ca3af"/>`);
    if (plot.field === "p99Ms") {
      // Issue 14, target 3: p99 ≤ 10 ms at half the peak rate with HUB_SYNC=normal.
      const y = log.at(10);
      out.push(`<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#b91c1c" stroke-dasharray="5 4"/>`);
      out.push(
        text(
          x1 - 4,
          y - 5,
          "target: p99 ≤ 10 ms at 50% (queuehub-sqlite)",
          `font-size="10" fill="#b91c1c" text-anchor="end"`,
        ),
      );
    }
    for (const row of rows) {
      const pts = (row.sweep ?? [])
        .filter((p) => p[plot.field] !== undefined)
        .map((p) => [xAt(p.percent), log.at(p[plot.field] ?? 0)] as const);
      if (!pts.length) continue;
      const color = colorOf(row.system);
      const width = row.system.startsWith("queuehub") ? 3 : 1.8;
      out.push(
        `<polyline points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ")}" fill="none" stroke="${color}" stroke-width="${width}"/>`,
      );
      for (const [x, y] of pts)
        out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${color}"/>`);
    }
  }
  // Legend: each system with its peak.
  const legendTop = bottom + 50;
  const perLine = 3;
  rows.forEach((row, i) => {
    const x = MARGIN + 50 + (i % perLine) * 300;
    const y = legendTop + Math.floor(i / perLine) * 18;
    out.push(`<rect x="${x}" y="${y - 9}" width="14" height="10" fill="${colorOf(row.system)}" rx="2"/>`);
    out.push(
      text(x + 20, y, `${row.system} (peak ${fmtNumber(row.peakMsgPerSec, 0)} msg/s)`, `font-size="11"`),
    );
  });
  let height = legendTop + Math.ceil(rows.length / perLine) * 18 - top;
  const lines = targetLines(result);
  lines.forEach((line, i) => {
    out.push(text(MARGIN, top + height + 16 + i * 16, line.text, `font-size="11" fill="${line.color}"`));
  });
  height += lines.length * 16 + 12;
  return { svg: out.join("\n"), height };
}

const ORDER: ScenarioName[] = ["singles", "sweep", "throughput", "fanout", "backlog", "connections"];

export function renderChart(results: BenchResults): string {
  const m = results.machine;
  const parts: string[] = [];
  let y = MARGIN;
  parts.push(
    text(
      MARGIN,
      y + 14,
      `queuehub bench, ${results.date.slice(0, 16).replace("T", " ")} UTC`,
      `font-size="18" font-weight="bold"`,
    ),
  );
  const load = m.loadAverage?.length ? `, load average ${m.loadAverage[0]?.toFixed(2)} at the start` : "";
  parts.push(
    text(
      MARGIN,
      y + 34,
      `${m.cpus} × ${m.cpuModel ?? "cpu"}, ${m.memoryGb} GiB, Node ${m.node}${m.commit ? `, commit ${m.commit}` : ""}${load}${results.options.smoke ? " (smoke: figures not comparable)" : ""}`,
      `font-size="12" fill="#4b5563"`,
    ),
  );
  y += 52;
  for (const scenario of ORDER) {
    const result = results.scenarios[scenario];
    if (!result?.rows.length) continue;
    if (scenario === "sweep" && !result.rows.some((r) => r.sweep?.length)) continue;
    const panel = scenario === "sweep" ? sweepPanel(result, y) : barsPanel(scenario, result, y);
    parts.push(`<g>${panel.svg}</g>`);
    y += panel.height + 18;
    parts.push(`<line x1="${MARGIN}" y1="${y - 9}" x2="${WIDTH - MARGIN}" y2="${y - 9}" stroke="#d1d5db"/>`);
  }
  const height = Math.ceil(y + MARGIN);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="${FONT}" role="img">`,
    `<title>${esc(`queuehub bench ${results.date}${m.commit ? ` at ${m.commit}` : ""}: msg/s and latency per system${results.scenarios.sweep ? ", latency against rate" : ""}`)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    ...parts,
    "</svg>",
    "",
  ].join("\n");
}
