/**
 * The virtio-rng (entropy) device model (virtio 1.1 §5.4; Firecracker
 * src/vmm/src/devices/virtio/rng/device.rs, v1.16; docs/design.md "Entropy"), pure over an
 * injected fill function so tests can make the host's randomness fail.
 *
 * - One queue of ENTROPY_QUEUE_SIZE entries, feature VERSION_1 only, no config space (reads
 *   are zeros, writes are ignored, as Firecracker's `read_config`/`write_config` do nothing).
 * - Every chain the driver posts is a request for as many random bytes as its device-writable
 *   buffers hold. The bytes come from the host's getrandom (crypto.randomFillSync) written
 *   straight into the guest-RAM views of the chain: no copy through a JS buffer.
 * - A request fills at most ENTROPY_MAX_REQUEST_BYTES (firecracker-facts §4.9); a larger
 *   chain is filled that far and used with that length, so a hostile 4 GiB chain cannot stall
 *   the worker.
 * - Rate limiter: one op plus the request's bytes, both or neither (`rate_limit_request`). A
 *   refused request goes back to the ring (undoPop) and waits for the limiter's timer.
 * - A chain that cannot be used (a read-only buffer, one outside guest RAM, a broken chain)
 *   is used with length 0 and counted `entropy_event_fails` (and Kindling's `bad_chains`);
 *   a failed host read is used with length 0 and counted `host_rng_fails` +
 *   `entropy_event_fails`. Nothing the guest writes makes the model throw.
 */
import { randomFillSync } from 'node:crypto';
import { VirtqueueError } from '../../../errors.js';
import { type RateLimiter, TOKEN_TYPE } from '../../rate-limiter/rate-limiter.js';
import { VIRTIO_F_VERSION_1, VIRTIO_ID_RNG, featureBit } from '../constants.js';
import { ByteConfigSpace, signalUsed, type VirtioDeviceDescription } from '../device.js';
import { chainViews } from '../iovec.js';
import type { DescriptorChain, Queue } from '../queue.js';
import { RateLimitedQueueDevice, type ActiveQueue } from '../single-queue.js';
import { EntropyMetrics } from './metrics.js';

/** Firecracker RNG_NUM_QUEUES. */
export const ENTROPY_NUM_QUEUES = 1;
/** Firecracker RNG_QUEUE: the request queue's index. */
export const ENTROPY_QUEUE = 0;
/** Entries of the request queue (Firecracker FIRECRACKER_MAX_QUEUE_SIZE). */
export const ENTROPY_QUEUE_SIZE = 256;
/** Most bytes one request is given (firecracker-facts §4.9 "≤64 KiB per request"). */
export const ENTROPY_MAX_REQUEST_BYTES = 64 * 1024;
/** The offered features (Firecracker `avail_features`: VERSION_1 only). */
export const ENTROPY_FEATURES = featureBit(VIRTIO_F_VERSION_1);
/** The device id Firecracker's API and thread names use (`ENTROPY_DEV_ID`). */
export const ENTROPY_DEV_ID = 'rng';

/** Fills a view of guest RAM with random bytes; throws when the host cannot. */
export type RandomFill = (view: Uint8Array) => void;

/** The transport-facing description: no config space, so reads are zeros and writes do nothing. */
export function entropyDescription(): VirtioDeviceDescription {
  return { deviceId: VIRTIO_ID_RNG, features: ENTROPY_FEATURES, queueMaxSizes: [ENTROPY_QUEUE_SIZE], config: new ByteConfigSpace(new Uint8Array(0)) };
}

export interface EntropyDeviceOptions {
  /** PUT /entropy's rate limiter (an unlimited one when absent). */
  rateLimiter?: RateLimiter;
  metrics?: EntropyMetrics;
  /** The host's randomness (default: getrandom through crypto.randomFillSync). */
  fill?: RandomFill;
}

export class EntropyDevice extends RateLimitedQueueDevice {
  override readonly description: VirtioDeviceDescription = entropyDescription();
  override readonly metrics: EntropyMetrics;
  private readonly fill: RandomFill;

  constructor(options: EntropyDeviceOptions = {}) {
    // Not resettable: `reset()` drops the activation and returns false, as Firecracker's
    // entropy device cannot be reset.
    super('virtio-rng', false, options.rateLimiter);
    this.metrics = options.metrics ?? new EntropyMetrics();
    this.fill = options.fill ?? ((v) => void randomFillSync(v));
  }

  override onQueueNotify(queue: number): void {
    if (queue === ENTROPY_QUEUE) this.onRequestQueueNotify();
  }

  /**
   * The driver posted requests (Firecracker `process_entropy_queue_event`): served unless the
   * limiter is blocked, in which case its timer will serve them.
   */
  onRequestQueueNotify(): void {
    if (!this.usable()) return;
    if (this.rateLimiter.isBlocked()) {
      this.metrics.inc('rate_limiter_event_count');
      return;
    }
    this.processQueue();
  }

  /** Serves every posted request the limiter allows (Firecracker `process_entropy_queue`). */
  override processQueue(): void {
    const a = this.usable();
    if (!a) return;
    this.throttled = false;
    const q = a.queue;
    let used = false;
    for (;;) {
      const chain = q.pop();
      if (chain === null) break;
      this.metrics.inc('entropy_event_count');
      if (chain instanceof VirtqueueError) {
        if (q.broken) return this.fail(a);
        this.badChain();
        if (chain.head !== undefined) used = this.complete(q, chain.head, 0) || used;
        continue;
      }
      const views = chainViews(a.mem, chain, true);
      if (!views) {
        this.badChain();
        used = this.complete(q, chain.head, 0) || used;
        continue;
      }
      const len = Math.min(chain.totalLen, ENTROPY_MAX_REQUEST_BYTES);
      if (!this.takeBudget(len)) {
        this.metrics.inc('entropy_rate_limiter_throttled');
        this.throttled = true;
        q.undoPop();
        break;
      }
      const bytes = len === 0 ? 0 : this.fillChain(views, len);
      if (!this.complete(q, chain.head, bytes)) {
        // The used ring cannot take it: give the budget back and stop (Firecracker does the same).
        this.rateLimiter.manualReplenish(1, TOKEN_TYPE.OPS);
        this.rateLimiter.manualReplenish(bytes, TOKEN_TYPE.BYTES);
        break;
      }
      used = true;
      this.metrics.inc('entropy_bytes', bytes);
    }
    if (used) signalUsed(q, a.interrupt);
  }

  /** Writes `len` random bytes into the leading views; 0 when the host's randomness failed. */
  private fillChain(views: readonly Uint8Array[], len: number): number {
    let left = len;
    try {
      for (const v of views) {
        if (left === 0) break;
        const part = v.length <= left ? v : v.subarray(0, left);
        this.fill(part);
        left -= part.length;
      }
    } catch {
      this.metrics.inc('host_rng_fails');
      this.metrics.inc('entropy_event_fails');
      return 0;
    }
    return len;
  }

  /** Puts `head` in the used ring; false (counted) when the ring refuses it. */
  private complete(q: Queue, head: DescriptorChain['head'], len: number): boolean {
    if (q.addUsed(head, len) === undefined) return true;
    this.metrics.inc('entropy_event_fails');
    return false;
  }

  private badChain(): void {
    this.metrics.inc('bad_chains');
    this.metrics.inc('entropy_event_fails');
  }

  private usable(): ActiveQueue | undefined {
    const a = this.active;
    return a && !a.broken ? a : undefined;
  }

  /** The ring is broken (avail.idx ran ahead): stop and ask the driver for a reset. */
  private fail(a: ActiveQueue): void {
    a.broken = true;
    this.metrics.inc('entropy_event_fails');
    a.interrupt.needsReset();
  }
}
