/**
 * What the one-queue device models (rng, pmem, virtio-mem) do alike around their queue: take
 * it at activation, report it for a snapshot, drop it at reset. The rate-limited ones (rng,
 * pmem) also share how a request waits for the limiter: it stays in the ring (`throttled`) and
 * the worker's timer, armed from `retryAfterMs`, serves it through `onRateLimiterTimer`.
 */
import { VirtioActivateError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { RateLimiter, TOKEN_TYPE } from '../rate-limiter/rate-limiter.js';
import { activateQueues, type VirtioActivation, type VirtioDevice, type VirtioDeviceDescription, type VirtioInterrupt } from './device.js';
import type { Queue } from './queue.js';

/** What a one-queue device holds between `activate` and `reset`. */
export interface ActiveQueue {
  interrupt: VirtioInterrupt;
  mem: GuestMemory;
  queue: Queue;
  /** The ring broke (avail.idx ran ahead): NEEDS_RESET was raised and nothing is served. */
  broken: boolean;
}

/** The counters the shared code bumps; each device's metrics group has them. */
interface QueueDeviceMetrics {
  inc(name: 'activate_fails'): void;
}
interface RateLimitedDeviceMetrics {
  inc(name: 'activate_fails' | 'rate_limiter_event_count'): void;
}

export abstract class SingleQueueDevice implements VirtioDevice {
  abstract readonly description: VirtioDeviceDescription;
  abstract readonly metrics: QueueDeviceMetrics;
  protected active: ActiveQueue | undefined;

  protected constructor(
    /** The device's name in activation errors ('virtio-rng'). */
    private readonly name: string,
    /** What `reset` returns: false for a device that cannot be reset. */
    private readonly resettable: boolean,
  ) {}

  abstract onQueueNotify(queue: number): void;

  /** True between a successful `activate` and `reset`. */
  get isActive(): boolean {
    return this.active !== undefined;
  }

  /** Takes guest memory, the interrupt channel and the queue; on failure counts `activate_fails`. */
  activate(mem: GuestMemory, interrupt: VirtioInterrupt, activation: VirtioActivation): VirtioActivateError | undefined {
    const queues = activateQueues(mem, interrupt, activation, 1, this.name);
    if (queues instanceof VirtioActivateError) {
      this.metrics.inc('activate_fails');
      return queues;
    }
    this.active = { interrupt, mem, queue: queues[0]!, broken: false };
    return undefined;
  }

  activeQueues(): readonly Queue[] {
    return this.active ? [this.active.queue] : [];
  }

  /** Drops the activation. */
  reset(): boolean {
    this.active = undefined;
    return this.resettable;
  }
}

/** A one-queue device whose requests are charged to a rate limiter. */
export abstract class RateLimitedQueueDevice extends SingleQueueDevice {
  abstract override readonly metrics: RateLimitedDeviceMetrics;
  readonly rateLimiter: RateLimiter;
  /** Requests wait in the ring for the limiter's budget. */
  protected throttled = false;

  protected constructor(name: string, resettable: boolean, rateLimiter: RateLimiter | undefined) {
    super(name, resettable);
    this.rateLimiter = rateLimiter ?? new RateLimiter();
  }

  /** Serves every posted request the limiter allows. */
  abstract processQueue(): void;

  override reset(): boolean {
    this.throttled = false;
    return super.reset();
  }

  /** The limiter's timer is due: serve what waited (Firecracker `process_rate_limiter_event`). */
  onRateLimiterTimer(): void {
    const due = this.rateLimiter.timerFired() || (this.throttled && !this.rateLimiter.isBlocked());
    if (!due) return;
    this.metrics.inc('rate_limiter_event_count');
    this.processQueue();
  }

  /**
   * Milliseconds until `onRateLimiterTimer()` is due; 0 when nothing waits. While a request
   * waits it is at least 1, even when the block has just expired, so the worker comes back.
   */
  retryAfterMs(): number {
    const ms = this.rateLimiter.retryAfterMs();
    return this.throttled ? Math.max(ms, 1) : ms;
  }

  /** One op and `bytes` bytes, both or neither (Firecracker `rate_limit_request`). */
  protected takeBudget(bytes: number): boolean {
    if (!this.rateLimiter.consume(1, TOKEN_TYPE.OPS)) return false;
    if (this.rateLimiter.consume(bytes, TOKEN_TYPE.BYTES)) return true;
    this.rateLimiter.manualReplenish(1, TOKEN_TYPE.OPS);
    return false;
  }
}
