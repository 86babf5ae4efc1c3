/**
 * Firecracker's `RateLimiter` (src/vmm/src/rate_limiter/mod.rs): an optional bandwidth
 * (bytes) bucket and an optional ops bucket, plus one timer.
 *
 * - A failed consume blocks ALL consumption (both token types) until the refill timer fires:
 *   REFILL_TIMER_INTERVAL_MS (100 ms) after the failure.
 * - An over-size request (more tokens than the bucket size) is granted once, empties the
 *   budget, and blocks the limiter for excess/size × refill_time. Firecracker truncates that
 *   duration to whole ms (and a 0 ms one-shot disarms its timerfd, leaving the limiter stuck);
 *   Kindling uses the exact nanosecond value, and a zero duration does not block.
 * - A disabled bucket (absent, size 0 or refill_time 0) always grants, unless blocked.
 *
 * Pure: no timers here. The limiter records `blockedUntil` (monotonic ns from the injected
 * clock); the owning actor arms a timer for `retryAfterMs()` and on expiry calls
 * `timerFired()` then re-processes its queue. Consumption after `blockedUntil` is allowed even
 * if the timer callback is late.
 */
import { NANOSEC_IN_ONE_MILLISEC, TokenBucket, toU64 } from './token-bucket.js';

/** Retry interval after a failed consume, ms (Firecracker REFILL_TIMER_INTERVAL_MS). */
export const REFILL_TIMER_INTERVAL_MS = 100;

/**
 * A token bucket as the API describes it (Firecracker's `TokenBucket` schema): the one
 * definition, used by the API's resource store (src/config/rate-limiter.ts) and the devices.
 */
export interface TokenBucketConfig {
  /** Bucket capacity in tokens (bytes or ops). */
  readonly size: number;
  /** Extra initial credit, not refilled; absent or null = none. */
  readonly one_time_burst?: number | null;
  /** Time to refill the bucket from empty to full, ms. */
  readonly refill_time: number;
}

/** A rate limiter as the API describes it; absent/null buckets are disabled (PUT) or unchanged (PATCH). */
export interface RateLimiterConfig {
  readonly bandwidth?: TokenBucketConfig | null;
  readonly ops?: TokenBucketConfig | null;
}

/** Which bucket a consume draws from. */
export const TOKEN_TYPE = {
  /** Bandwidth, in bytes. */
  BYTES: 'bytes',
  /** Operations. */
  OPS: 'ops',
} as const;

/** One of TOKEN_TYPE's values. */
export type TokenType = (typeof TOKEN_TYPE)[keyof typeof TOKEN_TYPE];

/** Monotonic clock in nanoseconds. */
export type NanoClock = () => bigint;

/** The default clock: process.hrtime.bigint (monotonic). */
export const monotonicNs: NanoClock = () => process.hrtime.bigint();

function bucketFrom(cfg: TokenBucketConfig | null | undefined, nowNs: bigint): TokenBucket | undefined {
  if (!cfg) return undefined;
  return TokenBucket.create(cfg.size, cfg.one_time_burst ?? 0, cfg.refill_time, nowNs);
}

function describe(b: TokenBucket | undefined): TokenBucketConfig | undefined {
  return b && { size: Number(b.size), one_time_burst: Number(b.initialOneTimeBurst), refill_time: Number(b.refillTimeMs) };
}

/** Bandwidth and ops limiting for one device (or one direction of a net device). */
export class RateLimiter {
  private bandwidthBucket: TokenBucket | undefined;
  private opsBucket: TokenBucket | undefined;
  private blockedUntilNs: bigint | undefined;

  /** Builds the limiter; throws RateLimiterError for values that are not u64. */
  constructor(config: RateLimiterConfig = {}, private readonly now: NanoClock = monotonicNs) {
    const t = now();
    this.bandwidthBucket = bucketFrom(config.bandwidth, t);
    this.opsBucket = bucketFrom(config.ops, t);
  }

  /** The bytes bucket, if enabled. */
  get bandwidth(): TokenBucket | undefined {
    return this.bandwidthBucket;
  }

  /** The ops bucket, if enabled. */
  get ops(): TokenBucket | undefined {
    return this.opsBucket;
  }

  /** Monotonic ns until which the limiter refuses every consume, if blocked. */
  get blockedUntil(): bigint | undefined {
    return this.blockedUntilNs;
  }

  /** The effective configuration (disabled buckets omitted), e.g. for GET /vm/config. */
  config(): RateLimiterConfig {
    return { bandwidth: describe(this.bandwidthBucket), ops: describe(this.opsBucket) };
  }

  /** True while blocked (Firecracker `is_blocked`); clears an expired block. */
  isBlocked(): boolean {
    if (this.blockedUntilNs === undefined) return false;
    if (this.now() < this.blockedUntilNs) return true;
    this.blockedUntilNs = undefined;
    return false;
  }

  /** Milliseconds (rounded up) until the limiter unblocks; 0 when not blocked. */
  retryAfterMs(): number {
    if (!this.isBlocked()) return 0;
    const left = this.blockedUntilNs! - this.now();
    return Number((left + NANOSEC_IN_ONE_MILLISEC - 1n) / NANOSEC_IN_ONE_MILLISEC);
  }

  /**
   * The actor's timer fired (Firecracker `event_handler`): unblocks when due. Returns false for
   * a spurious call (not blocked, or too early: re-arm for `retryAfterMs()`).
   */
  timerFired(): boolean {
    if (this.blockedUntilNs === undefined) return false;
    return !this.isBlocked();
  }

  /** Takes `tokens` of `type`; false (and the block armed) when the budget is short. */
  consume(tokens: number | bigint, type: TokenType): boolean {
    if (this.isBlocked()) return false;
    const bucket = type === TOKEN_TYPE.BYTES ? this.bandwidthBucket : this.opsBucket;
    if (!bucket) return true;
    const nowNs = this.now();
    const r = bucket.reduce(toU64(tokens, 'tokens'), nowNs);
    switch (r.kind) {
      case 'success':
        return true;
      case 'failure':
        this.blockedUntilNs = nowNs + BigInt(REFILL_TIMER_INTERVAL_MS) * NANOSEC_IN_ONE_MILLISEC;
        return false;
      case 'over-consumption': {
        // Borrowed excess/size buckets: refuse everything for that many refill times.
        const blockNs = (r.excess * bucket.refillTimeMs * NANOSEC_IN_ONE_MILLISEC) / bucket.size;
        if (blockNs > 0n) this.blockedUntilNs = nowNs + blockNs;
        return true;
      }
      default: {
        const never: never = r;
        throw new Error(`unknown bucket reduction ${(never as { kind: string }).kind}`);
      }
    }
  }

  /** Gives back tokens taken by `consume` (Firecracker `manual_replenish`). */
  manualReplenish(tokens: number | bigint, type: TokenType): void {
    const bucket = type === TOKEN_TYPE.BYTES ? this.bandwidthBucket : this.opsBucket;
    bucket?.forceReplenish(toU64(tokens, 'tokens'));
  }

  /**
   * PATCH semantics per bucket (firecracker src/vmm/src/rate_limiter/mod.rs): absent or null → unchanged; size or refill_time
   * 0 → disabled; otherwise a fresh, full bucket. The block state is left alone.
   */
  update(config: RateLimiterConfig): void {
    const t = this.now();
    if (config.bandwidth) this.bandwidthBucket = bucketFrom(config.bandwidth, t);
    if (config.ops) this.opsBucket = bucketFrom(config.ops, t);
  }
}
