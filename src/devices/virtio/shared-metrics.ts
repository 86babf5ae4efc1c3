/**
 * One virtio device's metrics in a SharedArrayBuffer, so the device worker (queue work), the
 * vCPU threads (config-space accesses: `cfg_fails`) and the metrics flusher on main see one set
 * of values. Block (block/metrics.ts) and net (net/metrics.ts) are this class over their own
 * name lists, Firecracker's per-device metrics structs (devices/virtio/block/virtio/metrics.rs,
 * devices/virtio/net/metrics.rs).
 *
 * Counters (Firecracker SharedIncMetric) only grow, by `Atomics.add` on BigInt64 slots; the
 * flusher emits the delta since its previous flush. A latency aggregate (e.g. `read_agg`,
 * `tap_write_agg`) is {min_us, max_us, sum_us}: sum_us is a counter, min_us / max_us are
 * gauges (SharedStoreMetric) where 0 means "no sample yet", updated as Firecracker's
 * LatencyMetricsRecorder does.
 */

/** A latency aggregate's values, microseconds. */
export interface LatencyAggregate {
  min_us: number;
  max_us: number;
  sum_us: number;
}

/** Every metric's current (absolute) value. */
export type MetricsSnapshot<C extends string, L extends string> = Record<C, number> & Record<L, LatencyAggregate>;

/** Slots per latency aggregate: min_us, max_us, sum_us. */
const AGG_MIN = 0;
const AGG_MAX = 1;
const AGG_SUM = 2;
const AGG_SLOTS = 3;

/** Where each metric lives in the buffer; computed once per device kind. */
export class MetricsLayout<C extends string, L extends string> {
  /** Bytes a metrics buffer of this layout needs. */
  readonly byteLength: number;
  /** Slot count (BigInt64 each). */
  readonly slotCount: number;
  readonly counterSlot: ReadonlyMap<C, number>;
  readonly aggBase: ReadonlyMap<L, number>;

  constructor(
    /** Counter names, in Firecracker's declaration order. */
    readonly counters: readonly C[],
    /** Latency aggregate names. */
    readonly latencies: readonly L[],
  ) {
    this.counterSlot = new Map(counters.map((n, i) => [n, i]));
    this.aggBase = new Map(latencies.map((n, i) => [n, counters.length + i * AGG_SLOTS]));
    this.slotCount = counters.length + latencies.length * AGG_SLOTS;
    this.byteLength = this.slotCount * BigInt64Array.BYTES_PER_ELEMENT;
  }
}

/** A device's metrics over a (shared) buffer of `layout.byteLength` bytes. */
export class SharedDeviceMetrics<C extends string, L extends string> {
  /** The shared buffer; hand it to other threads to build their own view over it. */
  readonly buffer: SharedArrayBuffer;
  private readonly slots: BigInt64Array;

  /** Attaches to `buffer` (zeroed when fresh), or allocates one. */
  constructor(
    private readonly layout: MetricsLayout<C, L>,
    buffer: SharedArrayBuffer = new SharedArrayBuffer(layout.byteLength),
  ) {
    if (buffer.byteLength < layout.byteLength) throw new RangeError(`device metrics need ${layout.byteLength} bytes`);
    this.buffer = buffer;
    this.slots = new BigInt64Array(buffer, 0, layout.slotCount);
  }

  /** Adds `n` (default 1) to a counter. */
  inc(name: C, n: number | bigint = 1): void {
    Atomics.add(this.slots, this.layout.counterSlot.get(name)!, BigInt(n));
  }

  /** A counter's absolute value. */
  count(name: C): number {
    return Number(Atomics.load(this.slots, this.layout.counterSlot.get(name)!));
  }

  /** Records one operation's latency in µs (sum, and min/max where 0 means unset). */
  recordLatency(name: L, us: number): void {
    const base = this.layout.aggBase.get(name)!;
    const v = BigInt(Math.max(0, Math.round(us)));
    Atomics.add(this.slots, base + AGG_SUM, v);
    const min = Atomics.load(this.slots, base + AGG_MIN);
    if (min === 0n || v < min) Atomics.store(this.slots, base + AGG_MIN, v);
    const max = Atomics.load(this.slots, base + AGG_MAX);
    if (max === 0n || v > max) Atomics.store(this.slots, base + AGG_MAX, v);
  }

  /** A latency aggregate's values. */
  latency(name: L): LatencyAggregate {
    const base = this.layout.aggBase.get(name)!;
    return {
      min_us: Number(Atomics.load(this.slots, base + AGG_MIN)),
      max_us: Number(Atomics.load(this.slots, base + AGG_MAX)),
      sum_us: Number(Atomics.load(this.slots, base + AGG_SUM)),
    };
  }

  /** Every metric's absolute value (the flusher computes deltas of the counters). */
  snapshot(): MetricsSnapshot<C, L> {
    const out = {} as MetricsSnapshot<C, L>;
    for (const n of this.layout.counters) (out as Record<C, number>)[n] = this.count(n);
    for (const n of this.layout.latencies) (out as Record<L, LatencyAggregate>)[n] = this.latency(n);
    return out;
  }
}

/** A device kind's metrics class: `new X(buffer?)` attaches or allocates; `X.byteLength` sizes a buffer. */
export interface DeviceMetricsClass<C extends string, L extends string> {
  new (buffer?: SharedArrayBuffer): SharedDeviceMetrics<C, L>;
  /** Bytes a metrics buffer needs. */
  readonly byteLength: number;
}

/** The metrics class of a device kind with these counter and latency aggregate names. */
export function deviceMetricsClass<C extends string, L extends string>(counters: readonly C[], latencies: readonly L[]): DeviceMetricsClass<C, L> {
  const layout = new MetricsLayout<C, L>(counters, latencies);
  return class extends SharedDeviceMetrics<C, L> {
    static readonly byteLength = layout.byteLength;
    constructor(buffer?: SharedArrayBuffer) {
      super(layout, buffer);
    }
  };
}
