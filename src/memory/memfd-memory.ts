/**
 * Guest RAM as SharedArrayBuffers over one memfd, so that KVM, every worker and (later) the
 * snapshot writer see the same pages.
 *
 * How (verified on Node 20 / V8 11): a shared `WebAssembly.Memory` with initial = maximum
 * gives a page-aligned SharedArrayBuffer whose backing store never moves (it cannot grow).
 * `mmap(base, len, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED, memfd, off)` then replaces
 * those pages with the memfd's, in place: JavaScript reads and writes through the SAB now hit
 * the memfd, and the same host address is what KVM_SET_USER_MEMORY_REGION registers. Nothing
 * is touched up front, so RSS grows only with the pages the guest (or host) actually uses.
 *
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
/** Largest single SharedArrayBuffer we create (3 GiB, well inside V8's 4 GiB wasm32 limit). */
export const MAX_CHUNK = 3 * 1024 * 1024 * 1024;

/** A region together with the host address KVM must map. */
export interface HostRegion extends GuestRegion {
  readonly hostAddr: bigint;
  /** Offset of this region inside the memfd. */
  readonly fdOffset: number;
}

/** Guest memory backed by a memfd; `regions` are the KVM memory slots, in order. */
export class MemfdGuestMemory extends GuestMemory {
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

  /** Creates memfd-backed guest RAM for the given ranges (e.g. arch ramRanges()). */
  static create(ranges: readonly RamRange[], name = 'kindling-guest-ram'): MemfdGuestMemory {
    const chunks: RamRange[] = [];
    for (const r of ranges) {
      if (r.size <= 0 || r.size % WASM_PAGE_SIZE !== 0 || r.gpa % WASM_PAGE_SIZE !== 0) {
        throw new GuestMemoryLayoutError(`RAM range 0x${r.gpa.toString(16)}+0x${r.size.toString(16)} is not a non-empty multiple of 64 KiB`);
      }
      for (let off = 0; off < r.size; off += MAX_CHUNK) chunks.push({ gpa: r.gpa + off, size: Math.min(MAX_CHUNK, r.size - off) });
    }
    const total = chunks.reduce((n, c) => n + c.size, 0);
    const memfd = libc.check('memfd_create', libc.memfdCreate(name, libc.MFD_CLOEXEC));
    try {
      libc.check('ftruncate', libc.ftruncate(memfd, total));
      const regions: HostRegion[] = [];
      const wasm: WebAssembly.Memory[] = [];
      let fdOffset = 0;
      for (const c of chunks) {
        const pages = c.size / WASM_PAGE_SIZE;
        const mem = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
        const bytes = new Uint8Array(mem.buffer);
        const base = libc.addressOf(bytes);
        // SAFETY: [base, base + size) is exactly the backing store of `mem.buffer`, which
        // cannot grow (initial = maximum) and so never moves; MAP_FIXED replaces those pages
        // only. `mem` is kept alive in `this.wasm` for as long as the views are used.
        const got = libc.mmapChecked(base, c.size, libc.PROT_READ | libc.PROT_WRITE,
          libc.MAP_SHARED | libc.MAP_FIXED, memfd, fdOffset);
        if (got !== base) throw new GuestMemoryLayoutError(`mmap placed guest RAM at 0x${got.toString(16)}, not 0x${base.toString(16)}`);
        regions.push({ gpa: c.gpa, size: c.size, bytes, hostAddr: base, fdOffset });
        wasm.push(mem);
        fdOffset += c.size;
      }
      return new MemfdGuestMemory(memfd, regions, wasm);
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
