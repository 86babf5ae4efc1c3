/**
 * The debug port (Bochs/QEMU "debugcon" convention, port 0xe9): every byte a guest writes
 * is appended to a ByteRing the host can read. Off by default; Kindling's KVM tests turn it
 * on to observe tiny test guests without a serial driver. Reads return 0xe9 (as Bochs does,
 * so a guest can probe for it).
 */
import type { BusDevice } from './bus.js';
import { ByteRing } from './byte-ring.js';

/** The conventional debugcon port. */
export const DEBUG_PORT = 0xe9;
/** What a read of the port returns (its own number: presence probe). */
export const DEBUG_PORT_READBACK = 0xe9;

export class DebugPort implements BusDevice {
  private readonly ring: ByteRing;

  constructor(ring: SharedArrayBuffer) {
    this.ring = new ByteRing(ring);
  }

  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
    data[0] = DEBUG_PORT_READBACK;
  }

  write(_offset: number, data: Uint8Array): void {
    this.ring.push(data);
  }
}
