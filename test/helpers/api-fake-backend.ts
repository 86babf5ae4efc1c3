/**
 * A stand-in VM for the API tests: both the `VmFactory` and the `RunningVm` it boots (so one
 * object records every call), can be told to fail or to refuse a device kind. It replaces the
 * VM, never the API — the server, router, controller and store under test are the real ones.
 */
import type { DeviceKind } from '../../src/vmm/features.js';
import type { RunningVm, VmExit, VmFactory } from '../../src/vmm/running-vm.js';
import type { VmConfig } from '../../src/config/resources.js';
import type { BalloonStats, HintingStatus, StartHintingCmd } from '../../src/config/balloon.js';
import type { BlockDeviceUpdateConfig } from '../../src/config/drives.js';
import type { MemoryHotplugStatus } from '../../src/config/memory-hotplug.js';
import type { NetworkInterfaceUpdateConfig } from '../../src/config/network-interfaces.js';
import type { PmemDeviceUpdateConfig } from '../../src/config/pmem.js';
import type { CreateSnapshotParams, LoadSnapshotParams } from '../../src/config/snapshot.js';

/** One recorded backend call. */
export interface BackendCall {
  method: string;
  args: unknown[];
}

/** The fake backend. */
export class FakeBackend implements VmFactory, RunningVm {
  readonly calls: BackendCall[] = [];
  /** Device kinds `supports` answers false for. */
  readonly unsupported = new Set<DeviceKind>();
  /** When set, `start` rejects with this message (once per assignment). */
  failStart: string | null = null;
  /** When set, `loadSnapshot` rejects with this message. */
  failLoad: string | null = null;
  /** The config the last successful `start` received. */
  started: VmConfig | null = null;
  /** Every `expectActors` demand, in order (kept apart from `calls`: it follows every pre-boot action). */
  readonly actorDemands: Record<string, number>[] = [];
  /** TAP names `openTap` refuses. */
  readonly badTaps = new Set<string>();
  readonly exit: Promise<VmExit>;
  private exitCb!: (e: VmExit) => void;

  constructor() {
    this.exit = new Promise((r) => { this.exitCb = r; });
  }

  private rec(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args });
  }

  /** Names of the calls made so far. */
  get callNames(): string[] {
    return this.calls.map((c) => c.method);
  }

  supports(kind: DeviceKind): boolean {
    return !this.unsupported.has(kind);
  }
  async boot(config: VmConfig): Promise<RunningVm> {
    this.rec('start', config);
    if (this.failStart) {
      const m = this.failStart;
      this.failStart = null;
      throw new Error(m);
    }
    this.started = config;
    return this;
  }
  async pause(): Promise<void> { this.rec('pause'); }
  async resume(): Promise<void> { this.rec('resume'); }
  sendCtrlAltDel(): boolean { this.rec('sendCtrlAltDel'); return true; }
  async stop(): Promise<VmExit> { this.rec('stop'); this.stopWith(0); return this.exit; }
  expectActors(demand: Readonly<Record<string, number>>): void {
    this.actorDemands.push({ ...demand });
  }
  openTap(name: string): void {
    this.rec('openTap', name);
    if (this.badTaps.has(name)) throw new Error(`Error while creating ifreq structure: Invalid argument (os error 22). Invalid TUN/TAP Backend provided by ${name}. Check our documentation on setting up the network devices.`);
  }
  async updateDrive(u: BlockDeviceUpdateConfig): Promise<void> { this.rec('updateBlockDevice', u); }
  async updateNetworkInterface(u: NetworkInterfaceUpdateConfig): Promise<void> { this.rec('updateNetworkInterface', u); }
  async updatePmemDevice(u: PmemDeviceUpdateConfig): Promise<void> { this.rec('updatePmemDevice', u); }
  async updateBalloon(mib: number): Promise<void> { this.rec('updateBalloon', mib); }
  async updateBalloonStatistics(s: number): Promise<void> { this.rec('updateBalloonStatistics', s); }
  async balloonStats(): Promise<BalloonStats> {
    this.rec('balloonStats');
    return { target_pages: 256, actual_pages: 0, target_mib: 1, actual_mib: 0, free_memory: 1024 };
  }
  async startBalloonHinting(cmd: StartHintingCmd): Promise<void> { this.rec('startBalloonHinting', cmd); }
  async balloonHintingStatus(): Promise<HintingStatus> { this.rec('balloonHintingStatus'); return { host_cmd: 2, guest_cmd: null }; }
  async stopBalloonHinting(): Promise<void> { this.rec('stopBalloonHinting'); }
  async memoryHotplugStatus(): Promise<MemoryHotplugStatus> {
    this.rec('memoryHotplugStatus');
    return { total_size_mib: 1024, slot_size_mib: 128, block_size_mib: 2, plugged_size_mib: 0, requested_size_mib: 0 };
  }
  async updateMemoryHotplugSize(mib: number): Promise<void> { this.rec('updateMemoryHotplugSize', mib); }
  async createSnapshot(p: CreateSnapshotParams): Promise<void> { this.rec('createSnapshot', p); }
  async restore(p: LoadSnapshotParams): Promise<{ vm: RunningVm; config: VmConfig }> {
    this.rec('loadSnapshot', p);
    if (this.failLoad) throw new Error(this.failLoad);
    return { vm: this, config: {
      instanceId: 'restored', machine: { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false, huge_pages: 'None', cpu_template: null, custom_cpu_template: null },
      bootSource: { kernel_image_path: '', initrd_path: null, boot_args: null, cmdline: { boot_args: '', init_args: '' } },
      drives: [], networkInterfaces: [], vsock: null, balloon: null, entropy: null, pmem: [], fs: [], memoryHotplug: null, mmds: null,
      serial: { serial_out_path: null, rate_limiter: null }, bootTimer: false, pciEnabled: false,
    } };
  }
  /** Simulates the guest stopping. */
  stopWith(code: number): void { this.exitCb({ code, reason: code === 0 ? 'stopped by the host' : 'vCPU 0: simulated failure' }); }
}
