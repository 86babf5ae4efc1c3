/**
 * The seam between the controller and a VM (docs/design.md "API flow"). The controller owns
 * configuration and run state; a `VmFactory` turns a validated `VmConfig` into a running VM;
 * the controller then calls the `RunningVm` directly. `Vmm` (src/vmm/vmm.ts) is the real
 * RunningVm and `KvmVmFactory` (src/vmm/kvm-factory.ts) the real factory; the API tests put a
 * recording fake here (test/helpers/api-fake-backend.ts) and keep everything above it real.
 *
 * Error contract: a rejected call carries the inner text Firecracker would show after its
 * prefix; the controller adds the prefix ("Start microvm error: ...", "Internal VMM error: ...").
 *
 * Device operations (balloon, pmem, memory hotplug, snapshots) are optional, so a fake VM needs
 * only what its test uses: the controller answers "The requested operation is not supported"
 * when one is missing, and a factory that lacks a device kind refuses to start such a VM.
 */
import type { ActorKind } from '../actors/actor-pool.js';
import type { BalloonStats, HintingStatus, StartHintingCmd } from '../config/balloon.js';
import type { BlockDeviceUpdateConfig } from '../config/drives.js';
import type { MemoryHotplugStatus } from '../config/memory-hotplug.js';
import type { NetworkInterfaceUpdateConfig } from '../config/network-interfaces.js';
import type { PmemDeviceUpdateConfig } from '../config/pmem.js';
import type { VmConfig } from '../config/resources.js';
import type { CreateSnapshotParams, LoadSnapshotParams } from '../config/snapshot.js';
import type { MmdsDataStore } from '../config/mmds-data.js';
import type { DeviceKind } from './features.js';

/** How the microVM ended: the process exit code Firecracker would use (0 = guest reboot). */
export interface VmExit {
  code: number;
  /** The first vCPU exit that stopped the VM, or "stopped by the host". */
  reason: string;
}

/** A VM that exists (booted or restored). */
export interface RunningVm {
  /** Resolves once, when the VM has stopped and released everything. */
  readonly exit: Promise<VmExit>;
  /** PATCH /vm Paused: every vCPU out of KVM_RUN and parked. */
  pause(): Promise<void>;
  /** PATCH /vm Resumed: devices are kicked first, then the vCPUs run (vmm/src/lib.rs resume_vm). */
  resume(): Promise<void>;
  /** PUT /actions SendCtrlAltDel; false when the i8042 buffer has no room. */
  sendCtrlAltDel(): boolean;
  /** PATCH /drives/{id}: new backing file and/or rate limiter. */
  updateDrive(update: BlockDeviceUpdateConfig): Promise<void>;
  /** Stops the VM from the host; resolves with its exit. */
  stop(): Promise<VmExit>;
  updateNetworkInterface?(update: NetworkInterfaceUpdateConfig): Promise<void>;
  /** PUT/PATCH /mmds after boot: the data store's new serde_json text for the guest-facing MMDS. */
  updateMmdsData?(json: string): Promise<void>;
  updatePmemDevice?(update: PmemDeviceUpdateConfig): Promise<void>;
  updateBalloon?(amountMib: number): Promise<void>;
  updateBalloonStatistics?(intervalS: number): Promise<void>;
  balloonStats?(): Promise<BalloonStats>;
  startBalloonHinting?(cmd: StartHintingCmd): Promise<void>;
  balloonHintingStatus?(): Promise<HintingStatus>;
  stopBalloonHinting?(): Promise<void>;
  memoryHotplugStatus?(): Promise<MemoryHotplugStatus>;
  updateMemoryHotplugSize?(requestedSizeMib: number): Promise<void>;
  /** PUT /snapshot/create (VM paused). */
  createSnapshot?(params: CreateSnapshotParams): Promise<void>;
}

/** Builds VMs. */
export interface VmFactory {
  /** Whether VMs from this factory can provide `kind`. */
  supports(kind: DeviceKind): boolean;
  /** InstanceStart: builds the VM and lets its vCPUs run. Rejects without leaving anything behind. */
  boot(config: VmConfig): Promise<RunningVm>;
  /**
   * PUT /snapshot/load on a fresh process: the restored VM (paused) and its configuration.
   * `ctx` is what the process brings: its --id, and its MMDS store (data PUT before the load).
   */
  restore?(params: LoadSnapshotParams, ctx: { instanceId: string; mmdsStore: () => MmdsDataStore; startedAt?: number }): Promise<{ vm: RunningVm; config: VmConfig }>;
  /**
   * Loads what the PUT-time device checks need (the TAP layer for `openTap`); the controller
   * awaits it before such a check, so those modules stay off the start-up path.
   */
  prepare?(): Promise<void>;
  /** PUT-time TAP check (Firecracker opens the TAP when the interface is configured). */
  openTap?(hostDevName: string): void;
  /**
   * Starts loading the VM machinery in the background; the CLI calls it once the API socket
   * listens, so the socket accepts early and InstanceStart finds the code loaded.
   */
  warmUp?(): void;
  /**
   * The configuration so far asks for `demand` actors of each kind: start workers ahead up to
   * that many (src/actors/actor-pool.ts), so InstanceStart finds them loaded. The controller
   * calls it after every pre-boot action; extra calls with the same demand start nothing.
   */
  expectActors?(demand: Readonly<Record<ActorKind, number>>): void;
}

/** How many actors of each kind a VM with `vcpus` and these devices starts (VmFactory.expectActors). */
export function actorDemand(
  vcpus: number,
  d: { drives: readonly unknown[]; networkInterfaces: readonly unknown[]; vsock: unknown; entropy: unknown; balloon: unknown; pmem?: readonly unknown[]; memoryHotplug?: unknown; fs?: readonly unknown[] },
): Record<ActorKind, number> {
  return {
    vcpu: vcpus, block: d.drives.length, net: d.networkInterfaces.length,
    vsock: d.vsock ? 1 : 0, entropy: d.entropy ? 1 : 0, balloon: d.balloon ? 1 : 0, mem: d.memoryHotplug ? 1 : 0, pmem: d.pmem?.length ?? 0, fs: d.fs?.length ?? 0,
  };
}
