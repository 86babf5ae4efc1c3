/**
 * The virtio-fs device (virtio 1.2 §5.11) as Kindling presents it: its description for the
 * transport, and what the device does itself once its vhost-user backend is gone. Pure.
 *
 * While the backend (virtiofsd) lives, Kindling never touches the queues: the backend maps
 * guest RAM and serves the FUSE requests itself, woken by the queues' ioeventfds; the device
 * worker only turns the backend's call eventfds into interrupts (src/actors/virtio/fs-worker.ts).
 *
 * When the backend dies (the vhost-user socket hangs up), the worker calls `takeOver()`: the
 * device continues the rings from where the backend left them and completes every request —
 * those waiting and every one after — with a FUSE reply header carrying -EIO (Linux
 * include/uapi/linux/fuse.h `struct fuse_out_header`), so the guest's system calls on the mount
 * fail with EIO instead of waiting forever. Where the backend left the rings is read from
 * guest memory: its used.idx is what it completed; requests it had popped but not completed
 * are taken again from the avail ring (positions from used.idx on). That is exact for a
 * backend that completes in order — virtiofsd with its default --thread-pool-size=0 serves
 * each queue in order on one thread — and at worst repeats a used entry for a request a
 * multi-threaded backend finished out of order, which can only confuse that guest's driver.
 */
import { VirtioActivateError, VirtqueueError } from '../../../errors.js';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1, VIRTIO_ID_FS, VIRTQ_RING_IDX, featureBit } from '../constants.js';
import {
  ByteConfigSpace, createQueues, signalUsed, type VirtioActivation, type VirtioDevice, type VirtioDeviceDescription, type VirtioInterrupt,
} from '../device.js';
import { chainViews, iovWrite } from '../iovec.js';
import type { Queue } from '../queue.js';

/** struct virtio_fs_config: tag[36] (UTF-8, NUL-padded, not terminated when 36 long), num_request_queues (le32). */
export const VIRTIO_FS_TAG_SIZE = 36;
export const VIRTIO_FS_CONFIG_SIZE = VIRTIO_FS_TAG_SIZE + 4;
/** Queue 0 is hiprio (FORGET, INTERRUPT), then the request queues (§5.11.2). */
export const VIRTIO_FS_HIPRIO_QUEUE = 0;
/** Kindling gives one request queue (virtiofsd serves one). */
export const VIRTIO_FS_NUM_REQUEST_QUEUES = 1;
export const VIRTIO_FS_NUM_QUEUES = 1 + VIRTIO_FS_NUM_REQUEST_QUEUES;
/** Entries per queue (Firecracker FIRECRACKER_MAX_QUEUE_SIZE; the guest may choose fewer). */
export const VIRTIO_FS_QUEUE_SIZE = 256;
/**
 * The virtio features a vhost-user backend may add to VIRTIO_F_VERSION_1: only those Kindling's
 * own split-ring code (queue.ts) handles too, because it serves the rings after the backend
 * died. So EVENT_IDX, and not INDIRECT_DESC: that fallback was built and tested without
 * indirect tables, so it stays off here (never offered, so never acked, so those queues refuse
 * indirect descriptors).
 */
export const VIRTIO_FS_BACKEND_FEATURES = featureBit(VIRTIO_F_RING_EVENT_IDX);

/** struct fuse_in_header: len u32, opcode u32, unique u64, nodeid u64, uid, gid, pid, padding. */
export const FUSE_IN_HEADER_SIZE = 40;
const FUSE_IN_UNIQUE_OFFSET = 8;
/** struct fuse_out_header: len u32, error i32, unique u64. */
export const FUSE_OUT_HEADER_SIZE = 16;
/** Linux errno EIO, negated in fuse_out_header.error. */
export const EIO = 5;

/** The config bytes for `tag` (checked by the API: 1..36 UTF-8 bytes). */
export function fsConfigBytes(tag: string): Uint8Array {
  const bytes = new Uint8Array(VIRTIO_FS_CONFIG_SIZE);
  const t = new TextEncoder().encode(tag);
  bytes.set(t.subarray(0, VIRTIO_FS_TAG_SIZE));
  new DataView(bytes.buffer).setUint32(VIRTIO_FS_TAG_SIZE, VIRTIO_FS_NUM_REQUEST_QUEUES, true);
  return bytes;
}

/**
 * What the transport shows: device id 26, VERSION_1 plus what the backend offered of
 * VIRTIO_FS_BACKEND_FEATURES (EVENT_IDX), two queues, the read-only config (driver writes are dropped:
 * §5.11.4 gives the driver nothing to write).
 */
export function fsDescription(tag: string, backendFeatures: bigint): VirtioDeviceDescription {
  return {
    deviceId: VIRTIO_ID_FS,
    features: featureBit(VIRTIO_F_VERSION_1) | (backendFeatures & VIRTIO_FS_BACKEND_FEATURES),
    queueMaxSizes: Array.from({ length: VIRTIO_FS_NUM_QUEUES }, () => VIRTIO_FS_QUEUE_SIZE),
    config: new ByteConfigSpace(fsConfigBytes(tag)),
  };
}

/** The EIO reply to the request whose readable bytes start with `header` (a fuse_in_header, or fewer bytes). */
export function eioReply(header: Uint8Array): Uint8Array {
  const out = new Uint8Array(FUSE_OUT_HEADER_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, FUSE_OUT_HEADER_SIZE, true);
  v.setInt32(4, -EIO, true);
  if (header.length >= FUSE_IN_UNIQUE_OFFSET + 8) {
    v.setBigUint64(8, new DataView(header.buffer, header.byteOffset, header.length).getBigUint64(FUSE_IN_UNIQUE_OFFSET, true), true);
  }
  return out;
}

/** Counters the worker exposes (Kindling's own, shown in its log). */
export interface FsFallbackCounts {
  /** Requests completed with EIO after the backend was gone. */
  eioReplies: number;
  /** Chains that could not be answered (too short, wrong direction, outside RAM). */
  badChains: number;
}

export class FsDevice implements VirtioDevice {
  readonly description: VirtioDeviceDescription;
  readonly counts: FsFallbackCounts = { eioReplies: 0, badChains: 0 };
  private activation: { mem: GuestMemory; interrupt: VirtioInterrupt; activation: VirtioActivation } | undefined;
  private queues: Queue[] | undefined;

  constructor(tag: string, backendFeatures: bigint) {
    this.description = fsDescription(tag, backendFeatures);
  }

  get isActive(): boolean {
    return this.activation !== undefined;
  }

  /** True once the device serves the rings itself (the backend is gone). */
  get tookOver(): boolean {
    return this.queues !== undefined;
  }

  /** The driver's DRIVER_OK: kept for `takeOver`; the backend gets the rings (fs-worker.ts). */
  activate(mem: GuestMemory, interrupt: VirtioInterrupt, activation: VirtioActivation): VirtioActivateError | undefined {
    if (activation.queues.length !== VIRTIO_FS_NUM_QUEUES) {
      interrupt.needsReset();
      return new VirtioActivateError(`virtio-fs has ${VIRTIO_FS_NUM_QUEUES} queues, got ${activation.queues.length}`);
    }
    this.activation = { mem, interrupt, activation };
    return undefined;
  }

  /** Snapshots are refused for a VM with virtio-fs (src/vmm/snapshot-create.ts), so nothing is saved. */
  activeQueues(): readonly Queue[] {
    return [];
  }

  reset(): boolean {
    return false;
  }

  /**
   * The backend is gone: continue each ring from its used.idx and answer what waits with EIO.
   * False when the rings cannot be used (the device then asked for a reset).
   */
  takeOver(): boolean {
    const a = this.activation;
    if (!a || this.queues) return this.queues !== undefined;
    const restore = a.activation.queues.map((q) => {
      const idx = new Uint8Array(2);
      const err = a.mem.read(q.usedRing + VIRTQ_RING_IDX, idx);
      const used = err ? 0 : idx[0]! | (idx[1]! << 8);
      return { nextAvail: used, nextUsed: used, numAdded: 0 };
    });
    const queues = createQueues(a.mem, { ...a.activation, restore });
    if (queues instanceof VirtqueueError) {
      a.interrupt.needsReset();
      return false;
    }
    this.queues = queues;
    for (const q of queues) this.onQueueNotify(q.index);
    return true;
  }

  /** A kick after `takeOver`: every posted request gets EIO. Before it the backend serves the queue. */
  onQueueNotify(queue: number): void {
    const q = this.queues?.[queue];
    const a = this.activation;
    if (!q || !a || q.broken) return;
    let used = false;
    for (;;) {
      // With EVENT_IDX this also moves avail_event on, or the driver stops kicking.
      const chain = q.popOrEnableNotification();
      if (chain === null) break;
      if (chain instanceof VirtqueueError) {
        this.counts.badChains++;
        if (q.broken) {
          a.interrupt.needsReset();
          return;
        }
        if (chain.head !== undefined) used = q.addUsed(chain.head, 0) === undefined || used;
        continue;
      }
      const readable = chain.descriptors.filter((d) => !d.writable);
      const writable = chain.descriptors.filter((d) => d.writable);
      const inViews = chainViews(a.mem, { ...chain, descriptors: readable }, false);
      const outViews = chainViews(a.mem, { ...chain, descriptors: writable }, true);
      let len = 0;
      if (!inViews || !outViews) this.counts.badChains++;
      else if (outViews.length > 0) {
        // A FORGET on hiprio has no writable part and no reply; everything else gets EIO.
        const header = new Uint8Array(FUSE_IN_HEADER_SIZE);
        let got = 0;
        for (const v of inViews) {
          const n = Math.min(v.length, header.length - got);
          header.set(v.subarray(0, n), got);
          got += n;
          if (got === header.length) break;
        }
        const reply = eioReply(header.subarray(0, got));
        len = iovWrite(outViews, 0, reply);
        if (len === FUSE_OUT_HEADER_SIZE) this.counts.eioReplies++;
        else this.counts.badChains++;
      }
      used = q.addUsed(chain.head, len) === undefined || used;
    }
    if (used) signalUsed(q, a.interrupt);
  }
}
