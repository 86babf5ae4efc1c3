/**
 * MMDS session tokens (MMDS V2; Firecracker src/vmm/src/mmds/token.rs). A token is the
 * base64 of IV (12 bytes) ‖ AES-256-GCM ciphertext of the expiry (8 bytes, little-endian
 * milliseconds) ‖ tag (16 bytes): 48 characters. The additional authenticated data is
 * `microvmid=<instance id>`, so a token minted for another microVM fails authentication even
 * under the same key. Nothing is stored per token: validity is "decrypts, and not expired".
 *
 * Several net workers each run an MMDS stack, while Firecracker has one MMDS for every
 * interface; a token obtained on one interface must work on the others. So the key is
 * injected: main draws it once (`TokenAuthority.generateKey()`) and hands the same 32 bytes to
 * every worker. For the same reason the default clock is the process's monotonic clock
 * (`process.hrtime`, CLOCK_MONOTONIC, as Firecracker's `get_time_ms(Monotonic)`), which all
 * threads share; `performance.now()` has a different origin in every worker.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { MmdsError } from '../errors.js';

/** Bytes of the AES-256 key (token.rs KEY_LEN). */
export const TOKEN_KEY_LEN = 32;
/** Bytes of the GCM nonce (token.rs IV_LEN). */
const IV_LEN = 12;
/** Bytes of the encrypted expiry, a u64 (token.rs PAYLOAD_LEN). */
const PAYLOAD_LEN = 8;
/** Bytes of the GCM tag (token.rs TAG_LEN). */
const TAG_LEN = 16;
/** Longest token string looked at; longer ones are refused undecoded (token.rs TOKEN_LENGTH_LIMIT). */
export const TOKEN_LENGTH_LIMIT = 70;
/** Shortest token lifetime, seconds (token.rs MIN_TOKEN_TTL_SECONDS). */
export const MIN_TOKEN_TTL_SECONDS = 1;
/** Longest token lifetime, seconds: 6 hours (token.rs MAX_TOKEN_TTL_SECONDS). */
export const MAX_TOKEN_TTL_SECONDS = 21_600;
/**
 * Tokens sealed under one key before it is replaced (token.rs `check_encryption_count`:
 * u32::MAX, the bound for random 96-bit GCM nonces). Replacing it invalidates earlier tokens
 * and, here, makes this authority's key differ from the other interfaces' until they reach
 * the limit too; at a token per TCP round trip that is years away.
 */
const MAX_TOKENS_PER_KEY = 0xffff_ffff;
/** The exact shape of a token: the base64 of 36 bytes, no padding needed. */
const TOKEN_SHAPE = /^[A-Za-z0-9+/]{48}$/;

/** What a TokenAuthority needs. */
export interface TokenAuthorityOptions {
  /** The AES-256 key, TOKEN_KEY_LEN bytes, the same for every interface of a microVM. */
  readonly key: Uint8Array;
  /** The microVM's instance id (`--id`), bound into every token. */
  readonly instanceId: string;
  /** Milliseconds on a monotonic clock shared by every thread (default: process.hrtime). */
  readonly now?: () => number;
}

/** The process's monotonic clock in milliseconds, the same in every thread. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

/** Mints and checks MMDS session tokens. */
export class TokenAuthority {
  private key: KeyObject;
  private readonly aad: Buffer;
  private readonly now: () => number;
  private sealed = 0;

  constructor(options: TokenAuthorityOptions) {
    if (!(options.key instanceof Uint8Array) || options.key.length !== TOKEN_KEY_LEN) {
      throw new MmdsError('MMDS_CONFIG', `the MMDS token key must be ${TOKEN_KEY_LEN} bytes`);
    }
    this.key = createSecretKey(Buffer.from(options.key));
    this.aad = Buffer.from(`microvmid=${options.instanceId}`, 'utf8');
    this.now = options.now ?? monotonicMs;
  }

  /** A fresh random key for a microVM's authorities. */
  static generateKey(): Uint8Array {
    return new Uint8Array(randomBytes(TOKEN_KEY_LEN));
  }

  /** Whether `ttlSeconds` is an accepted lifetime (token.rs `check_ttl`). */
  static isValidTtl(ttlSeconds: number): boolean {
    return Number.isInteger(ttlSeconds) && ttlSeconds >= MIN_TOKEN_TTL_SECONDS && ttlSeconds <= MAX_TOKEN_TTL_SECONDS;
  }

  /** A token valid for `ttlSeconds` from now; the caller checked the TTL with `isValidTtl`. */
  generate(ttlSeconds: number): string {
    if (this.sealed === MAX_TOKENS_PER_KEY) {
      this.key = createSecretKey(randomBytes(TOKEN_KEY_LEN));
      this.sealed = 0;
    }
    const expiry = Buffer.alloc(PAYLOAD_LEN);
    expiry.writeBigUInt64LE(BigInt(Math.floor(this.now())) + BigInt(ttlSeconds) * 1000n);
    const iv = randomBytes(IV_LEN);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_LEN });
    cipher.setAAD(this.aad);
    const sealed = Buffer.concat([cipher.update(expiry), cipher.final()]);
    this.sealed++;
    return Buffer.concat([iv, sealed, cipher.getAuthTag()]).toString('base64');
  }

  /**
   * Whether `token` was minted under this key for this instance and has not expired
   * (token.rs `is_valid`: the expiry must lie strictly after now). Any defect is just false.
   */
  isValid(token: string): boolean {
    if (token.length > TOKEN_LENGTH_LIMIT || !TOKEN_SHAPE.test(token)) return false;
    const raw = Buffer.from(token, 'base64');
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_LEN), { authTagLength: TAG_LEN });
      decipher.setAAD(this.aad);
      decipher.setAuthTag(raw.subarray(IV_LEN + PAYLOAD_LEN));
      plain = Buffer.concat([decipher.update(raw.subarray(IV_LEN, IV_LEN + PAYLOAD_LEN)), decipher.final()]);
    } catch {
      return false; // authentication failed: another key, another instance, or altered bytes
    }
    return plain.readBigUInt64LE(0) > BigInt(Math.floor(this.now()));
  }
}
