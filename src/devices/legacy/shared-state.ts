/**
 * Device state that lives in a SharedArrayBuffer, for the legacy devices (serial, i8042) that
 * several threads drive at once: every vCPU worker handles its own port-IO exits against the
 * device directly (no postMessage per exit, docs/design.md, Threads and actors), while the main thread
 * feeds input, drains output and injects keys. Each thread builds its own device object over
 * the same buffer; this module gives those objects a common shape:
 *
 *   Int32 slots:  [LOCK, TAG, <device slots...>]   (named indices, no positional arrays)
 *   then byte regions (FIFOs, rings), each at a fixed offset.
 *
 * Invariants (every legacy device relies on them):
 * 1. Every read-modify-write of registers, FIFOs and rings happens between `lock()` and
 *    `unlock()` on the LOCK slot. The lock's Atomics operations order the plain (non-atomic)
 *    slot and byte accesses made inside it, so they are data-race-free under the JS memory
 *    model.
 * 2. Counters (metrics) are only ever changed with `Atomics.add` and may be read at any time
 *    without the lock; they wrap modulo 2^32 (a metrics writer takes deltas modulo 2^32).
 * 3. Critical sections are a bounded handful of loads and stores: no callbacks (interrupts,
 *    reset, boot-complete) run while the lock is held, so a callback may re-enter the device.
 *    A guest cannot make a critical section longer: its accesses are one byte each.
 * 4. TAG is 0 in a fresh (zeroed) buffer; the first thread to attach initialises the state
 *    under the lock and stores the layout's tag, so a buffer handed to the wrong device model
 *    is refused instead of misread.
 *
 * A worker must not be terminated while inside a device access (it would die holding the
 * lock): vCPU workers leave their KVM_RUN loop before they are stopped.
 */
import { DeviceStateError } from '../../errors.js';

/** Slot of the lock word in every device state: 0 free, 1 held, 2 held with waiters. */
export const STATE_LOCK_SLOT = 0;
/** Slot of the layout tag: 0 until the state is initialised, then the layout's tag. */
export const STATE_TAG_SLOT = 1;

const UNLOCKED = 0;
const LOCKED = 1;
const LOCKED_CONTENDED = 2;
/** Compare-exchange attempts before a contended lock falls back to sleeping. */
const SPIN_LIMIT = 128;

/** Where a byte region sits in a state buffer. */
export interface StateRegion {
  readonly offset: number;
  readonly length: number;
}

/**
 * A device state layout: named Int32 slot indices (LOCK and TAG first), then byte regions.
 * `tag` is a non-zero constant unique to the device model.
 */
export interface StateLayout<S extends string, R extends string> {
  readonly name: string;
  readonly tag: number;
  readonly slots: { readonly [K in S]: number };
  readonly regions: { readonly [K in R]: StateRegion };
  /** Bytes a state buffer for this layout must have. */
  readonly byteLength: number;
}

/**
 * Defines a layout: `slotNames` get consecutive Int32 indices after LOCK and TAG, regions
 * follow in declaration order, each 8-byte aligned. Called once per device module, at load.
 */
export function defineStateLayout<S extends string, R extends string>(
  name: string,
  tag: number,
  slotNames: readonly S[],
  regionSizes: { readonly [K in R]: number },
): StateLayout<S, R> {
  const slots = {} as { [K in S]: number };
  slotNames.forEach((s, i) => {
    slots[s] = STATE_TAG_SLOT + 1 + i;
  });
  let offset = align8((STATE_TAG_SLOT + 1 + slotNames.length) * Int32Array.BYTES_PER_ELEMENT);
  const regions = {} as { [K in R]: StateRegion };
  for (const r of Object.keys(regionSizes) as R[]) {
    regions[r] = { offset, length: regionSizes[r] };
    offset = align8(offset + regionSizes[r]);
  }
  return { name, tag, slots, regions, byteLength: offset };
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Whether this thread may block in Atomics.wait (Node: every thread; browsers: not main). */
let canWait: boolean | undefined;

/**
 * Acquires the lock word `i32[index]` (Drepper's three-state futex mutex, "Futexes Are
 * Tricky" §mutex3): a fast compare-exchange, a short bounded spin, then Atomics.wait on the
 * word marked contended. Where Atomics.wait is refused the loop keeps spinning; critical
 * sections are tiny so either way the wait is short.
 */
export function lockWord(i32: Int32Array, index: number): void {
  let c = Atomics.compareExchange(i32, index, UNLOCKED, LOCKED);
  if (c === UNLOCKED) return;
  for (let spin = 0; spin < SPIN_LIMIT; spin++) {
    c = Atomics.compareExchange(i32, index, UNLOCKED, LOCKED);
    if (c === UNLOCKED) return;
  }
  if (c !== LOCKED_CONTENDED) c = Atomics.exchange(i32, index, LOCKED_CONTENDED);
  while (c !== UNLOCKED) {
    if (canWait !== false) {
      try {
        Atomics.wait(i32, index, LOCKED_CONTENDED);
        canWait = true;
      } catch {
        canWait = false;
      }
    }
    c = Atomics.exchange(i32, index, LOCKED_CONTENDED);
  }
}

/** Releases a lock word taken with `lockWord`, waking one sleeper if any is marked. */
export function unlockWord(i32: Int32Array, index: number): void {
  if (Atomics.exchange(i32, index, UNLOCKED) === LOCKED_CONTENDED) Atomics.notify(i32, index, 1);
}

/**
 * One thread's view of a device state buffer. Construct one per thread over the same
 * SharedArrayBuffer; `init` runs exactly once per buffer (under the lock, by whichever thread
 * attaches first) and must set every register to its reset value.
 */
export class SharedState<S extends string, R extends string> {
  /** Int32 view of the whole buffer; index it with `layout.slots`. */
  readonly i32: Int32Array;
  /** Byte view of the whole buffer; regions are addressed through `region()`. */
  readonly u8: Uint8Array;

  /** Throws DeviceStateError when `buffer` is not shared, too small, or another device's. */
  constructor(
    readonly layout: StateLayout<S, R>,
    readonly buffer: SharedArrayBuffer,
    init: (state: SharedState<S, R>) => void,
  ) {
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw new DeviceStateError(`${layout.name} state must be a SharedArrayBuffer`);
    }
    if (buffer.byteLength < layout.byteLength) {
      throw new DeviceStateError(`${layout.name} state needs ${layout.byteLength} bytes, got ${buffer.byteLength}`);
    }
    this.i32 = new Int32Array(buffer, 0, layout.byteLength >> 2);
    this.u8 = new Uint8Array(buffer, 0, layout.byteLength);
    this.lock();
    try {
      const tag = this.i32[STATE_TAG_SLOT]!;
      if (tag === 0) {
        init(this);
        this.i32[STATE_TAG_SLOT] = layout.tag;
      } else if (tag !== layout.tag) {
        throw new DeviceStateError(`buffer holds another device's state (tag 0x${(tag >>> 0).toString(16)}), not ${layout.name}`);
      }
    } finally {
      this.unlock();
    }
  }

  /** A zeroed buffer of the right size for `layout` (attach devices to it to initialise). */
  static allocate(layout: StateLayout<string, string>): SharedArrayBuffer {
    return new SharedArrayBuffer(layout.byteLength);
  }

  /** A byte view of one region (create once, keep: views are not free). */
  region(name: R): Uint8Array {
    const r = this.layout.regions[name];
    return new Uint8Array(this.buffer, r.offset, r.length);
  }

  /** Takes the state lock (invariant 1). */
  lock(): void {
    lockWord(this.i32, STATE_LOCK_SLOT);
  }

  /** Releases the state lock. */
  unlock(): void {
    unlockWord(this.i32, STATE_LOCK_SLOT);
  }

  /** Adds to a counter slot; lock not required (invariant 2). */
  count(slot: number, n = 1): void {
    Atomics.add(this.i32, slot, n);
  }

  /** Reads a counter slot as an unsigned 32-bit value; lock not required. */
  counter(slot: number): number {
    return Atomics.load(this.i32, slot) >>> 0;
  }

  /** Increments a sequence slot and wakes every Atomics.wait/waitAsync on it. */
  bump(slot: number): void {
    Atomics.add(this.i32, slot, 1);
    Atomics.notify(this.i32, slot);
  }
}

/** The Int32 word a host thread can `Atomics.waitAsync(array, index, lastSeen)` on. */
export interface WaitSlot {
  readonly array: Int32Array;
  readonly index: number;
}
