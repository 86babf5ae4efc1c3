/**
 * Guest RAM and the device memory past the 64-bit MMIO gap, for a boot (docs/design.md
 * "Memory hotplug", "Persistent memory"): each pmem backing file is mapped (its length sets its
 * window), the windows and the virtio-mem region are placed as Firecracker's builder places
 * them (src/arch/x86_64/layout.ts deviceMemoryLayout), and guest RAM is created with the
 * hotplug region in it, every block unplugged.
 */
import { HostGuestMemory } from '../memory/host-memory.js';
import { mapPmemFile, unmapPmem, type PmemMapping } from '../memory/pmem-mapping.js';
import { MiB, deviceMemoryLayout, ramRanges } from '../arch/x86_64/layout.js';
import { VirtioMemError } from '../errors.js';
import type { VmConfig } from '../config/resources.js';

/** Guest RAM, plus each pmem file's mapping and guest window, in configuration order. */
export interface BootMemory {
  mem: HostGuestMemory;
  pmem: { mapping: PmemMapping; start: number }[];
}

/**
 * Maps the pmem files and creates guest RAM. On failure nothing stays mapped. The caller owns
 * the mappings until the pmem device actors take them (src/vmm/virtio-devices.ts).
 */
export function createBootMemory(cfg: VmConfig): BootMemory {
  const ramBytes = cfg.machine.mem_size_mib * MiB;
  const mappings: PmemMapping[] = [];
  try {
    for (const p of cfg.pmem) mappings.push(mapPmemFile(p.path_on_host, p.read_only));
    const hp = cfg.memoryHotplug;
    const layout = deviceMemoryLayout(ramBytes, hp ? hp.total_size_mib * MiB : null, mappings.map((m) => m.mmapLen));
    // Firecracker's allocator error (vm-allocator `Error::ResourceNotAvailable`) in its words.
    if (!layout) throw new VirtioMemError('VIRTIO_MEM_LAYOUT', 'Failed to allocate requested resource: the hotplug region and pmem devices do not fit past the 64-bit MMIO gap');
    const mem = HostGuestMemory.create(ramRanges(ramBytes), undefined, {
      trackDirty: cfg.machine.track_dirty_pages,
      hugePages: cfg.machine.huge_pages,
      ...(hp && layout.hotplug ? { hotplug: { range: layout.hotplug, blockSize: hp.block_size_mib * MiB } } : {}),
    });
    return { mem, pmem: mappings.map((mapping, i) => ({ mapping, start: layout.pmem[i]!.gpa })) };
  } catch (e) {
    for (const m of mappings) unmapPmem(m);
    throw e;
  }
}

/** Releases what createBootMemory made, when the VM is not built after all. */
export function releaseBootMemory(b: BootMemory): void {
  for (const p of b.pmem) unmapPmem(p.mapping);
  b.mem.close();
}
