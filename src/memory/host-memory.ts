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
 *
 * Address space: Firecracker maps guest RAM with one anonymous MAP_NORESERVE mmap per region
 * (src/vmm/src/vstate/memory.rs); when the address space cannot hold it (RLIMIT_AS, as its
 * test_api_machine_config sets, or a size past the end of it) mmap fails and InstanceStart
 * answers `Invalid Memory Configuration: Cannot create mmap region: Out of memory (os error
 * 12)`, the process serving on. Here V8 reserves far more than the guest size per
 * WebAssembly.Memory (its guard regions: 10 GiB each measured on Node 20), and although a
 * failed reservation is a catchable RangeError, the chunks that did succeed hold their address
 * space until a GC: a worker isolate starting meanwhile (the vCPU actor warm-up) finds none left
 * and V8 aborts the whole process ("Fatal process OOM in Failed to reserve virtual memory for
 * CodeRange", measured). So `create` first reserves the guest size as Firecracker's mmap would,
 * and frees it at once, before it allocates anything.
 *
 * Huge pages (`hugePages: '2M'`, huge-pages.ts): the memfd is a hugetlbfs file
 * (MFD_HUGETLB | MFD_HUGE_2MB) and the anonymous memory of a Uffd restore MAP_HUGETLB; regions
 * are already 2 MiB-aligned in address and file offset, as hugetlbfs requires, and their sizes
 * must be multiples of 2 MiB (machine-config refuses other sizes). They are mapped without
 * MAP_NORESERVE, so the pool's pages are reserved at mmap and a short pool is an error here.
 */
import { fstatSync } from 'node:fs';
import * as libc from '../kvm/libc.js';
import { GuestMemory, dirtyBitmapLayout, type GuestRegion, type HotplugGuard, type RamRange } from './guest-memory.js';
import { GuestMemoryAllocationError, GuestMemoryLayoutError } from '../errors.js';
import { HostIoError } from '../util/io-error.js';
import { SyscallError } from '../errors.js';
import { hugePageShortage, HUGE_PAGE_2M, type HugePages } from './huge-pages.js';

/** WebAssembly page size: regions must be multiples of it. */
export const WASM_PAGE_SIZE = 64 * 1024;
/** Largest guest region per SharedArrayBuffer (3 GiB, with the alignment slack well inside V8's 4 GiB wasm32 limit). */
export const MAX_CHUNK = 3 * 1024 * 1024 * 1024;
/** x86_64 transparent huge page size: region host addresses are aligned to it. */
export const HUGE_PAGE_SIZE = 2 * 1024 * 1024;
/** madvise(2) advice: back the range with transparent huge pages where possible. */
const MADV_HUGEPAGE = 14;
/** mmap(2) protection for a reservation nothing may touch. */
const PROT_NONE = 0;

/** `MemoryError::MmapRegionError` (vstate/memory.rs) around the io::Error mmap failed with. */
function mmapRegionError(io: HostIoError): GuestMemoryAllocationError {
  return new GuestMemoryAllocationError(`Cannot create mmap region: ${io.message}`, { cause: io });
}

/**
 * Fails with Firecracker's ENOMEM text unless `bytes` of address space can be mapped now: a
 * PROT_NONE, MAP_NORESERVE reservation (no memory is committed), released at once. A size that
 * is no exact byte count (mem_size_mib near usize::MAX) cannot be mapped either.
 */
export function reserveAddressSpace(bytes: number): void {
  if (!Number.isSafeInteger(bytes)) throw mmapRegionError(HostIoError.os('ENOMEM'));
  const p = libc.mmap(null, bytes, PROT_NONE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE, -1, 0) as bigint | null;
  if (p === null || p === libc.MAP_FAILED) throw mmapRegionError(HostIoError.os(libc.errno()));
  libc.munmap(p, bytes);
}

/** A region together with the host address KVM must map. */
export interface HostRegion extends GuestRegion {
  readonly hostAddr: bigint;
  /** Offset of this region inside the memfd. */
  readonly fdOffset: number;
}

/** Guest memory over host mappings; `hostRegions` are the KVM memory slots, in order. */
export class HostGuestMemory extends GuestMemory {
  /** The memfd holding all guest RAM; -1 for RAM mapped from a snapshot file (`fromFile`). */
  readonly memfd: number;
  readonly hostRegions: readonly HostRegion[];
  /** The WebAssembly.Memory objects whose buffers we took over; kept alive with this object. */
  private readonly wasm: WebAssembly.Memory[];
  /** File descriptors that live as long as this memory (`hold`). */
  private readonly held: number[] = [];
  /** The page size behind the regions: `2M` for hugetlbfs (huge_pages "2M"). */
  private pages: HugePages = 'None';
  /** Huge-page regions already given back to the pool (`close`). */
  private released = false;

  private constructor(memfd: number, regions: HostRegion[], wasm: WebAssembly.Memory[], dirty: SharedArrayBuffer | undefined, hotplug?: HotplugGuard) {
    super(regions, dirty, hotplug);
    this.memfd = memfd;
    this.hostRegions = regions;
    this.wasm = wasm;
  }

  /**
   * The boot RAM regions: KVM slots 0..n-1 from the start (vm-parts.ts createKvmVm). The
   * hotplug region's regions are left out: the virtio-mem device maps them slot by slot as
   * the guest plugs blocks (docs/design.md "Memory hotplug").
   */
  get bootRegions(): readonly HostRegion[] {
    const h = this.hotplug;
    return h ? this.hostRegions.filter((r) => r.gpa < h.gpa || r.gpa >= h.gpa + h.size) : this.hostRegions;
  }

  /** The regions of the virtio-mem hotplug region (empty without one), in guest-physical order. */
  get hotplugRegions(): readonly HostRegion[] {
    const h = this.hotplug;
    return h ? this.hostRegions.filter((r) => r.gpa >= h.gpa && r.gpa + r.size <= h.gpa + h.size) : [];
  }

  /**
   * Creates guest RAM for the given ranges (e.g. arch ramRanges()). `trackDirty` (machine-config
   * track_dirty_pages) adds the shared dirty bitmap devices mark (guest-memory.ts). Regions
   * come out in guest-physical order, which is also the KVM slot order the builder registers
   * and the order of a snapshot memory file. `hotplug` adds the virtio-mem region: memfd-backed
   * like the rest (sparse: nothing is allocated until the guest writes a plugged block), with
   * every block unplugged (guest-memory.ts HotplugGuard).
   */
  static create(
    ranges: readonly RamRange[], name = 'kindling-guest-ram',
    opts: { trackDirty?: boolean; hotplug?: { range: RamRange; blockSize: number }; hugePages?: HugePages } = {},
  ): HostGuestMemory {
    const huge = opts.hugePages === '2M';
    const hp = opts.hotplug;
    // With huge pages the hotplug region is hugetlbfs too: its blocks (2 MiB multiples) are
    // reserved from the pool at mmap like the rest.
    const chunks = splitRanges(hp ? [...ranges, hp.range] : ranges, huge);
    const guard: HotplugGuard | undefined = hp
      ? { gpa: hp.range.gpa, size: hp.range.size, blockSize: hp.blockSize, plugged: new SharedArrayBuffer(Math.ceil(hp.range.size / hp.blockSize)) }
      : undefined;
    // memfd offsets advance in whole huge pages, so every region's file offset is 2 MiB-aligned
    // too (shmem huge pages need offset and address aligned alike); the gaps cost nothing.
    const slot = (size: number): number => Math.ceil(size / HUGE_PAGE_SIZE) * HUGE_PAGE_SIZE;
    const total = chunks.reduce((n, c) => n + slot(c.size), 0);
    const memfd = createMemfd(name, huge);
    try {
      // MemoryError::MemfdSetLen (vstate/memory.rs).
      if (libc.ftruncate(memfd, total) < 0) throw new GuestMemoryAllocationError(`Cannot resize memfd file: ${HostIoError.os(libc.errno()).message}`);
      let fdOffset = 0;
      const placed = placeRegions(chunks, (c) => {
        const at = fdOffset;
        fdOffset += slot(c.size);
        return { fd: memfd, offset: at, flags: libc.MAP_SHARED };
      }, huge ? total : undefined);
      // Advice only: without shmem THP (host setting, old kernel) RAM works in 4 KiB pages.
      if (!huge) for (const r of placed.regions) libc.madvise(r.hostAddr, r.size, MADV_HUGEPAGE);
      const mem = new HostGuestMemory(memfd, placed.regions, placed.wasm, dirtyBitmapFor(placed.regions, opts.trackDirty), guard);
      mem.pages = opts.hugePages ?? 'None';
      return mem;
    } catch (e) {
      libc.close(memfd);
      throw e;
    }
  }

  /**
   * Guest RAM restored from a snapshot's memory file (Firecracker `snapshot_file`,
   * src/vmm/src/vstate/memory.rs): each region is the file's bytes at the sum of the sizes
   * before it, mapped MAP_PRIVATE, so a page is read from the file (page cache, shared by every
   * VM restored from it) only when first touched and copied only when written. Restore thus
   * costs the same for any RAM size. The file must stay unchanged while the VM runs; `fd` may
   * be closed after this returns (the mappings hold the file). A file shorter than the RAM is
   * refused before anything is mapped: a page past its end would SIGBUS the VMM on first touch.
   */
  static fromFile(ranges: readonly RamRange[], fd: number, opts: { trackDirty?: boolean } = {}): HostGuestMemory {
    const chunks = splitRanges(ranges);
    const total = chunks.reduce((n, c) => n + c.size, 0);
    const size = fstatSync(fd).size;
    if (total > size) throw new GuestMemoryAllocationError('Total sum of memory regions exceeds largest possible file offset');
    let fileOffset = 0;
    const placed = placeRegions(chunks, (c) => {
      const at = fileOffset;
      fileOffset += c.size;
      return { fd, offset: at, flags: libc.MAP_PRIVATE };
    });
    return new HostGuestMemory(-1, placed.regions, placed.wasm, dirtyBitmapFor(placed.regions, opts.trackDirty));
  }
  /**
   * Closes the memfd (a build that failed after `create`). Mappings keep the file alive, so
   * views into guest RAM stay valid; the WebAssembly memories go with this object.
   */
  close(): void {
    if (this.memfd >= 0) libc.close(this.memfd);
    for (const fd of this.held.splice(0)) libc.close(fd);
    // Huge pages come from a host-wide pool: give them back now, not at the WebAssembly
    // memories' garbage collection (a retried InstanceStart needs them). Plain memory mapped
    // over the range keeps any view that is still around valid (it reads zeros).
    if (this.pages !== 'None' && !this.released) {
      this.released = true;
      unmapRegions(this.hostRegions);
    }
  }

  /** The page size behind guest RAM: `2M` when it is hugetlbfs (machine-config huge_pages). */
  get hugePages(): HugePages {
    return this.pages;
  }

  /**
   * Guest RAM as anonymous private memory (MAP_NORESERVE: nothing committed up front), for a
   * snapshot restored through a page-fault handler (the Uffd backend): the caller registers
   * the regions with a userfaultfd before anything touches them.
   */
  static anonymous(ranges: readonly RamRange[], opts: { trackDirty?: boolean; hugePages?: HugePages } = {}): HostGuestMemory {
    const huge = opts.hugePages === '2M';
    const chunks = splitRanges(ranges, huge);
    const total = chunks.reduce((n, c) => n + c.size, 0);
    // Huge pages: reserved at mmap (no MAP_NORESERVE), so a short pool fails the load, not a fault.
    const flags = libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | (huge ? libc.MAP_HUGETLB | libc.HUGETLB_FLAG_ENCODE_2MB : libc.MAP_NORESERVE);
    const placed = placeRegions(chunks, () => ({ fd: -1, offset: 0, flags }), huge ? total : undefined);
    const mem = new HostGuestMemory(-1, placed.regions, placed.wasm, dirtyBitmapFor(placed.regions, opts.trackDirty));
    mem.pages = opts.hugePages ?? 'None';
    return mem;
  }

  /**
   * Ties `fd` to this memory's life: closed by `close()`, after the VM is gone. The Uffd
   * backend keeps its userfaultfd and the handler connection here (Firecracker keeps both open
   * as long as the VM lives).
   */
  hold(fd: number): void {
    this.held.push(fd);
  }

  /** Number of WebAssembly.Memory chunks (for diagnostics). */
  get chunkCount(): number {
    return this.wasm.length;
  }
}

/** The shared dirty bitmap for `regions` when tracking is on (guest-memory.ts dirtyBitmapLayout). */
function dirtyBitmapFor(regions: readonly HostRegion[], track: boolean | undefined): SharedArrayBuffer | undefined {
  return track ? new SharedArrayBuffer(dirtyBitmapLayout(regions.map((r) => r.size)).bytes) : undefined;
}

/** Ranges split into chunks of at most MAX_CHUNK (one SharedArrayBuffer and KVM slot each). */
function splitRanges(ranges: readonly RamRange[], huge = false): RamRange[] {
  reserveAddressSpace(ranges.reduce((n, r) => n + r.size, 0));
  // hugetlbfs maps whole pages only (machine-config keeps mem_size_mib even for "2M").
  const bad = huge ? ranges.find((r) => r.size % HUGE_PAGE_2M !== 0 || r.gpa % HUGE_PAGE_2M !== 0) : undefined;
  if (bad) throw new GuestMemoryLayoutError(`RAM range 0x${bad.gpa.toString(16)}+0x${bad.size.toString(16)} is not made of whole 2 MiB huge pages`);
  const chunks: RamRange[] = [];
  for (const r of [...ranges].sort((a, b) => a.gpa - b.gpa)) {
    if (r.size <= 0 || r.size % WASM_PAGE_SIZE !== 0 || r.gpa % WASM_PAGE_SIZE !== 0) {
      throw new GuestMemoryLayoutError(`RAM range 0x${r.gpa.toString(16)}+0x${r.size.toString(16)} is not a non-empty multiple of 64 KiB`);
    }
    for (let off = 0; off < r.size; off += MAX_CHUNK) chunks.push({ gpa: r.gpa + off, size: Math.min(MAX_CHUNK, r.size - off) });
  }
  return chunks;
}

/**
 * Places each chunk at a 2 MiB-aligned address inside its own WebAssembly.Memory and maps the
 * backing `source(chunk)` gives over it with MAP_FIXED.
 */
function placeRegions(
  chunks: readonly RamRange[], source: (c: RamRange) => { fd: number; offset: number; flags: number }, hugeBytes?: number,
): { regions: HostRegion[]; wasm: WebAssembly.Memory[] } {
  const regions: HostRegion[] = [];
  const wasm: WebAssembly.Memory[] = [];
  try {
    placeEach(chunks, source, regions, wasm, hugeBytes);
  } catch (e) {
    // Huge-page regions already placed hold pool pages until their memories are collected.
    if (hugeBytes !== undefined) unmapRegions(regions);
    throw e;
  }
  return { regions, wasm };
}

function placeEach(
  chunks: readonly RamRange[], source: (c: RamRange) => { fd: number; offset: number; flags: number },
  regions: HostRegion[], wasm: WebAssembly.Memory[], hugeBytes: number | undefined,
): void {
  for (const c of chunks) {
    // One huge page of slack so the region can start 2 MiB-aligned inside the buffer.
    const pages = (c.size + HUGE_PAGE_SIZE) / WASM_PAGE_SIZE;
    const mem = wasmMemory(pages);
    const start = libc.addressOf(new Uint8Array(mem.buffer));
    const skew = Number(start % BigInt(HUGE_PAGE_SIZE));
    const offset = skew === 0 ? 0 : HUGE_PAGE_SIZE - skew;
    const bytes = new Uint8Array(mem.buffer, offset, c.size);
    const base = start + BigInt(offset);
    const src = source(c);
    // SAFETY: [base, base + size) lies inside the backing store of `mem.buffer`, which
    // cannot grow (initial = maximum) and so never moves; MAP_FIXED replaces those pages
    // only. `mem` is kept alive with the HostGuestMemory for as long as the views are used.
    let got: bigint;
    try {
      got = libc.mmapChecked(base, c.size, libc.PROT_READ | libc.PROT_WRITE, src.flags | libc.MAP_FIXED, src.fd, src.offset);
    } catch (e) {
      // Without MAP_NORESERVE a hugetlb mapping reserves its pages: ENOMEM is the pool.
      if (hugeBytes !== undefined && e instanceof SyscallError) throw hugePageShortage(hugeBytes, e.errno);
      throw e;
    }
    if (got !== base) throw new GuestMemoryLayoutError(`mmap placed guest RAM at 0x${got.toString(16)}, not 0x${base.toString(16)}`);
    regions.push({ gpa: c.gpa, size: c.size, bytes, hostAddr: base, fdOffset: src.offset });
    wasm.push(mem);
  }
}

/**
 * Maps private anonymous memory over `regions` (MAP_FIXED, nothing committed): the mappings
 * they replace go, and with them a hugetlb reservation; views of the regions stay valid.
 */
function unmapRegions(regions: readonly HostRegion[]): void {
  for (const r of regions) {
    libc.mmap(r.hostAddr, r.size, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE | libc.MAP_FIXED, -1, 0);
  }
}

/**
 * The memfd of guest RAM (Firecracker `memfd::MemfdOptions`, vstate/memory.rs): a hugetlbfs
 * file of 2 MiB pages for huge-page RAM.
 */
function createMemfd(name: string, huge: boolean): number {
  const flags = libc.MFD_CLOEXEC | (huge ? libc.MFD_HUGETLB | libc.HUGETLB_FLAG_ENCODE_2MB : 0);
  const fd = libc.memfdCreate(name, flags);
  if (fd >= 0 || !huge) return libc.check('memfd_create', fd);
  const io = HostIoError.os(libc.errno());
  // MemoryError::Memfd: a kernel without hugetlbfs (CONFIG_HUGETLBFS) refuses MFD_HUGETLB.
  throw new GuestMemoryAllocationError(`Cannot create memfd: ${io.message}`, { cause: io, code: 'GUEST_MEMORY_HUGE_PAGES' });
}

/**
 * A shared WebAssembly.Memory of `pages` (initial = maximum). V8 reports a reservation the
 * address space refuses as a RangeError ("could not allocate memory"); it is mmap's ENOMEM.
 */
function wasmMemory(pages: number): WebAssembly.Memory {
  try {
    return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  } catch (e) {
    if (e instanceof RangeError) throw mmapRegionError(HostIoError.os('ENOMEM', e));
    throw e;
  }
}
