/**
 * Statistics for the benchmark report: medians with min–max, the Kindling/QEMU ratio per
 * metric, and the verdict "does Kindling lose here". Pure functions over the samples stored
 * in the results JSON (bench/results.ts), so the report can always be recomputed from it and
 * the unit test (test/unit/bench-stats.test.ts) can check them on fixed data.
 *
 * Medians, not means: nested KVM inside QEMU TCG has heavy-tailed noise (a host hiccup
 * stretches one boot by seconds), and with 5 runs a side the median is the honest centre.
 */
import type { MetricResult, Side } from './results.js';

/** Median, range and count of one side's samples for one metric. */
export interface Summary {
  /** Number of samples. */
  n: number;
  median: number;
  min: number;
  max: number;
}

/** One metric, both sides summarised and compared. */
export interface Comparison {
  metric: MetricResult;
  kindling: Summary | null;
  qemu: Summary | null;
  /** The reference series (e.g. bare `node -e 0`), when the metric has one. */
  reference: Summary | null;
  /** Kindling median ÷ QEMU median; null when a side has no samples or a median is ≤ 0. */
  ratio: number | null;
  /**
   * Whether Kindling is worse than QEMU on this metric (ratio > 1 where lower is better,
   * < 1 where higher is better); null when there is no ratio.
   */
  kindlingLoses: boolean | null;
}

/** Samples that are real numbers (failed runs store nothing; NaN would poison a median). */
function finite(samples: readonly number[]): number[] {
  return samples.filter((x) => Number.isFinite(x));
}

/** The median of `samples` (mean of the middle two for an even count); NaN when empty. */
export function median(samples: readonly number[]): number {
  const s = finite(samples).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Median, min, max and count; null when there is no finite sample. */
export function summarize(samples: readonly number[] | undefined): Summary | null {
  const s = finite(samples ?? []);
  if (s.length === 0) return null;
  return { n: s.length, median: median(s), min: Math.min(...s), max: Math.max(...s) };
}

/**
 * a ÷ b for two summaries' medians; null if either is missing, b's median is 0, or a median
 * is negative (a paired difference can be; a ratio across signs means nothing).
 */
export function ratio(a: Summary | null, b: Summary | null): number | null {
  if (!a || !b || b.median <= 0 || a.median < 0) return null;
  return a.median / b.median;
}

/** Summarises and compares one metric. */
export function compare(metric: MetricResult): Comparison {
  const kindling = summarize(metric.samples.kindling);
  const qemu = summarize(metric.samples.qemu);
  const r = ratio(kindling, qemu);
  const kindlingLoses = r === null ? null : metric.better === 'lower' ? r > 1 : r < 1;
  return { metric, kindling, qemu, reference: summarize(metric.reference?.samples), ratio: r, kindlingLoses };
}

/** Compares every metric, in the order given. */
export function compareAll(metrics: readonly MetricResult[]): Comparison[] {
  return metrics.map(compare);
}

/**
 * Element-wise difference a[i] − b[i] over the common length (paired runs of the same
 * round, e.g. 2-vCPU minus 1-vCPU overhead); pairs with a non-finite member are dropped.
 */
export function pairedDifference(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = a[i]! - b[i]!;
    if (Number.isFinite(d)) out.push(d);
  }
  return out;
}

/** Digits after the point for a value of this size and unit (counts are integers). */
function decimals(value: number, unit: string): number {
  if (unit === 'exits') return 0;
  const a = Math.abs(value);
  if (a >= 100) return 0;
  if (a >= 10) return 1;
  return 2;
}

/**
 * A value with the precision its magnitude deserves, e.g. `1234`, `45.6`, `0.81`; `like`
 * picks the precision instead (so a range is printed like its median).
 */
export function formatValue(value: number, unit: string, like = value): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toFixed(decimals(like, unit));
}

/** `median (min–max)` or `n/a`, all three at the median's precision, e.g. `812 (790–901)`. */
export function formatSummary(s: Summary | null, unit: string): string {
  if (!s) return 'n/a';
  return `${formatValue(s.median, unit)} (${formatValue(s.min, unit, s.median)}–${formatValue(s.max, unit, s.median)})`;
}

/** A ratio as `1.23×`, or `n/a`. */
export function formatRatio(r: number | null): string {
  return r === null || !Number.isFinite(r) ? 'n/a' : `${r.toFixed(2)}×`;
}

/** Which side a ratio favours, in words (for the "where Kindling loses" list). */
export function verdict(c: Comparison): string {
  if (c.ratio === null) return 'no comparison';
  if (c.kindlingLoses) {
    return c.metric.better === 'lower'
      ? `Kindling ${formatRatio(c.ratio)} of QEMU (higher is worse)`
      : `Kindling ${formatRatio(c.ratio)} of QEMU (lower is worse)`;
  }
  return `Kindling ${formatRatio(c.ratio)} of QEMU (Kindling ahead or level)`;
}

/** The sides, in the order they are shown and run. */
export const SIDES: readonly Side[] = ['kindling', 'qemu'];
