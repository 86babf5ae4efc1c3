/**
 * PUT /serial (facts §1.3, §4.1): where guest console output goes (`serial_out_path`, opened
 * O_NONBLOCK at boot) and an optional byte token bucket. Not part of GET /vm/config.
 */
import { TOKEN_BUCKET, TokenBucketConfig } from './rate-limiter.js';
import { Desc, deserialize, field, opt, path, struct, toJsonSchema } from './serde.js';

/** The PUT /serial body (`SerialConfig`). */
export interface SerialConfig {
  serial_out_path: string | null;
  rate_limiter: TokenBucketConfig | null;
}

/** serde description of `SerialConfig` (deny_unknown_fields). */
export const SERIAL: Desc = struct('SerialConfig', [field('serial_out_path', opt(path)), field('rate_limiter', opt(TOKEN_BUCKET))]);

/** JSON Schema of the body. */
export const SERIAL_SCHEMA = toJsonSchema(SERIAL);

/** Parses a PUT /serial body. */
export function parseSerial(body: Uint8Array | string): SerialConfig {
  return deserialize<SerialConfig>(body, SERIAL);
}
