/**
 * virtio-net device model without KVM or a TAP (test/helpers/net-rig.ts): features and config
 * space through the MMIO transport, the transmit path with hostile chains, MAC spoofing,
 * rate limiting on a fake clock, interrupt suppression, TAP offloads, broken queues, reset and
 * metrics. The receive path is in net-device-rx.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DeviceStateError, NetDeviceParamsError } from '../../src/errors.js';
import {
  VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_RING_INDIRECT_DESC, VIRTIO_F_VERSION_1, VIRTIO_ID_NET,
  VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_STATUS, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_HOST_UFO,
  VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_MTU, VIRTIO_NET_HDR_SIZE, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE, featureBit,
} from '../../src/devices/virtio/constants.js';
import { encodeNetConfig, netTapOffloadFlags } from '../../src/devices/virtio/net/config.js';
import { MAX_BUFFER_SIZE, NET_QUEUE_SIZE, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_UFO } from '../../src/devices/virtio/net/constants.js';
import { NetMetrics } from '../../src/devices/virtio/net/metrics.js';
import { DEVICE_GROUPS } from '../../src/metrics/groups.js';
import type { DeviceMetricValues } from '../../src/metrics/metrics.js';
import { mmioRead32, mmioWrite32 } from '../helpers/mock-queue.js';
import { GUEST_MAC, MS, OTHER_MAC, RAM, frame, netRig, sendFrame } from '../helpers/net-rig.js';

const FIRECRACKER_FEATURES = [
  VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO,
  VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_HOST_UFO, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_F_VERSION_1,
  VIRTIO_F_RING_EVENT_IDX,
].reduce((f, b) => f | featureBit(b), 0n);
/** What Kindling offers beyond Firecracker's set (netFeatures): INDIRECT_DESC, as QEMU does. */
const OFFERED = FIRECRACKER_FEATURES | featureBit(VIRTIO_F_RING_INDIRECT_DESC);

function configBytes(r: ReturnType<typeof netRig>): number[] {
  const out: number[] = [];
  for (let i = 0; i < 12; i++) {
    const b = new Uint8Array(1);
    r.transport.read(VIRTIO_MMIO_CONFIG + i, b);
    out.push(b[0]!);
  }
  return out;
}

test('features: Firecracker\'s set and INDIRECT_DESC, plus MAC and MTU only when configured', () => {
  const both = netRig({ params: { mtu: 9000 } });
  assert.is(both.offered, OFFERED | featureBit(VIRTIO_NET_F_MAC) | featureBit(VIRTIO_NET_F_MTU));
  assert.is(netRig({ params: { guestMac: null } }).offered, OFFERED);
  assert.is(mmioRead32(both.transport, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_NET);
  for (const q of [0, 1]) {
    mmioWrite32(both.transport, VIRTIO_MMIO_QUEUE_SEL, q);
    assert.is(mmioRead32(both.transport, VIRTIO_MMIO_QUEUE_NUM_MAX), NET_QUEUE_SIZE);
  }
});

test('config space: mac, status 0, max_virtqueue_pairs 0, mtu little-endian', () => {
  const r = netRig({ params: { mtu: 0x1234 } });
  assert.equal(configBytes(r), [...GUEST_MAC, 0, 0, 0, 0, 0x34, 0x12]);
  assert.equal(configBytes(netRig({ params: { guestMac: null } })), new Array(12).fill(0));
});

test('config writes: inside mac they set the guest MAC; elsewhere cfg_fails', () => {
  const r = netRig({ params: { guestMac: null, mtu: 1500 } });
  r.transport.write(VIRTIO_MMIO_CONFIG + 10, new Uint8Array([1, 2])); // mtu is read-only
  r.transport.write(VIRTIO_MMIO_CONFIG + 4, new Uint8Array([1, 2, 3])); // crosses into status
  assert.is(r.metrics.count('cfg_fails'), 2);
  assert.equal(configBytes(r).slice(4, 12), [0, 0, 0, 0, 0, 0, 0xdc, 0x05]);
  sendFrame(r, frame(100, OTHER_MAC));
  r.txq.kick();
  assert.is(r.metrics.count('tx_spoofed_mac_count'), 0, 'no guest MAC known yet');
  r.transport.write(VIRTIO_MMIO_CONFIG, GUEST_MAC.subarray(0, 4));
  r.transport.write(VIRTIO_MMIO_CONFIG + 4, GUEST_MAC.subarray(4));
  assert.is(r.metrics.count('mac_address_updates'), 2);
  assert.equal(configBytes(r).slice(0, 6), [...GUEST_MAC]);
  sendFrame(r, frame(100, OTHER_MAC));
  sendFrame(r, frame(100, GUEST_MAC));
  r.txq.kick();
  assert.is(r.metrics.count('tx_spoofed_mac_count'), 1, 'the written MAC is the guest MAC now');
});

test('bad parameters and a short config state are wiring bugs', () => {
  assert.throws(() => encodeNetConfig({ guestMac: new Uint8Array(5), mtu: null }), (e: unknown) => e instanceof NetDeviceParamsError);
  assert.throws(() => encodeNetConfig({ guestMac: null, mtu: 67 }), (e: unknown) => e instanceof NetDeviceParamsError);
  assert.throws(() => encodeNetConfig({ guestMac: null, mtu: 1500 }, new Uint8Array(12)), (e: unknown) => e instanceof DeviceStateError);
});

test('TX: a frame over three descriptors is one TAP write; used length 0; counted', () => {
  const r = netRig();
  const f = frame(1000);
  const s = sendFrame(r, f, [12, 500, 488]);
  r.txq.kick();
  assert.is(r.tap.sent.length, 1);
  assert.equal(r.tap.sent[0], f);
  assert.equal(r.txq.takeUsed(), [{ id: s.head, len: 0 }]);
  assert.equal(r.irqs, [VIRTIO_MMIO_INT_VRING]);
  const m = r.metrics.snapshot();
  assert.equal([m.tx_count, m.tx_packets_count, m.tx_bytes_count, m.tx_queue_event_count], [1, 1, 1000, 1]);
  assert.equal([m.tx_fails, m.tx_malformed_frames, m.tx_spoofed_mac_count, m.no_tx_avail_buffer], [0, 0, 0, 0]);
  r.txq.kick();
  assert.is(r.metrics.count('no_tx_avail_buffer'), 1, 'a notify with nothing to send');
});

test('TX: a TSO frame of 19 buffers in one indirect table is one TAP write; a bad table is dropped', () => {
  const r = netRig();
  const f = frame(65000);
  const sizes = [VIRTIO_NET_HDR_SIZE + 54, ...new Array<number>(17).fill(3800), 65000 - VIRTIO_NET_HDR_SIZE - 54 - 17 * 3800];
  const good = sendFrame(r, f, sizes, true);
  const bad = sendFrame(r, frame(100), [50, 50], true);
  r.txq.patchDescriptor(bad.head, { flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT });
  const after = sendFrame(r, frame(70), [12, 58], true);
  r.txq.kick();
  assert.equal(r.txq.takeUsed(), [good, bad, after].map((c) => ({ id: c.head, len: 0 })));
  assert.equal(r.tap.sent.map((x) => x.length), [65000, 70]);
  assert.equal(r.tap.sent[0], f);
  assert.is(r.metrics.count('tx_fails'), 1);
});

test('TX: a chain of MAX_BUFFER_SIZE is sent, one byte more is malformed and dropped', () => {
  const r = netRig();
  const big = sendFrame(r, frame(MAX_BUFFER_SIZE + 1), [40000, MAX_BUFFER_SIZE + 1 - 40000]);
  const max = sendFrame(r, frame(MAX_BUFFER_SIZE), [40000, MAX_BUFFER_SIZE - 40000]);
  r.txq.kick();
  assert.equal(r.txq.takeUsed(), [{ id: big.head, len: 0 }, { id: max.head, len: 0 }]);
  assert.equal(r.tap.sent.map((f) => f.length), [MAX_BUFFER_SIZE]);
  assert.is(r.metrics.count('tx_malformed_frames'), 1);
});

test('TX: writable descriptors and frames shorter than the vnet header are dropped and counted', () => {
  const r = netRig();
  const wr = sendFrame(r, frame(100), [50, 50]);
  r.txq.patchDescriptor(wr.idx[1]!, { flags: VIRTQ_DESC_F_WRITE });
  const short = sendFrame(r, frame(11));
  const ok = sendFrame(r, frame(60));
  r.txq.kick();
  assert.equal(r.txq.takeUsed(), [wr, short, ok].map((c) => ({ id: c.head, len: 0 })));
  assert.equal(r.tap.sent.map((f) => f.length), [60]);
  assert.is(r.metrics.count('tx_fails'), 1);
  assert.is(r.metrics.count('tx_malformed_frames'), 1);
});

test('TX: descriptor loops, out-of-RAM buffers and bad indexes never reach the TAP', () => {
  const r = netRig();
  const loop = sendFrame(r, frame(100), [50, 50]);
  r.txq.patchDescriptor(loop.idx[1]!, { flags: VIRTQ_DESC_F_NEXT, next: loop.idx[0]! });
  const ram = sendFrame(r, frame(100));
  r.txq.patchDescriptor(ram.idx[0]!, { addr: RAM - 10 });
  const idx = sendFrame(r, frame(100), [50, 50]);
  r.txq.patchDescriptor(idx.idx[0]!, { next: 60000 });
  const ok = sendFrame(r, frame(70));
  r.txq.kick();
  assert.equal(r.txq.takeUsed(), [loop, ram, idx, ok].map((c) => ({ id: c.head, len: 0 })));
  assert.equal(r.tap.sent.map((f) => f.length), [70]);
  assert.is(r.metrics.count('tx_fails'), 3);
});

test('TX: a spoofed source MAC is counted and the frame still sent; no guest MAC, no check', () => {
  const r = netRig();
  sendFrame(r, frame(100, OTHER_MAC));
  sendFrame(r, frame(100, GUEST_MAC));
  sendFrame(r, frame(20, OTHER_MAC)); // shorter than an Ethernet header: nothing to compare
  r.txq.kick();
  assert.is(r.tap.sent.length, 3);
  assert.is(r.metrics.count('tx_spoofed_mac_count'), 1);
  const anon = netRig({ params: { guestMac: null } });
  sendFrame(anon, frame(100, OTHER_MAC));
  anon.txq.kick();
  assert.is(anon.tap.sent.length, 1);
  assert.is(anon.metrics.count('tx_spoofed_mac_count'), 0);
});

test('TX: a failing or throwing TAP write drops the frame, completes the chain, counts tap_write_fails', () => {
  const r = netRig();
  r.tap.writeResult = -5;
  const a = sendFrame(r, frame(100));
  r.txq.kick();
  r.tap.throwOnWrite = true;
  const b = sendFrame(r, frame(100));
  r.txq.kick();
  assert.equal(r.txq.takeUsed(), [{ id: a.head, len: 0 }, { id: b.head, len: 0 }]);
  assert.is(r.metrics.count('tap_write_fails'), 2);
  assert.is(r.metrics.count('tx_count'), 0);
  assert.is(r.tap.sent.length, 0);
});

test('TX: tap_write_agg records the write latency from the injected clock', () => {
  const r = netRig();
  const write = r.tap.write.bind(r.tap);
  r.tap.write = (bufs) => {
    r.clock.us += 250;
    return write(bufs);
  };
  sendFrame(r, frame(100));
  sendFrame(r, frame(100));
  r.txq.kick();
  assert.equal(r.metrics.latency('tap_write_agg'), { min_us: 250, max_us: 250, sum_us: 500 });
});

test('TX rate limited: the refused frame stays in the ring until the limiter timer', () => {
  const r = netRig({ txLimits: { ops: { size: 1, refill_time: 100 } } });
  const a = sendFrame(r, frame(100));
  const b = sendFrame(r, frame(200));
  r.txq.kick();
  assert.equal(r.txq.takeUsed(), [{ id: a.head, len: 0 }]);
  assert.equal(r.tap.sent.map((f) => f.length), [100]);
  assert.is(r.dev.retryAfterMs(), 100);
  assert.is(r.metrics.count('tx_rate_limiter_throttled'), 1);
  r.txq.kick(); // notified while blocked: nothing sent
  assert.is(r.tap.sent.length, 1);
  assert.is(r.metrics.count('tx_rate_limiter_throttled'), 2);
  r.clock.t = 100n * MS;
  r.dev.onRateLimiterTimer();
  assert.equal(r.txq.takeUsed(), [{ id: b.head, len: 0 }]);
  assert.equal(r.tap.sent.map((f) => f.length), [100, 200]);
  assert.is(r.metrics.count('tx_rate_limiter_event_count'), 1);
  assert.is(r.dev.retryAfterMs(), 0);
});

test('TX rate limited on bytes: the op is given back; a PATCH replaces the bucket', () => {
  const r = netRig({ txLimits: { bandwidth: { size: 150, refill_time: 1000 }, ops: { size: 10, refill_time: 1000 } } });
  sendFrame(r, frame(100));
  sendFrame(r, frame(100));
  r.txq.kick();
  assert.is(r.tap.sent.length, 1);
  assert.is(r.dev.txRateLimiter.ops!.budget, 9n, 'one op spent, the refused frame\'s op refunded');
  r.dev.updateRateLimiters({ tx: { bandwidth: { size: 0, refill_time: 0 } } });
  assert.is(r.dev.txRateLimiter.bandwidth, undefined, 'size 0 disables the bucket');
  assert.is(r.dev.txRateLimiter.ops!.budget, 9n, 'an absent bucket is unchanged');
  r.clock.t = 100n * MS;
  r.dev.onRateLimiterTimer();
  assert.is(r.tap.sent.length, 2);
});

test('EVENT_IDX: used-buffer interrupts only when used_event is reached; ignored without it', () => {
  const r = netRig();
  r.txq.setUsedEvent(5);
  sendFrame(r, frame(100));
  r.txq.kick();
  assert.equal(r.irqs, []);
  r.txq.setUsedEvent(1);
  sendFrame(r, frame(100));
  r.txq.kick();
  assert.equal(r.irqs, [VIRTIO_MMIO_INT_VRING]);
  assert.is(r.txq.availEvent(), 2, 'the device asks to hear about the next chain');
  const noIdx = netRig({ features: (f) => f & ~featureBit(VIRTIO_F_RING_EVENT_IDX) });
  noIdx.txq.setUsedEvent(5);
  sendFrame(noIdx, frame(100));
  noIdx.txq.kick();
  assert.equal(noIdx.irqs, [VIRTIO_MMIO_INT_VRING]);
});

test('TAP offloads follow the acked GUEST_ features only', () => {
  assert.is(netRig().dev.tapOffloadFlags(), TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO);
  const hostOnly = (f: bigint) => f & ~[VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO]
    .reduce((m, b) => m | featureBit(b), 0n);
  assert.is(netRig({ features: hostOnly }).dev.tapOffloadFlags(), 0);
  assert.is(netTapOffloadFlags(featureBit(VIRTIO_NET_F_GUEST_CSUM) | featureBit(VIRTIO_NET_F_HOST_TSO4)), TUN_F_CSUM);
  assert.is(netTapOffloadFlags(featureBit(VIRTIO_NET_F_GUEST_TSO6) | featureBit(VIRTIO_NET_F_GUEST_UFO)), TUN_F_TSO6 | TUN_F_UFO);
  assert.is([TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_UFO].join(), '1,2,4,16', 'Linux if_tun.h values');
});

for (const side of ['rxq', 'txq'] as const) {
  test(`a malicious avail.idx on ${side === 'rxq' ? 'RX' : 'TX'} stops the device and asks for a reset`, () => {
    const r = netRig();
    r[side].setAvailIdx(200);
    r[side].kick();
    assert.is(mmioRead32(r.transport, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_NEEDS_RESET);
    assert.equal(r.irqs, [VIRTIO_MMIO_INT_CONFIG]);
    assert.is(r.metrics.count('event_fails'), 1);
    r.rxq.kick();
    r.txq.kick();
    r.dev.onTapReadable();
    r.dev.processQueues();
    assert.is(r.metrics.count('event_fails'), 1, 'the broken device is not touched again');
    assert.is(r.dev.wantsTapInput(), false);
    assert.equal(r.tap.readOffers, []);
  });
}

test('activation with the wrong queue count fails; status 0 latches FAILED (net cannot reset)', () => {
  const r = netRig();
  const needs: number[] = [];
  const err = r.dev.activate(r.mem, { trigger: () => {}, needsReset: () => needs.push(1) }, { ackedFeatures: 0n, queues: [r.rxq.config] });
  assert.is(err?.code, 'VIRTIO_DEVICE_ACTIVATE');
  assert.equal(needs, [1]);
  assert.is(r.metrics.count('activate_fails'), 1);
  const s = netRig();
  mmioWrite32(s.transport, VIRTIO_MMIO_STATUS, 0);
  assert.is(mmioRead32(s.transport, VIRTIO_MMIO_STATUS), VIRTIO_CONFIG_S_FAILED);
  assert.is(s.dev.isActive, false);
  assert.is(s.dev.tapOffloadFlags(), 0);
  sendFrame(s, frame(100));
  s.dev.onTxQueueNotify();
  assert.is(s.tap.sent.length, 0);
});

test('metrics: Firecracker\'s net names, shared through the buffer, typed as the registry reads them', () => {
  const r = netRig();
  const names = DEVICE_GROUPS.net.map(([n]) => n);
  assert.equal(Object.keys(r.metrics.snapshot()).sort(), [...names].sort());
  const other = new NetMetrics(r.metrics.buffer);
  sendFrame(r, frame(100));
  r.txq.kick();
  assert.is(other.count('tx_count'), 1, 'a view over the same buffer sees the worker\'s counts');
  const values: DeviceMetricValues<'net'> = other.snapshot();
  assert.is(values.tx_bytes_count, 100);
});

test.run();
