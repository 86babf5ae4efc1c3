/**
 * The real VmBackend: turns the API's validated VmConfig into a MicroVm (src/vmm) and drives
 * it. This is the one place where the API layer meets the VMM (import direction api → vmm).
 *
 * What it supports is declared in SUPPORTED; anything else the user configured makes
 * InstanceStart fail with a 400 naming it (VmmController checks `supports` first), so a
 * configured device is never silently dropped.
 *
 * The VMM side (vmm → actors → devices → kvm, koffi) is imported lazily: the API socket must
 * accept as soon as possible after process start (Firecracker's startup), and that graph is
 * most of Kindling's module loading. `warmUp()` starts the import right after the socket
 * listens; InstanceStart awaits the same promise.
 */
import type { MicroVm } from '../vmm/microvm.js';
import type { MicroVmConfig, SerialOutput } from '../vmm/config.js';
import type { BackendFactory, DeviceKind, VmBackend, VmConfig, VmExit } from './backend.js';
import type { BlockDeviceUpdateConfig } from '../config/drives.js';
import { cmdlineString } from '../config/boot-source.js';
import { fstatSync } from 'node:fs';
import { LOGGER } from '../logger/logger.js';
import { METRICS, type Metrics } from '../metrics/metrics.js';

/** What this build of Kindling can run. */
const SUPPORTED: ReadonlySet<DeviceKind> = new Set<DeviceKind>([
  'initrd', 'boot-timer', 'serial-output-file', 'smt', 'track-dirty-pages', 'virtio-block', 'block-io-engine-async', 'rate-limiter',
]);

/** Maps the API's configuration onto the library's (same Firecracker field names). */
export function toMicroVmConfig(c: VmConfig): MicroVmConfig {
  const serial: SerialOutput = c.serial.serial_out_path ? { kind: 'file', path: c.serial.serial_out_path } : { kind: 'stdout' };
  return {
    id: c.instanceId,
    'boot-source': {
      kernel_image_path: c.bootSource.kernel_image_path,
      initrd_path: c.bootSource.initrd_path ?? null,
      boot_args: cmdlineString(c.bootSource.cmdline),
    },
    'machine-config': {
      vcpu_count: c.machine.vcpu_count,
      mem_size_mib: c.machine.mem_size_mib,
      smt: c.machine.smt,
      track_dirty_pages: c.machine.track_dirty_pages,
    },
    drives: c.drives.flatMap((d) => d.kind === 'virtio-block' ? [{
      drive_id: d.drive_id, is_root_device: d.is_root_device, path_on_host: d.path_on_host, is_read_only: d.is_read_only,
      partuuid: d.partuuid, cache_type: d.cache_type, io_engine: d.io_engine, rate_limiter: d.rate_limiter,
    }] : []),
    bootTimer: c.bootTimer,
    serial,
    // Firecracker reads stdin only when the console goes to stdout (facts §4.1).
    stdin: serial.kind === 'stdout' && (process.stdin.isTTY === true || isFifo()),
  };
}

function isFifo(): boolean {
  try {
    return fstatSync(0).isFIFO();
  } catch {
    return false;
  }
}

let vmmModule: Promise<typeof import('../vmm/microvm.js')> | undefined;
/** The VMM module, loaded once. */
function loadVmm(): Promise<typeof import('../vmm/microvm.js')> {
  return (vmmModule ??= import('../vmm/microvm.js'));
}

/** A backend running one MicroVm for the life of the process. */
export class KindlingBackend implements VmBackend {
  private vm: MicroVm | undefined;
  private readonly exitCallbacks: ((e: VmExit) => void)[] = [];
  private readonly log: (level: 'info' | 'warn' | 'error', msg: string) => void;
  private readonly metrics: Metrics;

  /** `metrics`: the registry the controller flushes (the VM's drives register into it). */
  constructor(log: (level: 'info' | 'warn' | 'error', msg: string) => void, metrics: Metrics = METRICS) {
    this.log = log;
    this.metrics = metrics;
  }

  supports(kind: DeviceKind): boolean {
    return SUPPORTED.has(kind);
  }

  warmUp(): void {
    // After the current turn, so the listen log line and first accept come first. A failure
    // here resurfaces (with its message) when InstanceStart awaits the same import.
    // One vCPU actor is started ahead too: Firecracker's default vcpu_count is 1, and a
    // worker's start is most of InstanceStart's cost (src/actors/actor-pool.ts).
    setImmediate(() => void loadVmm().then((m) => m.MicroVm.prewarm({ vcpus: 1 })).catch(() => undefined));
  }

  async start(config: VmConfig): Promise<void> {
    const { MicroVm } = await loadVmm();
    const vm = new MicroVm(toMicroVmConfig(config), { log: this.log, metrics: this.metrics });
    await vm.start();
    this.vm = vm;
    void vm.exit.then((e) => this.exitCallbacks.forEach((cb) => cb(e)), (err: Error) => this.exitCallbacks.forEach((cb) => cb({ code: 1, reason: err.message })));
  }

  pause(): Promise<void> {
    return this.running().pause();
  }

  resume(): Promise<void> {
    return this.running().resume();
  }

  async sendCtrlAltDel(): Promise<void> {
    if (!this.running().sendCtrlAltDel()) throw new Error('The i8042 buffer has no room for the Ctrl+Alt+Del sequence.');
  }

  async updateBlockDevice(update: BlockDeviceUpdateConfig): Promise<void> {
    await this.running().updateDrive(update.drive_id, {
      ...(update.path_on_host !== null ? { path_on_host: update.path_on_host } : {}),
      rate_limiter: update.rate_limiter,
    });
  }

  onExit(cb: (exit: VmExit) => void): void {
    this.exitCallbacks.push(cb);
  }

  private running(): MicroVm {
    if (!this.vm) throw new Error('The microVM is not running.');
    return this.vm;
  }
}

/** The factory bin/kindling.js hands to runCli. */
export const createBackend: BackendFactory = ({ metrics }) => new KindlingBackend((level, msg) => LOGGER[level](msg), metrics);
