/**
 * MicroVm: the in-process library (`import { MicroVm } from 'kindling'`).
 *
 *   const vm = new MicroVm({ 'boot-source': { kernel_image_path, initrd_path, boot_args },
 *                            'machine-config': { vcpu_count: 2, mem_size_mib: 256 } });
 *   vm.console.on('data', ...);      // the guest's serial output
 *   await vm.start();                // InstanceStart
 *   const { code } = await vm.exit;  // 0 after the guest reboots, 1 on a vCPU error
 *
 * Configuration uses Firecracker's resource names and defaults (src/vmm/config.ts). The
 * console stream exists before start(), so no early output is missed.
 */
import { PassThrough, type Readable } from 'node:stream';
import { buildMicroVm, type VmmLog } from './builder.js';
import type { DriveConfig, MicroVmConfig } from './config.js';
import type { Vmm, VmExit, VmState } from './vmm.js';
import type { ByteRing } from '../devices/byte-ring.js';
import type { VcpuHandle } from '../actors/vcpu/handle.js';
import { METRICS, type Metrics } from '../metrics/metrics.js';
import { drainActorPool, prewarmActors } from '../actors/actor-pool.js';

export type { MicroVmConfig, VmExit, VmState };

/** KVM exits one vCPU actor handled in userspace, by kind (the vcpu.exit_* metrics). */
export type VcpuExitCounts = ReturnType<VcpuHandle['exitCounts']>;

export interface MicroVmOptions {
  /** Where VMM log lines go (default: stderr, Firecracker's format is the logger's job). */
  log?: VmmLog;
  /**
   * Registry the devices report into (default: the process-wide METRICS, which the API's
   * FlushMetrics and periodic flush write out as `block_<drive_id>` and `block`).
   */
  metrics?: Metrics;
}

export class MicroVm {
  readonly config: MicroVmConfig;
  /** The guest's serial output (when `serial` is the default stream target). */
  readonly console: Readable;
  /** Resolves when the VM has stopped. */
  readonly exit: Promise<VmExit>;
  private vmm: Vmm | undefined;
  private writeInput: ((b: Uint8Array | string) => void) | undefined;
  private debug: ByteRing | undefined;
  private resolveExit!: (e: VmExit) => void;
  private rejectExit!: (e: unknown) => void;
  private readonly log: VmmLog;
  private readonly metrics: Metrics;
  private starting: Promise<void> | undefined;

  /**
   * Starts actor workers ahead of `start()` (src/actors/actor-pool.ts): a process that will
   * run a VM soon (the API process, once its socket listens) calls this so InstanceStart does
   * not wait for isolates to load their code. Unused workers do not keep the process alive.
   */
  static prewarm(actors: { vcpus?: number; drives?: number }): void {
    prewarmActors('vcpu', actors.vcpus ?? 0);
    prewarmActors('block', actors.drives ?? 0);
  }

  /** Stops workers `prewarm` started that no VM took. */
  static drainPrewarmed(): Promise<void> {
    return drainActorPool();
  }

  constructor(config: MicroVmConfig, opts: MicroVmOptions = {}) {
    this.config = config;
    this.console = new PassThrough();
    this.exit = new Promise((resolve, reject) => { this.resolveExit = resolve; this.rejectExit = reject; });
    this.exit.catch(() => undefined);
    this.metrics = opts.metrics ?? METRICS;
    this.log = opts.log ?? ((level, msg) => process.stderr.write(`[${config.id ?? 'anonymous-instance'}:main:${level.toUpperCase()}] ${msg}\n`));
  }

  /** Run state as GET / reports it (plus "Exited"). */
  get state(): VmState {
    return this.vmm?.state ?? 'Not started';
  }

  /** Builds and boots the VM (InstanceStart). Rejects without side effects on failure. */
  start(): Promise<void> {
    this.starting ??= (async () => {
      const built = await buildMicroVm(this.config, this.log, this.metrics);
      this.vmm = built.vmm;
      this.debug = built.debugRing;
      this.writeInput = built.devices.writeConsole;
      built.devices.console.pipe(this.console as PassThrough);
      built.vmm.exit.then(this.resolveExit, this.rejectExit);
      await built.vmm.start();
    })();
    this.starting.catch(() => { this.starting = undefined; });
    return this.starting;
  }

  pause(): Promise<void> {
    return this.running().pause();
  }

  resume(): Promise<void> {
    return this.running().resume();
  }

  /** Injects Ctrl+Alt+Del (the guest's init decides what it means; busybox reboots). */
  sendCtrlAltDel(): boolean {
    return this.running().sendCtrlAltDel();
  }

  /**
   * PATCH /drives/{id}: swap a drive's backing file (the guest gets a config-change interrupt
   * and sees the new capacity) and/or replace its rate limiter buckets.
   */
  updateDrive(driveId: string, update: { path_on_host?: string; rate_limiter?: DriveConfig['rate_limiter'] }): Promise<void> {
    const d = (this.config.drives ?? []).find((x) => x.drive_id === driveId);
    if (!d) return Promise.reject(new Error(`drive ${driveId} does not exist`));
    return this.running().updateDrive(driveId, { ...update, readOnly: d.is_read_only ?? false });
  }

  /** Types into the guest's serial console. */
  writeConsole(data: Uint8Array | string): void {
    this.running();
    this.writeInput!(data);
  }

  /** Stops the VM from the host; resolves with its exit. */
  async stop(): Promise<VmExit> {
    if (!this.vmm) throw new Error('the microVM was never started');
    return this.vmm.stop();
  }

  /** Test-only: the debug port ring (config.debugPort). */
  get debugRing(): ByteRing | undefined {
    return this.debug;
  }

  /**
   * Read-only: exits each vCPU actor has handled so far, indexed by vCPU id (empty before
   * start()). For benchmarks and metrics; reading the counters does not disturb the vCPUs.
   */
  get exitCounts(): VcpuExitCounts[] {
    return this.vmm?.handles.map((h) => h.exitCounts()) ?? [];
  }

  /** The guest memory (for tests and tools: read-only inspection). */
  get memory(): Vmm['mem'] {
    return this.running().mem;
  }

  private running(): Vmm {
    if (!this.vmm) throw new Error('the microVM is not started');
    return this.vmm;
  }
}
