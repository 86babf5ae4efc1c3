/**
 * PUT/PATCH/GET /balloon (firecracker src/vmm/src/vmm_config/ Balloon/BalloonStats, vmm_config/balloon.rs). The
 * pre-boot store checks the target against guest memory; statistics, hinting and live updates
 * are the backend's (post-boot only).
 */
import { ConfigError } from './errors.js';
import { Desc, bool, deserialize, field, int, struct } from './serde.js';

/** The PUT /balloon body and GET /balloon reply (`BalloonDeviceConfig`). */
export interface BalloonDeviceConfig {
  amount_mib: number;
  deflate_on_oom: boolean;
  stats_polling_interval_s: number;
  free_page_hinting: boolean;
  free_page_reporting: boolean;
}

/** PATCH /balloon body. */
export interface BalloonUpdateConfig {
  amount_mib: number;
}

/** PATCH /balloon/statistics body. */
export interface BalloonUpdateStatsConfig {
  stats_polling_interval_s: number;
}

/** PATCH /balloon/hinting/start body (optional; defaults to acknowledge_on_stop = true). */
export interface StartHintingCmd {
  acknowledge_on_stop: boolean;
}

/** GET /balloon/statistics reply; the optional counters are omitted until the guest reports them. */
export interface BalloonStats {
  target_pages: number;
  actual_pages: number;
  target_mib: number;
  actual_mib: number;
  swap_in?: number;
  swap_out?: number;
  major_faults?: number;
  minor_faults?: number;
  free_memory?: number;
  total_memory?: number;
  available_memory?: number;
  disk_caches?: number;
  hugetlb_allocations?: number;
  hugetlb_failures?: number;
  oom_kill?: number;
  alloc_stall?: number;
  async_scan?: number;
  direct_scan?: number;
  async_reclaim?: number;
  direct_reclaim?: number;
}

/** GET /balloon/hinting/status reply. */
export interface HintingStatus {
  host_cmd: number;
  guest_cmd: number | null;
}

/** serde description of `BalloonDeviceConfig` (deny_unknown_fields). */
export const BALLOON: Desc = struct('BalloonDeviceConfig', [
  field('amount_mib', int('u32')),
  field('deflate_on_oom', bool),
  field('stats_polling_interval_s', int('u16'), () => 0),
  field('free_page_hinting', bool, () => false),
  field('free_page_reporting', bool, () => false),
]);

/** serde description of `BalloonUpdateConfig`. */
export const BALLOON_UPDATE: Desc = struct('BalloonUpdateConfig', [field('amount_mib', int('u32'))]);
/** serde description of `BalloonUpdateStatsConfig`. */
export const BALLOON_UPDATE_STATS: Desc = struct('BalloonUpdateStatsConfig', [field('stats_polling_interval_s', int('u16'))]);
/** serde description of `StartHintingCmd` (unknown fields ignored). */
export const START_HINTING: Desc = struct('StartHintingCmd', [field('acknowledge_on_stop', bool, () => true)], false);


/** Order of the optional statistics in the reply (device.rs `BalloonStats`). */
export const BALLOON_STAT_NAMES = [
  'swap_in', 'swap_out', 'major_faults', 'minor_faults', 'free_memory', 'total_memory', 'available_memory', 'disk_caches',
  'hugetlb_allocations', 'hugetlb_failures', 'oom_kill', 'alloc_stall', 'async_scan', 'direct_scan', 'async_reclaim', 'direct_reclaim',
] as const;

/** Parses a PUT /balloon body. */
export function parseBalloon(body: Uint8Array | string): BalloonDeviceConfig {
  return deserialize<BalloonDeviceConfig>(body, BALLOON);
}

/** BalloonConfigError texts. */
export const BALLOON_ERRORS = {
  DeviceNotFound: 'No balloon device found.',
  TooManyPagesRequested: 'Amount of pages requested is too large.',
} as const;

/** `VmResources::set_balloon_device`: the target may not exceed guest memory. */
export function buildBalloon(cfg: BalloonDeviceConfig, memSizeMib: number): BalloonDeviceConfig {
  if (cfg.amount_mib > memSizeMib) throw new ConfigError('balloon', BALLOON_ERRORS.TooManyPagesRequested);
  return { ...cfg };
}
