/**
 * MSI-X (PCI Local Bus 3.0 §6.8.2) over shared memory: the capability's Message Control bits,
 * the vector table and the Pending Bit Array of one function, as every vCPU thread (the
 * driver's accesses) and the device worker (raising vectors) see them.
 *
 * Layout inside the owner's Int32Array, from `base`: CONTROL (the Message Control register's
 * Enable bit 15 and Function Mask bit 14), then 4 slots per vector (Message Address low,
 * high, Message Data, Vector Control), then the PBA as u32 words. Every access runs under the
 * owner's lock, so "is the vector masked?" and "set its pending bit" are one step for the
 * device, and "unmask" and "deliver what is pending" one step for the driver: no interrupt is
 * lost between them (Firecracker pci/msix.rs does the same under its MsixConfig mutex). The
 * caller applies the returned MsixEffects (KVM routes, pending deliveries) before releasing
 * that lock, so the device never fires an unmasked vector whose route is not installed yet.
 *
 * What the guest sees (§6.8.2.6–9): entries start masked (Vector Control bit 0 set) with
 * zero address/data; only bit 0 of Vector Control is writable; the PBA is read-only; accesses
 * must be 4 or 8 bytes, naturally aligned, inside the table (others: reads give all-ones,
 * writes are dropped). A bogus address in an entry is the guest's business: KVM gets the
 * message as written, and an address that names no local APIC reaches no CPU.
 */
export const MSIX_ENABLE = 1 << 15;
export const MSIX_FUNCTION_MASK = 1 << 14;
/** Message Control's writable bits. */
export const MSIX_CONTROL_WRITABLE = MSIX_ENABLE | MSIX_FUNCTION_MASK;
/** Bytes per table entry and per PBA word. */
export const MSIX_ENTRY_SIZE = 16;
export const MSIX_ENTRY_SLOTS = 4;
export const MSIX_VECTOR_CTL_MASKBIT = 1;
/** Firecracker's table size limit (2048 entries, §6.8.2.3 Table Size is 11 bits). */
export const MSIX_MAX_VECTORS = 2048;
/** Entry fields (slot offsets inside an entry). */
const ADDR_LO = 0;
const ADDR_HI = 1;
const DATA = 2;
const CTL = 3;

/** One table entry as KVM needs it. */
export interface MsiMessage {
  readonly addressLo: number;
  readonly addressHi: number;
  readonly data: number;
}

/** Int32 slots an MSI-X region of `vectors` vectors takes. */
export function msixSlots(vectors: number): number {
  return 1 + MSIX_ENTRY_SLOTS * vectors + Math.ceil(vectors / 32);
}

/** What a change of the driver's MSI-X setup asks the VMM to do (computed under the lock). */
export interface MsixEffects {
  /** Vectors whose KVM route must be set (message) or removed (null). */
  readonly routes: { vector: number; message: MsiMessage | null }[];
  /** Pending vectors just unmasked: deliver now (their pending bit is already cleared). */
  readonly deliver: { vector: number; message: MsiMessage }[];
}

/** The MSI-X state of one function inside a shared Int32Array (the caller holds its lock). */
export class MsixRegion {
  private readonly control: number;
  private readonly table: number;
  private readonly pba: number;

  constructor(private readonly i32: Int32Array, base: number, readonly vectors: number) {
    this.control = base;
    this.table = base + 1;
    this.pba = this.table + MSIX_ENTRY_SLOTS * vectors;
  }

  /** Initial values: disabled, every entry masked. */
  reset(): void {
    Atomics.store(this.i32, this.control, 0);
    for (let v = 0; v < this.vectors; v++) {
      for (let f = 0; f < MSIX_ENTRY_SLOTS; f++) Atomics.store(this.i32, this.table + v * MSIX_ENTRY_SLOTS + f, f === CTL ? MSIX_VECTOR_CTL_MASKBIT : 0);
    }
    for (let w = 0; w < Math.ceil(this.vectors / 32); w++) Atomics.store(this.i32, this.pba + w, 0);
  }

  /** Message Control's Enable and Function Mask bits. */
  controlBits(): number {
    return Atomics.load(this.i32, this.control) & MSIX_CONTROL_WRITABLE;
  }

  enabled(): boolean {
    return (this.controlBits() & MSIX_ENABLE) !== 0;
  }

  private entrySlot(vector: number, field: number): number {
    return this.table + vector * MSIX_ENTRY_SLOTS + field;
  }

  entryMasked(vector: number): boolean {
    return (Atomics.load(this.i32, this.entrySlot(vector, CTL)) & MSIX_VECTOR_CTL_MASKBIT) !== 0;
  }

  message(vector: number): MsiMessage {
    return {
      addressLo: Atomics.load(this.i32, this.entrySlot(vector, ADDR_LO)) >>> 0,
      addressHi: Atomics.load(this.i32, this.entrySlot(vector, ADDR_HI)) >>> 0,
      data: Atomics.load(this.i32, this.entrySlot(vector, DATA)) >>> 0,
    };
  }

  /** True when `vector` may fire now: MSI-X enabled, function and entry unmasked. */
  deliverable(vector: number): boolean {
    const c = this.controlBits();
    return (c & MSIX_ENABLE) !== 0 && (c & MSIX_FUNCTION_MASK) === 0 && !this.entryMasked(vector);
  }

  pending(vector: number): boolean {
    return ((Atomics.load(this.i32, this.pba + (vector >>> 5)) >>> (vector & 31)) & 1) === 1;
  }

  setPending(vector: number): void {
    Atomics.or(this.i32, this.pba + (vector >>> 5), 1 << (vector & 31));
  }

  private clearPending(vector: number): void {
    Atomics.and(this.i32, this.pba + (vector >>> 5), ~(1 << (vector & 31)));
  }

  /**
   * The device raises `vector`: true when the caller must signal it now, false when it was
   * made pending (masked) or dropped (MSI-X disabled: there is no INTx fallback).
   */
  raise(vector: number): boolean {
    if (vector < 0 || vector >= this.vectors || !this.enabled()) return false;
    if (this.deliverable(vector)) return true;
    this.setPending(vector);
    return false;
  }

  /** A table read (`offset` from the table's start). */
  readTable(offset: number, data: Uint8Array): void {
    const len = data.length;
    if ((len !== 4 && len !== 8) || offset % len !== 0 || offset + len > this.vectors * MSIX_ENTRY_SIZE) {
      data.fill(0xff);
      return;
    }
    const dv = new DataView(data.buffer, data.byteOffset, len);
    for (let i = 0; i < len; i += 4) {
      const o = offset + i;
      dv.setUint32(i, Atomics.load(this.i32, this.entrySlot(Math.floor(o / MSIX_ENTRY_SIZE), (o % MSIX_ENTRY_SIZE) / 4)) >>> 0, true);
    }
  }

  /** A table write; returns what the VMM must do about it (or null for a dropped access). */
  writeTable(offset: number, data: Uint8Array): MsixEffects | null {
    const len = data.length;
    if ((len !== 4 && len !== 8) || offset % len !== 0 || offset + len > this.vectors * MSIX_ENTRY_SIZE) return null;
    const vector = Math.floor(offset / MSIX_ENTRY_SIZE);
    const before = this.deliverable(vector);
    const old = this.message(vector);
    const dv = new DataView(data.buffer, data.byteOffset, len);
    for (let i = 0; i < len; i += 4) {
      const field = ((offset + i) % MSIX_ENTRY_SIZE) / 4;
      let value = dv.getUint32(i, true);
      // Vector Control: only the mask bit is writable (the rest is reserved, reads 0).
      if (field === CTL) value &= MSIX_VECTOR_CTL_MASKBIT;
      Atomics.store(this.i32, this.entrySlot(vector, field), value | 0);
    }
    const after = this.deliverable(vector);
    const msg = this.message(vector);
    const routes: MsixEffects['routes'] = [];
    const deliver: MsixEffects['deliver'] = [];
    const changed = msg.addressLo !== old.addressLo || msg.addressHi !== old.addressHi || msg.data !== old.data;
    if (after && (!before || changed)) routes.push({ vector, message: msg });
    else if (!after && before) routes.push({ vector, message: null });
    if (after && !before && this.pending(vector)) {
      this.clearPending(vector);
      deliver.push({ vector, message: msg });
    }
    return { routes, deliver };
  }

  /** A PBA read (`offset` from the PBA's start): 4 or 8 aligned bytes; past the end reads 0. */
  readPba(offset: number, data: Uint8Array): void {
    const len = data.length;
    if ((len !== 4 && len !== 8) || offset % len !== 0) {
      data.fill(0xff);
      return;
    }
    const dv = new DataView(data.buffer, data.byteOffset, len);
    const words = Math.ceil(this.vectors / 32);
    for (let i = 0; i < len; i += 4) {
      const w = (offset + i) / 4;
      dv.setUint32(i, w < words ? Atomics.load(this.i32, this.pba + w) >>> 0 : 0, true);
    }
  }

  /** The driver wrote Message Control: the new Enable/Function Mask bits, and what follows. */
  writeControl(bits: number): MsixEffects {
    const before = Array.from({ length: this.vectors }, (_, v) => this.deliverable(v));
    Atomics.store(this.i32, this.control, bits & MSIX_CONTROL_WRITABLE);
    const routes: MsixEffects['routes'] = [];
    const deliver: MsixEffects['deliver'] = [];
    for (let v = 0; v < this.vectors; v++) {
      const after = this.deliverable(v);
      if (after === before[v]) continue;
      routes.push({ vector: v, message: after ? this.message(v) : null });
      if (after && this.pending(v)) {
        this.clearPending(v);
        deliver.push({ vector: v, message: this.message(v) });
      }
    }
    return { routes, deliver };
  }
}
