/**
 * The tables of docs/parity.md, generated: every Firecracker v1.16.1 command-line flag, API
 * field (from its swagger, src/firecracker/swagger/firecracker.yaml at v1.16.1) and metric
 * group, with what Kindling does with it. Statuses are derived from the code where the code
 * decides them — the device kinds the KVM factory runs (src/vmm/features.ts KVM_SUPPORTED),
 * whether snapshots exist (KvmVmFactory.restore, Vmm.createSnapshot), the flags the CLI knows —
 * so a change there changes the expected document and test/unit/parity-doc.test.ts fails until
 * docs/parity.md is regenerated.
 */
import { FIRECRACKER_ARGS } from '../../src/cli/options.js';
import { DEVICE_KIND_NAMES, KVM_SUPPORTED, type DeviceKind } from '../../src/vmm/features.js';
import { KvmVmFactory } from '../../src/vmm/kvm-factory.js';
import { Vmm } from '../../src/vmm/vmm.js';
import { DEVICE_GROUPS, GROUPS, TOP_LEVEL_ORDER } from '../../src/metrics/groups.js';

const WORKS = 'works';

/** What a feature kind comes to: works, or refused at InstanceStart with the controller's 400. */
function kind(k: DeviceKind): string {
  return KVM_SUPPORTED.has(k) ? WORKS : `refused: InstanceStart fails (400) naming ${DEVICE_KIND_NAMES[k]}`;
}

/** A device's metric group: counted when the device runs, else zeros as Firecracker emits without it. */
function deviceGroup(k: DeviceKind, counted: string, idle = 'zeros'): string {
  return KVM_SUPPORTED.has(k) ? `counted (${counted})` : `${idle}: ${kind(k)}`;
}

/** Snapshots: the factory's restore and the VM's createSnapshot (src/vmm/running-vm.ts). */
function snapshot(which: 'load' | 'create'): string {
  const has = which === 'load' ? 'restore' in KvmVmFactory.prototype : 'createSnapshot' in Vmm.prototype;
  return has ? WORKS : 'refused: 400 "The requested operation is not supported" (no snapshots yet)';
}

/** Flags: the status of each (the CLI's table must list exactly Firecracker's flags). */
const FLAGS: Record<string, string> = {
  'api-sock': WORKS,
  id: WORKS,
  'seccomp-filter': `${WORKS} (a JSON filter in seccompiler's format with one "vmm" category, compiled at start; not Firecracker's compiled BPF file)`,
  'no-seccomp': WORKS,
  'start-time-us': `${WORKS} (api_server.process_startup_time_us)`,
  'start-time-cpu-us': `${WORKS} (api_server.process_startup_time_cpu_us)`,
  'parent-cpu-time-us': WORKS,
  'config-file': `${WORKS} (the VM runs before the API serves)`,
  metadata: `${WORKS} (the MMDS data store; the guest reaches it through MMDS: ${kind('mmds')})`,
  'no-api': WORKS,
  'log-path': WORKS,
  level: WORKS,
  module: WORKS,
  'show-level': WORKS,
  'show-log-origin': WORKS,
  'metrics-path': WORKS,
  'boot-timer': kind('boot-timer'),
  version: WORKS,
  'snapshot-version': 'works (prints the version of Kindling\'s own state-file format, v1.0.0; Firecracker prints v11.0.0 for its format, which Kindling does not read)',
  'describe-snapshot': 'works (the version in a Kindling state file; a Firecracker file is refused: its magic differs)',
  'http-api-max-payload-size': WORKS,
  'mmds-size-limit': WORKS,
  'enable-pci': kind('pci'),
};

/** Firecracker v1.16.1's flag names (main.rs), besides --help. */
export const FIRECRACKER_FLAGS = Object.keys(FLAGS);

type Field = [name: string, status: string];
/** The hinting endpoints: the running VM offers no hinting calls (src/vmm/running-vm.ts). */
const HINTING = 'startBalloonHinting' in Vmm.prototype ? kind('balloon-free-page-hinting') : 'refused: 400 "The requested operation is not supported: free page hinting"';
/** Every endpoint of the v1.16.1 swagger with its body's top-level fields (nested ones go with their parent). */
const API: [endpoint: string, fields: Field[]][] = [
  ['GET /', [['', WORKS]]],
  ['PUT /actions', [['action_type: InstanceStart', WORKS], ['action_type: SendCtrlAltDel', WORKS], ['action_type: FlushMetrics', WORKS]]],
  ['GET /balloon', [['', `${WORKS} (the stored configuration; the device: ${kind('balloon')})`]]],
  ['PUT /balloon', [
    ...['amount_mib', 'deflate_on_oom', 'stats_polling_interval_s'].map((f): Field => [f, kind('balloon')]),
    ['free_page_hinting', kind('balloon-free-page-hinting')],
    ['free_page_reporting', kind('balloon-free-page-reporting')],
  ]],
  ['PATCH /balloon', [['amount_mib', kind('balloon')]]],
  ['GET /balloon/statistics', [['', kind('balloon')]]],
  ['PATCH /balloon/statistics', [['stats_polling_interval_s', kind('balloon')]]],
  ['PATCH /balloon/hinting/start', [['acknowledge_on_stop', HINTING]]],
  ['GET /balloon/hinting/status', [['', HINTING]]],
  ['PATCH /balloon/hinting/stop', [['', HINTING]]],
  ['PUT /boot-source', [['boot_args', WORKS], ['initrd_path', kind('initrd')], ['kernel_image_path', WORKS]]],
  ['PUT /cpu-config', [
    ...['kvm_capabilities', 'cpuid_modifiers', 'msr_modifiers'].map((f): Field => [f, kind('custom-cpu-template')]),
    ...['reg_modifiers', 'vcpu_features'].map((f): Field => [f, 'aarch64 only: 400 unknown field, as Firecracker on x86_64']),
  ]],
  ['PUT /drives/{drive_id}', [
    ...['drive_id', 'partuuid', 'is_root_device', 'cache_type', 'is_read_only', 'path_on_host'].map((f): Field => [f, kind('virtio-block')]),
    ['rate_limiter', kind('rate-limiter')], ['io_engine', `Sync: ${kind('virtio-block')}; Async: ${kind('block-io-engine-async')}`], ['socket', kind('vhost-user-block')],
  ]],
  ['PATCH /drives/{drive_id}', [['drive_id', WORKS], ['path_on_host', WORKS], ['rate_limiter', WORKS]]],
  ['PUT /pmem/{id}', ['id', 'path_on_host', 'root_device', 'read_only', 'rate_limiter'].map((f): Field => [f, kind('pmem')])],
  ['PATCH /pmem/{id}', ['id', 'rate_limiter'].map((f): Field => [f, kind('pmem')])],
  ['PUT /logger', ['level', 'log_path', 'show_level', 'show_log_origin', 'module'].map((f): Field => [f, WORKS])],
  ['GET /machine-config', [['', WORKS]]],
  ...(['PUT', 'PATCH'] as const).map((m): [string, Field[]] => [`${m} /machine-config`, [
    ['vcpu_count', WORKS], ['mem_size_mib', WORKS], ['smt', kind('smt')], ['track_dirty_pages', kind('track-dirty-pages')],
    ['huge_pages', `None: ${WORKS}; 2M: ${kind('huge-pages')}${KVM_SUPPORTED.has('huge-pages') ? ' (hugetlbfs memfd; pages reserved at InstanceStart, which fails with the pool\'s numbers when it is short)' : ''}`],
    ['cpu_template', `None: ${WORKS}; a template: ${kind('static-cpu-template')}${KVM_SUPPORTED.has('static-cpu-template') ? ' (C3, T2, T2S, T2CL on Intel Skylake/Cascade Lake/Ice Lake, T2A on AMD Milan; other hosts get Firecracker\'s vendor/model error)' : ''}`],
  ]]),
  ['PUT /metrics', [['metrics_path', WORKS]]],
  ['PUT /mmds', [['(any JSON)', `${WORKS} (the data store)`]]],
  ['PATCH /mmds', [['(any JSON)', `${WORKS} (the data store)`]]],
  ['GET /mmds', [['', WORKS]]],
  ['PUT /mmds/config', ['version', 'network_interfaces', 'ipv4_address', 'imds_compat'].map((f): Field => [f, kind('mmds')])],
  ['PUT /entropy', [['rate_limiter', kind('entropy')]]],
  ['PUT /serial', [['serial_out_path', kind('serial-output-file')], ['rate_limiter', kind('serial-rate-limiter')]]],
  ['PUT /hotplug/memory', ['total_size_mib', 'slot_size_mib', 'block_size_mib'].map((f): Field => [f, kind('memory-hotplug')])],
  ['PATCH /hotplug/memory', [['requested_size_mib', kind('memory-hotplug')]]],
  ['GET /hotplug/memory', [['', kind('memory-hotplug')]]],
  ['PUT /network-interfaces/{iface_id}', [
    ...['guest_mac', 'host_dev_name', 'iface_id', 'mtu'].map((f): Field => [f, kind('virtio-net')]),
    ['rx_rate_limiter', kind('rate-limiter')], ['tx_rate_limiter', kind('rate-limiter')],
  ]],
  ['PATCH /network-interfaces/{iface_id}', ['iface_id', 'rx_rate_limiter', 'tx_rate_limiter'].map((f): Field => [f, kind('virtio-net')])],
  ['PUT /snapshot/create', ['mem_file_path', 'snapshot_path', 'snapshot_type'].map((f): Field => [f, snapshot('create')])],
  ['PUT /snapshot/load', ['enable_diff_snapshots', 'track_dirty_pages', 'mem_file_path', 'mem_backend', 'snapshot_path', 'resume_vm', 'network_overrides', 'vsock_override', 'clock_realtime']
    .map((f): Field => [f, snapshot('load')])],
  ['GET /version', [['', WORKS]]],
  ['PATCH /vm', [['state', WORKS]]],
  ['GET /vm/config', [['', WORKS]]],
  ['PUT /vsock', ['guest_cid', 'uds_path', 'vsock_id'].map((f): Field => [f, kind('vsock')])],
];

/** Metric groups (top-level keys of a metrics line), by name. */
const METRICS: Record<string, string> = {
  api_server: `counted (set from --start-time-us / --start-time-cpu-us, as Firecracker)`,
  balloon: deviceGroup('balloon', 'the balloon device, free page reporting and hinting'),
  block: 'counted (and block_<drive_id> per drive)',
  deprecated_api: 'counted',
  get_api_requests: 'counted',
  i8042: 'counted (the vCPUs\' shared device state)',
  uart: 'counted (the vCPUs\' shared device state; flush_count is never counted by Firecracker either; rate_limiter_dropped_bytes: the serial rate limiter is refused)',
  latencies_us: 'counted (pause/resume, snapshot create and load, API and VMM views)',
  logger: 'counted (metrics_fails is never counted by Firecracker either)',
  mmds: deviceGroup('mmds', 'the sum of every MMDS interface\'s stack'),
  net: 'counted (and net_<iface_id> per interface)',
  patch_api_requests: 'counted',
  put_api_requests: 'counted',
  seccomp: 'counted (num_faults on SIGSYS)',
  vcpu: 'counted (exits by kind, their latency, failures, kvmclock_ctrl_fails)',
  vmm: 'counted (panic_count on an uncaught exception)',
  signals: 'counted (src/cli/signals.ts)',
  vsock: deviceGroup('vsock', 'the vsock device'),
  entropy: deviceGroup('entropy', 'the entropy device'),
  pmem: deviceGroup('pmem', 'and pmem_<id> per device'),
  vhost_user: deviceGroup('vhost-user-block', 'vhost_user_<id> per device', 'absent'),
  interrupts: 'counted (triggers: every virtio interrupt; config_updates: MSI-X only, with PCI, which is refused)',
  memory_hotplug: deviceGroup('memory-hotplug', 'the virtio-mem device'),
};

/** Every metric group Kindling's registry emits, in Firecracker's order. */
export function metricGroupNames(): string[] {
  return TOP_LEVEL_ORDER.map((s) => (s.startsWith('@') ? s.slice(1) : s));
}

/** Problems with the data above against the code (names missing on either side). */
export function parityGaps(): string[] {
  const gaps: string[] = [];
  const cli = FIRECRACKER_ARGS.map((a) => a.name);
  for (const f of cli) if (!(f in FLAGS)) gaps.push(`flag --${f} has no status`);
  for (const f of FIRECRACKER_FLAGS) if (!cli.includes(f)) gaps.push(`flag --${f} is not in the CLI`);
  const groups = metricGroupNames();
  for (const g of [...Object.keys(GROUPS), ...Object.keys(DEVICE_GROUPS)]) if (!groups.includes(g)) gaps.push(`group ${g} is not emitted`);
  for (const g of groups) if (!(g in METRICS)) gaps.push(`metric group ${g} has no status`);
  for (const g of Object.keys(METRICS)) if (!groups.includes(g)) gaps.push(`metric group ${g} is not emitted`);
  return gaps;
}

const row = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;

/** The generated part of docs/parity.md. */
export function parityTables(): string {
  const out: string[] = [];
  out.push('### Command-line flags', '', row(['Flag', 'Kindling']), row(['---', '---']));
  for (const a of FIRECRACKER_ARGS) out.push(row([`\`--${a.name}\``, FLAGS[a.name] ?? '?']));
  out.push('', '### API endpoints and body fields', '', row(['Endpoint', 'Field', 'Kindling']), row(['---', '---', '---']));
  for (const [ep, fields] of API) for (const [f, s] of fields) out.push(row([`\`${ep}\``, f === '' ? '—' : `\`${f}\``, s]));
  out.push('', '### Metric groups', '', row(['Group', 'Kindling']), row(['---', '---']));
  for (const g of metricGroupNames()) out.push(row([`\`${g}\``, METRICS[g] ?? '?']));
  return out.join('\n');
}
