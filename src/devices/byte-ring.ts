/**
 * A byte ring in a SharedArrayBuffer for device output that vCPU threads produce and another
 * thread consumes (debug port, and any log-like stream). Several vCPUs may produce at once:
 * producers take a spin lock (PUSH_LOCK) around a push, which is a handful of stores; the
 * single consumer needs no lock.
 *
 * Layout (Int32 slots, then data): [HEAD, TAIL, DROPPED, SEQ, PUSH_LOCK] + capacity bytes.
 * Invariants: only a producer holding PUSH_LOCK writes HEAD and DROPPED, only the consumer
 * writes TAIL;
 * 0 <= HEAD - TAIL <= capacity (indices grow without bound modulo 2^32, capacity is a power
 * of two). A full ring drops new bytes and counts them; it never blocks the producer (a vCPU).
 * SEQ is bumped and Atomics.notify'd after each push, so a consumer may Atomics.wait /
 * Atomics.waitAsync on it instead of polling.
 */
const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const SEQ = 3;
const PUSH_LOCK = 4;
const HEADER_BYTES = 32;

/** A byte ring over shared memory; construct one per thread over the same buffer. */
export class ByteRing {
  readonly buffer: SharedArrayBuffer;
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  private readonly mask: number;

  /** Allocates a ring with `capacity` data bytes (a power of two). */
  static allocate(capacity = 4096): SharedArrayBuffer {
    if (capacity <= 0 || (capacity & (capacity - 1)) !== 0) throw new RangeError('ring capacity must be a power of two');
    return new SharedArrayBuffer(HEADER_BYTES + capacity);
  }

  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.ctl = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.data = new Uint8Array(buffer, HEADER_BYTES);
    this.mask = this.data.length - 1;
  }

  /** Producer: appends bytes; returns how many fit (the rest is counted as dropped). */
  push(bytes: Uint8Array): number {
    while (Atomics.compareExchange(this.ctl, PUSH_LOCK, 0, 1) !== 0) { /* another vCPU is mid-push */ }
    try {
      return this.pushLocked(bytes);
    } finally {
      Atomics.store(this.ctl, PUSH_LOCK, 0);
    }
  }

  private pushLocked(bytes: Uint8Array): number {
    const head = Atomics.load(this.ctl, HEAD);
    const free = this.data.length - ((head - Atomics.load(this.ctl, TAIL)) | 0);
    const n = Math.min(free, bytes.length);
    for (let i = 0; i < n; i++) this.data[(head + i) & this.mask] = bytes[i]!;
    Atomics.store(this.ctl, HEAD, (head + n) | 0);
    if (n < bytes.length) Atomics.add(this.ctl, DROPPED, bytes.length - n);
    Atomics.add(this.ctl, SEQ, 1);
    Atomics.notify(this.ctl, SEQ);
    return n;
  }

  /** Consumer: takes every pending byte. */
  drain(): Uint8Array {
    const tail = Atomics.load(this.ctl, TAIL);
    const n = (Atomics.load(this.ctl, HEAD) - tail) | 0;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.data[(tail + i) & this.mask]!;
    Atomics.store(this.ctl, TAIL, (tail + n) | 0);
    return out;
  }

  /** Bytes dropped because the ring was full. */
  get dropped(): number {
    return Atomics.load(this.ctl, DROPPED);
  }

  /** The value to pass to Atomics.wait/waitAsync on `seqArray()[seqIndex]`. */
  get seq(): number {
    return Atomics.load(this.ctl, SEQ);
  }
  seqArray(): Int32Array {
    return this.ctl;
  }
  readonly seqIndex = SEQ;
}
