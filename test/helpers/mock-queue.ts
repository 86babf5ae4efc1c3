/**
 * The driver side of a split virtqueue, for tests and benchmarks of device models (the fake a
 * pure device model is tested with, docs/design.md "Layers"; like rust-vmm virtio-queue `MockSplitQueue` and Firecracker `VirtQueue`): lays out
 * a descriptor table, an available ring and a used ring in a GuestMemory as a guest driver
 * would, adds chains, reads back used elements, and sets the driver's suppression fields. It
 * also drives a virtio-mmio transport through the driver initialisation sequence (§3.1.1).
 *
 * Everything is written with the same constants the device side reads, so a layout mistake
 * shows up as a failing test rather than two matching bugs.
 */
import type { BusDevice } from '../../src/devices/bus.js';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_FEATURES_PAGE_BITS, VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_USED_HIGH, VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_STATUS, VIRTQ_AVAIL_ELEM_SIZE, VIRTQ_DESC_ADDR,
  VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_FLAGS, VIRTQ_DESC_LEN, VIRTQ_DESC_NEXT, VIRTQ_DESC_SIZE, VIRTQ_IDX_MASK,
  VIRTQ_RING_ENTRIES, VIRTQ_RING_FLAGS, VIRTQ_RING_IDX, VIRTQ_USED_ELEM_ID, VIRTQ_USED_ELEM_LEN, VIRTQ_USED_ELEM_SIZE,
  availRingSize, descTableSize, usedRingSize,
} from '../../src/devices/virtio/constants.js';
import type { QueueConfig } from '../../src/devices/virtio/queue.js';
import { must, type GuestMemory } from '../../src/memory/guest-memory.js';

/** One buffer of a chain as a driver describes it. */
export interface MockBuffer {
  /** Guest physical address. */
  addr: number;
  /** Length in bytes. */
  len: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE). */
  write?: boolean;
}

/** A raw descriptor, for tests that break one field. */
export interface RawDescriptor {
  addr: number;
  len: number;
  flags: number;
  next: number;
}

/** A used ring element as the driver reads it. */
export interface UsedElement {
  id: number;
  len: number;
}

/** Alignment used between the rings and for arena allocations (≥ every ring alignment). */
const LAYOUT_ALIGN = 16;
const U32_MODULUS = 2 ** 32;
/** Mask of one 32-bit feature page. */
const FEATURE_PAGE_MASK = (1n << BigInt(VIRTIO_FEATURES_PAGE_BITS)) - 1n;

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** A bump allocator for driver buffers inside guest RAM. */
export class GuestArena {
  private next: number;
  constructor(start: number, private readonly end: number) {
    this.next = start;
  }
  /** Allocates `len` bytes aligned to `align`; throws when the arena is full (a test bug). */
  alloc(len: number, align = LAYOUT_ALIGN): number {
    const at = alignUp(this.next, align);
    if (at + len > this.end) throw new RangeError(`arena exhausted allocating ${len} bytes`);
    this.next = at + len;
    return at;
  }
}

/** A driver-side split virtqueue in `mem` starting at `base`. */
export class MockQueue {
  /** Placement, as the driver would program it into the transport. */
  readonly config: QueueConfig;
  /** First byte after the rings. */
  readonly end: number;
  /** Called by `kick()` (e.g. a QueueNotify write or a device's onQueueNotify). */
  notify: () => void = () => {};
  private nextDesc = 0;
  private usedSeen = 0;

  constructor(readonly mem: GuestMemory, readonly size: number, base = 0) {
    const descTable = base;
    const availRing = alignUp(descTable + descTableSize(size), LAYOUT_ALIGN);
    const usedRing = alignUp(availRing + availRingSize(size), LAYOUT_ALIGN);
    this.end = usedRing + usedRingSize(size);
    this.config = { size, descTable, availRing, usedRing };
  }

  /** Writes descriptor `i` verbatim (of the ring's table, or of the table at `table`). */
  writeDescriptor(i: number, d: RawDescriptor, table = this.config.descTable): void {
    const at = table + VIRTQ_DESC_SIZE * i;
    must(this.mem.writeU32(at + VIRTQ_DESC_ADDR, d.addr % U32_MODULUS));
    must(this.mem.writeU32(at + VIRTQ_DESC_ADDR + Uint32Array.BYTES_PER_ELEMENT, Math.floor(d.addr / U32_MODULUS)));
    must(this.mem.writeU32(at + VIRTQ_DESC_LEN, d.len));
    must(this.mem.writeU16(at + VIRTQ_DESC_FLAGS, d.flags));
    must(this.mem.writeU16(at + VIRTQ_DESC_NEXT, d.next));
  }

  /** Reads descriptor `i` (of the ring's table, or of the table at `table`). */
  readDescriptor(i: number, table = this.config.descTable): RawDescriptor {
    const at = table + VIRTQ_DESC_SIZE * i;
    const lo = must(this.mem.readU32(at + VIRTQ_DESC_ADDR));
    const hi = must(this.mem.readU32(at + VIRTQ_DESC_ADDR + Uint32Array.BYTES_PER_ELEMENT));
    return {
      addr: hi * U32_MODULUS + lo,
      len: must(this.mem.readU32(at + VIRTQ_DESC_LEN)),
      flags: must(this.mem.readU16(at + VIRTQ_DESC_FLAGS)),
      next: must(this.mem.readU16(at + VIRTQ_DESC_NEXT)),
    };
  }

  /** Changes some fields of descriptor `i` (break one thing per test), of the ring or of `table`. */
  patchDescriptor(i: number, patch: Partial<RawDescriptor>, table = this.config.descTable): void {
    this.writeDescriptor(i, { ...this.readDescriptor(i, table), ...patch }, table);
  }

  /**
   * Writes `buffers` as a chain in consecutive free descriptors (wrapping), makes it available
   * and returns the indices used (the first is the head). Does not notify: call `kick()`.
   */
  addChain(buffers: readonly MockBuffer[]): number[] {
    const indices = buffers.map((_, k) => (this.nextDesc + k) % this.size);
    this.nextDesc = (this.nextDesc + buffers.length) % this.size;
    this.writeChain(indices, buffers);
    this.publish(indices[0]!);
    return indices;
  }

  /**
   * Writes `buffers` as an indirect table at `table` (16 bytes per buffer, in guest RAM) and
   * makes available one ring descriptor pointing at it (§2.6.5.3); returns that descriptor's
   * index. `patch` changes fields of the ring descriptor. Does not notify.
   */
  addIndirectChain(buffers: readonly MockBuffer[], table: number, patch: Partial<RawDescriptor> = {}): number {
    this.writeChain(buffers.map((_, k) => k), buffers, table);
    const head = this.nextDesc;
    this.nextDesc = (this.nextDesc + 1) % this.size;
    this.writeDescriptor(head, { addr: table, len: VIRTQ_DESC_SIZE * buffers.length, flags: VIRTQ_DESC_F_INDIRECT, next: 0, ...patch });
    this.publish(head);
    return head;
  }

  /**
   * Writes `buffers` linked through the given descriptor indices (not published), in the
   * ring's table or in the table at `table`.
   */
  writeChain(indices: readonly number[], buffers: readonly MockBuffer[], table = this.config.descTable): void {
    buffers.forEach((b, k) => {
      const last = k === buffers.length - 1;
      this.writeDescriptor(indices[k]!, {
        addr: b.addr,
        len: b.len,
        flags: (last ? 0 : VIRTQ_DESC_F_NEXT) | (b.write ? VIRTQ_DESC_F_WRITE : 0),
        next: last ? 0 : indices[k + 1]!,
      }, table);
    });
  }

  /** Puts `head` in the next available slot and advances avail.idx. */
  publish(head: number): void {
    const idx = this.availIdx();
    must(this.mem.writeU16(this.config.availRing + VIRTQ_RING_ENTRIES + VIRTQ_AVAIL_ELEM_SIZE * (idx % this.size), head));
    this.setAvailIdx((idx + 1) & VIRTQ_IDX_MASK);
  }

  /** avail.idx. */
  availIdx(): number {
    return must(this.mem.readU16(this.config.availRing + VIRTQ_RING_IDX));
  }

  /** Overwrites avail.idx (e.g. to jump it past the queue size). */
  setAvailIdx(v: number): void {
    must(this.mem.writeU16(this.config.availRing + VIRTQ_RING_IDX, v & VIRTQ_IDX_MASK));
  }

  /** Sets avail.flags (VIRTQ_AVAIL_F_NO_INTERRUPT). */
  setAvailFlags(flags: number): void {
    must(this.mem.writeU16(this.config.availRing + VIRTQ_RING_FLAGS, flags));
  }

  /** Sets used_event (the trailing field of the avail ring). */
  setUsedEvent(v: number): void {
    must(this.mem.writeU16(this.config.availRing + VIRTQ_RING_ENTRIES + VIRTQ_AVAIL_ELEM_SIZE * this.size, v & VIRTQ_IDX_MASK));
  }

  /** used.idx. */
  usedIdx(): number {
    return must(this.mem.readU16(this.config.usedRing + VIRTQ_RING_IDX));
  }

  /** used.flags (VIRTQ_USED_F_NO_NOTIFY). */
  usedFlags(): number {
    return must(this.mem.readU16(this.config.usedRing + VIRTQ_RING_FLAGS));
  }

  /** avail_event (the trailing field of the used ring). */
  availEvent(): number {
    return must(this.mem.readU16(this.config.usedRing + VIRTQ_RING_ENTRIES + VIRTQ_USED_ELEM_SIZE * this.size));
  }

  /** The used element in ring position `i` (modulo the size). */
  usedEntry(i: number): UsedElement {
    const at = this.config.usedRing + VIRTQ_RING_ENTRIES + VIRTQ_USED_ELEM_SIZE * (i % this.size);
    return { id: must(this.mem.readU32(at + VIRTQ_USED_ELEM_ID)), len: must(this.mem.readU32(at + VIRTQ_USED_ELEM_LEN)) };
  }

  /** The used elements published since the previous call. */
  takeUsed(): UsedElement[] {
    const out: UsedElement[] = [];
    const idx = this.usedIdx();
    while (this.usedSeen !== idx) {
      out.push(this.usedEntry(this.usedSeen));
      this.usedSeen = (this.usedSeen + 1) & VIRTQ_IDX_MASK;
    }
    return out;
  }

  /** Notifies the device (calls `notify`). */
  kick(): void {
    this.notify();
  }
}

/** Reads a 32-bit little-endian register through a bus device. */
export function mmioRead32(dev: BusDevice, offset: number): number {
  const data = new Uint8Array(Uint32Array.BYTES_PER_ELEMENT);
  dev.read(offset, data);
  return new DataView(data.buffer).getUint32(0, true);
}

/** Writes a 32-bit little-endian register through a bus device. */
export function mmioWrite32(dev: BusDevice, offset: number, value: number): void {
  const data = new Uint8Array(Uint32Array.BYTES_PER_ELEMENT);
  new DataView(data.buffer).setUint32(0, value >>> 0, true);
  dev.write(offset, data);
}

/** Reads the 64 offered feature bits through DeviceFeaturesSel / DeviceFeatures. */
export function mmioDeviceFeatures(dev: BusDevice): bigint {
  let f = 0n;
  for (const page of [0, 1]) {
    mmioWrite32(dev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, page);
    f |= BigInt(mmioRead32(dev, VIRTIO_MMIO_DEVICE_FEATURES)) << BigInt(page * VIRTIO_FEATURES_PAGE_BITS);
  }
  return f;
}

/** Programs queue `index` with the mock queue's placement and marks it ready. */
export function mmioSetupQueue(dev: BusDevice, index: number, q: { config: QueueConfig }, ready = true): void {
  const c = q.config;
  mmioWrite32(dev, VIRTIO_MMIO_QUEUE_SEL, index);
  mmioWrite32(dev, VIRTIO_MMIO_QUEUE_NUM, c.size);
  const pairs: [number, number, number][] = [
    [VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, c.descTable],
    [VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, c.availRing],
    [VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_QUEUE_USED_HIGH, c.usedRing],
  ];
  for (const [lo, hi, addr] of pairs) {
    mmioWrite32(dev, lo, addr % U32_MODULUS);
    mmioWrite32(dev, hi, Math.floor(addr / U32_MODULUS));
  }
  if (ready) mmioWrite32(dev, VIRTIO_MMIO_QUEUE_READY, 1);
}

/**
 * The driver initialisation sequence (§3.1.1) up to FEATURES_OK: ACKNOWLEDGE, DRIVER, ack
 * `features` (both pages), FEATURES_OK, then program `queues`. Call `mmioDriverOk` to activate.
 */
export function mmioDriverInit(dev: BusDevice, features: bigint, queues: readonly { config: QueueConfig }[]): void {
  mmioWrite32(dev, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  mmioWrite32(dev, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  for (const page of [0, 1]) {
    mmioWrite32(dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, page);
    mmioWrite32(dev, VIRTIO_MMIO_DRIVER_FEATURES, Number((features >> BigInt(page * VIRTIO_FEATURES_PAGE_BITS)) & FEATURE_PAGE_MASK));
  }
  mmioWrite32(dev, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
  queues.forEach((q, i) => mmioSetupQueue(dev, i, q));
}

/** Writes DRIVER_OK (the activation point). */
export function mmioDriverOk(dev: BusDevice): void {
  mmioWrite32(
    dev,
    VIRTIO_MMIO_STATUS,
    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK,
  );
}

/** Writes QueueNotify for queue `index` (the path an ioeventfd normally takes over). */
export function mmioNotify(dev: BusDevice, index: number): void {
  mmioWrite32(dev, VIRTIO_MMIO_QUEUE_NOTIFY, index);
}
