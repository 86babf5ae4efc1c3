/**
 * MMDS metrics with Firecracker's names (src/vmm/src/logger/metrics.rs `MmdsMetrics`), in a
 * SharedArrayBuffer like the devices' (../devices/virtio/shared-metrics.ts): each net worker
 * that runs an MMDS stack counts into its own buffer, and main reads the buffers without
 * messages and sums them into the one top-level `mmds` group Firecracker emits
 * (Metrics.addGroupSource, src/metrics/metrics.ts).
 *
 * Who counts what, against Firecracker's split between mmds/ns.rs and the net device:
 * `MmdsStack` counts them all, including `rx_accepted` (a frame taken off the TX path) and
 * `tx_frames`/`tx_bytes` (a frame handed to the guest), which Firecracker counts in
 * devices/virtio/net/device.rs; the net device must not count them again.
 */
import { deviceMetricsClass, type SharedDeviceMetrics } from '../devices/virtio/shared-metrics.js';

/** Counter names, in Firecracker's declaration order (the JSON key order). */
export const MMDS_METRIC_COUNTERS = [
  'rx_accepted',
  'rx_accepted_err',
  'rx_accepted_unusual',
  'rx_bad_eth',
  'rx_invalid_token',
  'rx_no_token',
  'rx_count',
  'tx_bytes',
  'tx_count',
  'tx_errors',
  'tx_frames',
  'connections_created',
  'connections_destroyed',
] as const;

/** One of MMDS_METRIC_COUNTERS. */
export type MmdsCounter = (typeof MMDS_METRIC_COUNTERS)[number];

/** One MMDS stack's metrics; `new MmdsMetrics(buffer)` attaches to another thread's buffer. */
export const MmdsMetrics = deviceMetricsClass<MmdsCounter, never>(MMDS_METRIC_COUNTERS, []);
/** An instance of MmdsMetrics. */
export type MmdsMetrics = SharedDeviceMetrics<MmdsCounter, never>;
