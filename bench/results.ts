/**
 * The benchmark results file (bench/results/<date>.json): every sample of every run, the
 * metric catalogue, what was skipped and why, and where it ran. The markdown report and the
 * SVG chart are computed from this file alone (bench/report.ts), so the numbers in a report
 * always come from the runs stored next to it.
 */

/** The two systems compared. */
export type Side = 'kindling' | 'qemu';

/** Units used by metrics (the chart scales each metric on its own). */
export type Unit = 'ms' | 'MiB' | 'exits' | 'MiB/s';

/** A metric's identity and meaning. */
export interface MetricDef {
  /** Stable id, e.g. `boot.mini.start_to_ready`. */
  id: string;
  /** Scenario heading it belongs to (Boot, Exits, Memory, Startup, Block). */
  scenario: string;
  /** Short label for tables and the chart. */
  label: string;
  unit: Unit;
  /** Which direction is good. */
  better: 'lower' | 'higher';
  /** What exactly is measured, for the report's method notes. */
  note?: string;
}

/** A metric with its samples (one per successful run, in run order). */
export interface MetricResult extends MetricDef {
  samples: Record<Side, number[]>;
  /** A baseline series measured in the same run (e.g. bare `node -e 0`). */
  reference?: { label: string; samples: number[] };
}

/** A scenario that did not run, with the reason the report prints. */
export interface SkippedScenario {
  scenario: string;
  reason: string;
}

/** One process run: what ran and everything measured (or the error). */
export interface RunRecord {
  scenario: string;
  /** e.g. `mini-1vcpu`, `debian-1vcpu`, `api`. */
  variant: string;
  side: Side | 'baseline';
  /** Round number (0-based); within a round the sides run back to back, A B A B. */
  round: number;
  /** Warm-up runs are stored but never enter a metric. */
  warmup: boolean;
  ok: boolean;
  error?: string;
  /** Wall-clock start (ISO 8601). */
  startedAt: string;
  /** Raw measurements (times in ms, memory in KiB as /proc reports it, counters). */
  data: Record<string, unknown>;
}

/** Where the benchmark ran. */
export interface BenchEnvironment {
  /** `sandbox`: nested KVM inside the project's QEMU TCG sandbox; `native`: /dev/kvm here. */
  mode: 'sandbox' | 'native';
  /** One honest sentence about what absolute numbers mean in this mode. */
  caveat: string;
  kernel: string;
  cpuModel: string;
  cpus: number;
  memMiB: number;
  node: string;
  qemu: string;
  kindlingVersion: string;
  gitCommit: string;
  /** Whether Node, Kindling, QEMU and the guest images ran from a tmpfs copy (bench/stage.ts). */
  stagedOnTmpfs: boolean;
  /**
   * Other QEMU processes seen on the host during the run (scripts/bench.mjs checks every 5 s);
   * absent when nobody checked.
   */
  hostContention?: { checks: number; busy: number; otherPids: number[]; busyAt?: string[] };
  /** Which KVM statistics sources were readable (debugfs, tracefs histogram). */
  kvmStats: { debugfs: boolean; tracefsHist: boolean };
}

/** The whole results file. */
export interface BenchResults {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  environment: BenchEnvironment;
  settings: {
    /** Measured runs per side per scenario. */
    runsPerSide: number;
    /** Unmeasured runs per side before the first scenario (page cache, JIT caches). */
    warmupRuns: number;
    guestMemMiB: number;
    bootArgs: string;
    qemuMachine: string;
  };
  metrics: MetricResult[];
  skipped: SkippedScenario[];
  runs: RunRecord[];
}

/** The report's scenario order (metrics are sorted by it, stable within a scenario). */
export const SCENARIO_ORDER = ['Boot', 'Exits', 'Memory', 'Startup', 'Block', 'Block transport', 'Shared directory', 'Net', 'Vsock', 'Snapshot', 'Density'];

/** `metrics` sorted by SCENARIO_ORDER, keeping definition order inside a scenario. */
export function inScenarioOrder(metrics: MetricResult[]): MetricResult[] {
  return [...metrics].sort((a, b) => SCENARIO_ORDER.indexOf(a.scenario) - SCENARIO_ORDER.indexOf(b.scenario));
}

/** Collects samples into metrics as runs complete; keeps catalogue order. */
export class ResultsCollector {
  private readonly byId = new Map<string, MetricResult>();
  /** Every run, warm-ups and failures included. */
  readonly runs: RunRecord[] = [];
  readonly skipped: SkippedScenario[] = [];

  /** Declares a metric (its position fixes its place in the report). */
  define(def: MetricDef): void {
    if (!this.byId.has(def.id)) this.byId.set(def.id, { ...def, samples: { kindling: [], qemu: [] } });
  }

  /** Adds one sample for one side; undefined/NaN values (a source unavailable) are dropped. */
  add(id: string, side: Side, value: number | undefined | null): void {
    const m = this.byId.get(id);
    if (!m) throw new Error(`metric ${id} was never defined`);
    if (value !== undefined && value !== null && Number.isFinite(value)) m.samples[side].push(value);
  }

  /** Adds a reference sample (e.g. bare node) to a metric. */
  addReference(id: string, label: string, value: number): void {
    const m = this.byId.get(id);
    if (!m) throw new Error(`metric ${id} was never defined`);
    m.reference ??= { label, samples: [] };
    if (Number.isFinite(value)) m.reference.samples.push(value);
  }

  /** Records that a scenario did not run. */
  skip(scenario: string, reason: string): void {
    this.skipped.push({ scenario, reason });
  }

  /** The metrics in definition order. */
  metrics(): MetricResult[] {
    return [...this.byId.values()];
  }
}

/** KiB (as /proc reports) → MiB. */
export const kibToMib = (kib: number): number => kib / 1024;

/** Nanoseconds (bigint hrtime difference) → milliseconds. */
export const nsToMs = (ns: bigint): number => Number(ns) / 1e6;

/**
 * Joins the results of several sessions (scripts/bench.mjs runs each scenario group in its
 * own sandbox boot, so that a sandbox kernel crash costs one group, not the bench). Metrics
 * with the same id pool their samples, runs and skips are concatenated in session order, the
 * environment and settings are the first session's, the time span covers all sessions.
 */
export function mergeResults(parts: readonly BenchResults[]): BenchResults {
  const [first] = parts;
  if (!first) throw new Error('mergeResults: nothing to merge');
  const byId = new Map<string, MetricResult>();
  for (const p of parts) {
    for (const m of p.metrics) {
      const have = byId.get(m.id);
      if (!have) {
        byId.set(m.id, { ...m, samples: { kindling: [...m.samples.kindling], qemu: [...m.samples.qemu] }, ...(m.reference ? { reference: { ...m.reference, samples: [...m.reference.samples] } } : {}) });
        continue;
      }
      have.samples.kindling.push(...m.samples.kindling);
      have.samples.qemu.push(...m.samples.qemu);
      if (m.reference) {
        have.reference ??= { label: m.reference.label, samples: [] };
        have.reference.samples.push(...m.reference.samples);
      }
    }
  }
  const times = parts.flatMap((p) => [p.startedAt, p.finishedAt]).sort();
  return {
    ...first,
    startedAt: times[0]!,
    finishedAt: times[times.length - 1]!,
    environment: { ...first.environment, kvmStats: { debugfs: parts.every((p) => p.environment.kvmStats.debugfs), tracefsHist: parts.every((p) => p.environment.kvmStats.tracefsHist) } },
    metrics: inScenarioOrder([...byId.values()]),
    skipped: parts.flatMap((p) => p.skipped),
    runs: parts.flatMap((p) => p.runs),
  };
}
