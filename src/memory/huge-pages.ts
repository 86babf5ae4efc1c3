/**
 * Guest RAM in 2 MiB hugetlbfs pages (machine-config `huge_pages: "2M"`; Firecracker
 * docs/hugepages.md, vmm_config/machine_config.rs `HugePageConfig`).
 *
 * Firecracker maps huge-page RAM with MAP_NORESERVE, so a host whose pool is too small lets
 * the VM start and then SIGBUSes the VMM when a page cannot be had (its docs say so). Kindling
 * maps it without MAP_NORESERVE instead: the kernel then reserves every huge page of the mapping
 * at mmap time (Documentation/admin-guide/mm/hugetlbpage.rst, "HugePages_Rsvd"), and a pool
 * too small fails InstanceStart with ENOMEM, which `hugePageShortage` turns into a message
 * naming the pool's numbers. Reserved pages are taken from the pool as the guest touches them
 * (HugePages_Free falls, HugePages_Rsvd with it), so nothing is zeroed up front.
 *
 * The pool is the host's (/proc/sys/vm/nr_hugepages, or per size in
 * /sys/kernel/mm/hugepages/hugepages-2048kB/); pages are released when the mapping and the
 * memfd go (HostGuestMemory.close maps plain memory over huge-page RAM at once, so a failed
 * InstanceStart gives its reservation back before it is retried).
 */
import { readFileSync } from 'node:fs';
import { GuestMemoryAllocationError } from '../errors.js';
import { HostIoError } from '../util/io-error.js';

/** Guest memory page configuration (machine-config `huge_pages`; v1.16.1 has no `Transparent`). */
export type HugePages = 'None' | '2M';

/** Size of a 2 MiB huge page. */
export const HUGE_PAGE_2M = 2 * 1024 * 1024;
/** The pool of 2 MiB pages (Documentation/admin-guide/mm/hugetlbpage.rst, "/sys/kernel/mm/hugepages"). */
export const HUGEPAGES_2M_SYSFS = '/sys/kernel/mm/hugepages/hugepages-2048kB';

/** The 2 MiB pool as sysfs shows it; null for a count that cannot be read. */
export interface HugePagePool {
  /** nr_hugepages: pages in the pool. */
  total: number | null;
  /** free_hugepages: pages not yet handed out (reserved ones included). */
  free: number | null;
  /** resv_hugepages: free pages promised to mappings already made. */
  reserved: number | null;
}

function count(file: string): number | null {
  try {
    const n = Number(readFileSync(`${HUGEPAGES_2M_SYSFS}/${file}`, 'utf8').trim());
    return Number.isSafeInteger(n) ? n : null;
  } catch {
    return null;
  }
}

/** Reads the 2 MiB pool's counters. */
export function hugePagePool(): HugePagePool {
  return { total: count('nr_hugepages'), free: count('free_hugepages'), reserved: count('resv_hugepages') };
}

/**
 * The error for huge-page guest RAM that mmap refused (`errno`): ENOMEM is the pool, and the
 * message says how many pages the guest needs and how many the pool can still promise.
 */
export function hugePageShortage(bytes: number, errno: number | string): GuestMemoryAllocationError {
  const io = HostIoError.os(errno);
  const need = Math.ceil(bytes / HUGE_PAGE_2M);
  const p = hugePagePool();
  const avail = p.free !== null && p.reserved !== null ? `${p.free - p.reserved}` : 'an unknown number of';
  return new GuestMemoryAllocationError(
    `Cannot create mmap region: ${io.message}: guest memory needs ${need} free 2 MiB huge pages and the host's pool has ${avail} ` +
    `(${p.total ?? '?'} in total; reserve more through /proc/sys/vm/nr_hugepages)`,
    { cause: io, code: 'GUEST_MEMORY_HUGE_PAGES' },
  );
}
