/**
 * PUT/PATCH/GET /hotplug/memory (firecracker src/vmm/src/vmm_config/ MemoryHotplugConfig, virtio-mem,
 * vmm_config/memory_hotplug.rs).
 */
import { ConfigError } from './errors.js';
import { Desc, deserialize, field, int, struct } from './serde.js';

/** VIRTIO_MEM_DEFAULT_BLOCK_SIZE_MIB (also the minimum). */
export const DEFAULT_BLOCK_SIZE_MIB = 2;
/** VIRTIO_MEM_DEFAULT_SLOT_SIZE_MIB (also the minimum). */
export const DEFAULT_SLOT_SIZE_MIB = 128;

/** The PUT body (`MemoryHotplugConfig`). */
export interface MemoryHotplugConfig {
  total_size_mib: number;
  block_size_mib: number;
  slot_size_mib: number;
}

/** The PATCH body. */
export interface MemoryHotplugSizeUpdate {
  requested_size_mib: number;
}

/** GET /hotplug/memory reply (`VirtioMemStatus`). */
export interface MemoryHotplugStatus extends MemoryHotplugConfig {
  plugged_size_mib: number;
  requested_size_mib: number;
}

/** serde description of `MemoryHotplugConfig` (deny_unknown_fields). */
export const MEMORY_HOTPLUG: Desc = struct('MemoryHotplugConfig', [
  field('total_size_mib', int('usize')),
  field('block_size_mib', int('usize'), () => DEFAULT_BLOCK_SIZE_MIB),
  field('slot_size_mib', int('usize'), () => DEFAULT_SLOT_SIZE_MIB),
]);

/** serde description of `MemoryHotplugSizeUpdate` (deny_unknown_fields). */
const MEMORY_HOTPLUG_UPDATE: Desc = struct('MemoryHotplugSizeUpdate', [field('requested_size_mib', int('usize'))]);


/** Parses a PUT body. */
export function parseMemoryHotplug(body: Uint8Array | string): MemoryHotplugConfig {
  return deserialize<MemoryHotplugConfig>(body, MEMORY_HOTPLUG);
}

/** Parses a PATCH body. */
export function parseMemoryHotplugUpdate(body: Uint8Array | string): MemoryHotplugSizeUpdate {
  return deserialize<MemoryHotplugSizeUpdate>(body, MEMORY_HOTPLUG_UPDATE);
}

/** `MemoryHotplugConfig::validate`, check by check in Firecracker's order. */
export function validateMemoryHotplug(c: MemoryHotplugConfig): MemoryHotplugConfig {
  const fail = (m: string): never => {
    throw new ConfigError('memory-hotplug', m);
  };
  if (c.block_size_mib < DEFAULT_BLOCK_SIZE_MIB) fail(`Block size must not be lower than ${DEFAULT_BLOCK_SIZE_MIB} MiB`);
  if ((c.block_size_mib & (c.block_size_mib - 1)) !== 0) fail('Block size must be a power of 2');
  if (c.slot_size_mib < DEFAULT_SLOT_SIZE_MIB) fail(`Slot size must not be lower than ${DEFAULT_SLOT_SIZE_MIB} MiB`);
  if (c.slot_size_mib % c.block_size_mib !== 0) fail(`Slot size must be a multiple of block size (${c.block_size_mib} MiB)`);
  if (c.total_size_mib < c.slot_size_mib) fail(`Total size must not be lower than slot size (${c.slot_size_mib} MiB)`);
  if (c.total_size_mib % c.slot_size_mib !== 0) fail(`Total size must be a multiple of slot size (${c.slot_size_mib} MiB)`);
  return { ...c };
}
