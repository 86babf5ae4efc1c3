/**
 * virtio-net metrics with Firecracker's names (src/vmm/src/devices/virtio/net/metrics.rs
 * `NetDeviceMetrics`), one set per interface (`net_<iface_id>`), in a SharedArrayBuffer shared
 * by the device worker (queues and TAP), the vCPU threads (config-space writes: `cfg_fails`,
 * `mac_address_updates`) and the metrics flusher on main (see ../shared-metrics.ts).
 */
import { deviceMetricsClass, type MetricsSnapshot, type SharedDeviceMetrics } from '../shared-metrics.js';

/** Counter names, in Firecracker's declaration order (`tap_write_agg` sits after tap_write_fails). */
export const NET_METRIC_COUNTERS = [
  'activate_fails',
  'cfg_fails',
  'mac_address_updates',
  'no_rx_avail_buffer',
  'no_tx_avail_buffer',
  'event_fails',
  'rx_queue_event_count',
  'rx_event_rate_limiter_count',
  'rx_rate_limiter_throttled',
  'rx_tap_event_count',
  'rx_bytes_count',
  'rx_packets_count',
  'rx_fails',
  'rx_count',
  'tap_read_fails',
  'tap_write_fails',
  'tx_bytes_count',
  'tx_malformed_frames',
  'tx_fails',
  'tx_count',
  'tx_packets_count',
  'tx_queue_event_count',
  'tx_rate_limiter_event_count',
  'tx_rate_limiter_throttled',
  'tx_spoofed_mac_count',
  'tx_remaining_reqs_count',
] as const;

/** Latency aggregate names (each {min_us, max_us, sum_us}): the duration of TAP writes. */
export const NET_LATENCY_METRICS = ['tap_write_agg'] as const;

/** One of NET_METRIC_COUNTERS. */
export type NetCounter = (typeof NET_METRIC_COUNTERS)[number];
/** One of NET_LATENCY_METRICS. */
export type NetLatencyMetric = (typeof NET_LATENCY_METRICS)[number];

/** Every net metric's current (absolute) value. */
export type NetMetricsSnapshot = MetricsSnapshot<NetCounter, NetLatencyMetric>;

/** One net device's metrics (one per interface: Firecracker's `net_<iface_id>`). */
export const NetMetrics = deviceMetricsClass<NetCounter, NetLatencyMetric>(NET_METRIC_COUNTERS, NET_LATENCY_METRICS);
/** An instance of NetMetrics. */
export type NetMetrics = SharedDeviceMetrics<NetCounter, NetLatencyMetric>;
