// Latency histograms (mergeable across load processes), percentiles, and plain-text tables.

/** Bucket growth factor: each bucket is 1% wider than the previous one (≤ 1% percentile error). */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Smallest distinguishable latency, in milliseconds (1 µs). */
const FLOOR_MS = 0.001;
/** Buckets up to ~10,000 s. */
const BUCKETS = Math.ceil(Math.log(1e7 / FLOOR_MS) / LOG_GROWTH) + 1;

export interface HistogramJSON {
  count: number;
  min: number;
  max: number;
  sum: number;
  /** Samples below zero (clock skew between processes), counted in the first bucket. */
  negative: number;
  /** Sparse [bucket index, count] pairs. */
  buckets: [number, number][];
}

/** A log-bucketed latency histogram in milliseconds. */
export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  sum = 0;
  negative = 0;

  record(ms: number): void {
    if (ms < 0) this.negative++;
    const index = ms <= FLOOR_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / FLOOR_MS) / LOG_GROWTH));
    this.counts[index] = (this.counts[index] ?? 0) + 1;
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  /** The value at quantile `q` (0..1), as the upper bound of its bucket, clamped to [min, max]. */
  quantile(q: number): number | undefined {
    if (this.count === 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) {
        const upper = i === 0 ? FLOOR_MS : FLOOR_MS * GROWTH ** i;
        return Math.min(this.max, Math.max(this.min, upper));
      }
    }
    return this.max;
  }

  merge(other: Histogram): this {
    for (let i = 0; i < BUCKETS; i++) this.counts[i] = (this.counts[i] ?? 0) + (other.counts[i] ?? 0);
    this.count += other.count;
    this.sum += other.sum;
    this.negative += other.negative;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    return this;
  }

  toJSON(): HistogramJSON {
    const buckets: [number, number][] = [];
    this.counts.forEach((n, i) => {
      if (n > 0) buckets.push([i, n]);
    });
    return {
      count: this.count,
      min: this.min,
      max: this.max,
      sum: this.sum,
      negative: this.negative,
      buckets,
    };
  }

  static fromJSON(json: HistogramJSON): Histogram {
    const h = new Histogram();
    for (const [i, n] of json.buckets) h.counts[i] = n;
    h.count = json.count;
    h.min = json.min ?? Number.POSITIVE_INFINITY;
    h.max = json.max ?? Number.NEGATIVE_INFINITY;
    h.sum = json.sum;
    h.negative = json.negative;
    return h;
  }
}

/** Percentile (0..100) of raw samples by nearest rank. */
export function percentile(samples: readonly number[], p: number): number | undefined {
  if (samples.length === 0) return undefined;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

export function median(samples: readonly number[]): number | undefined {
  return percentile(samples, 50);
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** 123456 → "123,456"; 12.345 → "12.3"; 0.1234 → "0.123". Missing → "—". */
export function fmtNumber(value: number | undefined | null, digits?: number): string {
  if (value === undefined || value === null || !Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  const d = digits ?? (abs >= 1000 ? 0 : abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3);
  return value.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function fmtRatio(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  return `${value >= 10 ? value.toFixed(1) : value.toFixed(2)}×`;
}

export type Align = "left" | "right";

export interface Column {
  title: string;
  align?: Align;
}

export interface TableOptions {
  /** Wraps a whole rendered row (e.g. in colour); gets the row index. Must not change the width. */
  paintRow?: (line: string, row: number) => string;
  paintHeader?: (line: string) => string;
}

/** Renders rows as an aligned plain-text table with a header rule. */
export function renderTable(columns: Column[], rows: string[][], options: TableOptions = {}): string {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? "").length)));
  const cell = (text: string, i: number) => {
    const width = widths[i] ?? 0;
    return columns[i]?.align === "right" ? text.padStart(width) : text.padEnd(width);
  };
  const line = (cells: string[]) =>
    cells
      .map((c, i) => cell(c, i))
      .join("  ")
      .trimEnd();
  const header = line(columns.map((c) => c.title));
  const rule = widths.map((w) => "─".repeat(w)).join("  ");
  const body = rows.map((r, i) => {
    const text = line(r);
    return options.paintRow ? options.paintRow(text, i) : text;
  });
  return [options.paintHeader ? options.paintHeader(header) : header, rule, ...body].join("\n");
}
