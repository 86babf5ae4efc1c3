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
 */
import { GuestMemoryError, GuestMemoryLayoutError } from '../errors.js';

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

/** What a worker needs to rebuild the same view of guest memory (SABs cross by reference). */
export interface GuestMemoryDescriptor {
  readonly regions: readonly { gpa: number; size: number; buffer: SharedArrayBuffer | ArrayBuffer; offset: number }[];
}

/** Bounds-checked guest physical memory over a set of non-overlapping regions. */
export class GuestMemory {
  readonly regions: readonly GuestRegion[];
  private readonly views: readonly DataView[];
  /** Total bytes of RAM. */
  readonly size: number;

  constructor(regions: readonly GuestRegion[]) {
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
  }

  /** Rebuilds a GuestMemory from a descriptor (in a worker). */
  static fromDescriptor(d: GuestMemoryDescriptor): GuestMemory {
    return new GuestMemory(d.regions.map((r) => ({ gpa: r.gpa, size: r.size, bytes: new Uint8Array(r.buffer, r.offset, r.size) })));
  }

  /** The descriptor to post to a worker. */
  describe(): GuestMemoryDescriptor {
    return { regions: this.regions.map((r) => ({ gpa: r.gpa, size: r.size, buffer: r.bytes.buffer as SharedArrayBuffer | ArrayBuffer, offset: r.bytes.byteOffset })) };
  }

  /** Index of the region holding all of [gpa, gpa + len), or -1. */
  private find(gpa: number, len: number): number {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0 || !Number.isSafeInteger(gpa + len)) return -1;
    const rs = this.regions;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i]!;
      if (gpa >= r.gpa && gpa + len <= r.gpa + r.size) return i;
    }
    return -1;
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

  /** Copies `src` into guest memory; returns an error (and writes nothing) when out of range. */
  write(gpa: number, src: Uint8Array): GuestMemoryError | undefined {
    const s = this.slice(gpa, src.length);
    if (s instanceof GuestMemoryError) return s;
    s.set(src);
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

  /** Little-endian scalar writers; return a GuestMemoryError (writing nothing) when out of range. */
  writeU8(gpa: number, v: number): GuestMemoryError | undefined {
    const i = this.find(gpa, 1);
    if (i < 0) return new GuestMemoryError(gpa, 1);
    this.views[i]!.setUint8(gpa - this.regions[i]!.gpa, v);
    return undefined;
  }
  writeU16(gpa: number, v: number): GuestMemoryError | undefined {
    const i = this.find(gpa, 2);
    if (i < 0) return new GuestMemoryError(gpa, 2);
    this.views[i]!.setUint16(gpa - this.regions[i]!.gpa, v, true);
    return undefined;
  }
  writeU32(gpa: number, v: number): GuestMemoryError | undefined {
    const i = this.find(gpa, 4);
    if (i < 0) return new GuestMemoryError(gpa, 4);
    this.views[i]!.setUint32(gpa - this.regions[i]!.gpa, v, true);
    return undefined;
  }
  writeU64(gpa: number, v: bigint): GuestMemoryError | undefined {
    const i = this.find(gpa, 8);
    if (i < 0) return new GuestMemoryError(gpa, 8);
    this.views[i]!.setBigUint64(gpa - this.regions[i]!.gpa, v, true);
    return undefined;
  }
}

/** Guest memory over plain ArrayBuffers: for unit tests and benchmarks of device models. */
export function arrayGuestMemory(ranges: readonly RamRange[]): GuestMemory {
  return new GuestMemory(ranges.map((r) => ({ ...r, bytes: new Uint8Array(r.size) })));
}

/** Throws the error an accessor returned; for loaders and set-up code, where a bad address is a bug. */
export function must<T>(v: T | GuestMemoryError): T {
  if (v instanceof GuestMemoryError) throw v;
  return v;
}
