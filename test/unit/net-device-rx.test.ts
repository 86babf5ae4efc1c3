/**
 * virtio-net receive path without a TAP (test/helpers/net-rig.ts): the device reads only while
 * it holds MAX_BUFFER_SIZE bytes of guest buffers, spreads a frame over several chains with
 * MRG_RXBUF (num_buffers) or fills one without, refuses unusable chains, defers a frame the
 * RX limiter refuses, and tells the actor when to poll the TAP. Also the scatter-gather helpers
 * the path is built on.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  VIRTIO_MMIO_INT_VRING, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_HDR_NUM_BUFFERS, VIRTIO_NET_HDR_SIZE, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, featureBit,
} from '../../src/devices/virtio/constants.js';
import { iovRead, iovWrite } from '../../src/devices/virtio/iovec.js';
import { MAX_BUFFER_SIZE, NET_RX_MIN_SMALL_BUFFER } from '../../src/devices/virtio/net/constants.js';
import { must } from '../../src/memory/guest-memory.js';
import { EAGAIN, MS, RAM, chainBytes, frame, netRig, postRx, sendFrame, type NetRig } from '../helpers/net-rig.js';
import { xorshift32 } from '../helpers/xorshift.js';

const noMerge = (f: bigint) => f & ~featureBit(VIRTIO_NET_F_MRG_RXBUF);
const noMergeNoGso = (f: bigint) =>
  noMerge(f) & ~(featureBit(VIRTIO_NET_F_GUEST_TSO4) | featureBit(VIRTIO_NET_F_GUEST_TSO6) | featureBit(VIRTIO_NET_F_GUEST_UFO));

/** num_buffers as the driver reads it from the first chain's header. */
function numBuffers(r: NetRig, chain: ReturnType<typeof postRx>): number {
  const h = chainBytes(r.mem, chain, VIRTIO_NET_HDR_SIZE);
  return new DataView(h.buffer).getUint16(VIRTIO_NET_HDR_NUM_BUFFERS, true);
}

/** Fills the first header bytes with garbage, as a driver's recycled buffer may hold. */
function dirty(r: NetRig, chain: ReturnType<typeof postRx>): void {
  must(r.mem.write(chain.bufs[0]!.addr, new Uint8Array(VIRTIO_NET_HDR_SIZE).fill(0xee)));
}

test('MRG_RXBUF: a 70000-byte frame fills three chains; num_buffers = 3; one used element each', () => {
  const r = netRig();
  const chains = [postRx(r, [30000]), postRx(r, [10, 29990]), postRx(r, [30000]), postRx(r, [30000])];
  dirty(r, chains[0]!);
  r.rxq.kick();
  assert.is(r.dev.wantsTapInput(), true);
  const f = frame(70000, undefined, 3);
  r.tap.inbox.push(f);
  r.dev.onTapReadable();
  assert.equal(r.rxq.takeUsed(), [
    { id: chains[0]!.head, len: 30000 },
    { id: chains[1]!.head, len: 30000 },
    { id: chains[2]!.head, len: 10000 },
  ]);
  assert.is(numBuffers(r, chains[0]!), 3);
  const got = new Uint8Array(70000);
  got.set(chainBytes(r.mem, chains[0]!, 30000), 0);
  got.set(chainBytes(r.mem, chains[1]!, 30000), 30000);
  got.set(chainBytes(r.mem, chains[2]!, 10000), 60000);
  const want = f.slice();
  want[VIRTIO_NET_HDR_NUM_BUFFERS] = 3;
  assert.equal(got, want);
  assert.equal(r.irqs, [VIRTIO_MMIO_INT_VRING]);
  const m = r.metrics.snapshot();
  assert.equal([m.rx_count, m.rx_packets_count, m.rx_bytes_count, m.rx_tap_event_count], [1, 1, 70000, 1]);
  assert.is(r.dev.wantsTapInput(), false, 'one 30000-byte chain left: less than a frame may need');
});

test('MRG_RXBUF: small frames take one chain each, num_buffers = 1', () => {
  const r = netRig();
  const chains = Array.from({ length: 20 }, () => postRx(r, [4096]));
  r.rxq.kick();
  r.tap.inbox.push(frame(100), frame(1514 + VIRTIO_NET_HDR_SIZE));
  r.dev.onTapReadable();
  assert.equal(r.rxq.takeUsed(), [{ id: chains[0]!.head, len: 100 }, { id: chains[1]!.head, len: 1526 }]);
  assert.is(numBuffers(r, chains[1]!), 1);
  assert.equal(r.tap.readOffers.length, 4, 'the notify read (EAGAIN), then the TAP event read until EAGAIN');
  assert.ok(r.tap.readOffers.every((n) => n >= MAX_BUFFER_SIZE && n < MAX_BUFFER_SIZE + 4096), 'offered just enough chains');
});

test('after sending, the device reads what the host queued meanwhile (one interrupt turn for both queues)', () => {
  const r = netRig();
  const chains = Array.from({ length: 20 }, () => postRx(r, [4096]));
  r.rxq.kick();
  r.tap.readOffers.length = 0;
  // The TAP write "answers" at once, as a host stack run in the writer's context does.
  const write = r.tap.write.bind(r.tap);
  r.tap.write = (bufs) => {
    r.tap.inbox.push(frame(66));
    return write(bufs);
  };
  sendFrame(r, frame(1000));
  r.txq.kick();
  assert.is(r.tap.sent.length, 1);
  assert.equal(r.rxq.takeUsed(), [{ id: chains[0]!.head, len: 66 }], 'the answer reached the guest without a TAP event');
  assert.is(r.metrics.snapshot().rx_tap_event_count, 0, 'not counted as a TAP event');
  assert.equal(r.tap.readOffers.length, 2, 'read until EAGAIN');
  // Without room for a frame the device does not read after sending.
  const t = netRig();
  t.tap.inbox.push(frame(66));
  sendFrame(t, frame(1000));
  t.txq.kick();
  assert.equal(t.tap.readOffers, [], 'no receive buffers: no read');
  assert.is(t.tap.inbox.length, 1);
});

test('without MRG_RXBUF (and with GSO) a chain must hold 65562 bytes; smaller ones are refused', () => {
  const r = netRig({ features: noMerge });
  const small = postRx(r, [MAX_BUFFER_SIZE - 1]);
  const big = postRx(r, [MAX_BUFFER_SIZE]);
  dirty(r, big);
  r.rxq.kick();
  assert.equal(r.rxq.takeUsed(), [{ id: small.head, len: 0 }]);
  assert.is(r.metrics.count('rx_fails'), 1);
  r.tap.inbox.push(frame(300, undefined, 9));
  r.dev.onTapReadable();
  assert.equal(r.rxq.takeUsed(), [{ id: big.head, len: 300 }]);
  assert.is(numBuffers(r, big), 1, 'num_buffers is 1 without MRG_RXBUF');
  assert.equal(chainBytes(r.mem, big, 300).subarray(VIRTIO_NET_HDR_SIZE), frame(300, undefined, 9).subarray(VIRTIO_NET_HDR_SIZE));
});

test('without MRG_RXBUF or GSO: 1526-byte chains, a read waits for 65562 bytes of them and fills the first', () => {
  const r = netRig({ features: noMergeNoGso, queueSize: 64 });
  const tooSmall = postRx(r, [NET_RX_MIN_SMALL_BUFFER - 1]);
  const chains = Array.from({ length: 42 }, () => postRx(r, [NET_RX_MIN_SMALL_BUFFER]));
  r.rxq.kick();
  assert.equal(r.rxq.takeUsed(), [{ id: tooSmall.head, len: 0 }]);
  r.tap.inbox.push(frame(1000));
  r.dev.onTapReadable();
  assert.equal(r.tap.readOffers, [], `${42 * NET_RX_MIN_SMALL_BUFFER} bytes held: no read`);
  assert.is(r.dev.wantsTapInput(), false);
  chains.push(postRx(r, [NET_RX_MIN_SMALL_BUFFER]));
  r.rxq.kick();
  assert.equal(r.tap.readOffers[0], NET_RX_MIN_SMALL_BUFFER, 'the read is offered the first chain only');
  assert.equal(r.rxq.takeUsed(), [{ id: chains[0]!.head, len: 1000 }]);
});

test('guest buffers under 65562 bytes: no TAP read, no polling, no_rx_avail_buffer', () => {
  const r = netRig();
  postRx(r, [30000]);
  postRx(r, [MAX_BUFFER_SIZE - 30000 - 1]);
  r.rxq.kick();
  r.tap.inbox.push(frame(60));
  r.dev.onTapReadable();
  assert.equal(r.tap.readOffers, []);
  assert.is(r.dev.wantsTapInput(), false);
  assert.equal(r.rxq.takeUsed(), []);
  assert.is(r.metrics.count('no_rx_avail_buffer'), 2, 'once for the notify, once for the TAP event');
  postRx(r, [VIRTIO_NET_HDR_SIZE]);
  r.rxq.kick(); // the guest's notify reads at once, as Firecracker's edge-triggered TAP needs
  assert.equal(r.rxq.takeUsed().map((u) => u.len), [60]);
  assert.is(r.tap.inbox.length, 0);
});

test('RX chains: read-only descriptors, loops, out-of-RAM buffers and too-short chains are used with length 0', () => {
  const r = netRig();
  const ro = postRx(r, [100, 100]);
  r.rxq.patchDescriptor(ro.idx[1]!, { flags: 0 });
  const loop = postRx(r, [100, 100]);
  r.rxq.patchDescriptor(loop.idx[1]!, { flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, next: loop.idx[0]! });
  const ram = postRx(r, [100]);
  r.rxq.patchDescriptor(ram.idx[0]!, { addr: RAM - 50 });
  const tiny = postRx(r, [VIRTIO_NET_HDR_SIZE - 1]);
  const good = postRx(r, [MAX_BUFFER_SIZE]);
  r.rxq.kick();
  assert.equal(r.rxq.takeUsed(), [ro, loop, ram, tiny].map((c) => ({ id: c.head, len: 0 })));
  assert.is(r.metrics.count('rx_fails'), 4);
  assert.equal(r.irqs, [VIRTIO_MMIO_INT_VRING]);
  r.tap.inbox.push(frame(80));
  r.dev.onTapReadable();
  assert.equal(r.rxq.takeUsed(), [{ id: good.head, len: 80 }]);
});

test('a driver that publishes one chain many times: the device holds at most 256 descriptors', () => {
  const r = netRig({ queueSize: 256 });
  const c = postRx(r, [100, 100]);
  for (let i = 1; i < 200; i++) r.rxq.publish(c.head);
  r.rxq.kick();
  assert.is(r.rxq.availEvent(), 0, 'the ring was not emptied: 128 chains held, 72 left in it');
  assert.equal(r.rxq.takeUsed(), []);
  assert.is(r.dev.wantsTapInput(), false);
  assert.is(r.metrics.count('rx_fails'), 0);
});

test('EAGAIN reads nothing; a read error counts tap_read_fails and keeps the buffers', () => {
  const r = netRig();
  const c = postRx(r, [MAX_BUFFER_SIZE]);
  r.rxq.kick();
  r.tap.readResult = -EAGAIN;
  r.dev.onTapReadable();
  assert.is(r.tap.readOffers.length, 2, 'the notify and the TAP event each tried one read');
  assert.equal(r.rxq.takeUsed(), []);
  assert.is(r.metrics.count('tap_read_fails'), 0);
  assert.is(r.metrics.count('rx_count'), 0);
  r.tap.readResult = -5;
  r.dev.onTapReadable();
  assert.is(r.metrics.count('tap_read_fails'), 1);
  assert.is(r.dev.wantsTapInput(), true);
  r.tap.inbox.push(frame(64));
  r.dev.onTapReadable();
  assert.equal(r.rxq.takeUsed(), [{ id: c.head, len: 64 }]);
  assert.is(r.metrics.count('rx_count'), 1);
});

test('RX rate limited: a refused frame waits in guest memory, unpublished, until the timer', () => {
  const r = netRig({ rxLimits: { ops: { size: 1, refill_time: 100 } } });
  const chains = [postRx(r, [MAX_BUFFER_SIZE]), postRx(r, [MAX_BUFFER_SIZE]), postRx(r, [MAX_BUFFER_SIZE])];
  r.rxq.kick();
  r.tap.inbox.push(frame(100), frame(200), frame(300));
  r.dev.onTapReadable();
  assert.equal(r.rxq.takeUsed(), [{ id: chains[0]!.head, len: 100 }]);
  assert.is(r.tap.inbox.length, 1, 'the second frame was read, the third was not');
  assert.is(r.metrics.count('rx_rate_limiter_throttled'), 1);
  assert.is(r.metrics.count('rx_count'), 2, 'counted when read, as Firecracker does');
  assert.is(r.dev.wantsTapInput(), false, 'a deferred frame stops TAP polling');
  assert.is(r.dev.retryAfterMs(), 100);
  r.clock.t = 100n * MS;
  // The block has expired; queries must not lose the deferred frame before the timer runs.
  assert.is(r.dev.wantsTapInput(), false);
  assert.ok(r.dev.retryAfterMs() >= 1);
  r.dev.onRateLimiterTimer();
  const used = r.rxq.takeUsed();
  assert.equal(used[0], { id: chains[1]!.head, len: 200 });
  assert.is(r.metrics.count('rx_event_rate_limiter_count'), 1);
  assert.is(used.length, 1, 'the third frame is refused again: one op per 100 ms');
  assert.is(r.tap.inbox.length, 0);
  r.clock.t = 200n * MS;
  r.dev.onRateLimiterTimer();
  assert.equal(r.rxq.takeUsed(), [{ id: chains[2]!.head, len: 300 }]);
});

test('RX: the limiter blocks TAP polling and the TAP event; the RX notify still takes buffers', () => {
  const r = netRig({ rxLimits: { bandwidth: { size: 1000, refill_time: 100 } } });
  postRx(r, [MAX_BUFFER_SIZE]);
  r.rxq.kick();
  r.tap.inbox.push(frame(3000)); // over the bucket size: granted once, then blocked for 200 ms
  r.dev.onTapReadable();
  assert.is(r.rxq.takeUsed().length, 1);
  assert.is(r.dev.wantsTapInput(), false);
  assert.is(r.dev.retryAfterMs(), 200);
  const c = postRx(r, [MAX_BUFFER_SIZE]);
  r.rxq.kick();
  r.tap.inbox.push(frame(10));
  r.dev.onTapReadable();
  assert.is(r.metrics.count('rx_rate_limiter_throttled'), 2);
  assert.is(r.tap.inbox.length, 1);
  r.clock.t = 200n * MS;
  assert.is(r.dev.wantsTapInput(), true);
  r.dev.onTapReadable();
  assert.equal(r.rxq.takeUsed(), [{ id: c.head, len: 10 }]);
});

test('EVENT_IDX on RX: the device asks for the next chain; interrupts honour used_event', () => {
  const r = netRig();
  r.rxq.setUsedEvent(3);
  for (let i = 0; i < 3; i++) postRx(r, [MAX_BUFFER_SIZE]);
  r.rxq.kick();
  assert.is(r.rxq.availEvent(), 3, 'all three chains taken; notify me at the fourth');
  r.tap.inbox.push(frame(60), frame(60));
  r.dev.onTapReadable();
  assert.equal(r.irqs, [], 'used.idx 0 → 2 does not pass used_event 3');
  r.tap.inbox.push(frame(60), frame(60));
  postRx(r, [MAX_BUFFER_SIZE]);
  r.rxq.kick();
  assert.equal(r.irqs, [VIRTIO_MMIO_INT_VRING]);
});

test('random chains on both queues never make the device throw', () => {
  const rnd = xorshift32(0x2545f491);
  const r = netRig({ queueSize: 16 });
  for (let i = 0; i < 400; i++) {
    const q = rnd(2) === 0 ? r.rxq : r.txq;
    const sizes = Array.from({ length: 1 + rnd(3) }, () => rnd(3) * 20000 + rnd(100));
    const idx = q.addChain(sizes.map((len) => ({ addr: rnd(RAM), len, write: rnd(2) === 0 })));
    if (rnd(4) === 0) q.patchDescriptor(idx[rnd(idx.length)]!, { flags: rnd(8), next: rnd(20), len: rnd(70000) });
    if (rnd(3) === 0) r.tap.inbox.push(frame(rnd(MAX_BUFFER_SIZE)));
    if (rnd(8) === 0) r.tap.readResult = -rnd(20);
    q.kick();
    r.dev.onTapReadable();
    if (rnd(10) === 0) r.clock.t += 50n * MS;
    r.dev.onRateLimiterTimer();
    r.rxq.takeUsed();
    r.txq.takeUsed();
  }
  assert.ok(r.metrics.count('rx_queue_event_count') + r.metrics.count('tx_queue_event_count') === 400);
});

test('iovRead / iovWrite cross buffer boundaries and stop at the end', () => {
  const bufs = [new Uint8Array(3), new Uint8Array(0), new Uint8Array(4)];
  assert.is(iovWrite(bufs, 2, Uint8Array.from([1, 2, 3])), 3);
  assert.equal(bufs.map((b) => [...b]), [[0, 0, 1], [], [2, 3, 0, 0]]);
  const dst = new Uint8Array(4);
  assert.is(iovRead(bufs, 1, dst), 4);
  assert.equal([...dst], [0, 1, 2, 3]);
  assert.is(iovRead(bufs, 5, dst), 2, 'short at the end');
  assert.is(iovWrite(bufs, 6, Uint8Array.from([9, 9])), 1);
  assert.is(bufs[2]![3], 9);
});

test.run();
