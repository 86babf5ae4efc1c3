/**
 * Entropy device metrics in a SharedArrayBuffer (../shared-metrics.ts): written by the device
 * worker, read by the metrics flusher on main. The counters are Firecracker's `entropy` group,
 * by name and in declaration order (src/vmm/src/devices/virtio/rng/metrics.rs
 * `EntropyDeviceMetrics`; src/metrics/groups.ts lists the same fields for the file), plus one
 * of Kindling's own, `bad_chains`, which stays out of the metrics file: Firecracker counts a
 * chain it cannot use only as `entropy_event_fails`, and so does Kindling, but tests and
 * operators can tell a hostile chain from a failed host read with it.
 */
import { deviceMetricsClass, type MetricsSnapshot, type SharedDeviceMetrics } from '../shared-metrics.js';

/** Firecracker's `entropy` group. */
export const ENTROPY_FIRECRACKER_COUNTERS = [
  'activate_fails',
  'entropy_event_fails',
  'entropy_event_count',
  'entropy_bytes',
  'host_rng_fails',
  'entropy_rate_limiter_throttled',
  'rate_limiter_event_count',
] as const;

/** Kindling's counters (not in the metrics file). */
export const ENTROPY_KINDLING_COUNTERS = [
  /** Chains with a device-read-only buffer or one outside guest RAM: used with length 0. */
  'bad_chains',
] as const;

/** Every counter name. */
export const ENTROPY_METRIC_COUNTERS = [...ENTROPY_FIRECRACKER_COUNTERS, ...ENTROPY_KINDLING_COUNTERS] as const;

/** One of ENTROPY_METRIC_COUNTERS. */
export type EntropyCounter = (typeof ENTROPY_METRIC_COUNTERS)[number];

/** Every entropy counter's current (absolute) value. */
export type EntropyMetricsSnapshot = MetricsSnapshot<EntropyCounter, never>;

/** The entropy device's metrics (Firecracker has at most one entropy device and one `entropy` group). */
export const EntropyMetrics = deviceMetricsClass<EntropyCounter, never>(ENTROPY_METRIC_COUNTERS, []);
/** An instance of EntropyMetrics. */
export type EntropyMetrics = SharedDeviceMetrics<EntropyCounter, never>;
