/** Token bucket and rate limiter arithmetic (firecracker src/vmm/src/rate_limiter/mod.rs), on an injected clock. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TokenBucket } from '../../src/devices/rate-limiter/token-bucket.js';
import { REFILL_TIMER_INTERVAL_MS, RateLimiter, TOKEN_TYPE } from '../../src/devices/rate-limiter/rate-limiter.js';
import { RateLimiterError } from '../../src/errors.js';

const MS = 1_000_000n;

function clock() {
  const c = { t: 0n, now: () => c.t };
  return c;
}

test('buckets start full; an empty bucket fails and blocks every token type for 100 ms', () => {
  const c = clock();
  const rl = new RateLimiter({ bandwidth: { size: 1000, refill_time: 1000 } }, c.now);
  assert.is(rl.consume(1000, TOKEN_TYPE.BYTES), true);
  assert.is(rl.consume(1, TOKEN_TYPE.BYTES), false);
  assert.is(rl.isBlocked(), true);
  assert.is(rl.retryAfterMs(), REFILL_TIMER_INTERVAL_MS);
  assert.is(rl.consume(1, TOKEN_TYPE.OPS), false, 'ops are unlimited but the limiter is blocked');
  c.t = 99n * MS;
  assert.is(rl.timerFired(), false, 'too early');
  assert.is(rl.retryAfterMs(), 1);
  c.t = 100n * MS;
  assert.is(rl.timerFired(), true);
  assert.is(rl.consume(100, TOKEN_TYPE.BYTES), true, '100 ms refilled 100 bytes');
  assert.is(rl.consume(1, TOKEN_TYPE.BYTES), false);
});

test('a bucket with size 0 or refill_time 0 is disabled', () => {
  const c = clock();
  const rl = new RateLimiter({ bandwidth: { size: 0, refill_time: 100 }, ops: { size: 10, refill_time: 0 } }, c.now);
  assert.is(rl.bandwidth, undefined);
  assert.is(rl.ops, undefined);
  for (let i = 0; i < 100; i++) assert.is(rl.consume(1 << 20, TOKEN_TYPE.BYTES) && rl.consume(1, TOKEN_TYPE.OPS), true);
  assert.equal(new RateLimiter(undefined, c.now).config(), { bandwidth: undefined, ops: undefined });
});

test('one_time_burst is spent first and never refilled', () => {
  const c = clock();
  const b = TokenBucket.create(100, 50, 1000, c.t)!;
  assert.equal(b.reduce(30n, c.t), { kind: 'success' });
  assert.is(b.oneTimeBurst, 20n);
  assert.is(b.budget, 100n, 'budget untouched while the burst lasts');
  assert.equal(b.reduce(50n, c.t), { kind: 'success' });
  assert.is(b.oneTimeBurst, 0n);
  assert.is(b.budget, 70n, '20 from the burst, 30 from the budget');
  c.t = 10_000n * MS;
  b.reduce(100n, c.t);
  assert.is(b.oneTimeBurst, 0n);
});

test('partial refill carries the fractional token to the next refill', () => {
  // size 3, refill 10 ms: one token per 3_333_333.3 ns.
  const c = clock();
  const b = TokenBucket.create(3, 0, 10, c.t)!;
  assert.equal(b.reduce(3n, c.t), { kind: 'success' });
  c.t = 5_000_000n; // 1.5 tokens of time: 1 token now, 0.5 carried
  assert.equal(b.reduce(1n, c.t), { kind: 'success' });
  c.t += 1_666_668n; // alone worth 0.5 token; with the carry, 1.0000002
  assert.equal(b.reduce(1n, c.t), { kind: 'success' });
  assert.is(b.budget, 0n);

  const fresh = TokenBucket.create(3, 0, 10, 0n)!;
  fresh.reduce(3n, 0n);
  assert.equal(fresh.reduce(1n, 1_666_668n), { kind: 'failure' }, 'without a carry the same interval is not enough');
});

test('refill is capped at size, and a full refill time refills completely', () => {
  const b = TokenBucket.create(1000, 0, 100, 0n)!;
  b.reduce(1000n, 0n);
  assert.equal(b.reduce(500n, 50n * MS), { kind: 'success' });
  assert.is(b.budget, 0n);
  assert.equal(b.reduce(1000n, 10_000n * MS), { kind: 'success' });
  assert.equal(b.reduce(1n, 10_000n * MS), { kind: 'failure' });
});

test('an oversize request is granted once, then the limiter blocks for excess/size × refill_time', () => {
  const c = clock();
  const rl = new RateLimiter({ bandwidth: { size: 100, refill_time: 1000 } }, c.now);
  assert.is(rl.consume(250, TOKEN_TYPE.BYTES), true);
  assert.is(rl.bandwidth!.budget, 0n);
  assert.is(rl.blockedUntil, 1500n * MS, '150 excess / 100 × 1000 ms');
  assert.is(rl.retryAfterMs(), 1500);
  assert.is(rl.consume(1, TOKEN_TYPE.OPS), false);
  c.t = 1499n * MS;
  assert.is(rl.consume(1, TOKEN_TYPE.BYTES), false);
  c.t = 1500n * MS;
  assert.is(rl.consume(100, TOKEN_TYPE.BYTES), true);
});

test('the over-consumption block is exact in nanoseconds', () => {
  const c = clock();
  const rl = new RateLimiter({ ops: { size: 3, refill_time: 100 } }, c.now);
  assert.is(rl.consume(4, TOKEN_TYPE.OPS), true);
  assert.is(rl.blockedUntil, (100n * MS) / 3n, 'one excess token of 3: a third of 100 ms');
  assert.is(rl.retryAfterMs(), 34);
});

test('manualReplenish undoes a consume, into the burst while it lasts', () => {
  const c = clock();
  const rl = new RateLimiter({ ops: { size: 10, refill_time: 1000, one_time_burst: 5 } }, c.now);
  rl.consume(2, TOKEN_TYPE.OPS);
  rl.manualReplenish(10, TOKEN_TYPE.OPS);
  assert.is(rl.ops!.oneTimeBurst, 5n, 'capped at the initial burst');
  rl.consume(5, TOKEN_TYPE.OPS);
  rl.consume(4, TOKEN_TYPE.OPS);
  assert.is(rl.ops!.budget, 6n);
  rl.manualReplenish(1, TOKEN_TYPE.OPS);
  assert.is(rl.ops!.budget, 7n);
  rl.manualReplenish(1, TOKEN_TYPE.BYTES); // disabled bucket: no-op
});

test('PATCH: omitted or null unchanged, size/refill 0 disables, otherwise a fresh full bucket', () => {
  const c = clock();
  const rl = new RateLimiter({ bandwidth: { size: 100, refill_time: 100 }, ops: { size: 10, refill_time: 100 } }, c.now);
  rl.consume(100, TOKEN_TYPE.BYTES);
  const ops = rl.ops;
  rl.update({});
  rl.update({ ops: null });
  assert.is(rl.ops, ops);
  assert.is(rl.bandwidth!.budget, 0n);
  rl.update({ bandwidth: { size: 500, refill_time: 50, one_time_burst: 7 } });
  assert.is(rl.bandwidth!.budget, 500n);
  assert.is(rl.bandwidth!.oneTimeBurst, 7n);
  rl.update({ ops: { size: 0, refill_time: 100 } });
  assert.is(rl.ops, undefined);
  rl.update({ bandwidth: { size: 10, refill_time: 0 } });
  assert.is(rl.bandwidth, undefined);
  assert.equal(rl.config(), { bandwidth: undefined, ops: undefined });
});

test('config() reports the configured buckets', () => {
  const rl = new RateLimiter({ bandwidth: { size: 10, refill_time: 20, one_time_burst: 30 } }, () => 0n);
  assert.equal(rl.config(), { bandwidth: { size: 10, one_time_burst: 30, refill_time: 20 }, ops: undefined });
});

test('values outside u64 are RateLimiterError; a refill time overflowing u64 ns disables', () => {
  for (const bad of [-1, 1.5, Number.NaN, 2n ** 64n]) {
    assert.throws(() => TokenBucket.create(bad, 0, 100, 0n), (e: unknown) => e instanceof RateLimiterError && e.code === 'RATE_LIMITER_CONFIG');
  }
  assert.is(TokenBucket.create(10, 0, 2n ** 64n - 1n, 0n), undefined);
  assert.ok(TokenBucket.create(2n ** 64n - 1n, 2n ** 64n - 1n, 1, 0n));
});

test('huge u64 buckets stay exact', () => {
  const size = 2n ** 64n - 1n;
  const b = TokenBucket.create(size, 0, 1000, 0n)!;
  assert.equal(b.reduce(size, 0n), { kind: 'success' });
  assert.equal(b.reduce(size / 2n, 500n * MS), { kind: 'success' });
  assert.is(b.budget, 0n);
});

test.run();
