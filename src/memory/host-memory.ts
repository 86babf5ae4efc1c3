/**
 * Guest RAM as SharedArrayBuffers over host memory that KVM maps into the guest, so every
 * worker sees the same pages at the same host address KVM uses.
 *
 * How (verified on Node 20 / V8 11): a shared `WebAssembly.Memory` with initial = maximum
 * gives a page-aligned SharedArrayBuffer whose backing store never moves (it cannot grow).
 * `mmap(MAP_FIXED)` over part of it replaces those pages in place: JavaScript reads and writes
 * through the SAB then hit the new mapping, whose host address is what
 * KVM_SET_USER_MEMORY_REGION registers. Nothing is touched up front, so RSS grows only with
 * the pages the guest (or host) actually uses.
 *
 * Backing: one memfd holds all RAM (kept open for a snapshot writer or a vhost-user backend),
 * advised MADV_HUGEPAGE, so shmem gets transparent huge pages where the host allows it
 * (/sys/kernel/mm/transparent_hugepage/shmem_enabled = advise|always; the KVM sandbox sets
 * advise), else 4 KiB pages. Each region starts at a 2 MiB-aligned host address (the wasm
 * memory is over-allocated by HUGE_PAGE_SIZE and the region view offset) and at a 2 MiB-aligned
 * memfd offset, so host and guest addresses are congruent mod 2 MiB and KVM can map huge pages
 * with 2 MiB nested page table entries. Measured (bench, nested): a minimal boot took 7200
 * nested page faults in 4 KiB pages against 345 for QEMU's huge-page RAM.
 * Limits: one WebAssembly.Memory holds at most MAX_CHUNK bytes, so a RAM range larger than
 * that becomes several adjacent regions (and KVM slots). Guest accesses that straddle two
 * such chunks are refused by GuestMemory like any non-RAM access; that only concerns guests
 * above 3 GiB + MAX_CHUNK.
 */
import * as libc from '../kvm/libc.js';
import { GuestMemory, type GuestRegion, type RamRange } from './guest-memory.js';
import { GuestMemoryLayoutError } from '../errors.js';

/** WebAssembly page size: regions must be multiples of it. */
export const WASM_PAGE_SIZE = 64 * 1024;
/** Largest guest region per SharedArrayBuffer (3 GiB, with the alignment slack well inside V8's 4 GiB wasm32 limit). */
export const MAX_CHUNK = 3 * 1024 * 1024 * 1024;
/** x86_64 transparent huge page size: region host addresses are aligned to it. */
export const HUGE_PAGE_SIZE = 2 * 1024 * 1024;
/** madvise(2) advice: back the range with transparent huge pages where possible. */
const MADV_HUGEPAGE = 14;

/** A region together with the host address KVM must map. */
export interface HostRegion extends GuestRegion {
  readonly hostAddr: bigint;
  /** Offset of this region inside the memfd. */
  readonly fdOffset: number;
}

/** Guest memory over host mappings; `hostRegions` are the KVM memory slots, in order. */
export class HostGuestMemory extends GuestMemory {
  /** The memfd holding all guest RAM (kept open for snapshots). */
  readonly memfd: number;
  readonly hostRegions: readonly HostRegion[];
  /** The WebAssembly.Memory objects whose buffers we took over; kept alive with this object. */
  private readonly wasm: WebAssembly.Memory[];

  private constructor(memfd: number, regions: HostRegion[], wasm: WebAssembly.Memory[]) {
    super(regions);
    this.memfd = memfd;
    this.hostRegions = regions;
    this.wasm = wasm;
  }

  /** Creates guest RAM for the given ranges (e.g. arch ramRanges()). */
  static create(ranges: readonly RamRange[], name = 'kindling-guest-ram'): HostGuestMemory {
    const chunks: RamRange[] = [];
    for (const r of ranges) {
      if (r.size <= 0 || r.size % WASM_PAGE_SIZE !== 0 || r.gpa % WASM_PAGE_SIZE !== 0) {
        throw new GuestMemoryLayoutError(`RAM range 0x${r.gpa.toString(16)}+0x${r.size.toString(16)} is not a non-empty multiple of 64 KiB`);
      }
      for (let off = 0; off < r.size; off += MAX_CHUNK) chunks.push({ gpa: r.gpa + off, size: Math.min(MAX_CHUNK, r.size - off) });
    }
    // memfd offsets advance in whole huge pages, so every region's file offset is 2 MiB-aligned
    // too (shmem huge pages need offset and address aligned alike); the gaps cost nothing.
    const slot = (size: number): number => Math.ceil(size / HUGE_PAGE_SIZE) * HUGE_PAGE_SIZE;
    const total = chunks.reduce((n, c) => n + slot(c.size), 0);
    const memfd = libc.check('memfd_create', libc.memfdCreate(name, libc.MFD_CLOEXEC));
    try {
      libc.check('ftruncate', libc.ftruncate(memfd, total));
      const regions: HostRegion[] = [];
      const wasm: WebAssembly.Memory[] = [];
      let fdOffset = 0;
      for (const c of chunks) {
        // One huge page of slack so the region can start 2 MiB-aligned inside the buffer.
        const pages = (c.size + HUGE_PAGE_SIZE) / WASM_PAGE_SIZE;
        const mem = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
        const start = libc.addressOf(new Uint8Array(mem.buffer));
        const skew = Number(start % BigInt(HUGE_PAGE_SIZE));
        const offset = skew === 0 ? 0 : HUGE_PAGE_SIZE - skew;
        const bytes = new Uint8Array(mem.buffer, offset, c.size);
        const base = start + BigInt(offset);
        // SAFETY: [base, base + size) lies inside the backing store of `mem.buffer`, which
        // cannot grow (initial = maximum) and so never moves; MAP_FIXED replaces those pages
        // only. `mem` is kept alive in `this.wasm` for as long as the views are used.
        const got = libc.mmapChecked(base, c.size, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_FIXED, memfd, fdOffset);
        if (got !== base) throw new GuestMemoryLayoutError(`mmap placed guest RAM at 0x${got.toString(16)}, not 0x${base.toString(16)}`);
        // Advice only: without shmem THP (host setting, old kernel) RAM works in 4 KiB pages.
        libc.madvise(base, c.size, MADV_HUGEPAGE);
        regions.push({ gpa: c.gpa, size: c.size, bytes, hostAddr: base, fdOffset });
        wasm.push(mem);
        fdOffset += slot(c.size);
      }
      return new HostGuestMemory(memfd, regions, wasm);
    } catch (e) {
      libc.close(memfd);
      throw e;
    }
  }

  /** Number of WebAssembly.Memory chunks (for diagnostics). */
  get chunkCount(): number {
    return this.wasm.length;
  }
}
