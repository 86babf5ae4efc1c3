/**
 * The virtio-pmem device model (virtio 1.2 §5.19; Firecracker src/vmm/src/devices/virtio/pmem/
 * device.rs, v1.16; docs/design.md "Persistent memory"), pure over an injected flush function
 * (msync of the mapped file, done by the device worker).
 *
 * The guest reads and writes the file's pages directly: the VMM maps the file into guest
 * physical space at `start` (config space: `le64 start; le64 size`). The only request is
 * FLUSH: the driver posts a chain of a 4-byte device-readable request type
 * (VIRTIO_PMEM_REQ_TYPE_FLUSH) and a 4-byte device-writable status; the device persists the
 * file and writes 0, or -1 when the host could not.
 *
 * - One flush serves every request of one notification (Firecracker caches the first msync's
 *   result for the rest of the queue run).
 * - Rate limiter: one op and the file's length in bytes per queue run, both or neither,
 *   taken before looking at the queue (Firecracker `handle_queue`); a blocked run waits for
 *   the limiter's timer.
 * - A chain that breaks the protocol (a writable head, lengths other than 4, an unknown
 *   type, no status buffer, a buffer outside RAM) is used with length 0 and counted
 *   `event_fails`. Nothing the guest sends makes the model throw.
 */
import { VirtqueueError } from '../../../errors.js';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import type { RateLimiter } from '../../rate-limiter/rate-limiter.js';
import { VIRTIO_ID_PMEM } from '../constants.js';
import { ByteConfigSpace, signalUsed, type VirtioDeviceDescription } from '../device.js';
import type { DescriptorChain } from '../queue.js';
import { RateLimitedQueueDevice } from '../single-queue.js';
import { PmemMetrics } from './metrics.js';

/** Firecracker PMEM_NUM_QUEUES / PMEM_QUEUE_SIZE; the request queue's index. */
export const PMEM_NUM_QUEUES = 1;
export const PMEM_QUEUE = 0;
export const PMEM_QUEUE_SIZE = 256;
/** §5.19.6: the only request type. */
export const VIRTIO_PMEM_REQ_TYPE_FLUSH = 0;
/** Bytes of the request type and of the status (le32 each). */
export const PMEM_REQ_SIZE = 4;
export const PMEM_RESP_SIZE = 4;
/** Status values (Firecracker SUCCESS / FAILURE). */
export const PMEM_STATUS_OK = 0;
export const PMEM_STATUS_FAILURE = -1;
/** sizeof(struct virtio_pmem_config): le64 start, le64 size. */
export const PMEM_CONFIG_SIZE = 16;

/** Persists the mapped file; false when the host failed (msync returned an error). */
export type PmemFlush = () => boolean;

/** The config bytes for a window at `start` of `size` bytes. */
export function pmemConfigBytes(start: number, size: number): Uint8Array {
  const b = new Uint8Array(PMEM_CONFIG_SIZE);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(start), true);
  v.setBigUint64(8, BigInt(size), true);
  return b;
}

/**
 * The transport-facing description: VERSION_1 only, one queue, the read-only config (a driver
 * write is counted `cfg_fails` through `onWrite`).
 */
export function pmemDescription(start: number, size: number, onWrite: () => void = () => {}): VirtioDeviceDescription {
  return { deviceId: VIRTIO_ID_PMEM, features: 0n, queueMaxSizes: [PMEM_QUEUE_SIZE], config: new ByteConfigSpace(pmemConfigBytes(start, size), () => onWrite()) };
}

export interface PmemDeviceOptions {
  start: number;
  /** Window size (the file's length rounded up to 2 MiB). */
  size: number;
  /** The backing file's length: what a flush costs in rate-limiter bytes. */
  fileLen: number;
  flush: PmemFlush;
  rateLimiter?: RateLimiter;
  metrics?: PmemMetrics;
}

export class PmemDevice extends RateLimitedQueueDevice {
  override readonly description: VirtioDeviceDescription;
  override readonly metrics: PmemMetrics;
  private readonly fileLen: number;
  private readonly flush: PmemFlush;

  constructor(o: PmemDeviceOptions) {
    // Resettable: `reset()` drops the activation; the mapping stays (the guest may still hold
    // pages of it).
    super('virtio-pmem', true, o.rateLimiter);
    this.metrics = o.metrics ?? new PmemMetrics();
    this.fileLen = o.fileLen;
    this.flush = o.flush;
    this.description = pmemDescription(o.start, o.size, () => this.metrics.inc('cfg_fails'));
  }

  override onQueueNotify(queue: number): void {
    if (queue !== PMEM_QUEUE) return;
    this.metrics.inc('queue_event_count');
    if (this.rateLimiter.isBlocked()) return;
    this.processQueue();
  }

  /** Serves every posted request with at most one flush (Firecracker `handle_queue`). */
  override processQueue(): void {
    const a = this.active;
    if (!a || a.broken) return;
    const q = a.queue;
    // An empty ring costs nothing; otherwise the run's budget is taken before its first chain.
    let chain = q.pop();
    if (chain === null) return;
    if (!this.takeBudget(this.fileLen)) {
      // A broken ring returns the same error from every pop: nothing to give back.
      if (!(chain instanceof VirtqueueError && q.broken)) q.undoPop();
      this.metrics.inc('rate_limiter_throttled_events');
      this.throttled = true;
      return;
    }
    this.throttled = false;
    let status: number | undefined;
    let used = false;
    for (; chain !== null; chain = q.pop()) {
      if (chain instanceof VirtqueueError) {
        if (q.broken) {
          a.broken = true;
          this.metrics.inc('event_fails');
          a.interrupt.needsReset();
          return;
        }
        this.metrics.inc('event_fails');
        if (chain.head !== undefined) used = q.addUsed(chain.head, 0) === undefined || used;
        continue;
      }
      const statusView = this.parse(a.mem, chain);
      if (!statusView) {
        this.metrics.inc('event_fails');
        used = q.addUsed(chain.head, 0) === undefined || used;
        continue;
      }
      status ??= this.flush() ? PMEM_STATUS_OK : PMEM_STATUS_FAILURE;
      new DataView(statusView.buffer, statusView.byteOffset, PMEM_RESP_SIZE).setInt32(0, status, true);
      a.mem.markDirty(chain.descriptors[1]!.addr, PMEM_RESP_SIZE);
      if (q.addUsed(chain.head, PMEM_RESP_SIZE) !== undefined) {
        this.metrics.inc('event_fails');
        break;
      }
      used = true;
    }
    if (used) signalUsed(q, a.interrupt);
  }

  /** The status buffer of a well-formed FLUSH chain (§5.19.6), else undefined. */
  private parse(mem: GuestMemory, chain: DescriptorChain): Uint8Array | undefined {
    const [head, status] = chain.descriptors;
    if (!head || head.writable || head.len !== PMEM_REQ_SIZE) return undefined;
    const req = mem.readU32(head.addr);
    if (typeof req !== 'number' || req !== VIRTIO_PMEM_REQ_TYPE_FLUSH) return undefined;
    if (!status || !status.writable || status.len !== PMEM_RESP_SIZE) return undefined;
    const view = mem.slice(status.addr, PMEM_RESP_SIZE);
    return view instanceof Uint8Array ? view : undefined;
  }
}
