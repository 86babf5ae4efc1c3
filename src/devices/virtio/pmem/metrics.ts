/**
 * virtio-pmem device metrics in a SharedArrayBuffer (../shared-metrics.ts): written by the
 * device worker (and `cfg_fails` by the vCPU threads), read by the metrics flusher on main.
 * Firecracker's per-device `pmem_<id>` group, by name and in declaration order
 * (src/vmm/src/devices/virtio/pmem/metrics.rs `PmemMetrics`; src/metrics/groups.ts).
 */
import { deviceMetricsClass, type MetricsSnapshot, type SharedDeviceMetrics } from '../shared-metrics.js';

export const PMEM_METRIC_COUNTERS = [
  'activate_fails',
  'cfg_fails',
  'event_fails',
  'queue_event_count',
  'rate_limiter_throttled_events',
  'rate_limiter_event_count',
] as const;

export type PmemCounter = (typeof PMEM_METRIC_COUNTERS)[number];
export type PmemMetricsSnapshot = MetricsSnapshot<PmemCounter, never>;

/** One pmem device's metrics. */
export const PmemMetrics = deviceMetricsClass<PmemCounter, never>(PMEM_METRIC_COUNTERS, []);
export type PmemMetrics = SharedDeviceMetrics<PmemCounter, never>;
