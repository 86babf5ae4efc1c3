/**
 * A virtio-block test rig: guest memory over an ArrayBuffer, a driver-side MockQueue that
 * programs an MmioTransport, DRIVER_OK activating a BlockDevice over an in-memory backend
 * (or the Async engine fake the caller passes), and helpers to lay out request chains.
 * Shared by the block device tests (Sync and Async engines).
 */
import { arrayGuestMemory, must, type GuestMemory } from '../../src/memory/guest-memory.js';
import { MmioTransport } from '../../src/devices/virtio/mmio.js';
import { MmioInterrupt, MmioState } from '../../src/devices/virtio/mmio-state.js';
import { BlockDevice, CACHE_TYPE, blockDescription, type BlockDeviceParams } from '../../src/devices/virtio/block/device.js';
import type { AsyncBlockBackend } from '../../src/devices/virtio/block/async-io.js';
import { BlockMetrics } from '../../src/devices/virtio/block/metrics.js';
import { RateLimiter, type RateLimiterConfig } from '../../src/devices/rate-limiter/rate-limiter.js';
import { VIRTIO_BLK_CONFIG_SIZE, VIRTIO_BLK_OUTHDR_SECTOR, VIRTIO_BLK_OUTHDR_SIZE, VIRTIO_BLK_OUTHDR_TYPE, VIRTQ_DESC_SIZE } from '../../src/devices/virtio/constants.js';
import { GuestArena, MockQueue, mmioDeviceFeatures, mmioDriverInit, mmioDriverOk, mmioNotify } from './mock-queue.js';
import { MemBlockBackend } from './mem-block-backend.js';

export const RAM = 1 << 20;
export const DISK = 64 * 1024 + 100; // capacity rounds down to 128 sectors
export const SECTORS = 128;
export const UNTOUCHED = 0xee;

export interface RigOptions {
  readOnly?: boolean;
  cacheType?: BlockDeviceParams['cacheType'];
  async?: boolean;
  limits?: RateLimiterConfig;
  features?: (offered: bigint) => bigint;
  /** An Async engine to use instead of the in-memory Sync backend. */
  engine?: (disk: Uint8Array) => AsyncBlockBackend;
  /** Queue size the driver programs (default 16). */
  queueSize?: number;
  /** Guest RAM and disk sizes in bytes (default RAM and DISK). */
  ram?: number;
  disk?: number;
}

export function rig(o: RigOptions = {}) {
  const ram = o.ram ?? RAM;
  const diskBytes = o.disk ?? DISK;
  const mem = arrayGuestMemory([{ gpa: 0, size: ram }]);
  const backend = new MemBlockBackend(diskBytes, { async: o.async ?? false });
  const clock = { t: 0n };
  const cfg: BlockDeviceParams = { diskSizeBytes: diskBytes, readOnly: o.readOnly ?? false, cacheType: o.cacheType ?? CACHE_TYPE.WRITEBACK };
  const metrics = new BlockMetrics();
  const configBytes = new Uint8Array(new SharedArrayBuffer(VIRTIO_BLK_CONFIG_SIZE));
  const engine = o.engine?.(backend.disk);
  const dev = new BlockDevice(cfg, engine ?? backend, { metrics, configBytes, rateLimiter: new RateLimiter(o.limits ?? {}, () => clock.t) });
  const state = MmioState.create(1);
  const irqs: number[] = [];
  let pending: void | Promise<void>;
  // In Kindling the activation and notifies cross to the device worker; here they run in place.
  const transport = new MmioTransport(
    state,
    blockDescription(cfg, configBytes, metrics),
    {
      onActivate: (a) => {
        dev.activate(mem, new MmioInterrupt(state, (bit) => irqs.push(bit)), a);
      },
      onNotify: (q) => {
        pending = dev.onQueueNotify(q);
      },
      interrupt: (bit) => irqs.push(bit),
      onReset: () => dev.reset(),
    },
    mem,
  );
  const mq = new MockQueue(mem, o.queueSize ?? 16, 0);
  const arena = new GuestArena(mq.end, ram);
  mq.notify = () => mmioNotify(transport, 0);
  const offered = mmioDeviceFeatures(transport);
  mmioDriverInit(transport, o.features ? o.features(offered) : offered, [mq]);
  mmioDriverOk(transport);
  return { mem, backend, engine, dev, metrics, transport, state, cfg, mq, arena, irqs, clock, offered, settle: async () => void (await pending) };
}

export type Rig = ReturnType<typeof rig>;

/** Adds a request chain: header, optional data, status (pre-filled with UNTOUCHED). */
export function request(r: Rig, type: number, sector: bigint, data: { len: number; write: boolean } | null) {
  const hdr = r.arena.alloc(VIRTIO_BLK_OUTHDR_SIZE);
  must(r.mem.writeU32(hdr + VIRTIO_BLK_OUTHDR_TYPE, type));
  must(r.mem.writeU64(hdr + VIRTIO_BLK_OUTHDR_SECTOR, sector));
  const dataAddr = data ? r.arena.alloc(data.len) : 0;
  const statusAddr = r.arena.alloc(1);
  must(r.mem.writeU8(statusAddr, UNTOUCHED));
  const bufs = [{ addr: hdr, len: VIRTIO_BLK_OUTHDR_SIZE }];
  if (data) bufs.push({ addr: dataAddr, len: data.len, write: data.write } as never);
  bufs.push({ addr: statusAddr, len: 1, write: true } as never);
  const idx = r.mq.addChain(bufs);
  return { head: idx[0]!, idx, dataAddr, statusAddr, status: () => must(r.mem.readU8(statusAddr)) };
}

/**
 * Adds an IN/OUT chain whose data is split into segments of `segLens` bytes (each its own
 * descriptor, placed apart so they are not contiguous in guest memory), in the ring or, with
 * `indirect`, in an indirect table (one ring slot, as Linux posts a multi-segment request).
 */
export function segmentedRequest(r: Rig, type: number, sector: bigint, segLens: readonly number[], write: boolean, indirect = false) {
  const hdr = r.arena.alloc(VIRTIO_BLK_OUTHDR_SIZE);
  must(r.mem.writeU32(hdr + VIRTIO_BLK_OUTHDR_TYPE, type));
  must(r.mem.writeU64(hdr + VIRTIO_BLK_OUTHDR_SECTOR, sector));
  const segs = segLens.map((len) => {
    const addr = r.arena.alloc(len);
    r.arena.alloc(64); // a gap: the device must not assume the segments are adjacent
    return { addr, len };
  });
  const statusAddr = r.arena.alloc(1);
  must(r.mem.writeU8(statusAddr, UNTOUCHED));
  const bufs = [{ addr: hdr, len: VIRTIO_BLK_OUTHDR_SIZE }, ...segs.map((s) => ({ ...s, write })), { addr: statusAddr, len: 1, write: true }];
  const head = indirect ? r.mq.addIndirectChain(bufs, r.arena.alloc(VIRTQ_DESC_SIZE * bufs.length)) : r.mq.addChain(bufs)[0]!;
  return { head, segs, statusAddr, status: () => must(r.mem.readU8(statusAddr)) };
}

export function pattern(len: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (i * 7 + seed) & 0xff);
}

export function guestBytes(mem: GuestMemory, addr: number, len: number): Uint8Array {
  return Uint8Array.from(mem.slice(addr, len) as Uint8Array);
}
