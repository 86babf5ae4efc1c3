/**
 * Balloon device metrics in a SharedArrayBuffer (../shared-metrics.ts): written by the device
 * worker, read by the metrics flusher on main. The counters are Firecracker's `balloon` group
 * by name and in declaration order (src/vmm/src/devices/virtio/balloon/metrics.rs
 * `BalloonDeviceMetrics`; src/metrics/groups.ts lists the same fields for the file), plus
 * Kindling's own, kept out of the metrics file: what the host really gave back, and what the
 * guest sent that could not be used.
 */
import { deviceMetricsClass, type MetricsSnapshot, type SharedDeviceMetrics } from '../shared-metrics.js';

/** Firecracker's `balloon` group. */
export const BALLOON_FIRECRACKER_COUNTERS = [
  'activate_fails',
  'inflate_count',
  'stats_updates_count',
  'stats_update_fails',
  'deflate_count',
  'event_fails',
  'free_page_report_count',
  'free_page_report_freed',
  'free_page_report_fails',
  'free_page_hint_count',
  'free_page_hint_freed',
  'free_page_hint_fails',
] as const;

/** Kindling's counters (not in the metrics file). */
export const BALLOON_KINDLING_COUNTERS = [
  /** 4 KiB pages of inflate buffers whose host memory was released. */
  'pages_discarded',
  /** Page frame numbers outside guest RAM (ignored). */
  'bad_pfns',
  /** Chains that could not be used (a device-writable buffer, one outside RAM, a torn PFN list). */
  'bad_chains',
  /** Ranges whose release failed on the host (madvise returned an error). */
  'discard_fails',
] as const;

/** Every counter name. */
export const BALLOON_METRIC_COUNTERS = [...BALLOON_FIRECRACKER_COUNTERS, ...BALLOON_KINDLING_COUNTERS] as const;

/** One of BALLOON_METRIC_COUNTERS. */
export type BalloonCounter = (typeof BALLOON_METRIC_COUNTERS)[number];

/** Every balloon counter's current (absolute) value. */
export type BalloonMetricsSnapshot = MetricsSnapshot<BalloonCounter, never>;

/** The balloon device's metrics (Firecracker has at most one balloon and one `balloon` group). */
export const BalloonMetrics = deviceMetricsClass<BalloonCounter, never>(BALLOON_METRIC_COUNTERS, []);
/** An instance of BalloonMetrics. */
export type BalloonMetrics = SharedDeviceMetrics<BalloonCounter, never>;
