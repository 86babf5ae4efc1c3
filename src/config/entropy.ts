/** PUT /entropy (firecracker src/vmm/src/vmm_config/ Entropy): a virtio-rng device with an optional rate limiter. */
import { RATE_LIMITER, RateLimiterConfig, effectiveRateLimiter } from './rate-limiter.js';
import { Desc, deserialize, field, opt, struct } from './serde.js';

/** The PUT /entropy body (`EntropyDeviceConfig`). */
export interface EntropyDeviceConfig {
  rate_limiter: RateLimiterConfig | null;
}

/** serde description of `EntropyDeviceConfig` (deny_unknown_fields). */
export const ENTROPY: Desc = struct('EntropyDeviceConfig', [field('rate_limiter', opt(RATE_LIMITER))]);


/** Parses a PUT /entropy body. */
export function parseEntropy(body: Uint8Array | string): EntropyDeviceConfig {
  return deserialize<EntropyDeviceConfig>(body, ENTROPY);
}

/** The device as GET /vm/config reports it. */
export function entropyJson(e: EntropyDeviceConfig): EntropyDeviceConfig {
  return { rate_limiter: effectiveRateLimiter(e.rate_limiter) };
}
