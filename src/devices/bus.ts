/**
 * Address buses for port IO and MMIO: which device answers an access, at which offset.
 *
 * Devices implement BusDevice over their own register offsets; the bus finds the range and
 * passes `addr - base`. Lookups happen on every exit that reaches userspace, so ranges are
 * kept sorted and searched by bisection. Invariant: ranges never overlap (insert refuses).
 * Accesses that hit no device are the caller's business (reads of nothing return all-ones,
 * as on real hardware with a floating bus).
 */

/** A device on a bus. `data` is the access: its length is the access size (1, 2, 4 or 8). */
export interface BusDevice {
  /** Fill `data` with the value read at `offset` (bytes little-endian). */
  read(offset: number, data: Uint8Array): void;
  /** Handle a write of `data` at `offset`. */
  write(offset: number, data: Uint8Array): void;
}

interface Range {
  base: number;
  len: number;
  device: BusDevice;
}

/** Raised only at VM build time, never from a guest access. */
export class BusConflictError extends Error {
  override name = 'BusConflictError';
}

/** A sorted set of non-overlapping [base, base + len) ranges. */
export class Bus {
  private readonly ranges: Range[] = [];

  /** Adds a device; throws BusConflictError when the range overlaps another one. */
  insert(base: number, len: number, device: BusDevice): void {
    if (len <= 0) throw new BusConflictError(`empty range at 0x${base.toString(16)}`);
    for (const r of this.ranges) {
      if (base < r.base + r.len && r.base < base + len) {
        throw new BusConflictError(`range 0x${base.toString(16)}+${len} overlaps 0x${r.base.toString(16)}+${r.len}`);
      }
    }
    this.ranges.push({ base, len, device });
    this.ranges.sort((a, b) => a.base - b.base);
  }

  /** The range holding `addr`, or undefined. */
  private find(addr: number): Range | undefined {
    const rs = this.ranges;
    let lo = 0;
    let hi = rs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = rs[mid]!;
      if (addr < r.base) hi = mid - 1;
      else if (addr >= r.base + r.len) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  /** Dispatches a read; returns false (data set to all-ones) when no device is there. */
  read(addr: number, data: Uint8Array): boolean {
    const r = this.find(addr);
    if (!r) {
      data.fill(0xff);
      return false;
    }
    r.device.read(addr - r.base, data);
    return true;
  }

  /** Dispatches a write; returns false when no device is there (the write is dropped). */
  write(addr: number, data: Uint8Array): boolean {
    const r = this.find(addr);
    if (!r) return false;
    r.device.write(addr - r.base, data);
    return true;
  }
}
