/**
 * The virtio-mmio transport state (virtio 1.1 §4.2.2 registers) in a SharedArrayBuffer, so that
 * every thread touching one device sees one register file:
 *
 * - vCPU threads serve register reads/writes (MmioTransport, mmio.ts) on their MMIO exits;
 *   several vCPUs may access the same device at once.
 * - the device worker reads the negotiated queue placement at activation (`activation()`) and
 *   raises interrupts (`MmioInterrupt`), which set InterruptStatus bits.
 *
 * Layout: named Int32 slots (MMIO_SLOT), then MMIO_QUEUE_SLOT_COUNT slots per queue
 * (MMIO_QUEUE_SLOT, at `queueSlot(q, field)`). Invariants:
 * 1. Every slot access is an Atomics load/store/RMW, so single-slot reads need no lock.
 * 2. Updates spanning several slots, or checking one slot before writing another (status
 *    transitions, queue field writes gated on status, reset, activation snapshot), run under
 *    the spin lock in MMIO_SLOT.LOCK. Critical sections are a bounded handful of slot accesses;
 *    no callback runs while the lock is held.
 * 3. InterruptStatus is only changed by Atomics.or / Atomics.and (device worker and vCPUs race
 *    on it by design, as Firecracker's AtomicU32 `irq_status`).
 * A worker must not be terminated inside a critical section (it would die holding the lock).
 */
import { DeviceStateError } from '../../errors.js';
import {
  VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_FEATURES_PAGE_BITS, VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_MAGIC,
} from './constants.js';
import { VIRTIO_INTERRUPT, type VirtioActivation, type VirtioInterrupt, type VirtioInterruptType } from './device.js';
import type { QueueConfig } from './queue.js';

/** Named Int32 slots of the transport state. */
export const MMIO_SLOT = {
  /** Spin lock word: 0 free, 1 held. */
  LOCK: 0,
  /** MMIO_STATE_TAG once initialised, so a buffer of another layout is refused. */
  TAG: 1,
  /** Number of queues the layout holds. */
  NUM_QUEUES: 2,
  /** Device status (VIRTIO_CONFIG_S_* bits). */
  STATUS: 3,
  /** DeviceFeaturesSel. */
  DEVICE_FEATURES_SEL: 4,
  /** DriverFeaturesSel. */
  DRIVER_FEATURES_SEL: 5,
  /** QueueSel. */
  QUEUE_SEL: 6,
  /** InterruptStatus (VIRTIO_MMIO_INT_* bits). */
  INTERRUPT_STATUS: 7,
  /** ConfigGeneration (stays 0). */
  CONFIG_GENERATION: 8,
  /** Acked driver features, bits 0..31. */
  DRIVER_FEATURES_LO: 9,
  /** Acked driver features, bits 32..63. */
  DRIVER_FEATURES_HI: 10,
  /** 1 while the device is activated (DRIVER_OK accepted and not reset since). */
  ACTIVATED: 11,
  /**
   * Interrupts raised for this device since it was created, wrapping at 2^32 (metrics
   * `interrupts.triggers`, counted where Firecracker's IrqTrigger::trigger counts them,
   * devices/virtio/transport/mmio.rs); never reset with the device.
   */
  INTERRUPT_TRIGGERS: 12,
} as const;

/** Per-queue slots, relative to `queueSlot(q, 0)`. */
export const MMIO_QUEUE_SLOT = {
  /** QueueNum (the size the driver chose). */
  NUM: 0,
  /** QueueReady. */
  READY: 1,
  /** QueueDescLow / QueueDescHigh. */
  DESC_LO: 2,
  DESC_HI: 3,
  /** QueueAvailLow / QueueAvailHigh (driver area). */
  AVAIL_LO: 4,
  AVAIL_HI: 5,
  /** QueueUsedLow / QueueUsedHigh (device area). */
  USED_LO: 6,
  USED_HI: 7,
} as const;

/** Slots per queue. */
export const MMIO_QUEUE_SLOT_COUNT = 8;
/** First per-queue slot. */
const MMIO_QUEUE_SLOTS_START = 13;
/** Tag stored in MMIO_SLOT.TAG: the MMIO magic value. */
const MMIO_STATE_TAG = VIRTIO_MMIO_MAGIC | 0;
/** Lock word values. */
const UNLOCKED = 0;
const LOCKED = 1;
/** Compare-exchange attempts before a waiter starts sleeping between attempts. */
const SPIN_LIMIT = 256;
/** Sleep between attempts once spinning failed, ms (the holder never blocks: this is rare). */
const LOCK_BACKOFF_MS = 0.05;
/** 2^32, to join two u32 halves of an address. */
const U32_MODULUS = 2 ** 32;

/** One thread's view of a transport state buffer. */
export class MmioState {
  /** Int32 view of the whole buffer; index with MMIO_SLOT / queueSlot. */
  readonly i32: Int32Array;
  /** Number of queues. */
  readonly numQueues: number;

  /** Attaches to a buffer made by `MmioState.create`; throws DeviceStateError otherwise. */
  constructor(readonly buffer: SharedArrayBuffer) {
    if (!(buffer instanceof SharedArrayBuffer)) throw new DeviceStateError('virtio-mmio state must be a SharedArrayBuffer');
    if (buffer.byteLength < MMIO_QUEUE_SLOTS_START * Int32Array.BYTES_PER_ELEMENT) {
      throw new DeviceStateError(`virtio-mmio state of ${buffer.byteLength} bytes is too small`);
    }
    this.i32 = new Int32Array(buffer);
    if (Atomics.load(this.i32, MMIO_SLOT.TAG) !== MMIO_STATE_TAG) throw new DeviceStateError('buffer does not hold virtio-mmio state');
    this.numQueues = Atomics.load(this.i32, MMIO_SLOT.NUM_QUEUES);
    if (this.i32.length < mmioStateSlots(this.numQueues)) throw new DeviceStateError('virtio-mmio state shorter than its queue count');
  }

  /** A fresh, reset state buffer for a device with `numQueues` queues (made once, on main). */
  static create(numQueues: number): SharedArrayBuffer {
    const buffer = new SharedArrayBuffer(mmioStateSlots(numQueues) * Int32Array.BYTES_PER_ELEMENT);
    const i32 = new Int32Array(buffer);
    Atomics.store(i32, MMIO_SLOT.NUM_QUEUES, numQueues);
    Atomics.store(i32, MMIO_SLOT.TAG, MMIO_STATE_TAG);
    return buffer;
  }

  /**
   * A buffer holding a snapshot's register file (`save`): the same layout, the lock free.
   * Refuses values that are not a register file of `numQueues` queues (the device the
   * configuration describes), so a state file cannot hand a device another's layout.
   */
  static restore(values: readonly number[], numQueues: number): SharedArrayBuffer {
    if (values.length !== mmioStateSlots(numQueues) || values[MMIO_SLOT.TAG] !== MMIO_STATE_TAG || values[MMIO_SLOT.NUM_QUEUES] !== numQueues ||
      !values.every((v) => Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31)) {
      throw new DeviceStateError(`saved virtio-mmio state is not a register file of ${numQueues} queue${numQueues === 1 ? '' : 's'}`);
    }
    const buffer = new SharedArrayBuffer(values.length * Int32Array.BYTES_PER_ELEMENT);
    const i32 = new Int32Array(buffer);
    i32.set(values);
    Atomics.store(i32, MMIO_SLOT.LOCK, UNLOCKED);
    return buffer;
  }

  /** The register file as plain numbers, read under the lock (snapshot; `restore` takes it back). */
  save(): number[] {
    this.lock();
    try {
      const out = Array.from(this.i32);
      out[MMIO_SLOT.LOCK] = UNLOCKED;
      return out;
    } finally {
      this.unlock();
    }
  }

  /** Takes the state lock: compare-exchange spin, then short sleeps between attempts. */
  lock(): void {
    for (let spin = 0; Atomics.compareExchange(this.i32, MMIO_SLOT.LOCK, UNLOCKED, LOCKED) !== UNLOCKED; spin++) {
      if (spin >= SPIN_LIMIT) Atomics.wait(this.i32, MMIO_SLOT.LOCK, LOCKED, LOCK_BACKOFF_MS);
    }
  }

  /** Releases the state lock. */
  unlock(): void {
    Atomics.store(this.i32, MMIO_SLOT.LOCK, UNLOCKED);
  }

  /** Reads a slot. */
  load(slot: number): number {
    return Atomics.load(this.i32, slot);
  }

  /** Writes a slot (multi-slot updates: under the lock). */
  store(slot: number, value: number): void {
    Atomics.store(this.i32, slot, value);
  }

  /** Index of field `field` (MMIO_QUEUE_SLOT) of queue `q`. */
  queueSlot(q: number, field: number): number {
    return MMIO_QUEUE_SLOTS_START + q * MMIO_QUEUE_SLOT_COUNT + field;
  }

  /** Queue `q`'s placement as the driver wrote it (call under the lock for a consistent view). */
  queueConfig(q: number): QueueConfig & { readonly ready: boolean } {
    const addr = (lo: number, hi: number) =>
      (this.load(this.queueSlot(q, hi)) >>> 0) * U32_MODULUS + (this.load(this.queueSlot(q, lo)) >>> 0);
    return {
      size: this.load(this.queueSlot(q, MMIO_QUEUE_SLOT.NUM)),
      ready: this.load(this.queueSlot(q, MMIO_QUEUE_SLOT.READY)) === 1,
      descTable: addr(MMIO_QUEUE_SLOT.DESC_LO, MMIO_QUEUE_SLOT.DESC_HI),
      availRing: addr(MMIO_QUEUE_SLOT.AVAIL_LO, MMIO_QUEUE_SLOT.AVAIL_HI),
      usedRing: addr(MMIO_QUEUE_SLOT.USED_LO, MMIO_QUEUE_SLOT.USED_HI),
    };
  }

  /** The acked driver features (64 bits). */
  ackedFeatures(): bigint {
    const lo = BigInt(this.load(MMIO_SLOT.DRIVER_FEATURES_LO) >>> 0);
    const hi = BigInt(this.load(MMIO_SLOT.DRIVER_FEATURES_HI) >>> 0);
    return (hi << BigInt(VIRTIO_FEATURES_PAGE_BITS)) | lo;
  }

  /** True while the device is activated. */
  activated(): boolean {
    return this.load(MMIO_SLOT.ACTIVATED) === 1;
  }

  /**
   * The negotiated features and queue placement, read under the lock (device worker, at
   * activation; the same value the transport passed to `onActivate`).
   */
  activation(): VirtioActivation {
    this.lock();
    try {
      return this.activationLocked();
    } finally {
      this.unlock();
    }
  }

  /** `activation()` for a caller already holding the lock. */
  activationLocked(): VirtioActivation {
    const queues: QueueConfig[] = [];
    for (let q = 0; q < this.numQueues; q++) {
      const { size, descTable, availRing, usedRing } = this.queueConfig(q);
      queues.push({ size, descTable, availRing, usedRing });
    }
    return { ackedFeatures: this.ackedFeatures(), queues };
  }
}

/** Interrupts raised for the device of `state` so far, modulo 2^32 (MMIO_SLOT.INTERRUPT_TRIGGERS). */
export function interruptTriggers(state: SharedArrayBuffer): number {
  return Atomics.load(new Int32Array(state), MMIO_SLOT.INTERRUPT_TRIGGERS) >>> 0;
}

/** Int32 slots a state for `numQueues` queues needs. */
export function mmioStateSlots(numQueues: number): number {
  return MMIO_QUEUE_SLOTS_START + numQueues * MMIO_QUEUE_SLOT_COUNT;
}

/**
 * The device worker's VirtioInterrupt for an MMIO transport: sets InterruptStatus in the
 * shared state, then calls `signal(bit)` (the actor writes the device's irqfd).
 *
 * Every trigger signals, even while its bit is still set. Skipping those (one edge per rise
 * of the bit, as a level-triggered line behaves) loses the device for good when the guest
 * misses the one edge: KVM's IOAPIC drops an edge on a masked pin, and Linux masks an edge
 * pin while it moves the IRQ to another vCPU (kernel/irq/migration.c `__irq_move_irq`). With
 * that skipping, a two-vCPU guest's network stalled in the KVM net test (2026-12-07), most
 * likely so. A later trigger is what recovers from such a loss. Batching the writes of one
 * loop turn is the actor's business (src/actors/virtio/transport.ts
 * `deferredTransportInterrupt`).
 */
export class MmioInterrupt implements VirtioInterrupt {
  private readonly state: MmioState;

  /**
   * `signal` raises the interrupt: the MMIO actors write the device's one irqfd; the PCI
   * transport (pci-state.ts `pciInterrupt`) picks the MSI-X vector of `type` and `queue`.
   */
  constructor(state: MmioState | SharedArrayBuffer, private readonly signal: (bit: number, type: VirtioInterruptType, queue: number | undefined) => void) {
    this.state = state instanceof MmioState ? state : new MmioState(state);
  }

  /** ORs the reason into InterruptStatus (the PCI ISR too), counts the trigger and raises the interrupt. */
  trigger(type: VirtioInterruptType, queue?: number): void {
    const bit = type === VIRTIO_INTERRUPT.VRING ? VIRTIO_MMIO_INT_VRING : VIRTIO_MMIO_INT_CONFIG;
    Atomics.or(this.state.i32, MMIO_SLOT.INTERRUPT_STATUS, bit);
    Atomics.add(this.state.i32, MMIO_SLOT.INTERRUPT_TRIGGERS, 1);
    this.signal(bit, type, queue);
  }

  /**
   * After a snapshot restore: raises the interrupt again when InterruptStatus holds a bit.
   * The saved bit may stand for an edge the guest never took (its injection was still in
   * flight at the save), and a device with nothing more in flight (a block device whose last
   * request completed) would never trigger again; a spurious interrupt is harmless.
   */
  resend(): void {
    const status = this.state.load(MMIO_SLOT.INTERRUPT_STATUS);
    if (status & VIRTIO_MMIO_INT_VRING) this.signal(VIRTIO_MMIO_INT_VRING, VIRTIO_INTERRUPT.VRING, 0);
    else if (status & VIRTIO_MMIO_INT_CONFIG) this.signal(VIRTIO_MMIO_INT_CONFIG, VIRTIO_INTERRUPT.CONFIG, undefined);
  }

  /** Sets NEEDS_RESET (only while activated, once) and raises a config interrupt (§2.1.2). */
  needsReset(): void {
    const s = this.state;
    let raise = false;
    s.lock();
    const status = s.load(MMIO_SLOT.STATUS);
    if (s.activated() && (status & VIRTIO_CONFIG_S_DRIVER_OK) && !(status & VIRTIO_CONFIG_S_NEEDS_RESET)) {
      s.store(MMIO_SLOT.STATUS, status | VIRTIO_CONFIG_S_NEEDS_RESET);
      raise = true;
    }
    s.unlock();
    if (raise) this.trigger(VIRTIO_INTERRUPT.CONFIG);
  }
}
