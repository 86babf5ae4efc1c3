/**
 * virtio-block metrics with Firecracker's names (devices/virtio/block/virtio/metrics.rs,
 * facts §7), kept in a SharedArrayBuffer so the device worker (requests), the vCPU threads
 * (config-space writes: `cfg_fails`) and the metrics flusher on main see one set of values.
 *
 * Counters (Firecracker SharedIncMetric) only grow, by `Atomics.add` on BigInt64 slots; the
 * flusher emits the delta since its previous flush. The latency aggregates `read_agg` and
 * `write_agg` are {min_us, max_us, sum_us}: sum_us is a counter, min_us / max_us are gauges
 * (SharedStoreMetric) where 0 means "no sample yet", updated as Firecracker's
 * LatencyMetricsRecorder does.
 */

/** Counter names, in Firecracker's declaration order (the JSON key order). */
export const BLOCK_METRIC_COUNTERS = [
  'activate_fails',
  'cfg_fails',
  'no_avail_buffer',
  'event_fails',
  'execute_fails',
  'invalid_reqs_count',
  'flush_count',
  'queue_event_count',
  'rate_limiter_event_count',
  'update_count',
  'update_fails',
  'read_bytes',
  'write_bytes',
  'read_count',
  'write_count',
  'rate_limiter_throttled_events',
  'io_engine_throttled_events',
  'remaining_reqs_count',
] as const;

/** Latency aggregate names (each {min_us, max_us, sum_us}); in the JSON they follow write_count. */
export const BLOCK_LATENCY_METRICS = ['read_agg', 'write_agg'] as const;

/** One of BLOCK_METRIC_COUNTERS. */
export type BlockCounter = (typeof BLOCK_METRIC_COUNTERS)[number];
/** One of BLOCK_LATENCY_METRICS. */
export type BlockLatencyMetric = (typeof BLOCK_LATENCY_METRICS)[number];

/** A latency aggregate's values, microseconds. */
export interface LatencyAggregate {
  min_us: number;
  max_us: number;
  sum_us: number;
}

/** Every block metric's current (absolute) value. */
export type BlockMetricsSnapshot = Record<BlockCounter, number> & Record<BlockLatencyMetric, LatencyAggregate>;

/** Slots per latency aggregate: min_us, max_us, sum_us. */
const AGG_MIN = 0;
const AGG_MAX = 1;
const AGG_SUM = 2;
const AGG_SLOTS = 3;

const COUNTER_SLOT = new Map<BlockCounter, number>(BLOCK_METRIC_COUNTERS.map((n, i) => [n, i]));
const AGG_BASE = new Map<BlockLatencyMetric, number>(
  BLOCK_LATENCY_METRICS.map((n, i) => [n, BLOCK_METRIC_COUNTERS.length + i * AGG_SLOTS]),
);
const SLOT_COUNT = BLOCK_METRIC_COUNTERS.length + BLOCK_LATENCY_METRICS.length * AGG_SLOTS;

/** One block device's metrics (one per drive: Firecracker's `block_<drive_id>`). */
export class BlockMetrics {
  /** Bytes a metrics buffer needs. */
  static readonly byteLength = SLOT_COUNT * BigInt64Array.BYTES_PER_ELEMENT;
  /** The shared buffer; hand it to other threads to build their own BlockMetrics over it. */
  readonly buffer: SharedArrayBuffer;
  private readonly slots: BigInt64Array;

  /** Attaches to `buffer` (zeroed when fresh), or allocates one. */
  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(BlockMetrics.byteLength)) {
    if (buffer.byteLength < BlockMetrics.byteLength) throw new RangeError(`block metrics need ${BlockMetrics.byteLength} bytes`);
    this.buffer = buffer;
    this.slots = new BigInt64Array(buffer, 0, SLOT_COUNT);
  }

  /** Adds `n` (default 1) to a counter. */
  inc(name: BlockCounter, n: number | bigint = 1): void {
    Atomics.add(this.slots, COUNTER_SLOT.get(name)!, BigInt(n));
  }

  /** A counter's absolute value. */
  count(name: BlockCounter): number {
    return Number(Atomics.load(this.slots, COUNTER_SLOT.get(name)!));
  }

  /** Records one operation's latency in µs (sum, and min/max where 0 means unset). */
  recordLatency(name: BlockLatencyMetric, us: number): void {
    const base = AGG_BASE.get(name)!;
    const v = BigInt(Math.max(0, Math.round(us)));
    Atomics.add(this.slots, base + AGG_SUM, v);
    const min = Atomics.load(this.slots, base + AGG_MIN);
    if (min === 0n || v < min) Atomics.store(this.slots, base + AGG_MIN, v);
    const max = Atomics.load(this.slots, base + AGG_MAX);
    if (max === 0n || v > max) Atomics.store(this.slots, base + AGG_MAX, v);
  }

  /** A latency aggregate's values. */
  latency(name: BlockLatencyMetric): LatencyAggregate {
    const base = AGG_BASE.get(name)!;
    return {
      min_us: Number(Atomics.load(this.slots, base + AGG_MIN)),
      max_us: Number(Atomics.load(this.slots, base + AGG_MAX)),
      sum_us: Number(Atomics.load(this.slots, base + AGG_SUM)),
    };
  }

  /** Every metric's absolute value (the flusher computes deltas of the counters). */
  snapshot(): BlockMetricsSnapshot {
    const out = {} as BlockMetricsSnapshot;
    for (const n of BLOCK_METRIC_COUNTERS) out[n] = this.count(n);
    for (const n of BLOCK_LATENCY_METRICS) out[n] = this.latency(n);
    return out;
  }
}
