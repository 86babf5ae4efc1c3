/**
 * Firecracker-compatible metrics (firecracker src/vmm/src/logger/metrics.rs, logger/metrics.rs): counters are emitted as the
 * delta since the previous flush, gauges as absolute values; every flush writes ONE JSON object
 * per line with ALL groups (zeros when a device is absent), serialized by fast-json-stringify
 * from a schema built for the current set of devices. Flushes: once when the VM is built, every
 * 60 s, and on FlushMetrics. The sink (PUT /metrics or --metrics-path) is set once per process.
 */
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { compileSerializer } from '../util/json-serializer.js';
import { ConfigError, ioErrorText } from '../config/errors.js';
import type { MetricsConfig } from '../config/metrics.js';
import { DEVICE_GROUPS, DeviceGroupKind, GROUPS, GroupName, GroupSpec, MetricKind, TOP_LEVEL_ORDER } from './groups.js';

/** Firecracker's metrics flush period (WRITE_METRICS_PERIOD_MS). */
export const WRITE_METRICS_PERIOD_MS = 60_000;

/** A counter (SharedIncMetric): `add` accumulates, a flush emits and commits the delta. */
export class SharedIncMetric {
  private cur = 0;
  private prev = 0;
  /** Adds `v` (default 1). */
  add(v = 1): void {
    this.cur += v;
  }
  /** Adds 1. */
  inc(): void {
    this.cur += 1;
  }
  /** Total since process start. */
  count(): number {
    return this.cur;
  }
  /** Delta since the last flush, without committing. */
  fetchDiff(): number {
    return this.cur - this.prev;
  }
  /** Delta since the last flush, committing it (what serialization does). */
  take(): number {
    const d = this.cur - this.prev;
    this.prev = this.cur;
    return d;
  }
}

/** A gauge (SharedStoreMetric): emitted as stored. */
export class SharedStoreMetric {
  private v = 0;
  /** Sets the value. */
  store(v: number): void {
    this.v = v;
  }
  /** Current value. */
  fetch(): number {
    return this.v;
  }
}

/** `{min_us, max_us, sum_us}` latency aggregate (LatencyAggregateMetrics). */
export class LatencyAggregateMetrics {
  readonly min_us = new SharedStoreMetric();
  readonly max_us = new SharedStoreMetric();
  readonly sum_us = new SharedIncMetric();
  /** Records one sample in microseconds (LatencyMetricsRecorder::drop). */
  record(deltaUs: number): void {
    this.sum_us.add(deltaUs);
    this.mergeMinMax(deltaUs, deltaUs);
  }
  /**
   * Folds in a min/max observed elsewhere, with LatencyMetricsRecorder's rule that 0 means
   * "no sample yet" on either side. min/max are gauges: never reset by a flush.
   */
  mergeMinMax(minUs: number, maxUs: number): void {
    const min = this.min_us.fetch();
    const max = this.max_us.fetch();
    if (minUs !== 0 && (min === 0 || min > minUs)) this.min_us.store(minUs);
    if (maxUs !== 0 && (max === 0 || max < maxUs)) this.max_us.store(maxUs);
  }
}

/**
 * Turns successive readings of a counter that wraps at 2^32 (a shared Int32 slot, e.g. the
 * UART's, src/devices/legacy/shared-state.ts invariant 2) into a running total for a source.
 * Correct as long as it is called at least once per 2^32 counts (every flush is).
 */
export function runningTotalU32(): (reading: number) => number {
  const U32 = 2 ** 32;
  let total = 0;
  let last = 0;
  return (reading) => {
    total += (((reading >>> 0) - last) % U32 + U32) % U32;
    last = reading >>> 0;
    return total;
  };
}

/** A latency aggregate's absolute values as a device source reports them. */
export interface LatencyAggregateValues {
  readonly min_us: number;
  readonly max_us: number;
  readonly sum_us: number;
}

/**
 * Absolute values of one device's metrics as its owner keeps them (e.g. the block worker's
 * shared buffer): counters and `sum_us` are totals since the device was created, gauges and
 * min/max as stored. Typed from DEVICE_GROUPS so a source missing a field does not compile.
 */
export type DeviceMetricValues<K extends DeviceGroupKind> = {
  readonly [E in (typeof DEVICE_GROUPS)[K][number] as E[0]]: E[1] extends 'agg' ? LatencyAggregateValues : number;
};

/**
 * Absolute values of a fixed group as sources elsewhere keep them (each net worker's `mmds`
 * counters, the vCPU workers' exit counters, the UART's shared state, the vsock worker's
 * counters): typed from GROUPS like DeviceMetricValues.
 */
export type GroupMetricValues<G extends GroupName> = {
  readonly [E in (typeof GROUPS)[G][number] as E[0]]: E[1] extends 'agg' ? LatencyAggregateValues : number;
};

/** A registered source, the group it feeds, and the totals already pulled from it (per counter field). */
interface MetricsSource {
  readonly spec: GroupSpec;
  readonly group: () => Record<string, unknown>;
  /** Fields a source leaves out are not its to count (addGroupSource). */
  readonly read: () => Readonly<Partial<Record<string, number | LatencyAggregateValues>>>;
  readonly pulled: Map<string, number>;
}

type MetricOf<K extends MetricKind> = K extends 'inc' ? SharedIncMetric : K extends 'store' ? SharedStoreMetric : LatencyAggregateMetrics;
/** The typed object for a group spec: one metric per field. */
export type MetricGroup<S extends GroupSpec> = { readonly [E in S[number] as E[0]]: MetricOf<E[1]> };

function makeGroup<S extends GroupSpec>(spec: S): MetricGroup<S> {
  const g: Record<string, unknown> = {};
  for (const [name, kind] of spec) g[name] = kind === 'inc' ? new SharedIncMetric() : kind === 'store' ? new SharedStoreMetric() : new LatencyAggregateMetrics();
  return g as MetricGroup<S>;
}

function snapshotGroup(spec: GroupSpec, g: Record<string, unknown>, commit: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, kind] of spec) {
    const m = g[name];
    if (kind === 'inc') out[name] = commit ? (m as SharedIncMetric).take() : (m as SharedIncMetric).fetchDiff();
    else if (kind === 'store') out[name] = (m as SharedStoreMetric).fetch();
    else {
      const a = m as LatencyAggregateMetrics;
      out[name] = { min_us: a.min_us.fetch(), max_us: a.max_us.fetch(), sum_us: commit ? a.sum_us.take() : a.sum_us.fetchDiff() };
    }
  }
  return out;
}

function groupSchema(spec: GroupSpec): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const agg = { type: 'object', properties: { min_us: { type: 'integer' }, max_us: { type: 'integer' }, sum_us: { type: 'integer' } } };
  for (const [name, kind] of spec) properties[name] = kind === 'agg' ? agg : { type: 'integer' };
  return { type: 'object', properties };
}

/** Fixed groups as typed properties of `Metrics`. */
type FixedGroups = { readonly [G in GroupName]: MetricGroup<(typeof GROUPS)[G]> };

/** The process-wide metrics registry (Firecracker's `METRICS`). */
class MetricsBase {
  private readonly devices = new Map<DeviceGroupKind, Map<string, Record<string, unknown>>>();
  private readonly sources = new Set<MetricsSource>();
  private fd: number | null = null;
  private emitId: string | null = null;
  private properties: Record<string, string> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly serializers = new Map<string, (o: unknown) => string>();

  constructor() {
    for (const name of Object.keys(GROUPS) as GroupName[]) (this as unknown as Record<string, unknown>)[name] = makeGroup(GROUPS[name]);
  }

  /** The metrics of one device (`block_<id>`, `net_<id>`, ...), created on first use. */
  device<K extends DeviceGroupKind>(kind: K, id: string): MetricGroup<(typeof DEVICE_GROUPS)[K]> {
    let m = this.devices.get(kind);
    if (!m) this.devices.set(kind, (m = new Map()));
    let g = m.get(id);
    if (!g) m.set(id, (g = makeGroup(DEVICE_GROUPS[kind]) as Record<string, unknown>));
    return g as MetricGroup<(typeof DEVICE_GROUPS)[K]>;
  }

  /**
   * Registers a device whose metrics live outside this registry (another thread's shared
   * memory): `read` returns absolute values, and each snapshot pulls the increase since the
   * previous pull into the device's group, so counters then flush as deltas like any other
   * SharedIncMetric. The `<kind>_<id>` group exists from registration on (zeros included), as
   * Firecracker allocates it when the device is created (BlockMetricsPerDevice::alloc).
   *
   * The returned function unregisters: it pulls a last time, so activity before the device
   * stopped still reaches the next flush, and the group stays, as Firecracker never removes
   * an entry from its per-device map. Registering the same id again continues its totals
   * (alloc reuses the entry).
   */
  addDeviceSource<K extends DeviceGroupKind>(kind: K, id: string, read: () => DeviceMetricValues<K>): () => void {
    this.device(kind, id);
    return this.addSource({ spec: DEVICE_GROUPS[kind], group: () => this.device(kind, id) as Record<string, unknown>, read, pulled: new Map() });
  }

  /**
   * Registers one of several sources of a fixed group (docs/design.md, Metrics): the `mmds`
   * counters of each net worker that runs an MMDS stack (Firecracker has one MMDS and one
   * `mmds` group, Kindling an MMDS stack per interface), the vCPU workers' `vcpu` counters, the
   * UART's and i8042's shared state, the vsock worker's counters (Firecracker's one `vsock`
   * group). `read` returns absolute totals since the source began (counters, `sum_us`) and gauges as stored; every flush emits the sum of what all sources of
   * the group counted since the last one (a gauge takes the last source's value). Fields a
   * source leaves out stay the registry's own (e.g. `uart.flush_count`). Pulled like a device
   * source; the returned function unregisters with a last pull, so a stopped VM's last counts
   * still reach the final flush.
   */
  addGroupSource<G extends GroupName>(group: G, read: () => Partial<GroupMetricValues<G>>): () => void {
    const target = (this as unknown as Record<string, Record<string, unknown>>)[group]!;
    return this.addSource({ spec: GROUPS[group], group: () => target, read: read as MetricsSource['read'], pulled: new Map() });
  }

  private addSource(src: MetricsSource): () => void {
    this.sources.add(src);
    return () => {
      if (!this.sources.delete(src)) return;
      this.pull(src);
    };
  }

  /** Moves what a source counted since the last pull into its group. */
  private pull(src: MetricsSource): void {
    const g = src.group();
    const values = src.read();
    const advance = (field: string, total: number, m: SharedIncMetric): void => {
      // Totals only grow; a smaller value (never expected) is not subtracted from what was emitted.
      const d = total - (src.pulled.get(field) ?? 0);
      if (d > 0) m.add(d);
      src.pulled.set(field, Math.max(total, src.pulled.get(field) ?? 0));
    };
    for (const [name, kind] of src.spec) {
      const v = values[name];
      if (v === undefined) continue;
      if (kind === 'inc') advance(name, v as number, g[name] as SharedIncMetric);
      else if (kind === 'store') (g[name] as SharedStoreMetric).store(v as number);
      else {
        const a = v as LatencyAggregateValues;
        const m = g[name] as LatencyAggregateMetrics;
        advance(`${name}.sum_us`, a.sum_us, m.sum_us);
        m.mergeMinMax(a.min_us, a.max_us);
      }
    }
  }

  /** True once a sink was configured. */
  get initialized(): boolean {
    return this.fd !== null;
  }

  /**
   * Configures the sink (`init_metrics`): the file is opened O_NONBLOCK (created if missing)
   * first, then a second initialization is refused, as Firecracker orders it.
   */
  init(cfg: MetricsConfig, instanceId: string): void {
    let fd: number;
    try {
      fd = openSync(cfg.metrics_path, constants.O_RDWR | constants.O_CREAT | constants.O_NONBLOCK, 0o644);
    } catch (e) {
      throw new ConfigError('metrics', `Cannot initialize the metrics system due to bad user input: ${ioErrorText(e)}`, { cause: e });
    }
    if (this.fd !== null) {
      closeSync(fd);
      throw new ConfigError('metrics', 'Cannot initialize the metrics system due to bad user input: Reinitialization of metrics not allowed.');
    }
    this.fd = fd;
    this.emitId = cfg.emit_id ? instanceId : null;
    this.properties = cfg.properties;
  }

  /**
   * The metrics object as the next flush would emit it. With `commit` the counter deltas are
   * consumed (a flush); without, it is a peek.
   */
  snapshot(commit = true): Record<string, unknown> {
    // Pulling only advances the counters' totals; the delta base moves on commit alone, so a
    // peek followed by a flush still emits everything.
    for (const src of this.sources) this.pull(src);
    const out: Record<string, unknown> = { utc_timestamp_ms: Date.now() };
    if (this.emitId !== null) out.id = this.emitId;
    if (this.properties) out.properties = Object.fromEntries(Object.entries(this.properties).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    for (const slot of TOP_LEVEL_ORDER) {
      if (!slot.startsWith('@')) {
        out[slot] = snapshotGroup(GROUPS[slot as GroupName], (this as unknown as Record<string, Record<string, unknown>>)[slot]!, commit);
        continue;
      }
      const kind = slot.slice(1) as DeviceGroupKind;
      const spec = DEVICE_GROUPS[kind];
      // The `<kind>` aggregate is BlockDeviceMetrics::aggregate (block/virtio/metrics.rs; net
      // alike): a fresh group summing each device's not-yet-flushed counter deltas, taken
      // before that device is serialized. Only `sum_us` of a latency aggregate is summed:
      // min_us/max_us are store metrics, which Firecracker's aggregate leaves at 0.
      const aggregate = makeGroup(spec) as Record<string, unknown>;
      const devs = [...(this.devices.get(kind) ?? new Map()).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      for (const [id, g] of devs) {
        for (const [name, k] of spec) {
          if (k === 'inc') (aggregate[name] as SharedIncMetric).add((g[name] as SharedIncMetric).fetchDiff());
          if (k === 'agg') (aggregate[name] as LatencyAggregateMetrics).sum_us.add((g[name] as LatencyAggregateMetrics).sum_us.fetchDiff());
        }
        out[`${kind}_${id}`] = snapshotGroup(spec, g, commit);
      }
      if (kind !== 'vhost_user') out[kind] = snapshotGroup(spec, aggregate, true);
    }
    return out;
  }

  /** Serializes one flush with fast-json-stringify (schema cached per key layout). */
  serialize(commit = true): string {
    const snap = this.snapshot(commit);
    const keys = Object.keys(snap).join(',');
    let fn = this.serializers.get(keys);
    if (!fn) {
      const properties: Record<string, unknown> = { utc_timestamp_ms: { type: 'integer' }, id: { type: 'string' }, properties: { type: 'object', additionalProperties: { type: 'string' } } };
      for (const k of Object.keys(snap)) {
        if (k in properties) continue;
        const kind = (Object.keys(DEVICE_GROUPS) as DeviceGroupKind[]).find((d) => k === d || k.startsWith(`${d}_`));
        const spec = k in GROUPS ? GROUPS[k as GroupName] : DEVICE_GROUPS[kind!];
        properties[k] = groupSchema(spec);
      }
      fn = compileSerializer({ type: 'object', properties });
      this.serializers.set(keys, fn);
    }
    return fn(snap);
  }

  /**
   * Writes one line to the sink (`METRICS.write()`): false when no sink is configured; a failed
   * write counts `logger.missed_metrics_count` and rethrows.
   */
  write(): boolean {
    if (this.fd === null) return false;
    const line = Buffer.from(`${this.serialize(true)}\n`);
    try {
      for (let off = 0; off < line.length; ) off += writeSync(this.fd, line, off, line.length - off);
    } catch (e) {
      (this as unknown as FixedGroups).logger.missed_metrics_count.inc();
      throw new Error(`Failed to write metrics: ${ioErrorText(e)}`, { cause: e });
    }
    return true;
  }

  /** Starts the periodic flush (`PeriodicMetrics::start`): one write now, then every period. */
  startPeriodic(onError: (e: Error) => void, periodMs = WRITE_METRICS_PERIOD_MS): void {
    this.stopPeriodic();
    const tick = (): void => {
      try {
        this.write();
      } catch (e) {
        onError(e as Error);
      }
    };
    tick();
    this.timer = setInterval(tick, periodMs);
    this.timer.unref();
  }

  /** Stops the periodic flush. */
  stopPeriodic(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Closes the sink (tests and shutdown). */
  close(): void {
    this.stopPeriodic();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** The metrics registry type: fixed groups as properties plus device and sink methods. */
export type Metrics = MetricsBase & FixedGroups;

/** Creates an independent registry (tests); production code shares `METRICS`. */
export function createMetrics(): Metrics {
  return new MetricsBase() as Metrics;
}

/** The process-wide registry, as Firecracker's global `METRICS`. */
export const METRICS: Metrics = createMetrics();
