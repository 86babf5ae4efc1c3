/**
 * Initrd placement (firecracker src/vmm/src/arch/x86_64/mod.rs; firecracker arch/x86_64/mod.rs `initrd_load_addr`): the image
 * goes as high as possible in the first RAM region, page-aligned down:
 *
 *     addr = align_down(end_of_first_region - size, GUEST_PAGE_SIZE)
 *
 * where the first region is the one starting at guest address 0, ending at most at
 * MMIO32_MEM_START (3 GiB). Low memory keeps ramdisk_image a 32-bit pointer, as the zero page
 * requires. Firecracker only checks that the initrd is no bigger than that region; Kindling
 * also refuses an initrd that would overlap the loaded kernel, which Firecracker would let
 * the initrd copy overwrite silently.
 *
 *   0        HIMEM_START     kernelEnd            addr          addr+size   region end
 *   |--boot--|----kernel-----|........free.........|----initrd----|-pad-|
 */
import { GUEST_PAGE_SIZE, MMIO32_MEM_START } from '../arch/x86_64/layout.js';
import { InitrdError } from '../errors.js';
import { must, type GuestMemory } from '../memory/guest-memory.js';
import type { GuestPlacement } from './types.js';

/** Rounds `n` down to a multiple of `align` (a power of two no larger than 2^30). */
function alignDown(n: number, align: number): number {
  return n - (n % align);
}

/**
 * End of the low RAM region the initrd goes into: the region at guest address 0, cut at
 * MMIO32_MEM_START. 0 when the guest has no RAM at address 0 (then nothing fits).
 */
export function lowMemoryEnd(mem: GuestMemory): number {
  const first = mem.regions[0];
  if (!first || first.gpa !== 0) return 0;
  return Math.min(first.gpa + first.size, MMIO32_MEM_START);
}

/**
 * The guest physical address an initrd of `size` bytes is loaded at, given the first address
 * past the kernel. Throws InitrdError INITRD_TOO_LARGE when the initrd is larger than low RAM
 * or would start below `kernelEnd`.
 */
export function initrdLoadAddr(mem: GuestMemory, size: number, kernelEnd: number): number {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`initrd size ${size} is not a byte count`);
  const end = lowMemoryEnd(mem);
  if (size > end) {
    throw new InitrdError('INITRD_TOO_LARGE', `initrd of ${size} bytes is larger than the ${end} bytes of low guest RAM`);
  }
  const addr = alignDown(end - size, GUEST_PAGE_SIZE);
  // Boot structures (zero page, cmdline, page tables) all lie below HIMEM_START <= kernelEnd,
  // so staying above the kernel keeps the initrd clear of everything else Kindling writes.
  if (addr < kernelEnd) {
    throw new InitrdError(
      'INITRD_TOO_LARGE',
      `initrd of ${size} bytes would start at 0x${addr.toString(16)}, inside the kernel (which ends at 0x${kernelEnd.toString(16)})`,
    );
  }
  return addr;
}

/**
 * Places and copies an initrd into guest memory above the kernel (see the file comment);
 * returns its address and size for boot_params.hdr.ramdisk_image/ramdisk_size or the PVH
 * module list. Writes nothing when it throws.
 */
export function loadInitrd(mem: GuestMemory, initrd: Uint8Array, kernelEnd: number): GuestPlacement {
  const addr = initrdLoadAddr(mem, initrd.length, kernelEnd);
  // must(): [addr, addr + size) lies inside the first region by construction.
  must(mem.write(addr, initrd));
  return { addr, size: initrd.length };
}
