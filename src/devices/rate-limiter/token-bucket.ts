/**
 * A token bucket exactly as Firecracker's rate_limiter/mod.rs `TokenBucket` (firecracker src/vmm/src/rate_limiter/mod.rs):
 *
 * - `size` tokens of capacity, refilled from empty to full in `refill_time` ms; a bucket with
 *   size 0 or refill_time 0 is disabled (`TokenBucket.create` returns undefined), and so is one
 *   whose refill time in ns does not fit a u64 (Firecracker's `checked_mul` → None).
 * - Buckets start FULL. `one_time_burst` is extra initial credit, spent before the budget and
 *   never refilled.
 * - Refill is continuous and exact: `tokens = elapsed_ns * size / refill_ns`, computed on the
 *   fraction reduced by gcd(size, refill_ns); `last_update` advances only by the time those
 *   whole tokens cost (rounded up), so the fractional remainder carries to the next refill.
 *   `elapsed >= refill_ns` simply refills to full.
 * - A request above the bucket size is granted once, emptying the budget, and reported as an
 *   over-consumption of `excess` tokens so the limiter can block for excess/size × refill_time.
 *
 * Pure: time is passed in as monotonic nanoseconds (bigint), all arithmetic is bigint, values
 * are u64 like Firecracker's.
 */
import { RateLimiterError } from '../../errors.js';

/** Nanoseconds per millisecond. */
export const NANOSEC_IN_ONE_MILLISEC = 1_000_000n;
/** Largest u64. */
export const U64_MAX = (1n << 64n) - 1n;

/** Outcome of `TokenBucket.reduce` (Firecracker `BucketReduction`). */
export type BucketReduction =
  | { readonly kind: 'success' }
  | { readonly kind: 'failure' }
  /** Granted although `excess` tokens more than the remaining budget were asked for. */
  | { readonly kind: 'over-consumption'; readonly excess: bigint };

const SUCCESS: BucketReduction = { kind: 'success' };
const FAILURE: BucketReduction = { kind: 'failure' };

/** Converts a config value to a u64 bigint; throws RateLimiterError when it is not one. */
export function toU64(value: number | bigint, what: string): bigint {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new RateLimiterError(`${what} ${value} is not an integer`);
  const v = BigInt(value);
  if (v < 0n || v > U64_MAX) throw new RateLimiterError(`${what} ${value} is outside 0..2^64-1`);
  return v;
}

function gcd(x: bigint, y: bigint): bigint {
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

/** One token bucket (bytes or ops). */
export class TokenBucket {
  /** Capacity in tokens. */
  readonly size: bigint;
  /** The configured one-time burst. */
  readonly initialOneTimeBurst: bigint;
  /** Time to refill from empty to full, ms. */
  readonly refillTimeMs: bigint;
  private readonly refillTimeNs: bigint;
  /** size / gcd and refill_ns / gcd: tokens = elapsed * processedCapacity / processedRefillTime. */
  private readonly processedCapacity: bigint;
  private readonly processedRefillTime: bigint;
  private burstLeft: bigint;
  private budgetLeft: bigint;
  private lastUpdate: bigint;

  private constructor(size: bigint, oneTimeBurst: bigint, refillTimeMs: bigint, refillTimeNs: bigint, nowNs: bigint) {
    this.size = size;
    this.initialOneTimeBurst = oneTimeBurst;
    this.refillTimeMs = refillTimeMs;
    this.refillTimeNs = refillTimeNs;
    const common = gcd(size, refillTimeNs);
    this.processedCapacity = size / common;
    this.processedRefillTime = refillTimeNs / common;
    this.burstLeft = oneTimeBurst;
    this.budgetLeft = size;
    this.lastUpdate = nowNs;
  }

  /**
   * A full bucket, or undefined when the configuration disables limiting (size 0, refill 0, or
   * refill time overflowing u64 ns). Throws RateLimiterError for values that are not u64.
   */
  static create(size: number | bigint, oneTimeBurst: number | bigint, refillTimeMs: number | bigint, nowNs: bigint): TokenBucket | undefined {
    const s = toU64(size, 'size');
    const b = toU64(oneTimeBurst, 'one_time_burst');
    const r = toU64(refillTimeMs, 'refill_time');
    if (s === 0n || r === 0n) return undefined;
    const refillNs = r * NANOSEC_IN_ONE_MILLISEC;
    if (refillNs > U64_MAX) return undefined;
    return new TokenBucket(s, b, r, refillNs, nowNs);
  }

  /** Tokens left in the budget (one-time burst not included). */
  get budget(): bigint {
    return this.budgetLeft;
  }

  /** One-time burst credit left. */
  get oneTimeBurst(): bigint {
    return this.burstLeft;
  }

  /** Continuous refill up to `nowNs`, carrying the fractional token (Firecracker `auto_replenish`). */
  private autoReplenish(nowNs: bigint): void {
    const delta = nowNs > this.lastUpdate ? nowNs - this.lastUpdate : 0n;
    if (delta >= this.refillTimeNs) {
      this.budgetLeft = this.size;
      this.lastUpdate = nowNs;
      return;
    }
    const tokens = (delta * this.processedCapacity) / this.processedRefillTime;
    // Advance last_update by the time the whole tokens cost, rounded up, so the remainder of
    // delta (less than one token's worth) counts towards the next refill.
    const cost = tokens * this.processedRefillTime;
    let adjustment = cost / this.processedCapacity;
    if (cost % this.processedCapacity !== 0n) adjustment += 1n;
    this.lastUpdate += adjustment;
    const b = this.budgetLeft + tokens;
    this.budgetLeft = b < this.size ? b : this.size;
  }

  /** Tries to take `tokens` at time `nowNs` (Firecracker `reduce`). */
  reduce(tokens: bigint, nowNs: bigint): BucketReduction {
    if (this.burstLeft > 0n) {
      if (this.burstLeft >= tokens) {
        this.burstLeft -= tokens;
        this.lastUpdate = nowNs;
        return SUCCESS;
      }
      tokens -= this.burstLeft;
      this.burstLeft = 0n;
    }
    if (tokens > this.budgetLeft) {
      this.autoReplenish(nowNs);
      if (tokens > this.size) {
        const excess = tokens - this.budgetLeft;
        this.budgetLeft = 0n;
        return { kind: 'over-consumption', excess };
      }
      if (tokens > this.budgetLeft) return FAILURE;
    }
    this.budgetLeft -= tokens;
    return SUCCESS;
  }

  /** Gives tokens back (e.g. to undo a consume), capped (Firecracker `force_replenish`). */
  forceReplenish(tokens: bigint): void {
    if (this.burstLeft > 0n) {
      // Still in the burst: the tokens came from it.
      const b = this.burstLeft + tokens;
      this.burstLeft = b < this.initialOneTimeBurst ? b : this.initialOneTimeBurst;
      return;
    }
    const b = this.budgetLeft + tokens;
    this.budgetLeft = b < this.size ? b : this.size;
  }
}
