/**
 * A built microVM at run time: the KVM objects, guest memory, vCPU actors and the main
 * thread's side of the devices, plus the run-state machine the API reports:
 *
 *   Not started ──start()──▶ Running ──pause()──▶ Paused ──resume()──▶ Running
 *                               │                    │
 *                               └──── guest reset / triple fault / stop() ──▶ Exited
 *
 * Exit codes follow Firecracker (src/firecracker/src/main.rs `FcExitCode`): guest reset
 * (i8042 0xFE) → 0; a vCPU error
 * (triple fault, FAIL_ENTRY, INTERNAL_ERROR, unknown exit) → 1, with an error log line.
 * The main thread never waits on a vCPU synchronously: requests are acknowledged through
 * shared memory and awaited with Atomics.waitAsync.
 */
import type { Kvm, VmFd } from '../kvm/kvm.js';
import type { VcpuFd } from '../kvm/vcpu-fd.js';
import type { HostGuestMemory } from '../memory/host-memory.js';
import type { VcpuHandle, VcpuExit } from '../actors/vcpu/handle.js';
import { VM_SLOT, VCPU_EXIT_KIND, exitCodeOf } from '../actors/vcpu/protocol.js';
import type { BlockHandle } from '../actors/virtio/block-handle.js';
import type { NetHandle } from '../actors/virtio/net-handle.js';
import type { VsockHandle } from '../actors/virtio/vsock-handle.js';
import type { EntropyHandle } from '../actors/virtio/entropy-handle.js';
import type { FsHandle } from '../actors/virtio/fs-handle.js';
import type { BalloonHandle } from '../actors/virtio/balloon-handle.js';
import type { PmemHandle } from '../actors/virtio/pmem-handle.js';
import type { MemHandle } from '../actors/virtio/mem-handle.js';
import type { MemoryHotplugStatus } from '../config/memory-hotplug.js';
import type { PmemDeviceUpdateConfig } from '../config/pmem.js';
import type { BalloonStats, HintingStatus, StartHintingCmd } from '../config/balloon.js';
import type { ByteRing } from '../devices/byte-ring.js';
import { openSync, closeSync } from 'node:fs';
import { backingFileSize } from '../devices/virtio/block/file-backend.js';
import type { Readable } from 'node:stream';
import type { Metrics } from '../metrics/metrics.js';
import type { BlockDeviceUpdateConfig } from '../config/drives.js';
import type { NetworkInterfaceUpdateConfig } from '../config/network-interfaces.js';
import { ioErrorText } from '../config/errors.js';
import type { VmConfig } from '../config/resources.js';
import type { HostDeviceSet } from './host-devices.js';
import type { RunningVm, VmExit } from './running-vm.js';
import { registerVmMetrics } from './vm-metrics.js';
import { createSnapshot } from './snapshot-create.js';
import { KindlingError, SnapshotError } from '../errors.js';
import type { CreateSnapshotParams } from '../config/snapshot.js';
import { MiB } from '../arch/x86_64/layout.js';

export type VmState = 'Not started' | 'Running' | 'Paused' | 'Exited';

export interface VmmParts {
  /** The configuration the VM was built from. */
  config: VmConfig;
  kvm: Kvm;
  vm: VmFd;
  mem: HostGuestMemory;
  vcpus: VcpuFd[];
  handles: VcpuHandle[];
  vmControl: Int32Array;
  /** The main thread's side of the legacy devices (serial pumps, i8042). */
  devices: HostDeviceSet;
  /** The debug-port ring, when the host options asked for one (tests). */
  debugRing?: ByteRing;
  log: (level: 'info' | 'warn' | 'error', msg: string, thread?: string) => void;
  /** The balloon device actor, when PUT /balloon configured one. */
  balloon?: BalloonHandle | null;
  /** virtio-block device actors, in drive order. */
  blocks: BlockHandle[];
  /** virtio-net device actors, in interface order. */
  nets: NetHandle[];
  /** The vsock device actor, when PUT /vsock configured one. */
  vsock?: VsockHandle | null;
  /** The entropy device actor, when PUT /entropy configured one. */
  entropy?: EntropyHandle | null;
  /** virtio-pmem device actors, in configuration order. */
  pmem?: PmemHandle[];
  /** The virtio-mem device actor, when PUT /hotplug/memory configured one. */
  virtioMem?: MemHandle | null;
  /** virtio-fs device actors (PUT /fs), in configuration order. */
  fs?: FsHandle[];
  /** Registry the devices report into (`block_<drive_id>`); none in unit tests of the VMM. */
  metrics?: Metrics;
  /** 'Paused' for a VM restored from a snapshot (its vCPUs wait for resume()); else 'Not started'. */
  initialState?: 'Not started' | 'Paused';
}

export class Vmm implements RunningVm {
  readonly config: VmConfig;
  readonly mem: HostGuestMemory;
  readonly handles: readonly VcpuHandle[];
  /** Resolves once, when the VM has stopped and every resource is released. */
  readonly exit: Promise<VmExit>;
  private _state: VmState = 'Not started';
  private readonly parts: VmmParts;
  private resolveExit!: (e: VmExit) => void;
  private stopping: Promise<void> | undefined;
  /** Unregisters the block metrics sources (see teardown). */
  private readonly metricsSources: (() => void)[];

  constructor(parts: VmmParts) {
    this.parts = parts;
    this.config = parts.config;
    this.mem = parts.mem;
    this.handles = parts.handles;
    // Each drive's worker counts into shared memory; the flusher reads it on main through the
    // handle. The buffer outlives PATCH /drives backing-file swaps, so the counters do too.
    const m = parts.metrics;
    this.metricsSources = m
      ? [
          ...parts.blocks.map((b) => m.addDeviceSource('block', b.driveId, () => b.metricsSnapshot())),
          ...parts.nets.map((n) => m.addDeviceSource('net', n.ifaceId, () => n.metricsSnapshot())),
          // Every MMDS interface's stack counts on its own; the `mmds` group is their sum.
          ...parts.nets.flatMap((n) => (n.mmdsMetrics ? [m.addGroupSource('mmds', () => n.mmdsMetrics!.snapshot())] : [])),
          ...registerVmMetrics(m, { handles: parts.handles, devices: parts.devices, manifest: parts.devices.manifest }),
          // Firecracker has one vsock device and one `vsock` group (no per-device groups).
          ...(parts.vsock ? [m.addGroupSource('vsock', () => parts.vsock!.metricsSnapshot())] : []),
          // Likewise one entropy device, one `entropy` group.
          ...(parts.entropy ? [m.addGroupSource('entropy', () => parts.entropy!.metricsSnapshot())] : []),
          // And one balloon, one `balloon` group.
          ...(parts.balloon ? [m.addGroupSource('balloon', () => parts.balloon!.metricsSnapshot())] : []),
          // Firecracker's `pmem_<id>` per device, and one `memory_hotplug` group.
          ...(parts.pmem ?? []).map((p) => m.addDeviceSource('pmem', p.id, () => p.metricsSnapshot())),
          ...(parts.virtioMem ? [m.addGroupSource('memory_hotplug', () => parts.virtioMem!.metricsSnapshot())] : []),
        ]
      : [];
    this._state = parts.initialState ?? 'Not started';
    this.exit = new Promise((r) => { this.resolveExit = r; });
    void this.watch();
  }

  get state(): VmState {
    return this._state;
  }

  /** Lets every vCPU run (InstanceStart). */
  async start(): Promise<void> {
    if (this._state !== 'Not started') throw new Error(`cannot start a VM in state ${this._state}`);
    await Promise.all(this.handles.map((h) => h.run()));
    if (this._state === 'Not started') this._state = 'Running';
  }

  /** Pauses every vCPU (PATCH /vm Paused); tells the guest through KVM_KVMCLOCK_CTRL. */
  async pause(): Promise<void> {
    if (this._state === 'Paused') return;
    if (this._state !== 'Running') throw new Error(`cannot pause a VM in state ${this._state}`);
    await Promise.all(this.handles.map((h) => h.pause()));
    this.parts.vcpus.forEach((v, i) => {
      try {
        v.kvmclockCtrl();
      } catch (e) {
        // Not fatal, counted and logged as Firecracker's arch/x86_64/vcpu.rs `kvmclock_ctrl` does;
        // EINVAL when the guest has no kvmclock.
        this.handles[i]?.metrics.inc('kvmclock_ctrl_fails');
        this.parts.log('warn', `KVM_KVMCLOCK_CTRL call failed ${(e as Error).message}`);
      }
    });
    this._state = 'Paused';
  }

  /**
   * Resumes every vCPU (PATCH /vm Resumed). The devices are kicked first, as Firecracker's
   * `resume_vm` does (src/vmm/src/lib.rs): a device sees its queues before the guest runs.
   */
  async resume(): Promise<void> {
    if (this._state === 'Running') return;
    if (this._state !== 'Paused') throw new Error(`cannot resume a VM in state ${this._state}`);
    for (const d of this.virtioDevices()) d.kick();
    await Promise.all(this.handles.map((h) => h.run()));
    this._state = 'Running';
  }

  /** Every virtio device actor (resume kicks them, teardown stops them). */
  private virtioDevices(): (BalloonHandle | BlockHandle | NetHandle | VsockHandle | EntropyHandle | PmemHandle | MemHandle | FsHandle)[] {
    const p = this.parts;
    return [
      ...(p.balloon ? [p.balloon] : []), ...p.blocks, ...p.nets, ...(p.pmem ?? []), ...(p.vsock ? [p.vsock] : []), ...(p.entropy ? [p.entropy] : []),
      ...(p.virtioMem ? [p.virtioMem] : []), ...(p.fs ?? []),
    ];
  }

  /** The virtio-fs device actors (tests and tools: whether a backend is gone). */
  get fs(): readonly FsHandle[] {
    return this.parts.fs ?? [];
  }

  /** The vsock device actor, if the VM has one (tests and tools: its counters and connections). */
  get vsock(): VsockHandle | null {
    return this.parts.vsock ?? null;
  }

  /** The entropy device actor, if the VM has one (tests and tools: its counters). */
  get entropy(): EntropyHandle | null {
    return this.parts.entropy ?? null;
  }

  /** The balloon device actor, if the VM has one (tests and tools: its counters). */
  get balloon(): BalloonHandle | null {
    return this.parts.balloon ?? null;
  }

  /**
   * PATCH /balloon: a new target (Firecracker `update_balloon_config`): the guest is told
   * through a config interrupt and inflates or deflates towards it.
   */
  async updateBalloon(amountMib: number): Promise<void> {
    const b = this.requireBalloon();
    await b.setTarget(amountMib);
    this.config.balloon = { ...this.config.balloon!, amount_mib: amountMib }; // what a snapshot saves
  }

  /** PATCH /balloon/statistics: a new polling interval (0 ↔ non-zero is refused by the device). */
  async updateBalloonStatistics(intervalS: number): Promise<void> {
    const b = this.requireBalloon();
    await b.setStatsInterval(intervalS);
    this.config.balloon = { ...this.config.balloon!, stats_polling_interval_s: intervalS };
  }

  /** GET /balloon/statistics: the target, what the guest holds, and its last statistics. */
  async balloonStats(): Promise<BalloonStats> {
    const s = await this.requireBalloon().stats();
    return { target_pages: s.target_pages, actual_pages: s.actual_pages, target_mib: s.target_mib, actual_mib: s.actual_mib, ...s.stats };
  }

  /** PATCH /balloon/hinting/start: a free page hinting run (Firecracker `start_balloon_hinting`). */
  async startBalloonHinting(cmd: StartHintingCmd): Promise<void> {
    await this.requireBalloon().startHinting(cmd.acknowledge_on_stop);
  }

  /** GET /balloon/hinting/status. */
  balloonHintingStatus(): Promise<HintingStatus> {
    return this.requireBalloon().hintingStatus();
  }

  /** PATCH /balloon/hinting/stop. */
  async stopBalloonHinting(): Promise<void> {
    await this.requireBalloon().stopHinting();
  }

  /** GET /hotplug/memory (Firecracker `memory_hotplug_status`), in MiB. */
  async memoryHotplugStatus(): Promise<MemoryHotplugStatus> {
    const s = await this.requireMem().status();
    return {
      total_size_mib: s.regionSize / MiB, slot_size_mib: s.slotSize / MiB, block_size_mib: s.blockSize / MiB,
      plugged_size_mib: s.pluggedSize / MiB, requested_size_mib: s.requestedSize / MiB,
    };
  }

  /** PATCH /hotplug/memory (Firecracker `update_memory_hotplug_size`): the guest is told through a config interrupt. */
  async updateMemoryHotplugSize(requestedSizeMib: number): Promise<void> {
    const m = this.requireMem();
    try {
      await m.setRequestedSize(requestedSizeMib * MiB);
    } catch (e) {
      // Firecracker's VmmError::VirtioMem around the device's VirtioMemError (src/vmm/src/lib.rs).
      const text = `Failed to create memory hotplug device: ${(e as Error).message}`;
      throw e instanceof KindlingError ? new KindlingError(e.code, text, { cause: e }) : new Error(text, { cause: e });
    }
  }

  /** PATCH /pmem/{id} after boot: new rate limiter buckets. */
  async updatePmemDevice(update: PmemDeviceUpdateConfig): Promise<void> {
    const p = (this.parts.pmem ?? []).find((x) => x.id === update.id);
    if (!p) throw new Error(`pmem device ${update.id} does not exist`);
    if (update.rate_limiter) await p.updateRateLimiter(update.rate_limiter);
  }

  private requireMem(): MemHandle {
    const m = this.parts.virtioMem;
    // Firecracker's FindDeviceError text (device_manager/mod.rs).
    if (!m) throw new Error('Device not found');
    return m;
  }

  private requireBalloon(): BalloonHandle {
    const b = this.parts.balloon;
    if (!b) throw new Error('No balloon device found.');
    return b;
  }

  /** Injects Ctrl+Alt+Del through the i8042 (PUT /actions SendCtrlAltDel). */
  sendCtrlAltDel(): boolean {
    return this.parts.devices.sendCtrlAltDel();
  }

  /** The guest's serial output, when the host options asked for a stream; ends when the VM stops. */
  get console(): Readable {
    return this.parts.devices.console;
  }

  /** Types into the guest's serial console. */
  writeConsole(data: Uint8Array | string): void {
    this.parts.devices.writeConsole(data);
  }

  /** Test-only: the debug port ring. */
  get debugRing(): ByteRing | undefined {
    return this.parts.debugRing;
  }

  /**
   * PATCH /drives/{id} after boot: a new backing file (reopened with the drive's mode, new
   * capacity, config-change interrupt) and/or new rate limiter buckets
   * (src/vmm/src/lib.rs `update_block_device_path`, `update_block_rate_limiter`).
   */
  async updateDrive(update: BlockDeviceUpdateConfig): Promise<void> {
    const driveId = update.drive_id;
    const b = this.parts.blocks.find((x) => x.driveId === driveId);
    const drive = this.config.drives.find((d) => d.drive_id === driveId);
    if (!b || drive?.kind !== 'virtio-block') throw new Error(`drive ${driveId} does not exist`);
    if (update.path_on_host !== null) {
      let fd: number;
      try {
        fd = openSync(update.path_on_host, drive.is_read_only ? 'r' : 'r+');
      } catch (e) {
        // Firecracker's BlockError::BackingFile text (src/vmm/src/devices/virtio/block/virtio/device.rs).
        throw new Error(`Error manipulating the backing file: ${ioErrorText(e)} ${update.path_on_host}`, { cause: e });
      }
      try {
        await b.updateBackingFile(fd, backingFileSize(fd));
      } catch (e) {
        closeSync(fd);
        throw e;
      }
    }
    if (update.rate_limiter) await b.updateRateLimiter(update.rate_limiter);
  }

  /**
   * PATCH /network-interfaces/{id} after boot: new rate limiter buckets per direction
   * (src/vmm/src/lib.rs `update_net_rate_limiters`); an absent limiter is left as it is.
   */
  async updateNetworkInterface(update: NetworkInterfaceUpdateConfig): Promise<void> {
    const n = this.parts.nets.find((x) => x.ifaceId === update.iface_id);
    if (!n) throw new Error(`network interface ${update.iface_id} does not exist`);
    await n.updateRateLimiters(update.rx_rate_limiter, update.tx_rate_limiter);
  }

  /**
   * PUT/PATCH /mmds after boot: every MMDS interface's stack gets the store's new text
   * (Firecracker's one `Arc<Mutex<Mmds>>`; here each worker holds its copy).
   */
  async updateMmdsData(json: string): Promise<void> {
    await Promise.all(this.parts.nets.filter((n) => n.mmdsMetrics).map((n) => n.setMmdsData(json)));
  }

  /**
   * PUT /snapshot/create (src/vmm/snapshot-create.ts). Only a paused VM: running vCPUs refuse
   * to save, with Firecracker's text (vstate/vcpu.rs VcpuResponse::NotAllowed).
   */
  async createSnapshot(params: CreateSnapshotParams): Promise<void> {
    if (this._state !== 'Paused') {
      throw new SnapshotError('SNAPSHOT_NOT_ALLOWED', 'Cannot save the microVM state: Operation not allowed: save/restore unavailable while running');
    }
    await createSnapshot(this.parts, params);
  }

  /** Stops the VM from the host side; resolves with the exit. */
  async stop(): Promise<VmExit> {
    Atomics.compareExchange(this.parts.vmControl, VM_SLOT.EXIT_CODE, -1, 0);
    Atomics.add(this.parts.vmControl, VM_SLOT.STOP_SEQ, 1);
    Atomics.notify(this.parts.vmControl, VM_SLOT.STOP_SEQ);
    return this.exit;
  }

  /** Waits for a VM-wide stop request (from a vCPU or stop()), then tears everything down. */
  private async watch(): Promise<void> {
    const ctl = this.parts.vmControl;
    const unexpected = Promise.race(this.handles.map((h) => h.exited));
    for (;;) {
      const seen = Atomics.load(ctl, VM_SLOT.STOP_SEQ);
      if (seen !== 0) break;
      const w = Atomics.waitAsync(ctl, VM_SLOT.STOP_SEQ, 0);
      if (!w.async) continue;
      const winner = await Promise.race([w.value.then(() => 'stop' as const), unexpected.then(() => 'worker' as const)]);
      if (winner === 'worker') {
        // A worker ended without a stop request (it crashed): stop the VM with code 1.
        Atomics.compareExchange(ctl, VM_SLOT.EXIT_CODE, -1, 1);
        break;
      }
    }
    this.stopping ??= this.teardown();
    await this.stopping;
  }

  /**
   * Stops everything, in the order and with the lines of Firecracker's `Vmm::stop` and its Drop
   * (src/vmm/src/lib.rs): "Vmm is stopping.", "Killing vCPU threads", then one last metrics
   * write, so the metrics file's last line holds what the VM did up to its end.
   */
  private async teardown(): Promise<void> {
    const ctl = this.parts.vmControl;
    this.parts.log('info', 'Vmm is stopping.');
    this.parts.log('info', 'Killing vCPU threads');
    const exits: VcpuExit[] = await Promise.all(this.handles.map((h) => h.stop().catch((e: Error) => ({
      vcpuId: h.id, exitKind: VCPU_EXIT_KIND.ERROR, detail: e.message,
    }))));
    this._state = 'Exited';
    await Promise.all(this.virtioDevices().map((d) => d.stop().catch(() => undefined)));
    // After the workers stopped, so the last pull sees everything they counted; the groups
    // stay in the metrics file (Firecracker never drops a drive's entry).
    this.metricsSources.forEach((off) => off());
    await this.parts.devices.close();
    try {
      this.parts.metrics?.write();
    } catch (e) {
      // The error's text already starts "Failed to write metrics: " (MetricsError::Write), as in Firecracker's line.
      this.parts.log('error', `Failed to write metrics while stopping: ${(e as Error).message}`);
    }
    const first = exits.find((e) => e.exitKind !== VCPU_EXIT_KIND.STOPPED);
    let code = Atomics.load(ctl, VM_SLOT.EXIT_CODE);
    if (code < 0) code = first ? exitCodeOf(first.exitKind) : 0;
    const reason = first ? `vCPU ${first.vcpuId}: ${first.detail}` : 'stopped by the host';
    // Firecracker's exit line gives only the code; say which vCPU ended the VM and why.
    if (code !== 0) this.parts.log('error', `The microVM ended with exit code ${code}: ${reason}`);
    for (const v of this.parts.vcpus) v.close();
    this.parts.vm.close();
    this.parts.kvm.close();
    this.parts.mem.close(); // the memfd; the mappings go with the WebAssembly memories
    this.resolveExit({ code, reason });
  }
}
