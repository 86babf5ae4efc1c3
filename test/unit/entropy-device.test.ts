/**
 * virtio-rng model without KVM: a driver-side MockQueue programs an MmioTransport whose
 * DRIVER_OK activates an EntropyDevice over guest memory in an ArrayBuffer, with a fake clock
 * for the rate limiter. Covers the description, filling chains in place, hostile chains, the
 * 64 KiB cap, a failing host RNG, bandwidth and ops limiting, a broken ring and the metrics.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1, VIRTIO_ID_RNG, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_STATUS, featureBit,
} from '../../src/devices/virtio/constants.js';
import { MmioTransport } from '../../src/devices/virtio/mmio.js';
import { MmioInterrupt, MmioState } from '../../src/devices/virtio/mmio-state.js';
import {
  ENTROPY_MAX_REQUEST_BYTES, ENTROPY_NUM_QUEUES, ENTROPY_QUEUE, ENTROPY_QUEUE_SIZE, EntropyDevice, entropyDescription, type RandomFill,
} from '../../src/devices/virtio/rng/device.js';
import { ENTROPY_FIRECRACKER_COUNTERS, EntropyMetrics } from '../../src/devices/virtio/rng/metrics.js';
import { RateLimiter, type RateLimiterConfig } from '../../src/devices/rate-limiter/rate-limiter.js';
import { GROUPS } from '../../src/metrics/groups.js';
import { arrayGuestMemory, must, type GuestMemory } from '../../src/memory/guest-memory.js';
import { GuestArena, MockQueue, mmioDeviceFeatures, mmioDriverInit, mmioDriverOk, mmioNotify, mmioRead32 } from '../helpers/mock-queue.js';

const RAM = 1 << 20;
const MS = 1_000_000n;
/** What test buffers hold before the device writes them. */
const SENTINEL = 0xa5;

function rig(o: { limits?: RateLimiterConfig; fill?: RandomFill } = {}) {
  const mem = arrayGuestMemory([{ gpa: 0, size: RAM }]);
  const clock = { t: 0n };
  const metrics = new EntropyMetrics();
  const dev = new EntropyDevice({ metrics, rateLimiter: new RateLimiter(o.limits ?? {}, () => clock.t), fill: o.fill });
  const state = MmioState.create(ENTROPY_NUM_QUEUES);
  const irqs: number[] = [];
  const transport = new MmioTransport(state, entropyDescription(), {
    onActivate: (a) => { dev.activate(mem, new MmioInterrupt(state, (bit) => irqs.push(bit)), a); },
    onNotify: (q) => dev.onQueueNotify(q),
    interrupt: (bit) => irqs.push(bit),
    onReset: () => dev.reset(),
  }, mem);
  const q = new MockQueue(mem, 64, 0);
  q.notify = () => mmioNotify(transport, ENTROPY_QUEUE);
  const arena = new GuestArena(q.end, RAM);
  must(mem.slice(q.end, RAM - q.end)).fill(SENTINEL); // the rings stay as the queue laid them out
  mmioDriverInit(transport, mmioDeviceFeatures(transport), [q]);
  mmioDriverOk(transport);
  return { mem, dev, metrics, transport, q, arena, irqs, clock };
}
type Rig = ReturnType<typeof rig>;

/** Posts a chain of writable buffers of `sizes` and kicks; returns their addresses. */
function request(r: Rig, sizes: readonly number[], write = true): number[] {
  const addrs = sizes.map((n) => r.arena.alloc(Math.max(n, 1)));
  r.q.addChain(sizes.map((len, i) => ({ addr: addrs[i]!, len, write })));
  r.q.kick();
  return addrs;
}

function bytesAt(mem: GuestMemory, addr: number, len: number): Uint8Array {
  return must(mem.slice(addr, len));
}

const allSentinel = (b: Uint8Array): boolean => b.every((x) => x === SENTINEL);

test('description: device id 4, VERSION_1 only, one queue of 256, a config space of zeros', () => {
  const r = rig();
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG);
  assert.is(mmioDeviceFeatures(r.transport), featureBit(VIRTIO_F_VERSION_1));
  assert.equal(entropyDescription().queueMaxSizes, [ENTROPY_QUEUE_SIZE]);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_QUEUE_SEL), 0);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_QUEUE_NUM_MAX), ENTROPY_QUEUE_SIZE);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG), 0);
  assert.ok(r.dev.isActive);
});

test('a chain of three writable buffers is filled in place and used with its length', () => {
  const r = rig();
  const addrs = request(r, [128, 128, 256]);
  assert.equal(r.q.takeUsed(), [{ id: 0, len: 512 }]);
  for (const [i, n] of [128, 128, 256].entries()) assert.not.ok(allSentinel(bytesAt(r.mem, addrs[i]!, n)), `buffer ${i} filled`);
  // Nothing past the last buffer was written.
  assert.ok(allSentinel(bytesAt(r.mem, addrs[2]! + 256, 64)));
  const m = r.metrics.snapshot();
  assert.is(m.entropy_bytes, 512);
  assert.is(m.entropy_event_count, 1);
  assert.is(m.entropy_event_fails, 0);
  assert.ok(r.irqs.length > 0, 'used-buffer interrupt');
});

test('two requests give different bytes (randomness, not a constant pattern)', () => {
  const r = rig();
  const [a] = request(r, [64]);
  const [b] = request(r, [64]);
  assert.not.equal(Buffer.from(bytesAt(r.mem, a!, 64)), Buffer.from(bytesAt(r.mem, b!, 64)));
});

test('a read-only buffer makes the chain unusable: used with 0, counted, nothing written; the next one is served', () => {
  const r = rig();
  const [ro] = request(r, [64], false);
  const [ok] = request(r, [32]);
  assert.equal(r.q.takeUsed(), [{ id: 0, len: 0 }, { id: 1, len: 32 }]);
  assert.ok(allSentinel(bytesAt(r.mem, ro!, 64)));
  assert.not.ok(allSentinel(bytesAt(r.mem, ok!, 32)));
  const m = r.metrics.snapshot();
  assert.is(m.entropy_event_fails, 1);
  assert.is(m.bad_chains, 1);
  assert.is(m.entropy_bytes, 32);
});

test('a buffer outside guest RAM is used with 0 and counted', () => {
  const r = rig();
  r.q.addChain([{ addr: RAM - 16, len: 64, write: true }]);
  r.q.kick();
  assert.equal(r.q.takeUsed(), [{ id: 0, len: 0 }]);
  assert.is(r.metrics.snapshot().entropy_event_fails, 1);
});

test('an empty writable buffer is used with 0 and is not a failure', () => {
  const r = rig();
  request(r, [0]);
  assert.equal(r.q.takeUsed(), [{ id: 0, len: 0 }]);
  assert.is(r.metrics.snapshot().entropy_event_fails, 0);
});

test('a request larger than 64 KiB gets 64 KiB: the rest stays as the guest left it', () => {
  const r = rig();
  const [addr] = request(r, [2 * ENTROPY_MAX_REQUEST_BYTES]);
  assert.equal(r.q.takeUsed(), [{ id: 0, len: ENTROPY_MAX_REQUEST_BYTES }]);
  assert.not.ok(allSentinel(bytesAt(r.mem, addr! + ENTROPY_MAX_REQUEST_BYTES - 64, 64)));
  assert.ok(allSentinel(bytesAt(r.mem, addr! + ENTROPY_MAX_REQUEST_BYTES, ENTROPY_MAX_REQUEST_BYTES)));
});

test('the host RNG failing: used with 0, host_rng_fails and entropy_event_fails counted', () => {
  const r = rig({ fill: () => { throw new Error('getrandom: EIO'); } });
  request(r, [32]);
  assert.equal(r.q.takeUsed(), [{ id: 0, len: 0 }]);
  const m = r.metrics.snapshot();
  assert.is(m.host_rng_fails, 1);
  assert.is(m.entropy_event_fails, 1);
  assert.is(m.entropy_bytes, 0);
});

test('bandwidth limit: a request over budget waits in the ring, then the timer serves it', () => {
  const r = rig({ limits: { bandwidth: { size: 4000, refill_time: 1000 } } });
  request(r, [4000]);
  assert.equal(r.q.takeUsed(), [{ id: 0, len: 4000 }]);
  request(r, [1000]);
  assert.equal(r.q.takeUsed(), [], 'throttled: not used');
  assert.is(r.metrics.snapshot().entropy_rate_limiter_throttled, 1);
  assert.ok(r.dev.retryAfterMs() > 0);
  // A notify while blocked does not serve it.
  r.q.kick();
  assert.equal(r.q.takeUsed(), []);
  assert.is(r.metrics.snapshot().rate_limiter_event_count, 1);
  r.clock.t += 300n * MS; // 1000 bytes refill in 250 ms
  r.dev.onRateLimiterTimer();
  assert.equal(r.q.takeUsed(), [{ id: 1, len: 1000 }]);
  assert.is(r.dev.retryAfterMs(), 0);
  assert.is(r.metrics.snapshot().entropy_bytes, 5000);
});

test('ops limit: one request per refill, the second waits for the timer', () => {
  const r = rig({ limits: { ops: { size: 1, refill_time: 100 } } });
  request(r, [16]);
  request(r, [16]);
  assert.equal(r.q.takeUsed(), [{ id: 0, len: 16 }]);
  r.clock.t += 100n * MS;
  r.dev.onRateLimiterTimer();
  assert.equal(r.q.takeUsed(), [{ id: 1, len: 16 }]);
});

test('a refused byte budget gives the op back', () => {
  const r = rig({ limits: { ops: { size: 2, refill_time: 100_000 }, bandwidth: { size: 100, refill_time: 100_000 } } });
  request(r, [100]);
  request(r, [50]);
  assert.equal(r.q.takeUsed(), [{ id: 0, len: 100 }]);
  assert.is(r.metrics.snapshot().entropy_rate_limiter_throttled, 1);
  // The second op token was not spent on the refused request.
  assert.is(r.dev.rateLimiter.ops!.budget, 1n);
});

test('avail.idx run far ahead breaks the ring: NEEDS_RESET, counted, nothing more served', () => {
  const r = rig();
  r.q.setAvailIdx(200);
  r.q.kick();
  assert.ok((mmioRead32(r.transport, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0);
  assert.is(r.metrics.snapshot().entropy_event_fails, 1);
});

test("the metrics' first counters are Firecracker's entropy group, in order", () => {
  assert.equal([...ENTROPY_FIRECRACKER_COUNTERS], GROUPS.entropy.map(([n]) => n));
});

test.run();
