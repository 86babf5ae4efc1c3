/**
 * virtio-mem device metrics in a SharedArrayBuffer (../shared-metrics.ts): written by the
 * device worker, read by the metrics flusher on main. Firecracker's `memory_hotplug` group by
 * name and in declaration order (src/vmm/src/devices/virtio/mem/metrics.rs
 * `VirtioMemDeviceMetrics`; src/metrics/groups.ts lists the same fields for the file), plus
 * Kindling's `bad_chains`, kept out of the metrics file.
 */
import { deviceMetricsClass, type MetricsSnapshot, type SharedDeviceMetrics } from '../shared-metrics.js';

/** Firecracker's `memory_hotplug` counters. */
export const MEM_FIRECRACKER_COUNTERS = [
  'activate_fails',
  'queue_event_fails',
  'queue_event_count',
  'plug_count',
  'plug_bytes',
  'plug_fails',
  'unplug_count',
  'unplug_bytes',
  'unplug_fails',
  'unplug_discard_fails',
  'unplug_all_count',
  'unplug_all_fails',
  'state_count',
  'state_fails',
] as const;

/** Firecracker's `memory_hotplug` latency aggregates. */
export const MEM_LATENCY_METRICS = ['plug_agg', 'unplug_agg', 'unplug_all_agg', 'state_agg'] as const;

/** Kindling's counters (not in the metrics file). */
export const MEM_KINDLING_COUNTERS = [
  /** Chains that could not be parsed (wrong direction, too short, outside RAM): used with length 0. */
  'bad_chains',
] as const;

export const MEM_METRIC_COUNTERS = [...MEM_FIRECRACKER_COUNTERS, ...MEM_KINDLING_COUNTERS] as const;
export type MemCounter = (typeof MEM_METRIC_COUNTERS)[number];
export type MemLatencyMetric = (typeof MEM_LATENCY_METRICS)[number];
export type MemMetricsSnapshot = MetricsSnapshot<MemCounter, MemLatencyMetric>;

/** The virtio-mem device's metrics (one device, one `memory_hotplug` group). */
export const MemMetrics = deviceMetricsClass<MemCounter, MemLatencyMetric>(MEM_METRIC_COUNTERS, MEM_LATENCY_METRICS);
export type MemMetrics = SharedDeviceMetrics<MemCounter, MemLatencyMetric>;
