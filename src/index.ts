/**
 * Kindling's public library entry: `import { MicroVm } from 'kindling'`.
 */
export { MicroVm, DEFAULT_BOOT_ARGS, type MicroVmConfig, type MicroVmOptions, type SerialOutput, type VmExit, type VmState } from './vmm/microvm.js';
export type { BootSourceConfig } from './config/boot-source.js';
export type { MachineConfigUpdate } from './config/machine-config.js';
export type { BlockDeviceConfig } from './config/drives.js';
export { VmmActionError } from './vmm/actions.js';
export * as errors from './errors.js';
