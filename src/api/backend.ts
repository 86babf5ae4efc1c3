/**
 * The seam between the API layer and the VM (facts §0): `VmmController` owns the configuration
 * and the boot-phase rules; a `VmBackend` builds and runs the VM. The real backend (KVM, vCPU
 * actors, devices) plugs in here; unit tests use test/helpers/api-fake-backend.ts.
 *
 * Error contract: a backend method rejects with an Error whose `message` is the inner text
 * Firecracker would show after its prefix — e.g. `start` failing with "Invalid Memory
 * Configuration: ..." becomes `Start microvm error: Invalid Memory Configuration: ...` (400, and
 * not fatal: the user may fix the resources and retry InstanceStart).
 */
import type { BalloonStats, HintingStatus, StartHintingCmd } from '../config/balloon.js';
import type { BlockDeviceUpdateConfig } from '../config/drives.js';
import type { MemoryHotplugStatus } from '../config/memory-hotplug.js';
import type { NetworkInterfaceUpdateConfig } from '../config/network-interfaces.js';
import type { PmemDeviceUpdateConfig } from '../config/pmem.js';
import type { VmConfig } from '../config/resources.js';
import type { CreateSnapshotParams, LoadSnapshotParams } from '../config/snapshot.js';
import type { Metrics } from '../metrics/metrics.js';

export type { VmConfig } from '../config/resources.js';

/**
 * Devices and features a configuration may ask for. InstanceStart fails with a 400 naming the
 * first configured one the backend does not support — a configured device is never silently
 * dropped.
 */
export type DeviceKind =
  | 'virtio-block'
  | 'vhost-user-block'
  | 'block-io-engine-async'
  | 'virtio-net'
  | 'mmds'
  | 'vsock'
  | 'balloon'
  | 'entropy'
  | 'pmem'
  | 'memory-hotplug'
  | 'rate-limiter'
  | 'serial-output-file'
  | 'serial-rate-limiter'
  | 'static-cpu-template'
  | 'custom-cpu-template'
  | 'smt'
  | 'huge-pages'
  | 'track-dirty-pages'
  | 'initrd'
  | 'boot-timer'
  | 'pci';

/** Human-readable names used in the "not supported" start error. */
export const DEVICE_KIND_NAMES: Record<DeviceKind, string> = {
  'virtio-block': 'virtio-block drives',
  'vhost-user-block': 'vhost-user-block drives (drive `socket`)',
  'block-io-engine-async': 'the Async (io_uring) block io_engine',
  'virtio-net': 'network interfaces (virtio-net)',
  mmds: 'MMDS',
  vsock: 'vsock',
  balloon: 'the balloon device',
  entropy: 'the entropy device (virtio-rng)',
  pmem: 'pmem devices',
  'memory-hotplug': 'memory hotplug (virtio-mem)',
  'rate-limiter': 'rate limiters',
  'serial-output-file': 'serial_out_path',
  'serial-rate-limiter': 'the serial rate limiter',
  'static-cpu-template': 'static CPU templates',
  'custom-cpu-template': 'custom CPU templates (/cpu-config)',
  smt: 'SMT',
  'huge-pages': 'huge pages',
  'track-dirty-pages': 'dirty page tracking',
  initrd: 'an initrd',
  'boot-timer': 'the boot timer device (--boot-timer)',
  pci: 'PCI (--enable-pci)',
};

/** How the VM ended: the process exit code Firecracker would use (0 = guest reboot). */
export interface VmExit {
  code: number;
  reason?: string;
}

/** A VM implementation driven by the API controller. */
export interface VmBackend {
  /** Whether this backend can provide `kind`. */
  supports(kind: DeviceKind): boolean;
  /** Builds and boots the VM (InstanceStart). Resolves once vCPUs run. */
  start(config: VmConfig): Promise<void>;
  /** Pauses all vCPUs (PATCH /vm Paused). */
  pause(): Promise<void>;
  /** Resumes all vCPUs (PATCH /vm Resumed); devices are kicked first (facts §0). */
  resume(): Promise<void>;
  /** Injects Ctrl+Alt+Del via the i8042 (facts §4.2). */
  sendCtrlAltDel(): Promise<void>;
  /** Called on InstanceStart after the VM is up so device metrics exist before the first flush. */
  flushMetrics?(): void;
  /** PUT-time TAP probe (Firecracker opens the TAP when the interface is configured). */
  openTap?(hostDevName: string): void;
  /** PATCH /drives after boot. */
  updateBlockDevice?(update: BlockDeviceUpdateConfig): Promise<void>;
  /** PATCH /network-interfaces after boot. */
  updateNetworkInterface?(update: NetworkInterfaceUpdateConfig): Promise<void>;
  /** PATCH /pmem after boot. */
  updatePmemDevice?(update: PmemDeviceUpdateConfig): Promise<void>;
  /** PATCH /balloon after boot. */
  updateBalloon?(amountMib: number): Promise<void>;
  /** PATCH /balloon/statistics after boot. */
  updateBalloonStatistics?(intervalS: number): Promise<void>;
  /** GET /balloon/statistics. */
  balloonStats?(): Promise<BalloonStats>;
  /** PATCH /balloon/hinting/start. */
  startBalloonHinting?(cmd: StartHintingCmd): Promise<void>;
  /** GET /balloon/hinting/status. */
  balloonHintingStatus?(): Promise<HintingStatus>;
  /** PATCH /balloon/hinting/stop. */
  stopBalloonHinting?(): Promise<void>;
  /** GET /hotplug/memory. */
  memoryHotplugStatus?(): Promise<MemoryHotplugStatus>;
  /** PATCH /hotplug/memory. */
  updateMemoryHotplugSize?(requestedSizeMib: number): Promise<void>;
  /** PUT /snapshot/create (VM paused). */
  createSnapshot?(params: CreateSnapshotParams): Promise<void>;
  /**
   * PUT /snapshot/load on a fresh process. Resolves with the restored configuration (what GET
   * /vm/config and /machine-config report afterwards); a rejection is fatal (facts §1.3).
   */
  loadSnapshot?(params: LoadSnapshotParams): Promise<VmConfig>;
  /** Registers a callback for when the VM stops (guest reboot, fatal vCPU error). */
  onExit?(cb: (exit: VmExit) => void): void;
  /**
   * Starts loading the VM machinery in the background; the CLI calls it once the API socket
   * listens, so the socket accepts early and InstanceStart finds the code loaded.
   */
  warmUp?(): void;
}

/**
 * The backend factory the CLI receives (`runCli(argv, { createBackend })`); `metrics` is the
 * registry the controller flushes, for the backend's devices to report into.
 */
export type BackendFactory = (opts: { instanceId: string; metrics?: Metrics }) => VmBackend | Promise<VmBackend>;
