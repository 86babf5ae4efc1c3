/**
 * Token bucket / rate limiter bodies shared by drives, network interfaces, entropy, pmem and
 * serial (firecracker src/vmm/src/vmm_config/mod.rs `TokenBucketConfig`, `RateLimiterConfig`).
 * `TokenBucketConfig` accepts unknown fields (no `deny_unknown_fields` in Firecracker);
 * `RateLimiterConfig` rejects them. The shapes are the rate limiter's own
 * (src/devices/rate-limiter/rate-limiter.ts), defined once.
 */
import type { RateLimiterConfig, TokenBucketConfig } from '../devices/rate-limiter/rate-limiter.js';
import { Desc, field, int, opt, struct } from './serde.js';

export type { RateLimiterConfig, TokenBucketConfig };

/** serde description of `TokenBucketConfig` (unknown fields ignored). */
export const TOKEN_BUCKET: Desc = struct(
  'TokenBucketConfig',
  [field('size', int('u64')), field('one_time_burst', opt(int('u64'))), field('refill_time', int('u64'))],
  false,
);

/** serde description of `RateLimiterConfig` (deny_unknown_fields). */
export const RATE_LIMITER: Desc = struct('RateLimiterConfig', [field('bandwidth', opt(TOKEN_BUCKET)), field('ops', opt(TOKEN_BUCKET))]);

/**
 * A bucket as Firecracker reports it back (GET /vm/config): it rebuilds the config from the live
 * `TokenBucket`, so a bucket with size 0 or refill_time 0 is disabled (absent) and a zero
 * one-time burst reads back as null (vmm_config/mod.rs `From<&TokenBucket>`).
 */
export function effectiveBucket(b: TokenBucketConfig | null | undefined): TokenBucketConfig | null {
  if (!b || b.size === 0 || b.refill_time === 0) return null;
  return { size: b.size, one_time_burst: b.one_time_burst ? b.one_time_burst : null, refill_time: b.refill_time };
}

/** A rate limiter as reported back: null when neither bucket is active (`into_option`). */
export function effectiveRateLimiter(rl: RateLimiterConfig | null): { bandwidth: TokenBucketConfig | null; ops: TokenBucketConfig | null } | null {
  if (!rl) return null;
  const bandwidth = effectiveBucket(rl.bandwidth);
  const ops = effectiveBucket(rl.ops);
  return bandwidth || ops ? { bandwidth, ops } : null;
}
