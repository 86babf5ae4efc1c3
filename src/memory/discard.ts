/**
 * Giving guest RAM back to the host (the balloon's inflated pages; docs/design.md "Balloon").
 *
 * How depends on what backs the RAM (host-memory.ts):
 * - `shared`: the memfd mapped MAP_SHARED (a booted VM). MADV_DONTNEED would only drop this
 *   mapping's page-table entries: the shmem pages stay in the memfd's page cache and the host
 *   keeps every byte. MADV_REMOVE punches a hole in the memfd itself (the same as
 *   fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) at the region's fdOffset), so the
 *   pages are freed; the guest reads zeros there afterwards. madvise is used rather than
 *   fallocate because it needs only the mapping, which every worker already has as a
 *   SharedArrayBuffer: no fd or file offset crosses to the device worker.
 * - `private`: RAM mapped MAP_PRIVATE from a snapshot file, or anonymous (Uffd restore). The
 *   pages the guest wrote are this process's private copies: MADV_DONTNEED frees them (a file
 *   page then reads back from the shared page cache, an anonymous one as zero; under Uffd the
 *   handler gets a REMOVE event and serves zeroes, docs/design.md "Snapshot memory backends:
 *   Uffd"), which is what Firecracker does (balloon/util.rs `remove_range`).
 * Both are page-granular: callers pass 4 KiB-aligned views of guest RAM.
 */
import * as libc from '../kvm/libc.js';
import type { HostGuestMemory } from './host-memory.js';

/** How guest RAM is backed, for the advice that frees it. */
export type RamBacking = 'shared' | 'private';

/** The backing of `mem`: a memfd (shared) or a private file/anonymous mapping. */
export function ramBacking(mem: HostGuestMemory): RamBacking {
  return mem.memfd >= 0 ? 'shared' : 'private';
}

/** Releases the host memory behind `view` (page-aligned guest RAM); false when madvise failed. */
export function discardGuestPages(view: Uint8Array, backing: RamBacking): boolean {
  if (view.length === 0) return true;
  const addr = libc.addressOf(view);
  return libc.madvise(addr, view.length, backing === 'shared' ? libc.MADV_REMOVE : libc.MADV_DONTNEED) === 0;
}
