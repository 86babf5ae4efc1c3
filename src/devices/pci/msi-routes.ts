/**
 * The VM's MSI routes (GSI → MSI message), shared by every vCPU thread. KVM_SET_GSI_ROUTING
 * replaces the whole routing table, so a vCPU that changes one MSI-X entry rewrites every
 * route: the table lives here, in a SharedArrayBuffer, and `update` runs the caller's `apply`
 * (the ioctl) with the lock held, so two vCPUs never install each other's stale tables.
 *
 * Layout: LOCK, COUNT, then per GSI from `firstGsi`: VALID, ADDRESS_LO, ADDRESS_HI, DATA.
 */
import { DeviceStateError } from '../../errors.js';
import { lockSlot, unlockSlot } from '../shared-lock.js';
import type { MsiMessage } from './msix.js';

const LOCK = 0;
const COUNT = 1;
const HEADER = 2;
const PER_GSI = 4;

/** One installed MSI route. */
export interface MsiRoute extends MsiMessage {
  readonly gsi: number;
}

export class MsiRoutes {
  private readonly i32: Int32Array;
  readonly count: number;

  constructor(buffer: SharedArrayBuffer, readonly firstGsi: number) {
    this.i32 = new Int32Array(buffer);
    this.count = Atomics.load(this.i32, COUNT);
    if (this.i32.length < HEADER + PER_GSI * this.count) throw new DeviceStateError('MSI route table shorter than its count');
  }

  /** A table for `count` GSIs, none routed. */
  static create(count: number): SharedArrayBuffer {
    const buffer = new SharedArrayBuffer((HEADER + PER_GSI * count) * 4);
    Atomics.store(new Int32Array(buffer), COUNT, count);
    return buffer;
  }

  /** Every installed route (call with the lock held for a consistent view: `update`). */
  routes(): MsiRoute[] {
    const out: MsiRoute[] = [];
    for (let i = 0; i < this.count; i++) {
      const s = HEADER + PER_GSI * i;
      if (Atomics.load(this.i32, s) !== 1) continue;
      out.push({ gsi: this.firstGsi + i, addressLo: Atomics.load(this.i32, s + 1) >>> 0, addressHi: Atomics.load(this.i32, s + 2) >>> 0, data: Atomics.load(this.i32, s + 3) >>> 0 });
    }
    return out;
  }

  /**
   * Sets (message) or removes (null) the routes of `changes`, then calls `apply` with the whole
   * table, under the lock. A GSI outside the table is a build bug and throws.
   */
  update(changes: readonly { gsi: number; message: MsiMessage | null }[], apply: (routes: MsiRoute[]) => void): void {
    lockSlot(this.i32, LOCK);
    try {
      for (const c of changes) {
        const i = c.gsi - this.firstGsi;
        if (!Number.isInteger(i) || i < 0 || i >= this.count) throw new DeviceStateError(`GSI ${c.gsi} is not an MSI GSI of this VM`);
        const s = HEADER + PER_GSI * i;
        if (c.message) {
          Atomics.store(this.i32, s + 1, c.message.addressLo | 0);
          Atomics.store(this.i32, s + 2, c.message.addressHi | 0);
          Atomics.store(this.i32, s + 3, c.message.data | 0);
          Atomics.store(this.i32, s, 1);
        } else Atomics.store(this.i32, s, 0);
      }
      apply(this.routes());
    } finally {
      unlockSlot(this.i32, LOCK);
    }
  }
}
