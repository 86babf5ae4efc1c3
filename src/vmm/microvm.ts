/**
 * MicroVm: the in-process library (`import { MicroVm } from 'kindling'`).
 *
 *   const vm = new MicroVm({ 'boot-source': { kernel_image_path, initrd_path, boot_args },
 *                            'machine-config': { vcpu_count: 2, mem_size_mib: 256 } });
 *   vm.console.on('data', ...);      // the guest's serial output
 *   await vm.start();                // InstanceStart
 *   const { code } = await vm.exit;  // 0 after the guest reboots, 1 on a vCPU error
 *
 * The resources are Firecracker's request bodies (the same field names and defaults as
 * `PUT /boot-source`, `PATCH /machine-config`, `PUT /drives/{id}`), validated by the same
 * `VmResources` the API uses, and every action goes through the same `VmmController`: the
 * library and the API cannot drift apart, and a bad configuration throws the
 * `VmmActionError` (with Firecracker's fault_message) the API would answer with.
 */
import { PassThrough, type Readable } from 'node:stream';
import { parseBootSource, DEFAULT_KERNEL_CMDLINE, type BootSourceConfig } from '../config/boot-source.js';
import { parseDrive, type BlockDeviceConfig } from '../config/drives.js';
import { parseNetworkInterface, type NetworkInterfaceConfig } from '../config/network-interfaces.js';
import { parseVsock, type VsockDeviceConfig } from '../config/vsock.js';
import type { VsockMetricsSnapshot } from '../devices/virtio/vsock/metrics.js';
import type { EntropyMetricsSnapshot } from '../devices/virtio/rng/metrics.js';
import { parseEntropy, type EntropyDeviceConfig } from '../config/entropy.js';
import { parseCpuConfig } from '../config/cpu-config.js';
import { parseFs, type FsDeviceConfig } from '../config/fs.js';
import { parseBalloon, type BalloonDeviceConfig, type BalloonStats, type HintingStatus } from '../config/balloon.js';
import type { BalloonMetricsSnapshot } from '../devices/virtio/balloon/metrics.js';
import { parsePmem, type PmemConfig } from '../config/pmem.js';
import { parseMemoryHotplug, type MemoryHotplugConfig, type MemoryHotplugStatus } from '../config/memory-hotplug.js';
import { isEmptyUpdate, parseMachineConfigPatch, type MachineConfigUpdate } from '../config/machine-config.js';
import { VmResources } from '../config/resources.js';
import { parseLoadSnapshot } from '../config/snapshot.js';
import type { RateLimiterConfig } from '../config/rate-limiter.js';
import type { RequestBody } from '../config/serde.js';
import { Logger } from '../logger/logger.js';
import { METRICS, type Metrics } from '../metrics/metrics.js';
import { drainActorPool, prewarmActors } from '../actors/actor-pool.js';
import type { ByteRing } from '../devices/byte-ring.js';
import type { VcpuHandle } from '../actors/vcpu/handle.js';
import { toActionError, type VmmAction } from './actions.js';
import type { VmmLog } from './builder.js';
import { VmmController } from './controller.js';
import { KvmVmFactory, preloadBuilder } from './kvm-factory.js';
import type { VmExit } from './running-vm.js';
import type { Vmm, VmState } from './vmm.js';
import type { FsHandle, FsStatus } from '../actors/virtio/fs-handle.js';

export type { VmExit, VmState };

/** The Firecracker default kernel command line, used when `boot_args` is absent. */
export const DEFAULT_BOOT_ARGS = DEFAULT_KERNEL_CMDLINE;


/** Serial output of a library VM: a stream (`MicroVm.console`, the default), this process's stdout, or a file. */
export type SerialOutput = { kind: 'stream' } | { kind: 'stdout' } | { kind: 'file'; path: string };

/** A whole microVM, as the library takes it. */
export interface MicroVmConfig {
  'boot-source': RequestBody<BootSourceConfig, 'kernel_image_path'>;
  /** Applied like PATCH /machine-config over the defaults (1 vCPU, 128 MiB). */
  'machine-config'?: Partial<MachineConfigUpdate>;
  drives?: RequestBody<BlockDeviceConfig, 'drive_id' | 'is_root_device'>[];
  /** TAP-backed interfaces, as PUT /network-interfaces/{id} bodies. */
  'network-interfaces'?: RequestBody<NetworkInterfaceConfig, 'iface_id' | 'host_dev_name'>[];
  /** The vsock device, as the PUT /vsock body (its socket is bound at start()). */
  vsock?: RequestBody<VsockDeviceConfig, 'guest_cid' | 'uds_path'>;
  /** The entropy device (virtio-rng), as the PUT /entropy body. */
  entropy?: RequestBody<EntropyDeviceConfig, never>;
  /** The balloon device, as the PUT /balloon body. */
  balloon?: RequestBody<BalloonDeviceConfig, 'amount_mib' | 'deflate_on_oom'>;
  /** virtio-pmem devices, as PUT /pmem/{id} bodies (guest /dev/pmem0, /dev/pmem1… in this order). */
  pmem?: RequestBody<PmemConfig, 'id' | 'path_on_host'>[];
  /** Memory hotplug (virtio-mem), as the PUT /hotplug/memory body. */
  'memory-hotplug'?: RequestBody<MemoryHotplugConfig, 'total_size_mib'>;
  /** A custom CPU template, as the PUT /cpu-config body: Firecracker's JSON, as an object or as its text. */
  'cpu-config'?: unknown;
  /** virtio-fs devices, as PUT /fs/{id} bodies: `socket` of a running virtiofsd, or `shared_dir` for Kindling to start one. */
  fs?: RequestBody<FsDeviceConfig, 'id' | 'tag'>[];
  /** Firecracker's --boot-timer flag: the boot-timer MMIO device. */
  bootTimer?: boolean;
  /** Firecracker's --enable-pci flag: every virtio device is a virtio-pci function (MSI-X). */
  enablePci?: boolean;
  /** Serial output target; default: a readable stream (`MicroVm.console`). */
  serial?: SerialOutput;
  /** Feed this process's stdin to the guest serial port (a TTY is put in raw mode). */
  stdin?: boolean;
  /** Instance id (--id), for logs. */
  id?: string;
  /** Test-only: the 0xe9 debug port (src/devices/debug-port.ts). */
  debugPort?: boolean;
}

export interface MicroVmOptions {
  /** Where VMM log lines go (default: stderr). */
  log?: VmmLog;
  /**
   * Registry the devices report into (default: the process-wide METRICS, which the API's
   * FlushMetrics and periodic flush write out as `block_<drive_id>` and `block`).
   */
  metrics?: Metrics;
}

/** KVM exits one vCPU actor handled in userspace, by kind (the vcpu.exit_* metrics). */
export type VcpuExitCounts = ReturnType<VcpuHandle['exitCounts']>;

/** Builds the resource store from the library's bodies, through the API's own parsers. */
function resourcesOf(config: MicroVmConfig): VmResources {
  const r = new VmResources({ bootTimer: config.bootTimer ?? false, pciEnabled: config.enablePci ?? false });
  try {
    r.setBootSource(parseBootSource(JSON.stringify(config['boot-source'])));
    const m = parseMachineConfigPatch(JSON.stringify(config['machine-config'] ?? {}));
    if (!isEmptyUpdate(m)) r.updateMachineConfig(m);
    for (const d of config.drives ?? []) r.insertDrive(parseDrive(JSON.stringify(d)));
    // The TAP itself is attached at start(); a TAP that cannot be attached fails start().
    for (const n of config['network-interfaces'] ?? []) r.insertNetworkInterface(parseNetworkInterface(JSON.stringify(n)));
    if (config.vsock) r.setVsock(parseVsock(JSON.stringify(config.vsock)));
    if (config.entropy) r.setEntropy(parseEntropy(JSON.stringify(config.entropy)));
    if (config.balloon) r.setBalloon(parseBalloon(JSON.stringify(config.balloon)));
    for (const p of config.pmem ?? []) r.insertPmem(parsePmem(JSON.stringify(p)));
    if (config['memory-hotplug']) r.setMemoryHotplug(parseMemoryHotplug(JSON.stringify(config['memory-hotplug'])));
    const cpu = config['cpu-config'];
    if (cpu !== undefined) r.setCustomCpuTemplate(parseCpuConfig(typeof cpu === 'string' ? cpu : JSON.stringify(cpu)));
    for (const f of config.fs ?? []) r.insertFs(parseFs(JSON.stringify(f)));
    if (config.serial?.kind === 'file') r.setSerial({ serial_out_path: config.serial.path, rate_limiter: null });
  } catch (e) {
    throw toActionError(e);
  }
  return r;
}

/** Where a restored library VM's serial goes, and its id (the rest comes from the snapshot). */
export interface MicroVmRestoreOptions extends MicroVmOptions {
  id?: string;
  serial?: SerialOutput;
  stdin?: boolean;
}

export class MicroVm {
  /** The configuration it was built from; null for a VM restored from a snapshot. */
  readonly config: MicroVmConfig | null;
  /** The guest's serial output (when `serial` is the default stream target). */
  readonly console: Readable;
  /** Resolves when the VM has stopped. */
  readonly exit: Promise<VmExit>;
  private readonly controller: VmmController;

  /**
   * Starts actor workers ahead of `start()` (src/actors/actor-pool.ts) and loads the builder:
   * a process that will run a VM soon calls this so InstanceStart does not wait for modules
   * and isolates to load their code. Resolves once this thread's modules are loaded (the
   * workers go on loading on their own threads). Unused workers do not keep the process alive.
   */
  static prewarm(actors: { vcpus?: number; drives?: number; nets?: number; vsock?: boolean; entropy?: boolean; balloon?: boolean }): Promise<void> {
    // The builder's module graph too: loading it at InstanceStart cost the bench's library
    // boots 0.65-0.85 s nested (bench/results/2026-12-07-4.findings.md).
    const modules = preloadBuilder();
    prewarmActors('vcpu', actors.vcpus ?? 0);
    prewarmActors('block', actors.drives ?? 0);
    prewarmActors('net', actors.nets ?? 0);
    prewarmActors('vsock', actors.vsock ? 1 : 0);
    prewarmActors('entropy', actors.entropy ? 1 : 0);
    prewarmActors('balloon', actors.balloon ? 1 : 0);
    return modules;
  }

  /** Stops workers `prewarm` started that no VM took. */
  static drainPrewarmed(): Promise<void> {
    return drainActorPool();
  }

  /**
   * A microVM restored from a snapshot in this process (PUT /snapshot/load: the body is
   * Firecracker's, parsed by the API's own parser; `resume_vm` decides whether it runs).
   * Rejects with the `VmmActionError` the API would answer with.
   */
  static async loadSnapshot(body: Record<string, unknown>, opts: MicroVmRestoreOptions = {}): Promise<MicroVm> {
    let params;
    try {
      params = parseLoadSnapshot(JSON.stringify(body)).params;
    } catch (e) {
      throw toActionError(e);
    }
    const vm = new MicroVm(null, opts);
    await vm.act({ kind: 'LoadSnapshot', params });
    vm.vmm!.console.pipe(vm.console as PassThrough);
    return vm;
  }

  /** Validates the configuration (throws `VmmActionError` as the API would answer). */
  constructor(config: MicroVmConfig, opts?: MicroVmOptions);
  /** @internal a VM that `loadSnapshot` restores. */
  constructor(config: null, opts: MicroVmRestoreOptions);
  constructor(config: MicroVmConfig | null, opts: MicroVmRestoreOptions = {}) {
    this.config = config;
    this.console = new PassThrough();
    const id = config?.id ?? opts.id ?? 'anonymous-instance';
    const log = opts.log ?? ((level, msg, thread = 'main') => process.stderr.write(`[${id}:${thread}:${level.toUpperCase()}] ${msg}\n`));
    // The controller's own log lines (API-style records) go to the same callback; only warnings
    // and errors, as a library should not chat on stderr.
    const logger = new Logger();
    logger.level = 'Warn';
    logger.sink = (line) => log('warn', line.trimEnd());
    const metrics = opts.metrics ?? METRICS;
    const serial = config ? config.serial : opts.serial;
    const factory = new KvmVmFactory({
      console: serial?.kind === 'stdout' ? 'stdout' : 'stream', stdin: config ? config.stdin : opts.stdin, debugPort: config?.debugPort, log, metrics,
    });
    this.controller = new VmmController({ instanceId: id, factory, resources: config ? resourcesOf(config) : new VmResources(), logger, metrics });
    this.exit = this.controller.exited;
  }

  /** Run state as GET / reports it (plus "Exited"). */
  get state(): VmState {
    return this.vmm?.state ?? 'Not started';
  }

  /** Builds and boots the VM (InstanceStart). Rejects without side effects on failure. */
  async start(): Promise<void> {
    await this.act({ kind: 'StartMicroVm' });
    this.vmm!.console.pipe(this.console as PassThrough);
  }

  pause(): Promise<void> {
    return this.act({ kind: 'Pause' });
  }

  resume(): Promise<void> {
    return this.act({ kind: 'Resume' });
  }

  /** PUT /snapshot/create on the paused VM (Full by default; Diff needs nothing more, see docs/design.md "Snapshots"). */
  createSnapshot(params: { snapshot_path: string; mem_file_path: string; snapshot_type?: 'Full' | 'Diff' }): Promise<void> {
    return this.act({ kind: 'CreateSnapshot', params: { snapshot_type: params.snapshot_type ?? 'Full', snapshot_path: params.snapshot_path, mem_file_path: params.mem_file_path } });
  }

  /** Injects Ctrl+Alt+Del (the guest's init decides what it means; busybox reboots). */
  sendCtrlAltDel(): Promise<void> {
    return this.act({ kind: 'SendCtrlAltDel' });
  }

  /**
   * PATCH /drives/{id}: swap a drive's backing file (the guest gets a config-change interrupt
   * and sees the new capacity) and/or replace its rate limiter buckets.
   */
  updateDrive(driveId: string, update: { path_on_host?: string; rate_limiter?: RateLimiterConfig }): Promise<void> {
    return this.act({ kind: 'UpdateBlockDevice', config: { drive_id: driveId, path_on_host: update.path_on_host ?? null, rate_limiter: update.rate_limiter ?? null } });
  }

  /** PATCH /network-interfaces/{id}: replace an interface's RX and/or TX rate limiter. */
  updateNetworkInterface(ifaceId: string, update: { rx_rate_limiter?: RateLimiterConfig; tx_rate_limiter?: RateLimiterConfig }): Promise<void> {
    return this.act({ kind: 'UpdateNetworkInterface', config: { iface_id: ifaceId, rx_rate_limiter: update.rx_rate_limiter ?? null, tx_rate_limiter: update.tx_rate_limiter ?? null } });
  }

  /** PATCH /balloon: a new balloon target; the guest inflates or deflates towards it. */
  updateBalloon(amountMib: number): Promise<void> {
    return this.act({ kind: 'UpdateBalloon', config: { amount_mib: amountMib } });
  }

  /** PATCH /balloon/statistics: a new statistics polling interval (0 ↔ non-zero is refused). */
  updateBalloonStatistics(intervalS: number): Promise<void> {
    return this.act({ kind: 'UpdateBalloonStatistics', config: { stats_polling_interval_s: intervalS } });
  }

  /** PATCH /hotplug/memory: the size the guest should plug, in MiB. */
  updateMemoryHotplug(requestedSizeMib: number): Promise<void> {
    return this.act({ kind: 'UpdateMemoryHotplugSize', config: { requested_size_mib: requestedSizeMib } });
  }

  /** GET /hotplug/memory. */
  async memoryHotplugStatus(): Promise<MemoryHotplugStatus> {
    const d = await this.controller.handle({ kind: 'GetMemoryHotplugStatus' });
    if (d.kind !== 'VirtioMemStatus') throw new Error(`unexpected reply ${d.kind}`);
    return d.value;
  }

  /** GET /balloon/statistics. */
  async balloonStats(): Promise<BalloonStats> {
    const d = await this.controller.handle({ kind: 'GetBalloonStats' });
    if (d.kind !== 'BalloonStats') throw new Error(`unexpected reply ${d.kind}`);
    return d.value;
  }

  /** PATCH /balloon/hinting/start: a free page hinting run (free_page_hinting must be configured). */
  startBalloonHinting(acknowledgeOnStop = true): Promise<void> {
    return this.act({ kind: 'StartFreePageHinting', cmd: { acknowledge_on_stop: acknowledgeOnStop } });
  }

  /** GET /balloon/hinting/status. */
  async balloonHintingStatus(): Promise<HintingStatus> {
    const d = await this.controller.handle({ kind: 'GetFreePageHintingStatus' });
    if (d.kind !== 'HintingStatus') throw new Error(`unexpected reply ${d.kind}`);
    return d.value;
  }

  /** Read-only: the balloon's counters, or null without one or before start(). */
  get balloonMetrics(): BalloonMetricsSnapshot | null {
    return this.vmm?.balloon?.metricsSnapshot() ?? null;
  }

  /** Types into the guest's serial console. */
  writeConsole(data: Uint8Array | string): void {
    this.running().writeConsole(data);
  }

  /** Stops the VM from the host; resolves with its exit. */
  stop(): Promise<VmExit> {
    return this.running().stop();
  }

  /** Test-only: the debug port ring (config.debugPort). */
  get debugRing(): ByteRing | undefined {
    return this.vmm?.debugRing;
  }

  /**
   * Read-only: exits each vCPU actor has handled so far, indexed by vCPU id (empty before
   * start()). For benchmarks and metrics; reading the counters does not disturb the vCPUs.
   */
  get exitCounts(): VcpuExitCounts[] {
    return this.vmm?.handles.map((h) => h.exitCounts()) ?? [];
  }

  /**
   * Read-only: the vsock device's counters (Firecracker's `vsock` group plus Kindling's counts
   * of hostile input), or null without a vsock device or before start().
   */
  get vsockMetrics(): VsockMetricsSnapshot | null {
    return this.vmm?.vsock?.metricsSnapshot() ?? null;
  }

  /** Read-only: the entropy device's counters, or null without one or before start(). */
  get entropyMetrics(): EntropyMetricsSnapshot | null {
    return this.vmm?.entropy?.metricsSnapshot() ?? null;
  }

  /**
   * Whether each virtio-fs device's backend hung up (its requests then fail with EIO), by id;
   * empty before start().
   */
  fsBackendsGone(): Promise<Record<string, boolean>> {
    return this.perFsDevice((h) => h.backendGone());
  }

  /**
   * Each virtio-fs device's counters, ring positions (from guest memory) and backend process,
   * by id; empty before start(). For diagnosing a guest that waits on a share.
   */
  fsStatus(): Promise<Record<string, FsStatus>> {
    return this.perFsDevice((h) => h.status());
  }

  /** `ask` of every virtio-fs device, by id (the handles are in the configuration's order); empty before start(). */
  private async perFsDevice<T>(ask: (h: FsHandle) => Promise<T>): Promise<Record<string, T>> {
    const vmm = this.vmm;
    if (!vmm) return {};
    const ids = vmm.config.fs.map((f) => f.id);
    const answers = await Promise.all(vmm.fs.map(ask));
    return Object.fromEntries(ids.map((id, i) => [id, answers[i]!]));
  }

  /** The guest memory (for tests and tools: read-only inspection). */
  get memory(): Vmm['mem'] {
    return this.running().mem;
  }

  private async act(action: VmmAction): Promise<void> {
    await this.controller.handle(action);
  }

  private get vmm(): Vmm | undefined {
    return (this.controller.vm as Vmm | null) ?? undefined;
  }

  private running(): Vmm {
    const vm = this.vmm;
    if (!vm) throw new Error('the microVM is not started');
    return vm;
  }
}
