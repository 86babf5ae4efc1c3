/**
 * The virtio-block device model (virtio 1.1 §5.2, Firecracker devices/virtio/block/virtio/
 * device.rs; firecracker src/vmm/src/devices/virtio/block/). Pure: guest memory and the interrupt channel arrive at activation,
 * disk I/O goes through an injected BlockBackend, time through injected clocks.
 *
 * - One queue of BLOCK_QUEUE_SIZE entries. Features VERSION_1, RING_EVENT_IDX, SEG_MAX and
 *   SIZE_MAX, plus FLUSH with cache_type Writeback and RO for read-only drives. Config space:
 *   capacity (le64, 512-byte sectors, disk size rounded down), size_max, seg_max (§5.2.4);
 *   config writes are ignored (`cfg_fails`). SEG_MAX/SIZE_MAX go beyond Firecracker (see
 *   BLOCK_SEG_MAX): an IN/OUT may have several data descriptors, moved with one preadv/pwritev.
 * - `processQueue()` pops chains until the ring is empty or the rate limiter refuses: 1 ops
 *   token per request, data_len bytes tokens for IN/OUT; a refused request is given back
 *   (`undoPop`) and processing stops until the limiter's retry time (`retryAfterMs()`), when
 *   the actor calls `onRateLimiterTimer()`.
 * - Completion: status byte written, used length = bytes written to the guest + 1. A chain
 *   the queue or the parser rejects is completed with used length 0 and no status
 *   (`execute_fails`). A broken queue (malicious avail.idx) stops the device and asks for a
 *   reset (NEEDS_RESET + config interrupt) instead of killing the VMM as Firecracker does.
 * - A used-buffer interrupt is raised when the driver asks for one (EVENT_IDX rules, §2.6.7.2).
 * - io_engine Sync: backends answer synchronously or with a Promise; requests run one at a
 *   time, in ring order. A backend that throws or rejects yields VIRTIO_BLK_S_IOERR, never an
 *   exception.
 * - io_engine Async (async-io.ts): IN/OUT/FLUSH are queued on the backend, tagged with an
 *   in-flight slot, submitted once per drained batch, and completed by `onIoCompletion()`
 *   in whatever order the kernel finishes them. A full engine stops the drain
 *   (`io_engine_throttled_events`) until completions free slots.
 * - Read-only drives answer OUT with IOERR (Firecracker's O_RDONLY file fails the write).
 * - GET_ID writes 20 bytes and answers OK for any buffer of >= 20 bytes.
 * - Reset is not supported, as in Firecracker: `reset()` drops the activation and returns
 *   false, so the transport latches FAILED.
 *
 * Threads: one BlockDevice lives in the block device's worker. vCPU threads build only the
 * description (`blockDescription`), over the same config bytes and metrics buffers.
 */
import { BlockRequestError, VirtioActivateError, VirtqueueError } from '../../../errors.js';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { RateLimiter, TOKEN_TYPE } from '../../rate-limiter/rate-limiter.js';
import {
  VIRTIO_BLK_CONFIG_CAPACITY, VIRTIO_BLK_CONFIG_SEG_MAX, VIRTIO_BLK_CONFIG_SIZE, VIRTIO_BLK_CONFIG_SIZE_MAX, VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_SECTOR_SHIFT, VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_RING_INDIRECT_DESC,
  VIRTIO_F_VERSION_1, VIRTIO_ID_BLOCK, featureBit,
} from '../constants.js';
import {
  ByteConfigSpace, VIRTIO_INTERRUPT, activateQueues, signalUsed, type VirtioActivation, type VirtioDevice, type VirtioDeviceDescription,
  type VirtioInterrupt,
} from '../device.js';
import type { Queue } from '../queue.js';
import { BlockMetrics } from './metrics.js';
import { BLOCK_REQUEST_KIND, parseBlockRequest, type BlockRequest, type BlockRequestLimits } from './request.js';
import { InFlightTable, isAsyncBackend, type AsyncBlockBackend, type InFlight } from './async-io.js';

/** Disk I/O as the device needs it; the file backends and the tests' memory backend implement it. */
export interface BlockBackend {
  /**
   * Reads from byte `offset` into `bufs` in order (views of guest RAM, a request's segments:
   * one preadv); returns the count, at most their total length.
   */
  readAt(bufs: readonly Uint8Array[], offset: number): number | Promise<number>;
  /** Writes `bufs` in order at byte `offset` (one pwritev); returns the count written. */
  writeAt(bufs: readonly Uint8Array[], offset: number): number | Promise<number>;
  /** Makes written data durable (fsync). */
  flush(): void | Promise<void>;
  /** The device id bytes (Firecracker: `{st_dev}{st_rdev}{st_ino}`), at most VIRTIO_BLK_ID_BYTES used. */
  getId(): Uint8Array;
}

/** Firecracker `cache_type` values (src/vmm/src/devices/virtio/block/mod.rs `CacheType`). */
export const CACHE_TYPE = {
  /** Flush is not offered to the guest. */
  UNSAFE: 'Unsafe',
  /** VIRTIO_BLK_F_FLUSH offered; flushes reach the backend. */
  WRITEBACK: 'Writeback',
} as const;

/** One of CACHE_TYPE's values. */
export type CacheType = (typeof CACHE_TYPE)[keyof typeof CACHE_TYPE];

/** Firecracker `io_engine` values: Sync (blocking syscalls on the device's thread) or Async (io_uring). */
export type FileEngineType = 'Sync' | 'Async';

/** Queue size of the block queue (Firecracker FIRECRACKER_MAX_QUEUE_SIZE). */
export const BLOCK_QUEUE_SIZE = 256;
/**
 * seg_max offered with VIRTIO_BLK_F_SEG_MAX: the most data descriptors of one IN/OUT.
 *
 * Firecracker offers neither SEG_MAX nor SIZE_MAX, so a Linux guest builds every request from
 * one segment (virtio_blk.c: sg_elems = 1 without SEG_MAX): page-cache pages are rarely
 * physically contiguous, so sequential I/O arrives as ~4 KiB requests, one syscall and one
 * notification round trip each. QEMU offers seg_max = queue size - 2 and the guest sends
 * requests of up to max_sectors_kb (1280 KiB by default). Offering it is a guest-visible
 * feature, not an API change. With INDIRECT_DESC (offered too, see blockFeatures) a request
 * takes one ring slot whatever its segment count, so seg_max is QEMU's queue size - 2: the
 * header, the segments and the status then fit one chain of at most the queue size, the
 * longest chain a driver may build (§2.6.5.3.1) even when it did not take INDIRECT_DESC.
 */
export const BLOCK_SEG_MAX = BLOCK_QUEUE_SIZE - 2;
/**
 * size_max offered with VIRTIO_BLK_F_SIZE_MAX: the longest data descriptor, in bytes. Data is
 * never copied (segments are views of guest RAM handed to preadv/pwritev or io_uring), so the
 * bound is about how long one request may hold the drive's thread: at most BLOCK_SEG_MAX ×
 * 1 MiB. Linux merges contiguous pages into segments of up to this size (max_segment_size).
 */
export const BLOCK_SIZE_MAX = 1 << 20;

/**
 * Retry period, ms, for Async operations the kernel refused at submission (io_uring_enter
 * EAGAIN/EBUSY: short of memory or completion space). Short, because the driver is waiting.
 */
export const SUBMIT_RETRY_MS = 10;

/** The drive properties the model needs. */
export interface BlockDeviceParams {
  /** Size of the backing file in bytes (capacity = floor(size / 512) sectors). */
  readonly diskSizeBytes: number;
  /** Read-only drive (VIRTIO_BLK_F_RO; OUT requests fail). */
  readonly readOnly: boolean;
  /** Cache type; Writeback offers VIRTIO_BLK_F_FLUSH. */
  readonly cacheType: CacheType;
}

/** Capacity in 512-byte sectors of a disk of `bytes` bytes (rounded down). */
export function blockCapacity(bytes: number): bigint {
  return BigInt(Math.floor(bytes)) >> BigInt(VIRTIO_BLK_SECTOR_SHIFT);
}

/**
 * The offered feature bits for a drive. Beyond Firecracker's VERSION_1 and EVENT_IDX (plus
 * FLUSH, RO): SEG_MAX and SIZE_MAX (BLOCK_SEG_MAX), and INDIRECT_DESC as QEMU offers it. Without
 * INDIRECT_DESC a request of n segments holds n + 2 ring descriptors, so at most two
 * full-size requests are posted at once and the guest waits for completions to post more;
 * with it each request is one ring slot (Linux virtio_ring.c takes an indirect table for any
 * request of more than one descriptor) and the guest can keep the whole queue posted.
 */
export function blockFeatures(cfg: BlockDeviceParams): bigint {
  let f = featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_EVENT_IDX) | featureBit(VIRTIO_F_RING_INDIRECT_DESC)
    | featureBit(VIRTIO_BLK_F_SEG_MAX) | featureBit(VIRTIO_BLK_F_SIZE_MAX);
  if (cfg.cacheType === CACHE_TYPE.WRITEBACK) f |= featureBit(VIRTIO_BLK_F_FLUSH);
  if (cfg.readOnly) f |= featureBit(VIRTIO_BLK_F_RO);
  return f;
}

/**
 * Encodes `struct virtio_blk_config` (capacity, size_max, seg_max) into `bytes` (e.g. a view
 * of a SharedArrayBuffer).
 */
export function encodeBlockConfig(capacitySectors: bigint, bytes: Uint8Array = new Uint8Array(VIRTIO_BLK_CONFIG_SIZE)): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setBigUint64(VIRTIO_BLK_CONFIG_CAPACITY, capacitySectors, true);
  view.setUint32(VIRTIO_BLK_CONFIG_SIZE_MAX, BLOCK_SIZE_MAX, true);
  view.setUint32(VIRTIO_BLK_CONFIG_SEG_MAX, BLOCK_SEG_MAX, true);
  return bytes;
}

/** The request limits the config space announces; the device enforces them on every chain. */
export const BLOCK_REQUEST_LIMITS: BlockRequestLimits = { segMax: BLOCK_SEG_MAX, sizeMax: BLOCK_SIZE_MAX };

/**
 * The transport-facing description of a drive. `configBytes` (VIRTIO_BLK_CONFIG_SIZE bytes,
 * ideally over a SharedArrayBuffer shared with the device worker) defaults to a private
 * encoding of the capacity; config writes count `cfg_fails` in `metrics`.
 */
export function blockDescription(cfg: BlockDeviceParams, configBytes?: Uint8Array, metrics?: BlockMetrics): VirtioDeviceDescription {
  const bytes = configBytes ?? encodeBlockConfig(blockCapacity(cfg.diskSizeBytes));
  return {
    deviceId: VIRTIO_ID_BLOCK,
    features: blockFeatures(cfg),
    queueMaxSizes: [BLOCK_QUEUE_SIZE],
    config: new ByteConfigSpace(bytes, () => metrics?.inc('cfg_fails')),
  };
}

/** Injected collaborators; all optional. */
export interface BlockDeviceOptions {
  /** The drive's limiter (default: unlimited). */
  readonly rateLimiter?: RateLimiter;
  /** Where to count (default: a private BlockMetrics). */
  readonly metrics?: BlockMetrics;
  /** Config bytes shared with the vCPU-side description (default: private). */
  readonly configBytes?: Uint8Array;
  /** Clock for read_agg / write_agg, µs (default: performance.now). */
  readonly nowUs?: () => number;
}

interface Active {
  readonly mem: GuestMemory;
  readonly interrupt: VirtioInterrupt;
  readonly queue: Queue;
}

/** A virtio-block device. */
export class BlockDevice implements VirtioDevice {
  /** The transport-facing description (same as `blockDescription` with the shared bytes). */
  readonly description: VirtioDeviceDescription;
  /** The drive's metrics. */
  readonly metrics: BlockMetrics;
  /** The drive's rate limiter. */
  readonly rateLimiter: RateLimiter;
  private readonly configBytes: Uint8Array;
  private readonly nowUs: () => number;
  private capacity: bigint;
  private active: Active | undefined;
  /** The in-flight asynchronous request's continuation, if any. */
  private pending: Promise<void> | undefined;
  /** io_engine Async: requests handed to the engine and not completed yet. */
  private readonly inflight = new InFlightTable<Active>(BLOCK_QUEUE_SIZE);
  /** io_engine Async: the last drain stopped because the engine was full. */
  private engineFull = false;

  constructor(private cfg: BlockDeviceParams, private backend: BlockBackend | AsyncBlockBackend, options: BlockDeviceOptions = {}) {
    this.metrics = options.metrics ?? new BlockMetrics();
    this.rateLimiter = options.rateLimiter ?? new RateLimiter();
    this.nowUs = options.nowUs ?? (() => performance.now() * 1000);
    this.capacity = blockCapacity(cfg.diskSizeBytes);
    this.configBytes = encodeBlockConfig(this.capacity, options.configBytes);
    this.description = blockDescription(cfg, this.configBytes, this.metrics);
  }

  /** Disk capacity in sectors. */
  get capacitySectors(): bigint {
    return this.capacity;
  }

  /** True between a successful `activate` and `reset`. */
  get isActive(): boolean {
    return this.active !== undefined;
  }

  /**
   * Takes guest memory, the interrupt channel and the driver's queue. On failure counts
   * `activate_fails`, asks for a reset and returns the error. The actor should then call
   * `processQueue()` once (Firecracker re-kicks queues after activation).
   */
  activate(mem: GuestMemory, interrupt: VirtioInterrupt, activation: VirtioActivation): VirtioActivateError | undefined {
    const queues = activateQueues(mem, interrupt, activation, 1, 'virtio-block');
    if (queues instanceof VirtioActivateError) {
      this.metrics.inc('activate_fails');
      return queues;
    }
    this.active = { mem, interrupt, queue: queues[0]! };
    return undefined;
  }

  /** Drops the activation. Returns false: like Firecracker's, this device cannot be reset. */
  reset(): boolean {
    this.active = undefined;
    this.pending = undefined;
    return false;
  }

  /** The queue's ioeventfd fired (Firecracker `process_queue_event`). */
  onQueueNotify(_queue = 0): void | Promise<void> {
    this.metrics.inc('queue_event_count');
    if (this.rateLimiter.isBlocked()) {
      this.metrics.inc('rate_limiter_throttled_events');
      return;
    }
    return this.processQueue();
  }

  /** The actor's rate-limiter timer fired (Firecracker `process_rate_limiter_event`). */
  onRateLimiterTimer(): void | Promise<void> {
    const be = this.backend;
    if (isAsyncBackend(be) && be.unsubmitted() > 0) this.submitAsync(be);
    const due = this.rateLimiter.timerFired();
    if (!due && this.rateLimiter.retryAfterMs() === 0) return; // the limiter is not blocked: only the resubmit was due
    this.metrics.inc('rate_limiter_event_count');
    if (due) return this.processQueue();
  }

  /**
   * Milliseconds until `onRateLimiterTimer()` is due: the rate limiter's retry time, or
   * SUBMIT_RETRY_MS while the Async engine holds operations the kernel refused; 0 for neither.
   */
  retryAfterMs(): number {
    const limiter = this.rateLimiter.retryAfterMs();
    const be = this.backend;
    if (!isAsyncBackend(be) || be.unsubmitted() === 0) return limiter;
    return limiter > 0 ? Math.min(limiter, SUBMIT_RETRY_MS) : SUBMIT_RETRY_MS;
  }

  /**
   * Swaps the backing file (PATCH /drives): new capacity in the config space, a config
   * interrupt when active, `update_count` counted.
   */
  updateBackend(backend: BlockBackend | AsyncBlockBackend, diskSizeBytes: number): void {
    this.settleInFlight();
    this.backend = backend;
    this.cfg = { ...this.cfg, diskSizeBytes };
    this.capacity = blockCapacity(diskSizeBytes);
    encodeBlockConfig(this.capacity, this.configBytes);
    this.metrics.inc('update_count');
    this.active?.interrupt.trigger(VIRTIO_INTERRUPT.CONFIG);
  }

  /** Processes available requests (see the module comment). Never throws for guest input. */
  processQueue(): void | Promise<void> {
    if (this.pending) return this.pending;
    if (!this.active || this.active.queue.broken) return;
    return this.drain(this.active);
  }

  private drain(a: Active): void | Promise<void> {
    const be = this.backend;
    if (!isAsyncBackend(be)) return this.drainRing(a, undefined);
    this.drainRing(a, be);
    this.submitAsync(be); // one submission per drained batch
  }

  /** Hands queued operations to the kernel; what it refuses is retried by the timer (retryAfterMs). */
  private submitAsync(be: AsyncBlockBackend): void {
    try {
      be.submit();
    } catch {
      this.metrics.inc('event_fails'); // queued operations stay in the engine; the timer retries
    }
  }

  private drainRing(a: Active, engine: AsyncBlockBackend | undefined): void | Promise<void> {
    const q = a.queue;
    let usedAny = false;
    let queuedAny = false;
    this.engineFull = false;
    for (;;) {
      if (engine && (this.inflight.size >= this.inflight.capacity || engine.freeSlots() <= 0)) {
        this.engineFull = true;
        this.metrics.inc('io_engine_throttled_events'); // completions resume this drain
        break;
      }
      const chain = q.popOrEnableNotification();
      if (chain === null) break;
      if (chain instanceof VirtqueueError) {
        if (q.broken) {
          this.metrics.inc('event_fails');
          a.interrupt.needsReset();
          break;
        }
        this.metrics.inc('execute_fails');
        if (chain.head !== undefined && q.addUsed(chain.head, 0) === undefined) usedAny = true;
        continue;
      }
      this.metrics.inc('remaining_reqs_count', q.len());
      const req = parseBlockRequest(a.mem, chain, this.capacity, BLOCK_REQUEST_LIMITS);
      if (req instanceof BlockRequestError) {
        this.metrics.inc('execute_fails');
        q.addUsed(chain.head, 0);
        usedAny = true;
        continue;
      }
      if (req.refused) {
        // Beyond seg_max/size_max: well formed, so the guest hears IOERR rather than silence.
        this.metrics.inc('execute_fails');
        q.addUsed(req.head, this.finish(a.mem, req, VIRTIO_BLK_S_IOERR, 0));
        usedAny = true;
        continue;
      }
      if (this.throttled(req)) {
        q.undoPop();
        this.metrics.inc('rate_limiter_throttled_events');
        break;
      }
      if (engine && req.kind !== BLOCK_REQUEST_KIND.GET_ID && req.kind !== BLOCK_REQUEST_KIND.UNSUPPORTED) {
        const failed = this.queueAsync(a, engine, req);
        if (failed !== undefined) {
          q.addUsed(req.head, failed);
          usedAny = true;
        } else queuedAny = true;
        continue;
      }
      const used = this.execute(a.mem, req);
      if (typeof used === 'number') {
        q.addUsed(req.head, used);
        usedAny = true;
        continue;
      }
      if (usedAny) this.signalUsed(a);
      const p = used.then((len) => {
        if (this.active !== a) return; // reset while in flight: the guest no longer owns this ring
        this.pending = undefined;
        q.addUsed(req.head, len);
        this.signalUsed(a);
        return this.drain(a);
      });
      this.pending = p;
      return p;
    }
    if (usedAny) this.signalUsed(a);
    else if (!this.engineFull && !queuedAny) this.metrics.inc('no_avail_buffer');
  }

  /**
   * io_engine Async: the engine's completion eventfd fired. Completes every finished request,
   * interrupts the driver if it asked, and resumes a drain the full engine had stopped.
   */
  onIoCompletion(): void {
    const be = this.backend;
    if (!isAsyncBackend(be)) return;
    this.completeAsync(be);
    if (this.engineFull) void this.processQueue();
  }

  activeQueues(): readonly Queue[] {
    return this.active ? [this.active.queue] : [];
  }

  /** Snapshot: every request in flight completes first (Firecracker block persist: the async engine is drained). */
  prepareSave(): void {
    this.settleInFlight();
  }

  /** Requests in flight in the Async engine. */
  get inFlight(): number {
    return this.inflight.size;
  }

  /** Waits for every request in flight and completes it (before a backing-file swap, or stop). */
  settleInFlight(): void {
    const be = this.backend;
    if (!isAsyncBackend(be)) return;
    while (this.inflight.size > 0) {
      be.wait(1);
      this.completeAsync(be);
    }
  }

  /** Queues an IN/OUT/FLUSH on the engine; returns a used length when it failed at once. */
  private queueAsync(a: Active, engine: AsyncBlockBackend, req: BlockRequest): number | undefined {
    const fail = () => this.finish(a.mem, req, VIRTIO_BLK_S_IOERR, 0);
    const isFlush = req.kind === BLOCK_REQUEST_KIND.FLUSH;
    const bufs = isFlush ? undefined : this.transferBuffers(a.mem, req);
    if (!isFlush && !bufs) return fail();
    const tag = this.inflight.add({ req, active: a, startUs: this.nowUs() });
    if (tag === undefined) return fail();
    let queued: boolean;
    try {
      if (isFlush) queued = engine.queueFlush(tag);
      else if (req.kind === BLOCK_REQUEST_KIND.IN) queued = engine.queueRead(bufs!, req.offset, tag);
      else queued = engine.queueWrite(bufs!, req.offset, tag);
    } catch {
      queued = false;
    }
    if (queued) return undefined;
    this.inflight.take(tag);
    return fail();
  }

  private completeAsync(engine: AsyncBlockBackend): void {
    let usedAny = false;
    for (const c of engine.reap()) {
      const e = this.inflight.take(c.userData);
      if (!e) {
        this.metrics.inc('event_fails'); // a completion we never queued: ignore it
        continue;
      }
      if (e.active !== this.active) continue; // reset while in flight: the guest no longer owns this ring
      e.active.queue.addUsed(e.req.head, this.finishAsync(e, c.res));
      usedAny = true;
    }
    if (usedAny && this.active) this.signalUsed(this.active);
  }

  /** Status and metrics of a completed Async request (`res`: bytes moved or -errno); returns the used length. */
  private finishAsync(e: InFlight<Active>, res: number): number {
    const { req } = e;
    const mem = e.active.mem;
    if (req.kind === BLOCK_REQUEST_KIND.FLUSH) return res < 0 ? this.finish(mem, req, VIRTIO_BLK_S_IOERR, 0) : this.finishFlush(mem, req);
    return this.finishTransfer(mem, req, e.startUs, res, res < 0 || res > req.dataLen);
  }

  /** Views of the request's segments; an OUT to a read-only drive, or a segment outside guest RAM, yields undefined (IOERR). */
  private transferBuffers(mem: GuestMemory, req: BlockRequest): Uint8Array[] | undefined {
    if (req.kind === BLOCK_REQUEST_KIND.OUT && this.cfg.readOnly) return undefined;
    const bufs: Uint8Array[] = [];
    for (const seg of req.segments) {
      const buf = mem.slice(seg.addr, seg.len);
      if (!(buf instanceof Uint8Array)) return undefined;
      bufs.push(buf);
    }
    return bufs;
  }

  /**
   * Metrics, status byte and used length of an IN/OUT that moved `moved` bytes (clamped to
   * the request; `failed`: the engine reported an error or an impossible count, never OK).
   * Both engines finish through here.
   */
  private finishTransfer(mem: GuestMemory, req: BlockRequest, startUs: number, moved: unknown, failed = false): number {
    const isIn = req.kind === BLOCK_REQUEST_KIND.IN;
    const n = Number.isInteger(moved) ? Math.min(Math.max(moved as number, 0), req.dataLen) : 0;
    this.metrics.recordLatency(isIn ? 'read_agg' : 'write_agg', this.nowUs() - startUs);
    this.metrics.inc(isIn ? 'read_bytes' : 'write_bytes', n);
    const ok = !failed && n === req.dataLen;
    if (ok) this.metrics.inc(isIn ? 'read_count' : 'write_count');
    return this.finish(mem, req, ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR, isIn ? n : 0);
  }

  /** A FLUSH the backend completed. */
  private finishFlush(mem: GuestMemory, req: BlockRequest): number {
    this.metrics.inc('flush_count');
    return this.finish(mem, req, VIRTIO_BLK_S_OK, 0);
  }

  private signalUsed(a: Active): void {
    signalUsed(a.queue, a.interrupt);
  }

  /** Firecracker `Request::rate_limit`: 1 op, then data_len bytes for IN/OUT (ops given back on failure). */
  private throttled(req: BlockRequest): boolean {
    if (!this.rateLimiter.consume(1, TOKEN_TYPE.OPS)) return true;
    if (req.kind === BLOCK_REQUEST_KIND.IN || req.kind === BLOCK_REQUEST_KIND.OUT) {
      if (!this.rateLimiter.consume(req.dataLen, TOKEN_TYPE.BYTES)) {
        this.rateLimiter.manualReplenish(1, TOKEN_TYPE.OPS);
        return true;
      }
    }
    return false;
  }

  /** Runs a request; returns the used length (or a Promise of it that never rejects). */
  private execute(mem: GuestMemory, req: BlockRequest): number | Promise<number> {
    const fail = () => this.finish(mem, req, VIRTIO_BLK_S_IOERR, 0);
    // Async backends reach here only for GET_ID and unsupported types (both synchronous).
    const backend = this.backend as BlockBackend;
    switch (req.kind) {
      case BLOCK_REQUEST_KIND.IN:
      case BLOCK_REQUEST_KIND.OUT: {
        const bufs = this.transferBuffers(mem, req);
        if (!bufs) return fail();
        const start = this.nowUs();
        return settle(
          () => (req.kind === BLOCK_REQUEST_KIND.IN ? backend.readAt(bufs, req.offset) : backend.writeAt(bufs, req.offset)),
          (result) => this.finishTransfer(mem, req, start, result),
          fail,
        );
      }
      case BLOCK_REQUEST_KIND.FLUSH:
        return settle(() => backend.flush(), () => this.finishFlush(mem, req), fail);
      case BLOCK_REQUEST_KIND.GET_ID:
        return settle(
          () => backend.getId(),
          (id) => {
            const bytes = new Uint8Array(VIRTIO_BLK_ID_BYTES);
            bytes.set((id as Uint8Array).subarray(0, VIRTIO_BLK_ID_BYTES));
            if (mem.write(req.dataAddr, bytes)) return fail();
            return this.finish(mem, req, VIRTIO_BLK_S_OK, VIRTIO_BLK_ID_BYTES);
          },
          fail,
        );
      case BLOCK_REQUEST_KIND.UNSUPPORTED:
        return this.finish(mem, req, VIRTIO_BLK_S_UNSUPP, 0);
      default: {
        const never: never = req.kind;
        throw new Error(`unknown block request kind ${String(never)}`);
      }
    }
  }

  /** Writes the status byte; the used length is bytes written + 1, or 0 if the status is unwritable. */
  private finish(mem: GuestMemory, req: BlockRequest, status: number, bytesToMem: number): number {
    if (status !== VIRTIO_BLK_S_OK) this.metrics.inc('invalid_reqs_count');
    return mem.writeU8(req.statusAddr, status) ? 0 : bytesToMem + 1;
  }
}

/**
 * Calls `op`; routes its value (sync or async) to `ok`, a throw or rejection to `fail`.
 * The result never throws or rejects.
 */
function settle<T>(op: () => T | Promise<T>, ok: (v: T) => number, fail: () => number): number | Promise<number> {
  let r: T | Promise<T>;
  try {
    r = op();
  } catch {
    return fail();
  }
  if (r instanceof Promise) return r.then(ok, fail).catch(fail);
  try {
    return ok(r);
  } catch {
    return fail();
  }
}
