/** Small statistics for the benchmark: percentiles, medians of repeated runs, and their spread. */

/** The p-th percentile (0..1) by nearest rank over a copy of the values; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank]!;
}

export const median = (values: readonly number[]): number => {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** A figure measured in several runs: its median and the range it moved in. */
export interface Figure {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function figure(runs: readonly number[]): Figure {
  const finite = runs.filter((v) => Number.isFinite(v));
  return { median: median(finite), min: finite.length ? Math.min(...finite) : NaN, max: finite.length ? Math.max(...finite) : NaN, runs: [...runs] };
}

/** "12.3 (11.9-13.0)": a median and its spread, with a sensible number of digits. */
export function fmt(f: Figure | number, digits?: number): string {
  if (typeof f === 'number') return num(f, digits);
  if (!Number.isFinite(f.median)) return 'n/a';
  if (f.runs.length <= 1) return num(f.median, digits);
  return `${num(f.median, digits)} (${num(f.min, digits)}-${num(f.max, digits)})`;
}

export function num(v: number, digits?: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  const d = digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
  return v.toFixed(d);
}

/** a / b as "1.23x", or n/a. */
export function ratio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a';
  return `${(a / b).toFixed(2)}x`;
}

/** Summary of a latency sample in ms. */
export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarize(values: readonly number[]): LatencySummary {
  return { n: values.length, p50: percentile(values, 0.5), p99: percentile(values, 0.99), max: values.length ? Math.max(...values) : NaN };
}
