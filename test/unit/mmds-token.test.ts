/**
 * MMDS V2 session tokens (src/mmds/token.ts; Firecracker src/vmm/src/mmds/token.rs):
 * AES-256-GCM over the expiry, bound to the instance id, checked against an injected clock;
 * one key shared by several authorities (one per net worker) accepts each other's tokens.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MmdsError } from '../../src/errors.js';
import { MAX_TOKEN_TTL_SECONDS, MIN_TOKEN_TTL_SECONDS, TOKEN_KEY_LEN, TOKEN_LENGTH_LIMIT, TokenAuthority, monotonicMs } from '../../src/mmds/token.js';
import { fakeClock } from '../helpers/mmds-guest.js';

const KEY = new Uint8Array(TOKEN_KEY_LEN).fill(7);

test('a token is 48 base64 characters (≤ 70, as Firecracker) and valid until its TTL has passed', () => {
  const clock = fakeClock();
  const ta = new TokenAuthority({ key: KEY, instanceId: 'vm-1', now: clock.now });
  const t = ta.generate(60);
  assert.match(t, /^[A-Za-z0-9+/]{48}$/);
  assert.ok(t.length <= TOKEN_LENGTH_LIMIT);
  assert.ok(ta.isValid(t));
  clock.advance(59_999);
  assert.ok(ta.isValid(t), '1 ms before expiry');
  clock.advance(1);
  assert.not.ok(ta.isValid(t), 'at the expiry instant it is gone (expiry must lie after now)');
  assert.is.not(ta.generate(60), ta.generate(60), 'random nonces: two tokens differ');
});

test('TTL bounds 1..=21600', () => {
  assert.ok(TokenAuthority.isValidTtl(MIN_TOKEN_TTL_SECONDS));
  assert.ok(TokenAuthority.isValidTtl(MAX_TOKEN_TTL_SECONDS));
  for (const bad of [0, 21_601, -1, 1.5, Number.NaN]) assert.not.ok(TokenAuthority.isValidTtl(bad), String(bad));
  const clock = fakeClock();
  const ta = new TokenAuthority({ key: KEY, instanceId: 'vm-1', now: clock.now });
  const t = ta.generate(MAX_TOKEN_TTL_SECONDS);
  clock.advance(MAX_TOKEN_TTL_SECONDS * 1000 - 1);
  assert.ok(ta.isValid(t));
});

test('a token from another key or another instance id is refused; one key shared by two authorities works across them', () => {
  const clock = fakeClock();
  const a = new TokenAuthority({ key: KEY, instanceId: 'vm-1', now: clock.now });
  const sameKey = new TokenAuthority({ key: Uint8Array.from(KEY), instanceId: 'vm-1', now: clock.now });
  const otherKey = new TokenAuthority({ key: new Uint8Array(TOKEN_KEY_LEN).fill(8), instanceId: 'vm-1', now: clock.now });
  const otherVm = new TokenAuthority({ key: KEY, instanceId: 'vm-2', now: clock.now });
  const t = a.generate(10);
  assert.ok(sameKey.isValid(t), 'another interface of the same microVM');
  assert.ok(a.isValid(sameKey.generate(10)));
  assert.not.ok(otherKey.isValid(t));
  assert.not.ok(otherVm.isValid(t), 'the instance id is authenticated data');
});

test('malformed and tampered tokens are just invalid, never an exception', () => {
  const ta = new TokenAuthority({ key: KEY, instanceId: 'vm-1', now: fakeClock().now });
  const t = ta.generate(10);
  const flipped = (i: number): string => t.slice(0, i) + (t[i] === 'A' ? 'B' : 'A') + t.slice(i + 1);
  for (const i of [0, 16, 20, 47]) assert.not.ok(ta.isValid(flipped(i)), `character ${i} altered`);
  for (const bad of ['', 'x', t.slice(1), `${t}=`, `${t}AAAA`, 'A'.repeat(71), t.replace(/./, '-'), `${t.slice(0, 46)}==`, '\u0000'.repeat(48)]) {
    assert.not.ok(ta.isValid(bad), JSON.stringify(bad));
  }
});

test('construction: the key must be 32 bytes; generateKey gives fresh 32-byte keys; the default clock is monotonic ms', () => {
  assert.throws(() => new TokenAuthority({ key: new Uint8Array(16), instanceId: 'x' }), (e: unknown) => e instanceof MmdsError && e.code === 'MMDS_CONFIG');
  const k1 = TokenAuthority.generateKey();
  assert.is(k1.length, TOKEN_KEY_LEN);
  assert.not.equal(Array.from(k1), Array.from(TokenAuthority.generateKey()));
  const t0 = monotonicMs();
  assert.ok(Number.isSafeInteger(t0) && monotonicMs() >= t0);
  const real = new TokenAuthority({ key: k1, instanceId: 'x' });
  assert.ok(real.isValid(real.generate(1)));
});

test.run();
