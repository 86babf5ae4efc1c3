/**
 * Guest physical memory as device models and loaders see it: a list of RAM regions, each a
 * byte array, and bounds-checked accessors by guest physical address (GPA).
 *
 * Invariant: an access either lies entirely inside guest RAM or fails with a
 * GuestMemoryError *value* (accessors return it; they never throw for a bad guest address and
 * never touch memory outside the region arrays). Guest-supplied addresses are hostile, so
 * every device goes through these checks. Addresses are JS numbers: every GPA Kindling maps is
 * below 2^53.
 *
 * Two providers share this class: HostGuestMemory (SharedArrayBuffers over host mappings that
 * KVM maps into the guest, host-memory.ts) and `arrayGuestMemory` below (plain ArrayBuffers, for
 * unit tests and benchmarks of device models).
 *
 * Dirty pages (docs/design.md, "Snapshot memory files"). KVM logs the pages the *guest* writes
 * (KVM_MEM_LOG_DIRTY_PAGES), but device workers write guest RAM directly through the region
 * arrays, which KVM never sees. With track_dirty_pages the VMM keeps a second log, an optional
 * shared bitmap with the same shape as KVM's: one bit per 4 KiB page, each region's bits in
 * whole u64 words (`dirtyLogBytes(region.size)` bytes), regions one after another in
 * guest-physical order. So region i's slice ORs byte for byte onto KVM_GET_DIRTY_LOG of slot i.
 * Writers set bits with Atomics.or on an Int32Array (any thread); the snapshot writer takes and
 * clears them with Atomics.exchange (src/snapshot/dirty.ts). Firecracker keeps the same second
 * log in vm-memory's AtomicBitmap (src/vmm/src/vstate/memory.rs).
 *
 * Hotpluggable memory (docs/design.md "Memory hotplug"). The virtio-mem region is RAM the
 * VMM maps like the rest, but only its plugged blocks belong to the guest. A `HotplugGuard`
 * (one shared byte per block, 1 = plugged, written by the virtio-mem device worker) makes
 * every accessor treat an access that touches an unplugged block like an access outside
 * RAM: a device never reads or writes memory the guest gave back (Firecracker protects the
 * same memory with mprotect and by removing its KVM slots).
 */
import { GuestMemoryError, GuestMemoryLayoutError } from '../errors.js';
import { KVM_DIRTY_LOG_PAGE_SIZE, dirtyLogBytes } from '../kvm/constants.js';

/** One contiguous range of guest RAM. */
export interface RamRange {
  /** Guest physical start address. */
  readonly gpa: number;
  /** Length in bytes. */
  readonly size: number;
}

/** A RAM range with the bytes that back it. */
export interface GuestRegion extends RamRange {
  readonly bytes: Uint8Array;
}

/** The hotplug region's plug state (module comment): one byte per block, 1 = plugged. */
export interface HotplugGuard {
  /** Guest physical start and size of the virtio-mem region. */
  readonly gpa: number;
  readonly size: number;
  /** Block size in bytes (a power of two). */
  readonly blockSize: number;
  /** size / blockSize bytes, shared by every thread. */
  readonly plugged: SharedArrayBuffer;
}

/** What a worker needs to rebuild the same view of guest memory (SABs cross by reference). */
export interface GuestMemoryDescriptor {
  readonly regions: readonly { gpa: number; size: number; buffer: SharedArrayBuffer | ArrayBuffer; offset: number }[];
  /** The shared dirty bitmap (module comment), when the VM tracks dirty pages. */
  readonly dirty?: SharedArrayBuffer;
  /** The hotplug region's plug state, when the VM has a virtio-mem device. */
  readonly hotplug?: HotplugGuard;
}

/** Bits per word of the dirty bitmap as Atomics sees it (an Int32Array). */
const DIRTY_WORD_BITS = 32;
/** Every bit of a word set. */
const ALL_BITS = -1;

/** Byte offset of each region's bits in the dirty bitmap, and the bitmap's total size (regions sorted by gpa). */
export function dirtyBitmapLayout(sizes: readonly number[]): { offsets: number[]; bytes: number } {
  const offsets: number[] = [];
  let bytes = 0;
  for (const size of sizes) {
    offsets.push(bytes);
    bytes += dirtyLogBytes(size);
  }
  return { offsets, bytes };
}

/** Bits first..last (0..31) of a word set. */
function bitRange(first: number, last: number): number {
  return (last === DIRTY_WORD_BITS - 1 ? ALL_BITS : (1 << (last + 1)) - 1) & (ALL_BITS << first);
}

/** Bounds-checked guest physical memory over a set of non-overlapping regions. */
export class GuestMemory {
  readonly regions: readonly GuestRegion[];
  private readonly views: readonly DataView[];
  /** Total bytes of RAM. */
  readonly size: number;
  /** The shared dirty bitmap as words, or undefined when dirty pages are not tracked. */
  private readonly dirtyWords: Int32Array | undefined;
  /** Bit index in `dirtyWords` of each region's first page. */
  private readonly dirtyBase: readonly number[];
  /** The hotplug region's guard, if any, and which regions lie inside it. */
  readonly hotplug: HotplugGuard | undefined;
  private readonly plugged: Uint8Array | undefined;
  private readonly guarded: readonly boolean[];

  constructor(regions: readonly GuestRegion[], dirty?: SharedArrayBuffer, hotplug?: HotplugGuard) {
    const sorted = [...regions].sort((a, b) => a.gpa - b.gpa);
    for (let i = 0; i < sorted.length; i++) {
      const r = sorted[i]!;
      if (r.bytes.byteLength !== r.size) throw new GuestMemoryLayoutError(`region at 0x${r.gpa.toString(16)}: ${r.bytes.byteLength} bytes backing ${r.size}`);
      const next = sorted[i + 1];
      if (next && r.gpa + r.size > next.gpa) throw new GuestMemoryLayoutError(`regions at 0x${r.gpa.toString(16)} and 0x${next.gpa.toString(16)} overlap`);
    }
    this.regions = sorted;
    this.views = sorted.map((r) => new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength));
    this.size = sorted.reduce((n, r) => n + r.size, 0);
    const layout = dirtyBitmapLayout(sorted.map((r) => r.size));
    if (dirty && dirty.byteLength < layout.bytes) throw new GuestMemoryLayoutError(`dirty bitmap of ${dirty.byteLength} bytes for ${layout.bytes}`);
    this.dirtyWords = dirty ? new Int32Array(dirty, 0, layout.bytes / Int32Array.BYTES_PER_ELEMENT) : undefined;
    this.dirtyBase = layout.offsets.map((o) => o * 8);
    this.hotplug = hotplug;
    this.plugged = hotplug ? new Uint8Array(hotplug.plugged) : undefined;
    if (hotplug && hotplug.plugged.byteLength * hotplug.blockSize < hotplug.size) {
      throw new GuestMemoryLayoutError(`hotplug guard of ${hotplug.plugged.byteLength} blocks for ${hotplug.size} bytes`);
    }
    this.guarded = sorted.map((r) => hotplug !== undefined && r.gpa >= hotplug.gpa && r.gpa + r.size <= hotplug.gpa + hotplug.size);
  }

  /** Rebuilds a GuestMemory from a descriptor (in a worker). */
  static fromDescriptor(d: GuestMemoryDescriptor): GuestMemory {
    return new GuestMemory(d.regions.map((r) => ({ gpa: r.gpa, size: r.size, bytes: new Uint8Array(r.buffer, r.offset, r.size) })), d.dirty, d.hotplug);
  }

  /** The descriptor to post to a worker. */
  describe(): GuestMemoryDescriptor {
    const regions = this.regions.map((r) => ({ gpa: r.gpa, size: r.size, buffer: r.bytes.buffer as SharedArrayBuffer | ArrayBuffer, offset: r.bytes.byteOffset }));
    return {
      regions,
      ...(this.dirtyWords ? { dirty: this.dirtyWords.buffer as SharedArrayBuffer } : {}),
      ...(this.hotplug ? { hotplug: this.hotplug } : {}),
    };
  }

  /** True when writes are logged in a dirty bitmap. */
  get tracksDirty(): boolean {
    return this.dirtyWords !== undefined;
  }

  /**
   * Region `i`'s words of the dirty bitmap (shared: Atomics only), or undefined without one.
   * Byte-compatible with KVM_GET_DIRTY_LOG of the same region.
   */
  dirtyBitmap(i: number): Int32Array | undefined {
    const r = this.regions[i];
    if (!this.dirtyWords || !r) return undefined;
    const first = this.dirtyBase[i]! / DIRTY_WORD_BITS;
    return this.dirtyWords.subarray(first, first + dirtyLogBytes(r.size) / Int32Array.BYTES_PER_ELEMENT);
  }

  /**
   * Marks the pages of [gpa, gpa + len) dirty: a device wrote (or may write) them. A no-op
   * without a bitmap, for len 0, or outside RAM. On the virtqueue hot path: one region lookup
   * and one Atomics.or per 32 pages. The Atomics.or is also a full barrier, so a caller that
   * marks *after* writing has its data visible before the bit (the order src/snapshot/dirty.ts
   * relies on: a bit taken by a snapshot covers data that is already in RAM).
   */
  markDirty(gpa: number, len: number): void {
    const words = this.dirtyWords;
    if (words === undefined || len <= 0) return;
    const i = this.find(gpa, len);
    if (i < 0) return;
    const off = gpa - this.regions[i]!.gpa;
    const base = this.dirtyBase[i]!;
    const first = base + Math.floor(off / KVM_DIRTY_LOG_PAGE_SIZE);
    const last = base + Math.floor((off + len - 1) / KVM_DIRTY_LOG_PAGE_SIZE);
    const fw = Math.floor(first / DIRTY_WORD_BITS);
    const lw = Math.floor(last / DIRTY_WORD_BITS);
    const fb = first % DIRTY_WORD_BITS;
    const lb = last % DIRTY_WORD_BITS;
    if (fw === lw) {
      Atomics.or(words, fw, bitRange(fb, lb));
      return;
    }
    Atomics.or(words, fw, bitRange(fb, DIRTY_WORD_BITS - 1));
    for (let w = fw + 1; w < lw; w++) Atomics.or(words, w, ALL_BITS);
    Atomics.or(words, lw, bitRange(0, lb));
  }

  /** Index of the region holding all of [gpa, gpa + len), or -1. */
  private find(gpa: number, len: number): number {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0 || !Number.isSafeInteger(gpa + len)) return -1;
    const rs = this.regions;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i]!;
      if (gpa >= r.gpa && gpa + len <= r.gpa + r.size) return this.guarded[i] && !this.isPlugged(gpa, len) ? -1 : i;
    }
    return -1;
  }

  /** True when every hotplug block [gpa, gpa + len) touches is plugged (len 0: the block at gpa). */
  private isPlugged(gpa: number, len: number): boolean {
    const h = this.hotplug!;
    const first = Math.floor((gpa - h.gpa) / h.blockSize);
    const last = Math.floor((gpa + Math.max(len, 1) - 1 - h.gpa) / h.blockSize);
    for (let b = first; b <= last; b++) if (Atomics.load(this.plugged!, b) !== 1) return false;
    return true;
  }

  /** True when [gpa, gpa + len) lies inside one RAM region. */
  contains(gpa: number, len: number): boolean {
    return this.find(gpa, len) >= 0;
  }

  /** A zero-copy view of [gpa, gpa + len), or an error when it is not inside one RAM region. */
  slice(gpa: number, len: number): Uint8Array | GuestMemoryError {
    const i = this.find(gpa, len);
    if (i < 0) return new GuestMemoryError(gpa, len);
    const r = this.regions[i]!;
    return r.bytes.subarray(gpa - r.gpa, gpa - r.gpa + len);
  }

  /** Copies guest bytes into `dst`; returns an error (and copies nothing) when out of range. */
  read(gpa: number, dst: Uint8Array): GuestMemoryError | undefined {
    const s = this.slice(gpa, dst.length);
    if (s instanceof GuestMemoryError) return s;
    dst.set(s);
    return undefined;
  }

  /** Copies `src` into guest memory and marks it dirty; returns an error (and writes nothing) when out of range. */
  write(gpa: number, src: Uint8Array): GuestMemoryError | undefined {
    const s = this.slice(gpa, src.length);
    if (s instanceof GuestMemoryError) return s;
    s.set(src);
    this.markDirty(gpa, src.length);
    return undefined;
  }

  /** Little-endian scalar readers; an out-of-range address yields a GuestMemoryError. */
  readU8(gpa: number): number | GuestMemoryError {
    const i = this.find(gpa, 1);
    return i < 0 ? new GuestMemoryError(gpa, 1) : this.views[i]!.getUint8(gpa - this.regions[i]!.gpa);
  }
  readU16(gpa: number): number | GuestMemoryError {
    const i = this.find(gpa, 2);
    return i < 0 ? new GuestMemoryError(gpa, 2) : this.views[i]!.getUint16(gpa - this.regions[i]!.gpa, true);
  }
  readU32(gpa: number): number | GuestMemoryError {
    const i = this.find(gpa, 4);
    return i < 0 ? new GuestMemoryError(gpa, 4) : this.views[i]!.getUint32(gpa - this.regions[i]!.gpa, true);
  }
  readU64(gpa: number): bigint | GuestMemoryError {
    const i = this.find(gpa, 8);
    return i < 0 ? new GuestMemoryError(gpa, 8) : this.views[i]!.getBigUint64(gpa - this.regions[i]!.gpa, true);
  }

  /** Little-endian scalar writers; return a GuestMemoryError (writing nothing) when out of range. Writes are marked dirty. */
  writeU8(gpa: number, v: number): GuestMemoryError | undefined {
    const i = this.find(gpa, 1);
    if (i < 0) return new GuestMemoryError(gpa, 1);
    this.views[i]!.setUint8(gpa - this.regions[i]!.gpa, v);
    if (this.dirtyWords) this.markDirty(gpa, 1);
    return undefined;
  }
  writeU16(gpa: number, v: number): GuestMemoryError | undefined {
    const i = this.find(gpa, 2);
    if (i < 0) return new GuestMemoryError(gpa, 2);
    this.views[i]!.setUint16(gpa - this.regions[i]!.gpa, v, true);
    if (this.dirtyWords) this.markDirty(gpa, 2);
    return undefined;
  }
  writeU32(gpa: number, v: number): GuestMemoryError | undefined {
    const i = this.find(gpa, 4);
    if (i < 0) return new GuestMemoryError(gpa, 4);
    this.views[i]!.setUint32(gpa - this.regions[i]!.gpa, v, true);
    if (this.dirtyWords) this.markDirty(gpa, 4);
    return undefined;
  }
  writeU64(gpa: number, v: bigint): GuestMemoryError | undefined {
    const i = this.find(gpa, 8);
    if (i < 0) return new GuestMemoryError(gpa, 8);
    this.views[i]!.setBigUint64(gpa - this.regions[i]!.gpa, v, true);
    if (this.dirtyWords) this.markDirty(gpa, 8);
    return undefined;
  }
}

/** Guest memory over plain ArrayBuffers: for unit tests and benchmarks of device models; `trackDirty` adds the dirty bitmap. */
export function arrayGuestMemory(ranges: readonly RamRange[], opts: { trackDirty?: boolean } = {}): GuestMemory {
  const sorted = [...ranges].sort((a, b) => a.gpa - b.gpa);
  const dirty = opts.trackDirty ? new SharedArrayBuffer(dirtyBitmapLayout(sorted.map((r) => r.size)).bytes) : undefined;
  return new GuestMemory(sorted.map((r) => ({ ...r, bytes: new Uint8Array(r.size) })), dirty);
}

/** Throws the error an accessor returned; for loaders and set-up code, where a bad address is a bug. */
export function must<T>(v: T | GuestMemoryError): T {
  if (v instanceof GuestMemoryError) throw v;
  return v;
}
