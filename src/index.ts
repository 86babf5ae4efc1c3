/**
 * Kindling's public library entry: `import { MicroVm } from 'kindling'`.
 */
export { MicroVm, type MicroVmOptions, type VmExit, type VmState } from './vmm/microvm.js';
export type { MicroVmConfig, BootSourceConfig, MachineConfig, DriveConfig, SerialOutput } from './vmm/config.js';
export { DEFAULT_BOOT_ARGS } from './vmm/config.js';
export * as errors from './errors.js';
