/**
 * virtio-block metrics with Firecracker's names (devices/virtio/block/virtio/metrics.rs), in a
 * SharedArrayBuffer shared by the device worker (requests), the vCPU threads (config-space
 * writes: `cfg_fails`) and the metrics flusher on main (see ../shared-metrics.ts).
 */
import { deviceMetricsClass, type MetricsSnapshot, type SharedDeviceMetrics } from '../shared-metrics.js';

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

export type { LatencyAggregate } from '../shared-metrics.js';

/** Every block metric's current (absolute) value. */
export type BlockMetricsSnapshot = MetricsSnapshot<BlockCounter, BlockLatencyMetric>;

/** One block device's metrics (one per drive: Firecracker's `block_<drive_id>`). */
export const BlockMetrics = deviceMetricsClass<BlockCounter, BlockLatencyMetric>(BLOCK_METRIC_COUNTERS, BLOCK_LATENCY_METRICS);
/** An instance of BlockMetrics. */
export type BlockMetrics = SharedDeviceMetrics<BlockCounter, BlockLatencyMetric>;
