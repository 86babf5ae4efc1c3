/**
 * vsock metrics in a SharedArrayBuffer (../shared-metrics.ts), shared by the device worker,
 * the vCPU threads (config-space accesses count `cfg_fails`) and the metrics flusher on main.
 *
 * The first counters are Firecracker's `vsock` group, by name and in declaration order
 * (src/vmm/src/devices/virtio/vsock/metrics.rs `VsockDeviceMetrics`); only those reach the
 * metrics file (src/metrics/groups.ts). The rest are Kindling's: hostile input Firecracker
 * handles without a metric (it logs, or nothing), counted so tests and operators can see
 * it was handled. They are read through the device handle, never written to the file, so the
 * file keeps Firecracker's exact fields.
 */
import { deviceMetricsClass, type MetricsSnapshot, type SharedDeviceMetrics } from '../shared-metrics.js';

/** Firecracker's `vsock` group. */
export const VSOCK_FIRECRACKER_COUNTERS = [
  'activate_fails',
  'cfg_fails',
  'rx_queue_event_fails',
  'tx_queue_event_fails',
  'ev_queue_event_fails',
  'muxer_event_fails',
  'conn_event_fails',
  'rx_queue_event_count',
  'tx_queue_event_count',
  'rx_bytes_count',
  'tx_bytes_count',
  'rx_packets_count',
  'tx_packets_count',
  'conns_added',
  'conns_killed',
  'conns_removed',
  'killq_resync',
  'tx_flush_fails',
  'tx_write_fails',
  'rx_read_fails',
] as const;

/** Kindling's counters of hostile or unusual input (not in the metrics file). */
export const VSOCK_KINDLING_COUNTERS = [
  /** TX chains that are not a valid packet (packet.ts codes); used with length 0. */
  'tx_malformed_packets',
  /** RX chains that cannot take a packet; used with length 0. */
  'rx_bad_buffers',
  /** TX packets for a CID other than the host's: dropped (Firecracker logs them). */
  'tx_wrong_cid',
  /** TX packets of a socket type other than stream: answered with RST. */
  'tx_wrong_type',
  /** TX packets for no known connection (other than REQUEST): answered with RST. */
  'tx_unknown_connection',
  /** TX packets a connection's state does not allow (out of order): dropped. */
  'tx_unexpected_ops',
  /** Guest data beyond the credit the device gave: the connection is reset. */
  'credit_violations',
  /** Guest connection requests no host listener took (`<uds_path>_<port>`): answered with RST. */
  'guest_connects_refused',
  /** Requests refused because MAX_CONNECTIONS were open. */
  'connection_limit_refusals',
  /** RST packets dropped because RST_QUEUE_MAX were already waiting for RX buffers. */
  'rst_dropped',
  /** Host connections accepted on `uds_path`. */
  'host_connects_accepted',
  /** Host connections closed for a malformed CONNECT line (or an end of stream before one). */
  'host_connects_invalid',
  /** Host connections closed for sending no complete CONNECT line within HOST_CONNECT_TIMEOUT_MS. */
  'host_connects_timed_out',
  /** accept(2) failures other than "none waiting" (e.g. out of fds: the listener backs off). */
  'accept_fails',
] as const;

/** Every counter name. */
export const VSOCK_METRIC_COUNTERS = [...VSOCK_FIRECRACKER_COUNTERS, ...VSOCK_KINDLING_COUNTERS] as const;

/** One of VSOCK_METRIC_COUNTERS. */
export type VsockCounter = (typeof VSOCK_METRIC_COUNTERS)[number];

/** Every vsock counter's current (absolute) value. */
export type VsockMetricsSnapshot = MetricsSnapshot<VsockCounter, never>;

/** The vsock device's metrics (Firecracker has one vsock device per VM and one `vsock` group). */
export const VsockMetrics = deviceMetricsClass<VsockCounter, never>(VSOCK_METRIC_COUNTERS, []);
/** An instance of VsockMetrics. */
export type VsockMetrics = SharedDeviceMetrics<VsockCounter, never>;
