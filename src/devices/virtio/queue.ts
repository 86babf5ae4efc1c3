/**
 * The device side of a split virtqueue (virtio 1.1 §2.6) over GuestMemory.
 *
 * The guest driver owns the descriptor table and the available ring; the device owns the used
 * ring. Everything read from guest memory is hostile: `pop()` validates a whole chain before a
 * device sees it and returns a VirtqueueError *value* for each kind of defect, never throws:
 *
 *   avail.idx more than `size` ahead ........ VIRTQ_AVAIL_INDEX_INVALID (queue marked broken)
 *   head / next index >= size ............... VIRTQ_DESC_INDEX_OUT_OF_RANGE
 *   a descriptor visited twice .............. VIRTQ_DESC_LOOP (a chain holding more than `size`
 *                                             descriptors, or an indirect table's entries, must
 *                                             revisit one)
 *   VIRTQ_DESC_F_INDIRECT, not negotiated ... VIRTQ_DESC_INDIRECT
 *   an indirect descriptor with NEXT, a table
 *   not 1..size whole descriptors or outside
 *   RAM, INDIRECT inside a table ............ VIRTQ_INDIRECT_INVALID (§2.6.5.3.1)
 *   more than 2^32 bytes in total ........... VIRTQ_CHAIN_TOO_LONG (§2.6.5)
 *   a buffer not inside guest RAM ........... VIRTQ_DESC_OUT_OF_RAM
 *
 * Structure is checked first (walk the `next` links), buffers second. For a defect inside a
 * chain the head was consumed and the error carries it: the device completes it with used
 * length 0 (`addUsed(err.head, 0)`), as Firecracker does for unparsable requests. A broken
 * queue returns the same error from every later `pop()`; the device should stop and ask for
 * a reset (VIRTIO_CONFIG_S_NEEDS_RESET).
 *
 * Memory ordering. The rings live in a SharedArrayBuffer that guest vCPUs write concurrently.
 * Plain DataView accesses are unordered in the JS memory model, so the points the spec asks
 * for barriers (§2.6.13 "memory barrier" steps) use `memoryFence()`: an Atomics RMW, which V8
 * compiles to a locked instruction (a full barrier on x86) and never reorders accesses around.
 *
 * Dirty pages (docs/design.md, "Snapshot memory files"). Device writes to guest RAM are
 * invisible to KVM's dirty log, so with a dirty bitmap (GuestMemory.markDirty) the queue marks
 * what the device may write: every device-writable buffer of a chain when it is popped (a
 * superset: the device may write less) and again when the chain is completed in `addUsed`,
 * after the device wrote it, so a snapshot taken between the pop and the write (an RX buffer
 * can wait long for a frame) still finds the page in the next Diff; plus the used ring words
 * it writes (element, idx, flags, avail_event). Firecracker marks queue memory dirty after each
 * snapshot instead (device_manager mark_virtio_queue_memory_dirty, src/vmm/src/persist.rs).
 *
 * Single owner: one Queue object per queue, used by one thread (the device worker).
 */
import { VirtqueueError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import {
  VIRTQ_AVAIL_ELEM_SIZE, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_CHAIN_MAX_BYTES, VIRTQ_DESC_ADDR, VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_FLAGS, VIRTQ_DESC_LEN, VIRTQ_DESC_NEXT, VIRTQ_DESC_SIZE,
  VIRTQ_IDX_MASK, VIRTQ_IDX_MODULUS, VIRTQ_MAX_SIZE, VIRTQ_RING_ENTRIES, VIRTQ_RING_FLAGS, VIRTQ_RING_IDX,
  VIRTQ_USED_ELEM_ID, VIRTQ_USED_ELEM_LEN, VIRTQ_USED_ELEM_SIZE, VIRTQ_USED_F_NO_NOTIFY,
  availRingSize, descTableSize, usedRingSize,
} from './constants.js';

/** Where the driver put a queue and how big it is (from the transport, at activation). */
export interface QueueConfig {
  /** Number of entries (a power of two, validated by the transport). */
  readonly size: number;
  /** Guest physical address of the descriptor table. */
  readonly descTable: number;
  /** Guest physical address of the available ring ("driver area"). */
  readonly availRing: number;
  /** Guest physical address of the used ring ("device area"). */
  readonly usedRing: number;
}

/** One validated descriptor of a chain (§2.6.5 `struct virtq_desc`, flags decoded). */
export interface ChainDescriptor {
  /** Index in the descriptor table. */
  readonly index: number;
  /** Guest physical address of the buffer; [addr, addr + len) is inside guest RAM. */
  readonly addr: number;
  /** Buffer length in bytes. */
  readonly len: number;
  /** VIRTQ_DESC_F_WRITE: the device may write the buffer (otherwise it may only read it). */
  readonly writable: boolean;
}

/** A validated descriptor chain taken from the available ring. */
export interface DescriptorChain {
  /** Head index: the id to put in the used ring. */
  readonly head: number;
  /** The descriptors in chain order (at least one). */
  readonly descriptors: readonly ChainDescriptor[];
  /** Sum of the descriptor lengths (at most 2^32). */
  readonly totalLen: number;
}

/** Options fixed at activation from the negotiated features. */
export interface QueueOptions {
  /** VIRTIO_F_RING_EVENT_IDX was negotiated. */
  readonly eventIdx: boolean;
  /**
   * VIRTIO_F_RING_INDIRECT_DESC was negotiated: a descriptor may point to a table of further
   * descriptors (§2.6.5.3). Without it such a descriptor is VIRTQ_DESC_INDIRECT.
   */
  readonly indirect?: boolean;
  /** A restored queue continues from these indices (a snapshot's QueueIndices) instead of 0. */
  readonly restore?: QueueIndices;
  /** The queue's index in its device (which MSI-X vector a PCI transport raises for it); default 0. */
  readonly index?: number;
}

/**
 * The device-side indices of a split queue, which a snapshot keeps: everything else (the
 * descriptor table, the avail and used rings with their idx fields) lives in guest RAM and is
 * saved with it (virtio 1.1 §2.6). Free-running u16 values.
 */
export interface QueueIndices {
  readonly nextAvail: number;
  readonly nextUsed: number;
  /** Used entries published since the last notification decision (EVENT_IDX, §2.6.7.2). */
  readonly numAdded: number;
}

/** used.flags, used.idx and avail_event are 16-bit fields (§2.6.8). */
const VIRTQ_IDX_BYTES = Uint16Array.BYTES_PER_ELEMENT;

const fenceWord = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));

/** A full memory barrier for accesses to guest memory (see the module comment). */
export function memoryFence(): void {
  Atomics.add(fenceWord, 0, 0);
}

/** Visit marks are u32; when the counter reaches this, marks are cleared and restart at 1. */
const MARK_LIMIT = 2 ** 32 - 1;

/** 2^32, to assemble a 64-bit descriptor address from two u32 halves without bigint. */
const U32_MODULUS = 2 ** 32;

function viewOf(mem: GuestMemory, gpa: number, len: number): DataView | undefined {
  const s = mem.slice(gpa, len);
  return s instanceof Uint8Array ? new DataView(s.buffer, s.byteOffset, s.byteLength) : undefined;
}

/** The 64-bit buffer address of the descriptor at byte `base` of `table`, from two u32 halves. */
function descriptorAddr(table: DataView, base: number): number {
  const lo = table.getUint32(base + VIRTQ_DESC_ADDR, true);
  const hi = table.getUint32(base + VIRTQ_DESC_ADDR + Uint32Array.BYTES_PER_ELEMENT, true);
  // Above 2^53 the sum is inexact but still unsafe, so GuestMemory.contains refuses it.
  return hi * U32_MODULUS + lo;
}

/**
 * Appends descriptor `i` of `table` (the ring's descriptor table or an indirect table) to
 * `out` and returns the chain's new total length, or VIRTQ_CHAIN_TOO_LONG past 2^32 bytes.
 */
function takeDescriptor(table: DataView, i: number, flags: number, head: number, out: ChainDescriptor[], total: number): number | VirtqueueError {
  const base = VIRTQ_DESC_SIZE * i;
  const len = table.getUint32(base + VIRTQ_DESC_LEN, true);
  const sum = total + len;
  if (sum > VIRTQ_CHAIN_MAX_BYTES) {
    return new VirtqueueError('VIRTQ_CHAIN_TOO_LONG', `chain ${head}: more than 2^32 bytes`, head, i);
  }
  out.push({ index: i, addr: descriptorAddr(table, base), len, writable: (flags & VIRTQ_DESC_F_WRITE) !== 0 });
  return sum;
}

/** The device side of one split virtqueue. */
export class Queue {
  /** Number of entries. */
  readonly size: number;
  /** VIRTIO_F_RING_EVENT_IDX in use (used_event / avail_event instead of the ring flags). */
  readonly eventIdx: boolean;
  /** The queue's index in its device (QueueOptions.index). */
  readonly index: number;
  /** VIRTIO_F_RING_INDIRECT_DESC in use (QueueOptions.indirect). */
  readonly indirect: boolean;
  private readonly mem: GuestMemory;
  private readonly desc: DataView;
  private readonly avail: DataView;
  private readonly used: DataView;
  /** Guest physical address of the used ring (for dirty marking). */
  private readonly usedGpa: number;
  /** With a dirty bitmap: the descriptors of each popped chain by head, re-marked at addUsed. */
  private readonly inflight: (readonly ChainDescriptor[] | undefined)[] | undefined;
  /** Offset of used_event in the avail ring and of avail_event in the used ring. */
  private readonly usedEventOffset: number;
  private readonly availEventOffset: number;
  private nextAvailIdx = 0;
  private nextUsedIdx = 0;
  /** Used entries published since the last needsNotification(). */
  private numAdded = 0;
  private brokenBy: VirtqueueError | undefined;
  /** Loop detection: marks[i] === mark when descriptor i was visited in the current walk. */
  private readonly marks: Uint32Array;
  private mark = 0;

  private constructor(mem: GuestMemory, size: number, views: [DataView, DataView, DataView], usedGpa: number, opts: QueueOptions) {
    this.mem = mem;
    this.usedGpa = usedGpa;
    this.inflight = mem.tracksDirty ? new Array<readonly ChainDescriptor[] | undefined>(size) : undefined;
    this.size = size;
    this.eventIdx = opts.eventIdx;
    this.index = opts.index ?? 0;
    this.indirect = opts.indirect ?? false;
    [this.desc, this.avail, this.used] = views;
    this.usedEventOffset = VIRTQ_RING_ENTRIES + VIRTQ_AVAIL_ELEM_SIZE * size;
    this.availEventOffset = VIRTQ_RING_ENTRIES + VIRTQ_USED_ELEM_SIZE * size;
    this.marks = new Uint32Array(size);
    if (opts.restore) {
      // Masked: a damaged snapshot can give odd numbers but never indices outside u16 (the
      // state file is CRC-checked, so this is defence in depth, not validation).
      this.nextAvailIdx = opts.restore.nextAvail & VIRTQ_IDX_MASK;
      this.nextUsedIdx = opts.restore.nextUsed & VIRTQ_IDX_MASK;
      this.numAdded = opts.restore.numAdded & VIRTQ_IDX_MASK;
    }
  }

  /** The indices a snapshot keeps (restored through QueueOptions.restore). */
  indices(): QueueIndices {
    return { nextAvail: this.nextAvailIdx, nextUsed: this.nextUsedIdx, numAdded: this.numAdded };
  }

  /**
   * Builds the queue over guest memory. Fails (as a value) when the size is not a power of two
   * in 1..VIRTQ_MAX_SIZE or when a ring is not inside one RAM region.
   */
  static create(mem: GuestMemory, config: QueueConfig, opts: QueueOptions): Queue | VirtqueueError {
    const n = config.size;
    if (!Number.isInteger(n) || n < 1 || n > VIRTQ_MAX_SIZE || (n & (n - 1)) !== 0) {
      return new VirtqueueError('VIRTQ_INVALID_CONFIG', `queue size ${n} is not a power of two in 1..${VIRTQ_MAX_SIZE}`);
    }
    const desc = viewOf(mem, config.descTable, descTableSize(n));
    const avail = viewOf(mem, config.availRing, availRingSize(n));
    const used = viewOf(mem, config.usedRing, usedRingSize(n));
    if (!desc || !avail || !used) {
      return new VirtqueueError('VIRTQ_RING_OUT_OF_RAM', `queue of ${n} entries: a ring is outside guest RAM`);
    }
    return new Queue(mem, n, [desc, avail, used], config.usedRing, opts);
  }

  /** Index of the next available-ring entry the device will take (free-running u16). */
  get nextAvail(): number {
    return this.nextAvailIdx;
  }

  /** Index of the next used-ring entry the device will fill (free-running u16). */
  get nextUsed(): number {
    return this.nextUsedIdx;
  }

  /** The malicious-driver error that broke this queue, if any. */
  get broken(): VirtqueueError | undefined {
    return this.brokenBy;
  }

  /** avail.idx as the driver last published it. */
  private availIdx(): number {
    return this.avail.getUint16(VIRTQ_RING_IDX, true);
  }

  /** Chains the driver has made available and the device has not taken (0 on a broken queue). */
  len(): number {
    const pending = (this.availIdx() - this.nextAvailIdx) & VIRTQ_IDX_MASK;
    return pending > this.size ? 0 : pending;
  }

  /**
   * Takes the next available chain: a validated DescriptorChain, a VirtqueueError (see the
   * module comment), or null when the ring is empty.
   */
  pop(): DescriptorChain | VirtqueueError | null {
    if (this.brokenBy) return this.brokenBy;
    const availIdx = this.availIdx();
    const pending = (availIdx - this.nextAvailIdx) & VIRTQ_IDX_MASK;
    if (pending === 0) return null;
    if (pending > this.size) {
      // §2.6.6: the driver can make at most `size` chains available at once. Anything else is
      // a malicious or corrupt driver; Firecracker treats it as fatal (InvalidAvailIdx).
      this.brokenBy = new VirtqueueError(
        'VIRTQ_AVAIL_INDEX_INVALID',
        `avail.idx ${availIdx} is ${pending} entries past the device's ${this.nextAvailIdx}, queue size ${this.size}`,
      );
      return this.brokenBy;
    }
    // Read the ring entry only after avail.idx (§2.6.13: the driver writes the entry, a barrier, then idx).
    memoryFence();
    const slot = this.nextAvailIdx % this.size;
    const head = this.avail.getUint16(VIRTQ_RING_ENTRIES + VIRTQ_AVAIL_ELEM_SIZE * slot, true);
    this.nextAvailIdx = (this.nextAvailIdx + 1) & VIRTQ_IDX_MASK;
    return this.walk(head);
  }

  /**
   * With EVENT_IDX: pops, and when the ring is empty publishes avail_event (asking the driver
   * to notify for the next chain) and re-checks, closing the race with a driver that added a
   * chain meanwhile (Firecracker `pop_or_enable_notification`). Without EVENT_IDX: `pop()`.
   */
  popOrEnableNotification(): DescriptorChain | VirtqueueError | null {
    const r = this.pop();
    if (r !== null || !this.eventIdx) return r;
    return this.enableNotification() ? this.pop() : null;
  }

  /** Gives back the chain taken by the last `pop()` (e.g. when rate limited). */
  undoPop(): void {
    this.nextAvailIdx = (this.nextAvailIdx - 1) & VIRTQ_IDX_MASK;
  }

  /**
   * Follows a chain from `head`: structure first, then every buffer against guest RAM. An
   * indirect descriptor ends the ring part of the chain (it may not have NEXT) and the walk
   * continues in its table.
   */
  private walk(head: number): DescriptorChain | VirtqueueError {
    if (++this.mark === MARK_LIMIT) {
      this.marks.fill(0);
      this.mark = 1;
    }
    const descriptors: ChainDescriptor[] = [];
    let total = 0;
    let i = head;
    for (;;) {
      if (i >= this.size) {
        return new VirtqueueError('VIRTQ_DESC_INDEX_OUT_OF_RANGE', `chain ${head}: descriptor index ${i} >= queue size ${this.size}`, head, i);
      }
      if (this.marks[i] === this.mark) {
        return new VirtqueueError('VIRTQ_DESC_LOOP', `chain ${head}: descriptor ${i} visited twice`, head, i);
      }
      this.marks[i] = this.mark;
      const base = VIRTQ_DESC_SIZE * i;
      const flags = this.desc.getUint16(base + VIRTQ_DESC_FLAGS, true);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        const t = this.walkIndirect(head, i, flags, descriptors, total);
        if (typeof t !== 'number') return t;
        total = t;
        break;
      }
      const t = takeDescriptor(this.desc, i, flags, head, descriptors, total);
      if (typeof t !== 'number') return t;
      total = t;
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      i = this.desc.getUint16(base + VIRTQ_DESC_NEXT, true);
    }
    for (const d of descriptors) {
      if (!this.mem.contains(d.addr, d.len)) {
        return new VirtqueueError('VIRTQ_DESC_OUT_OF_RAM', `chain ${head}: descriptor ${d.index} buffer ${d.addr}+${d.len} is not guest RAM`, head, d.index);
      }
    }
    if (this.inflight) {
      this.markWritable(descriptors);
      this.inflight[head] = descriptors;
    }
    return { head, descriptors, totalLen: total };
  }

  /**
   * The table of the indirect descriptor `i` (§2.6.5.3): appends its entries to `out` and
   * returns the chain's new total length. Rules from §2.6.5.3.1: the indirect descriptor has no
   * NEXT, the table holds whole descriptors (here 1..size of them, the longest chain a driver
   * may build), and no entry is itself indirect. Entries link by `next` inside the table, from
   * entry 0; a walk taking more entries than the table holds must have revisited one.
   * ChainDescriptor.index of an entry is its index in the table.
   */
  private walkIndirect(head: number, i: number, flags: number, out: ChainDescriptor[], total: number): number | VirtqueueError {
    if (!this.indirect) {
      return new VirtqueueError('VIRTQ_DESC_INDIRECT', `chain ${head}: descriptor ${i} is indirect, which was not negotiated`, head, i);
    }
    if (flags & VIRTQ_DESC_F_NEXT) {
      return new VirtqueueError('VIRTQ_INDIRECT_INVALID', `chain ${head}: indirect descriptor ${i} also has NEXT`, head, i);
    }
    const base = VIRTQ_DESC_SIZE * i;
    const len = this.desc.getUint32(base + VIRTQ_DESC_LEN, true);
    const entries = len / VIRTQ_DESC_SIZE;
    if (!Number.isInteger(entries) || entries < 1 || entries > this.size) {
      return new VirtqueueError('VIRTQ_INDIRECT_INVALID', `chain ${head}: indirect table of ${len} bytes is not 1..${this.size} descriptors`, head, i);
    }
    const table = viewOf(this.mem, descriptorAddr(this.desc, base), len);
    if (!table) {
      return new VirtqueueError('VIRTQ_INDIRECT_INVALID', `chain ${head}: indirect table of descriptor ${i} is not guest RAM`, head, i);
    }
    let j = 0;
    for (let taken = 1; ; taken++) {
      const at = VIRTQ_DESC_SIZE * j;
      const f = table.getUint16(at + VIRTQ_DESC_FLAGS, true);
      if (f & VIRTQ_DESC_F_INDIRECT) {
        return new VirtqueueError('VIRTQ_INDIRECT_INVALID', `chain ${head}: indirect table entry ${j} is itself indirect`, head, j);
      }
      const t = takeDescriptor(table, j, f, head, out, total);
      if (typeof t !== 'number') return t;
      total = t;
      if (!(f & VIRTQ_DESC_F_NEXT)) return total;
      if (taken === entries) {
        return new VirtqueueError('VIRTQ_DESC_LOOP', `chain ${head}: indirect table of ${entries} entries revisits entry ${j}`, head, j);
      }
      j = table.getUint16(at + VIRTQ_DESC_NEXT, true);
      if (j >= entries) {
        return new VirtqueueError('VIRTQ_DESC_INDEX_OUT_OF_RANGE', `chain ${head}: indirect entry index ${j} >= table size ${entries}`, head, j);
      }
    }
  }

  /** Marks the device-writable buffers of a chain dirty (module comment). */
  private markWritable(descriptors: readonly ChainDescriptor[]): void {
    for (const d of descriptors) if (d.writable) this.mem.markDirty(d.addr, d.len);
  }

  /**
   * Publishes a used element {id: head, len} and advances used.idx (§2.6.8). `len` is the
   * number of bytes the device wrote into the chain's buffers. A head outside the table (from
   * a chain that failed with VIRTQ_DESC_INDEX_OUT_OF_RANGE at its head) is not published.
   */
  addUsed(head: number, len: number): VirtqueueError | undefined {
    if (!Number.isInteger(head) || head < 0 || head >= this.size) {
      return new VirtqueueError('VIRTQ_DESC_INDEX_OUT_OF_RANGE', `used id ${head} >= queue size ${this.size}`, head, head);
    }
    const inflight = this.inflight;
    if (inflight) {
      // Again, now that the device has written them (module comment).
      const chain = inflight[head];
      if (chain) this.markWritable(chain);
      inflight[head] = undefined;
    }
    const slot = this.nextUsedIdx % this.size;
    const base = VIRTQ_RING_ENTRIES + VIRTQ_USED_ELEM_SIZE * slot;
    this.used.setUint32(base + VIRTQ_USED_ELEM_ID, head, true);
    this.used.setUint32(base + VIRTQ_USED_ELEM_LEN, len >>> 0, true);
    this.nextUsedIdx = (this.nextUsedIdx + 1) & VIRTQ_IDX_MASK;
    this.numAdded++;
    // The element must be visible before the index that publishes it (§2.6.8).
    memoryFence();
    this.used.setUint16(VIRTQ_RING_IDX, this.nextUsedIdx, true);
    if (inflight) {
      this.mem.markDirty(this.usedGpa + base, VIRTQ_USED_ELEM_SIZE);
      this.mem.markDirty(this.usedGpa + VIRTQ_RING_IDX, VIRTQ_IDX_BYTES);
    }
    return undefined;
  }

  /**
   * Whether the driver wants a used-buffer notification for the entries added since the last
   * call (§2.6.7.2). With EVENT_IDX: `vring_need_event(used_event, new, old)`, i.e. notify iff
   * used_event lies in [old, new). Without: unless VIRTQ_AVAIL_F_NO_INTERRUPT is set. Never
   * when nothing was added. Resets the added count.
   */
  needsNotification(): boolean {
    const added = this.numAdded;
    this.numAdded = 0;
    if (added === 0) return false;
    // used.idx must be visible before we read the driver's suppression state (§2.6.7.2 note).
    memoryFence();
    if (!this.eventIdx) {
      return (this.avail.getUint16(VIRTQ_RING_FLAGS, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    }
    if (added >= VIRTQ_IDX_MODULUS) return true;
    const newIdx = this.nextUsedIdx;
    const oldIdx = (newIdx - added) & VIRTQ_IDX_MASK;
    const usedEvent = this.avail.getUint16(this.usedEventOffset, true);
    return vringNeedEvent(usedEvent, newIdx, oldIdx);
  }

  /**
   * Asks the driver for available-buffer notifications again (§2.6.10): avail_event =
   * next avail index with EVENT_IDX, else clears VIRTQ_USED_F_NO_NOTIFY. Returns true when
   * chains are already pending (the caller must process them: no notification will come).
   */
  enableNotification(): boolean {
    if (this.eventIdx) {
      this.used.setUint16(this.availEventOffset, this.nextAvailIdx, true);
      this.mem.markDirty(this.usedGpa + this.availEventOffset, VIRTQ_IDX_BYTES);
    } else {
      const flags = this.used.getUint16(VIRTQ_RING_FLAGS, true);
      this.used.setUint16(VIRTQ_RING_FLAGS, flags & ~VIRTQ_USED_F_NO_NOTIFY, true);
      this.mem.markDirty(this.usedGpa + VIRTQ_RING_FLAGS, VIRTQ_IDX_BYTES);
    }
    memoryFence();
    return this.availIdx() !== this.nextAvailIdx;
  }

  /**
   * Tells the driver notifications are not needed while the device is draining the ring.
   * Without EVENT_IDX: sets VIRTQ_USED_F_NO_NOTIFY. With EVENT_IDX nothing is written: the
   * driver stops notifying once avail.idx passes the stale avail_event.
   */
  disableNotification(): void {
    if (this.eventIdx) return;
    const flags = this.used.getUint16(VIRTQ_RING_FLAGS, true);
    this.used.setUint16(VIRTQ_RING_FLAGS, flags | VIRTQ_USED_F_NO_NOTIFY, true);
    this.mem.markDirty(this.usedGpa + VIRTQ_RING_FLAGS, VIRTQ_IDX_BYTES);
  }
}

/**
 * `vring_need_event` (§2.6.7.2, Linux virtio_ring.h): true when `eventIdx` is one of the
 * indices in [old, new), all modulo 2^16.
 */
export function vringNeedEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & VIRTQ_IDX_MASK) < ((newIdx - oldIdx) & VIRTQ_IDX_MASK);
}
