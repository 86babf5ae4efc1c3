/**
 * What a Kindling snapshot's state file holds (docs/design.md "Snapshots"): everything needed
 * to rebuild the microVM in a fresh process, except guest RAM, which is the memory file.
 * Firecracker's MicrovmState (src/vmm/src/persist.rs) has the same parts: the machine
 * configuration, the memory layout, the VM's and every vCPU's KVM state, and every device.
 *
 * Device order is attach order (balloon, block, net, vsock, entropy), the order the restoring builder
 * places them in again, so every device gets back its MMIO window and GSI.
 */
import type { VcpuKvmState, VmKvmState } from '../arch/x86_64/kvm-state.js';
import type { VirtioDeviceSnapshot } from '../actors/virtio/virtio-actor.js';
import type { VmConfig } from '../config/resources.js';
import type { MmdsConfig } from '../config/mmds-config.js';

/** The VM configuration as saved: the MMDS data store is not (Firecracker does not snapshot it). */
export type SavedVmConfig = Omit<VmConfig, 'mmds'> & { mmds: { config: MmdsConfig } | null };

export interface MicrovmState {
  config: SavedVmConfig;
  /** Guest RAM regions in guest-physical order; the memory file holds them back to back. */
  memory: { regions: { gpa: number; size: number }[] };
  vm: VmKvmState;
  vcpus: VcpuKvmState[];
  legacy: { serial: Uint8Array; i8042: Uint8Array };
  devices: {
    /** Absent in state files written before the balloon ran: read as null. */
    balloon?: VirtioDeviceSnapshot | null;
    blocks: VirtioDeviceSnapshot[];
    nets: VirtioDeviceSnapshot[];
    vsock: VirtioDeviceSnapshot | null;
    entropy: VirtioDeviceSnapshot | null;
  };
}

/** The configuration to save: the live MMDS data store is left out. */
export function savedConfig(c: VmConfig): SavedVmConfig {
  return { ...c, mmds: c.mmds ? { config: c.mmds.config } : null };
}
