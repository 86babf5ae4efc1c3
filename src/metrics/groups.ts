/**
 * The metric groups Firecracker v1.16.1 emits, field by field and in serialization order
 * (firecracker src/vmm/src/logger/metrics.rs; logger/metrics.rs and each device's metrics.rs). `inc` fields are counters
 * (SharedIncMetric, emitted as the delta since the previous flush), `store` fields are gauges
 * (SharedStoreMetric, absolute), `agg` fields are LatencyAggregateMetrics
 * `{min_us, max_us, sum_us}` (min/max gauges, sum a counter).
 */

/** How a field is kept and emitted. */
export type MetricKind = 'inc' | 'store' | 'agg';

/** An ordered list of `[field, kind]`. */
export type GroupSpec = readonly (readonly [string, MetricKind])[];

type Tagged<N extends readonly string[], K extends MetricKind> = { -readonly [I in keyof N]: readonly [N[I], K] };
const tag =
  <K extends MetricKind>(kind: K) =>
  <const N extends readonly string[]>(...names: N): Tagged<N, K> =>
    names.map((n) => [n, kind] as const) as unknown as Tagged<N, K>;
const inc = tag('inc');
const store = tag('store');
const agg = tag('agg');

/** Fixed (non-device) groups. */
export const GROUPS = {
  api_server: store('process_startup_time_us', 'process_startup_time_cpu_us'),
  balloon: inc(
    'activate_fails', 'inflate_count', 'stats_updates_count', 'stats_update_fails', 'deflate_count', 'event_fails',
    'free_page_report_count', 'free_page_report_freed', 'free_page_report_fails', 'free_page_hint_count', 'free_page_hint_freed',
    'free_page_hint_fails',
  ),
  deprecated_api: inc('deprecated_http_api_calls'),
  get_api_requests: inc('instance_info_count', 'machine_cfg_count', 'mmds_count', 'vmm_version_count', 'hotplug_memory_count'),
  i8042: inc('error_count', 'missed_read_count', 'missed_write_count', 'read_count', 'reset_count', 'write_count'),
  uart: inc('error_count', 'flush_count', 'missed_read_count', 'missed_write_count', 'read_count', 'write_count', 'rate_limiter_dropped_bytes'),
  latencies_us: store(
    'full_create_snapshot', 'diff_create_snapshot', 'load_snapshot', 'pause_vm', 'resume_vm', 'vmm_full_create_snapshot',
    'vmm_diff_create_snapshot', 'vmm_load_snapshot', 'vmm_pause_vm', 'vmm_resume_vm',
  ),
  logger: inc('missed_metrics_count', 'metrics_fails', 'missed_log_count', 'rate_limited_log_count'),
  mmds: inc(
    'rx_accepted', 'rx_accepted_err', 'rx_accepted_unusual', 'rx_bad_eth', 'rx_invalid_token', 'rx_no_token', 'rx_count', 'tx_bytes',
    'tx_count', 'tx_errors', 'tx_frames', 'connections_created', 'connections_destroyed',
  ),
  patch_api_requests: inc(
    'drive_count', 'drive_fails', 'network_count', 'network_fails', 'machine_cfg_count', 'machine_cfg_fails', 'mmds_count', 'mmds_fails',
    'hotplug_memory_count', 'hotplug_memory_fails', 'pmem_count', 'pmem_fails',
  ),
  put_api_requests: inc(
    'actions_count', 'actions_fails', 'boot_source_count', 'boot_source_fails', 'drive_count', 'drive_fails', 'logger_count',
    'logger_fails', 'machine_cfg_count', 'machine_cfg_fails', 'cpu_cfg_count', 'cpu_cfg_fails', 'metrics_count', 'metrics_fails',
    'network_count', 'network_fails', 'mmds_count', 'mmds_fails', 'vsock_count', 'vsock_fails', 'pmem_count', 'pmem_fails',
    'serial_count', 'serial_fails', 'hotplug_memory_count', 'hotplug_memory_fails',
  ),
  seccomp: store('num_faults'),
  vcpu: [
    ...inc('exit_io_in', 'exit_io_out', 'exit_mmio_read', 'exit_mmio_write', 'failures', 'kvmclock_ctrl_fails'),
    ...agg('exit_io_in_agg', 'exit_io_out_agg', 'exit_mmio_read_agg', 'exit_mmio_write_agg'),
  ],
  vmm: store('panic_count'),
  signals: [...store('sigbus', 'sigsegv', 'sigxfsz', 'sigxcpu'), ...inc('sigpipe'), ...store('sighup', 'sigill')],
  vsock: inc(
    'activate_fails', 'cfg_fails', 'rx_queue_event_fails', 'tx_queue_event_fails', 'ev_queue_event_fails', 'muxer_event_fails',
    'conn_event_fails', 'rx_queue_event_count', 'tx_queue_event_count', 'rx_bytes_count', 'tx_bytes_count', 'rx_packets_count',
    'tx_packets_count', 'conns_added', 'conns_killed', 'conns_removed', 'killq_resync', 'tx_flush_fails', 'tx_write_fails',
    'rx_read_fails',
  ),
  entropy: inc(
    'activate_fails', 'entropy_event_fails', 'entropy_event_count', 'entropy_bytes', 'host_rng_fails', 'entropy_rate_limiter_throttled',
    'rate_limiter_event_count',
  ),
  interrupts: inc('triggers', 'config_updates'),
  memory_hotplug: [
    ...inc('activate_fails', 'queue_event_fails', 'queue_event_count'),
    ...agg('plug_agg'), ...inc('plug_count', 'plug_bytes', 'plug_fails'),
    ...agg('unplug_agg'), ...inc('unplug_count', 'unplug_bytes', 'unplug_fails', 'unplug_discard_fails'),
    ...agg('unplug_all_agg'), ...inc('unplug_all_count', 'unplug_all_fails'),
    ...agg('state_agg'), ...inc('state_count', 'state_fails'),
  ],
} as const satisfies Record<string, GroupSpec>;

/** Per-device groups: emitted as `<kind>_<id>` for each device, plus the `<kind>` aggregate. */
export const DEVICE_GROUPS = {
  block: [
    ...inc('activate_fails', 'cfg_fails', 'no_avail_buffer', 'event_fails', 'execute_fails', 'invalid_reqs_count', 'flush_count',
      'queue_event_count', 'rate_limiter_event_count', 'update_count', 'update_fails', 'read_bytes', 'write_bytes', 'read_count',
      'write_count'),
    ...agg('read_agg', 'write_agg'),
    ...inc('rate_limiter_throttled_events', 'io_engine_throttled_events', 'remaining_reqs_count'),
  ],
  net: [
    ...inc('activate_fails', 'cfg_fails', 'mac_address_updates', 'no_rx_avail_buffer', 'no_tx_avail_buffer', 'event_fails',
      'rx_queue_event_count', 'rx_event_rate_limiter_count', 'rx_rate_limiter_throttled', 'rx_tap_event_count', 'rx_bytes_count',
      'rx_packets_count', 'rx_fails', 'rx_count', 'tap_read_fails', 'tap_write_fails'),
    ...agg('tap_write_agg'),
    ...inc('tx_bytes_count', 'tx_malformed_frames', 'tx_fails', 'tx_count', 'tx_packets_count', 'tx_queue_event_count',
      'tx_rate_limiter_event_count', 'tx_rate_limiter_throttled', 'tx_spoofed_mac_count', 'tx_remaining_reqs_count'),
  ],
  pmem: inc('activate_fails', 'cfg_fails', 'event_fails', 'queue_event_count', 'rate_limiter_throttled_events', 'rate_limiter_event_count'),
  vhost_user: [...inc('activate_fails', 'cfg_fails'), ...store('init_time_us', 'activate_time_us', 'config_change_time_us')],
} as const satisfies Record<string, GroupSpec>;

/** A fixed group name. */
export type GroupName = keyof typeof GROUPS;
/** A per-device group kind. */
export type DeviceGroupKind = keyof typeof DEVICE_GROUPS;

/**
 * Top-level order of the metrics object: fixed groups and device slots (`@block` expands to
 * `block_<id>`… then `block`; `@vhost_user` has no aggregate).
 */
export const TOP_LEVEL_ORDER: readonly (GroupName | `@${DeviceGroupKind}`)[] = [
  'api_server', 'balloon', '@block', 'deprecated_api', 'get_api_requests', 'i8042', 'uart', 'latencies_us', 'logger', 'mmds', '@net',
  'patch_api_requests', 'put_api_requests', 'seccomp', 'vcpu', 'vmm', 'signals', 'vsock', 'entropy', '@pmem', '@vhost_user',
  'interrupts', 'memory_hotplug',
];
