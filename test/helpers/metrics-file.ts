/**
 * Reading a metrics file in tests. Counters are written as the delta since the previous flush
 * (Firecracker's SharedIncMetric, src/metrics/metrics.ts), and the 60 s periodic flush can fall
 * inside a slow nested run, so a counter's total is the sum over every line, never the last
 * line alone.
 */
import { readFileSync } from 'node:fs';

export interface MetricsFile {
  /** Every flush, oldest first. */
  lines: Record<string, Record<string, number>>[];
  /** A counter's total over all flushes (0 where it never appears). */
  total(group: string, field: string): number;
  /** Whether `field` appears in `group` in any flush. */
  has(group: string, field: string): boolean;
}

export function readMetricsFile(path: string): MetricsFile {
  const lines = readFileSync(path, 'utf8').trim().split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, Record<string, number>>);
  return {
    lines,
    total: (group, field) => lines.reduce((n, l) => n + (l[group]?.[field] ?? 0), 0),
    has: (group, field) => lines.some((l) => l[group] !== undefined && field in l[group]!),
  };
}
