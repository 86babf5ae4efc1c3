/**
 * The controller's command enum (firecracker src/vmm/src/rpc_interface.rs `VmmAction`,
 * `VmmData`, `VmmActionError`).
 * The HTTP layer turns each request into one `VmmAction`; `VmmController.handle` answers with
 * one `VmmData` or throws one `VmmActionError`. Names follow Firecracker's variants.
 */
import { ApiLayerError } from '../errors.js';
import { ConfigError } from '../config/errors.js';
import type { BalloonDeviceConfig, BalloonStats, BalloonUpdateConfig, BalloonUpdateStatsConfig, HintingStatus, StartHintingCmd } from '../config/balloon.js';
import type { BootSourceConfig } from '../config/boot-source.js';
import type { CustomCpuTemplate } from '../config/cpu-config.js';
import type { BlockDeviceConfig, BlockDeviceUpdateConfig } from '../config/drives.js';
import type { EntropyDeviceConfig } from '../config/entropy.js';
import type { LoggerConfig } from '../config/logger.js';
import type { MachineConfigUpdate } from '../config/machine-config.js';
import type { MemoryHotplugConfig, MemoryHotplugSizeUpdate, MemoryHotplugStatus } from '../config/memory-hotplug.js';
import type { MetricsConfig } from '../config/metrics.js';
import type { MmdsConfig } from '../config/mmds-config.js';
import type { NetworkInterfaceConfig, NetworkInterfaceUpdateConfig } from '../config/network-interfaces.js';
import type { PmemConfig, PmemDeviceUpdateConfig } from '../config/pmem.js';
import type { FsDeviceConfig } from '../config/fs.js';
import type { FullVmConfiguration } from '../config/resources.js';
import type { JsonValue } from '../config/serde-read.js';
import type { SerialConfig } from '../config/serial.js';
import type { CreateSnapshotParams, LoadSnapshotParams } from '../config/snapshot.js';

/** One API command. */
export type VmmAction =
  | { kind: 'ConfigureBootSource'; config: BootSourceConfig }
  | { kind: 'ConfigureLogger'; config: LoggerConfig }
  | { kind: 'ConfigureMetrics'; config: MetricsConfig }
  | { kind: 'ConfigureSerial'; config: SerialConfig }
  | { kind: 'CreateSnapshot'; params: CreateSnapshotParams }
  | { kind: 'GetBalloonConfig' }
  | { kind: 'GetBalloonStats' }
  | { kind: 'GetFullVmConfig' }
  | { kind: 'GetMMDS' }
  | { kind: 'GetVmMachineConfig' }
  | { kind: 'GetVmInstanceInfo' }
  | { kind: 'GetVmmVersion' }
  | { kind: 'FlushMetrics' }
  | { kind: 'InsertBlockDevice'; config: BlockDeviceConfig }
  | { kind: 'InsertPmemDevice'; config: PmemConfig }
  | { kind: 'UpdatePmemDevice'; config: PmemDeviceUpdateConfig }
  | { kind: 'InsertNetworkDevice'; config: NetworkInterfaceConfig }
  | { kind: 'LoadSnapshot'; params: LoadSnapshotParams }
  | { kind: 'PatchMMDS'; value: JsonValue }
  | { kind: 'Pause' }
  | { kind: 'PutMMDS'; value: JsonValue }
  | { kind: 'PutCpuConfiguration'; template: CustomCpuTemplate }
  | { kind: 'Resume' }
  | { kind: 'SetBalloonDevice'; config: BalloonDeviceConfig }
  | { kind: 'SetMmdsConfiguration'; config: MmdsConfig }
  | { kind: 'SetVsockDevice'; config: { vsock_id: string | null; guest_cid: number; uds_path: string } }
  | { kind: 'SetEntropyDevice'; config: EntropyDeviceConfig }
  /** PUT /fs/{id} (Kindling's own: virtio-fs, src/config/fs.ts). */
  | { kind: 'InsertFsDevice'; config: FsDeviceConfig }
  | { kind: 'GetMemoryHotplugStatus' }
  | { kind: 'SetMemoryHotplugDevice'; config: MemoryHotplugConfig }
  | { kind: 'UpdateMemoryHotplugSize'; config: MemoryHotplugSizeUpdate }
  | { kind: 'StartMicroVm' }
  | { kind: 'SendCtrlAltDel' }
  | { kind: 'UpdateBalloon'; config: BalloonUpdateConfig }
  | { kind: 'UpdateBalloonStatistics'; config: BalloonUpdateStatsConfig }
  | { kind: 'StartFreePageHinting'; cmd: StartHintingCmd }
  | { kind: 'GetFreePageHintingStatus' }
  | { kind: 'StopFreePageHinting' }
  | { kind: 'UpdateBlockDevice'; config: BlockDeviceUpdateConfig }
  | { kind: 'UpdateNetworkInterface'; config: NetworkInterfaceUpdateConfig }
  | { kind: 'UpdateMachineConfiguration'; config: MachineConfigUpdate }
  | { kind: 'HotUnplugDevice'; deviceType: 'Block' | 'Net' | 'Pmem'; id: string };

/** The VM's run state as GET / reports it (`VmState` Display). */
export type InstanceState = 'Not started' | 'Running' | 'Paused';

/** GET / body (`InstanceInfo`, key order as serialized). */
export interface InstanceInfo {
  id: string;
  state: InstanceState;
  vmm_version: string;
  app_name: string;
}

/** One successful answer. */
export type VmmData =
  | { kind: 'Empty' }
  | { kind: 'BalloonConfig'; value: BalloonDeviceConfig }
  | { kind: 'BalloonStats'; value: BalloonStats }
  | { kind: 'FullVmConfig'; value: FullVmConfiguration }
  | { kind: 'MachineConfiguration'; value: Record<string, unknown> }
  | { kind: 'MmdsValue'; json: string }
  | { kind: 'InstanceInformation'; value: InstanceInfo }
  | { kind: 'VmmVersion'; version: string }
  | { kind: 'VirtioMemStatus'; value: MemoryHotplugStatus }
  | { kind: 'HintingStatus'; value: HintingStatus };

/** Texts of the boot-phase violations. */
export const PHASE_ERRORS = {
  PreBoot: 'The requested operation is not supported before starting the microVM.',
  PostBoot: 'The requested operation is not supported after starting the microVM.',
} as const;

/**
 * A failed action; `message` is the full `VmmActionError` Display (the fault_message), `status`
 * 400 or 413 (MMDS limit). `fatal` marks snapshot-load failures after which the
 * process exits (firecracker src/vmm/src/rpc_interface.rs).
 */
export class VmmActionError extends ApiLayerError {
  readonly fatal: boolean;
  constructor(message: string, status = 400, opts: { fatal?: boolean; cause?: unknown } = {}) {
    super('VMM_ACTION_FAILED', message, status, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.fatal = opts.fatal ?? false;
  }
}

/** The Firecracker version Kindling's API reports (GET /version, InstanceInfo.vmm_version). */
export const FIRECRACKER_VERSION = '1.16.1';

/** Turns store/VM failures into the fault_message Firecracker would send. */
export function toActionError(e: unknown, prefix?: string): VmmActionError {
  if (e instanceof VmmActionError) return e;
  if (e instanceof ConfigError) return new VmmActionError(e.faultMessage, e.status, { cause: e });
  const msg = e instanceof Error ? e.message : String(e);
  return new VmmActionError(prefix ? `${prefix}: ${msg}` : msg, 400, { cause: e });
}

/** `Method` as Firecracker's `{:?}` prints it in logs (`Put`, `Get`, ...). */
export function methodDebug(m: string): string {
  return m.charAt(0) + m.slice(1).toLowerCase();
}
