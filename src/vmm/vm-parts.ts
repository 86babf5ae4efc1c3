/**
 * The parts of a microVM that boot (builder.ts) and snapshot restore (restore.ts) make the same
 * way, in Firecracker's order (src/vmm/src/builder.rs, both `build_microvm_for_boot` and
 * `build_microvm_from_snapshot`): the KVM VM over guest RAM, and the vCPU actors once every
 * device is in the manifest.
 */
import { Kvm, type VmFd } from '../kvm/kvm.js';
import type { VcpuFd } from '../kvm/vcpu-fd.js';
import { KVM_CAP, KVM_MEM_LOG_DIRTY_PAGES, REQUIRED_CAPS } from '../kvm/constants.js';
import { KvmUnavailableError } from '../errors.js';
import { combineCapabilities, type KvmCapability } from '../arch/x86_64/cpu-template.js';
import type { HostGuestMemory } from '../memory/host-memory.js';
import { KVM_TSS_ADDRESS } from '../arch/x86_64/layout.js';
import { VcpuHandle, vcpuThreadName } from '../actors/vcpu/handle.js';
import { VM_CONTROL_SLOTS, VM_SLOT } from '../actors/vcpu/protocol.js';
import type { HostDeviceSet } from './host-devices.js';
import { spawnAll, type VirtioHandles } from './virtio-devices.js';
import type { VmmLog } from './builder.js';

/**
 * /dev/kvm (API version, capabilities), KVM_CREATE_VM, the TSS, guest RAM as memory slots
 * (slot i = region i of the boot RAM; dirty logging with track_dirty_pages; the hotplug
 * region's slots come after them and are mapped by the virtio-mem device), the irqchip and PIT before any
 * vCPU, then the vCPUs. Every object made is released by a function pushed on `cleanups`.
 * `capModifiers`: the CPU template's `kvm_capabilities` (saved with a snapshot, as Firecracker
 * saves them in its KvmState, so a restore checks the same list).
 */
export function createKvmVm(
  mem: HostGuestMemory, vcpuCount: number, trackDirty: boolean, cleanups: (() => void)[], capModifiers: readonly KvmCapability[] = [],
): { kvm: Kvm; vm: VmFd; vcpus: VcpuFd[] } {
  const kvm = Kvm.open();
  cleanups.push(() => kvm.close());
  if (capModifiers.length === 0) kvm.requireCaps();
  else requireTemplateCaps(kvm, capModifiers);
  const vm = kvm.createVm();
  cleanups.push(() => vm.close());
  vm.setTssAddr(KVM_TSS_ADDRESS);
  const slotFlags = trackDirty ? KVM_MEM_LOG_DIRTY_PAGES : 0;
  mem.bootRegions.forEach((r, slot) => vm.setUserMemoryRegion(slot, BigInt(r.gpa), BigInt(r.size), r.hostAddr, slotFlags));
  vm.createIrqchip();
  vm.createPit2();
  const vcpus: VcpuFd[] = [];
  for (let i = 0; i < vcpuCount; i++) {
    const v = vm.createVcpu(i);
    vcpus.push(v);
    cleanups.push(() => v.close());
  }
  return { kvm, vm, vcpus };
}

/**
 * The default capabilities with a template's additions and removals (vstate/kvm.rs `Kvm::new`):
 * the first one KVM lacks fails with Firecracker's `KvmError::Capabilities` text.
 */
function requireTemplateCaps(kvm: Kvm, mods: readonly KvmCapability[]): void {
  for (const cap of combineCapabilities(REQUIRED_CAPS.map((n) => KVM_CAP[n]), mods)) {
    if (kvm.checkExtensionRaw(cap) <= 0) {
      throw new KvmUnavailableError('KVM_MISSING_CAPABILITY', `Kvm error: Missing KVM capabilities: 0x${cap.toString(16)}`);
    }
  }
}

/**
 * Lists the virtio devices in the manifest (the vCPU workers build their buses from it) and
 * starts one vCPU actor per vCPU, parked until run. If an actor fails to start, the device
 * actors and the legacy devices are stopped and the failure is thrown.
 */
export async function startVcpuActors(
  vm: VmFd, vcpus: readonly VcpuFd[], mem: HostGuestMemory, devices: HostDeviceSet, virtio: VirtioHandles, log: VmmLog,
): Promise<{ handles: VcpuHandle[]; vmControl: Int32Array }> {
  const { balloon, blocks, nets, pmem, vsock, entropy, virtioMem, fs } = virtio;
  const all = [
    ...(balloon ? [balloon] : []), ...blocks, ...nets, ...pmem, ...(vsock ? [vsock] : []), ...(entropy ? [entropy] : []), ...(virtioMem ? [virtioMem] : []), ...fs,
  ];
  devices.manifest.push(...all.map((d) => d.manifest));
  const vmControl = new Int32Array(new SharedArrayBuffer(VM_CONTROL_SLOTS * 4));
  Atomics.store(vmControl, VM_SLOT.EXIT_CODE, -1);
  try {
    const handles = await spawnAll(vcpus.map((vcpu) => () => VcpuHandle.spawn({
      vm, vcpu, memory: mem.describe(), vmControl: vmControl.buffer as SharedArrayBuffer,
      devices: devices.manifest, onLog: (m) => log(m.level, m.message, vcpuThreadName(m.vcpuId)),
    })));
    return { handles, vmControl };
  } catch (e) {
    await Promise.all(all.map((d) => d.stop().catch(() => undefined)));
    await devices.close();
    throw e;
  }
}
