/**
 * virtio-block device model driven end to end without KVM: a driver-side MockQueue programs an
 * MmioTransport, DRIVER_OK activates a BlockDevice over an in-memory backend, requests go in
 * through the avail ring and come back on the used ring with status bytes and interrupts.
 */
import { test } from 'uvu';
import { closeSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { must } from '../../src/memory/guest-memory.js';
import { CACHE_TYPE } from '../../src/devices/virtio/block/device.js';
import { backingFileSize, blockDeviceSizePath } from '../../src/devices/virtio/block/file-backend.js';
import {
  VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_STATUS, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
  featureBit, hasFeature,
} from '../../src/devices/virtio/constants.js';
import { GuestArena, mmioRead32, mmioWrite32 } from '../helpers/mock-queue.js';
import { MemBlockBackend } from '../helpers/mem-block-backend.js';
import { RAM, SECTORS, UNTOUCHED, guestBytes, pattern, request, rig } from '../helpers/block-rig.js';
import { xorshift32 } from '../helpers/xorshift.js';

test('an IN and an OUT request go through the transport, the device and the backend', () => {
  const r = rig();
  r.backend.disk.set(pattern(1024, 1), 2 * 512);
  const rd = request(r, VIRTIO_BLK_T_IN, 2n, { len: 1024, write: true });
  const src = pattern(512, 9);
  const wr = request(r, VIRTIO_BLK_T_OUT, 5n, { len: 512, write: false });
  must(r.mem.write(wr.dataAddr, src));
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: rd.head, len: 1024 + 1 }, { id: wr.head, len: 1 }]);
  assert.is(rd.status(), VIRTIO_BLK_S_OK);
  assert.is(wr.status(), VIRTIO_BLK_S_OK);
  assert.equal(guestBytes(r.mem, rd.dataAddr, 1024), pattern(1024, 1));
  assert.equal(r.backend.disk.subarray(5 * 512, 6 * 512), src);
  assert.equal(r.irqs, [VIRTIO_MMIO_INT_VRING]);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
  const m = r.metrics.snapshot();
  assert.equal([m.read_count, m.read_bytes, m.write_count, m.write_bytes, m.queue_event_count], [1, 1024, 1, 512, 1]);
  assert.is(r.mq.availEvent(), 2, 'EVENT_IDX: the device asks to hear about the next chain');
});

test('features and config space: capacity in sectors, RO and FLUSH as configured', () => {
  const r = rig();
  assert.ok(hasFeature(r.offered, VIRTIO_F_VERSION_1) && hasFeature(r.offered, VIRTIO_F_RING_EVENT_IDX));
  assert.ok(hasFeature(r.offered, VIRTIO_BLK_F_FLUSH));
  assert.not.ok(hasFeature(r.offered, VIRTIO_BLK_F_RO));
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG), SECTORS);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + 4), 0);
  const ro = rig({ readOnly: true, cacheType: CACHE_TYPE.UNSAFE });
  assert.ok(hasFeature(ro.offered, VIRTIO_BLK_F_RO));
  assert.not.ok(hasFeature(ro.offered, VIRTIO_BLK_F_FLUSH));
  r.transport.write(VIRTIO_MMIO_CONFIG, new Uint8Array([1, 2]));
  assert.is(r.metrics.count('cfg_fails'), 1, 'config writes are ignored and counted');
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG), SECTORS);
});

test('FLUSH reaches the backend; GET_ID returns 20 bytes; unknown types get UNSUPP', () => {
  const r = rig();
  const fl = request(r, VIRTIO_BLK_T_FLUSH, 0n, null);
  const id = request(r, VIRTIO_BLK_T_GET_ID, 0n, { len: VIRTIO_BLK_ID_BYTES, write: true });
  const un = request(r, 0x42, 0n, null);
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: fl.head, len: 1 }, { id: id.head, len: VIRTIO_BLK_ID_BYTES + 1 }, { id: un.head, len: 1 }]);
  assert.is(r.backend.flushes, 1);
  assert.is(fl.status(), VIRTIO_BLK_S_OK);
  assert.is(new TextDecoder().decode(guestBytes(r.mem, id.dataAddr, VIRTIO_BLK_ID_BYTES)).replace(/\0+$/, ''), 'kindling-test-disk');
  assert.is(un.status(), VIRTIO_BLK_S_UNSUPP);
  assert.is(r.metrics.count('flush_count'), 1);
  assert.is(r.metrics.count('invalid_reqs_count'), 1);
});

test('malformed chains are completed with length 0 and no status byte', () => {
  const r = rig();
  const wo = request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  r.mq.patchDescriptor(wo.idx[0]!, { flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE }); // write-only header
  const ro = request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  r.mq.patchDescriptor(ro.idx[2]!, { flags: 0 }); // read-only status
  const range = request(r, VIRTIO_BLK_T_IN, BigInt(SECTORS), { len: 512, write: true }); // past the end
  const zero = request(r, VIRTIO_BLK_T_OUT, 0n, { len: 0, write: false });
  const ram = request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  r.mq.patchDescriptor(ram.idx[1]!, { addr: RAM }); // buffer outside RAM (a queue-level error)
  const ok = request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  r.mq.kick();
  const used = r.mq.takeUsed();
  assert.equal(used, [wo, ro, range, zero, ram, ok].map((q, i) => ({ id: q.head, len: i === 5 ? 513 : 0 })));
  for (const q of [wo, ro, range, zero, ram]) assert.is(q.status(), UNTOUCHED);
  assert.is(ok.status(), VIRTIO_BLK_S_OK);
  assert.is(r.metrics.count('execute_fails'), 5);
});

test('I/O errors: read-only OUT, short transfer, backend failure', () => {
  const ro = rig({ readOnly: true });
  const w = request(ro, VIRTIO_BLK_T_OUT, 0n, { len: 512, write: false });
  must(ro.mem.write(w.dataAddr, pattern(512, 3)));
  ro.mq.kick();
  assert.equal(ro.mq.takeUsed(), [{ id: w.head, len: 1 }]);
  assert.is(w.status(), VIRTIO_BLK_S_IOERR);
  assert.is(ro.backend.disk[0], 0, 'disk untouched');

  const r = rig();
  r.backend.shortNext = 512;
  const short = request(r, VIRTIO_BLK_T_IN, 0n, { len: 1024, write: true });
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: short.head, len: 512 + 1 }]);
  assert.is(short.status(), VIRTIO_BLK_S_IOERR);
  r.backend.failNext = true;
  const bad = request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: bad.head, len: 1 }]);
  assert.is(bad.status(), VIRTIO_BLK_S_IOERR);
  assert.is(r.metrics.count('read_count'), 0);
});

test('an asynchronous backend completes requests in ring order', async () => {
  const r = rig({ async: true });
  r.backend.disk.set(pattern(512, 5), 0);
  const a = request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  const b = request(r, VIRTIO_BLK_T_OUT, 1n, { len: 512, write: false });
  must(r.mem.write(b.dataAddr, pattern(512, 6)));
  r.backend.failNext = false;
  const c = request(r, VIRTIO_BLK_T_FLUSH, 0n, null);
  r.mq.kick();
  r.mq.kick(); // a second notify while busy joins the same drain
  await r.settle();
  assert.equal(r.mq.takeUsed(), [{ id: a.head, len: 513 }, { id: b.head, len: 1 }, { id: c.head, len: 1 }]);
  assert.equal(guestBytes(r.mem, a.dataAddr, 512), pattern(512, 5));
  assert.equal(r.backend.disk.subarray(512, 1024), pattern(512, 6));
  r.backend.failNext = true;
  const d = request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  r.mq.kick();
  await r.settle();
  assert.equal(r.mq.takeUsed(), [{ id: d.head, len: 1 }], 'a rejected promise is an IOERR');
  assert.is(d.status(), VIRTIO_BLK_S_IOERR);
});

test('rate limited: the request stays in the ring until the limiter timer', () => {
  const r = rig({ limits: { ops: { size: 1, refill_time: 100 } } });
  const a = request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  const b = request(r, VIRTIO_BLK_T_IN, 1n, { len: 512, write: true });
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: a.head, len: 513 }]);
  assert.is(r.dev.retryAfterMs(), 100);
  assert.is(r.metrics.count('rate_limiter_throttled_events'), 1);
  r.mq.kick(); // notified while blocked: nothing processed
  assert.equal(r.mq.takeUsed(), []);
  assert.is(r.metrics.count('rate_limiter_throttled_events'), 2);
  r.clock.t = 100_000_000n;
  r.dev.onRateLimiterTimer();
  assert.equal(r.mq.takeUsed(), [{ id: b.head, len: 513 }]);
  assert.is(r.metrics.count('rate_limiter_event_count'), 1);
});

test('rate limited on bytes: the ops token is given back', () => {
  const r = rig({ limits: { bandwidth: { size: 1024, refill_time: 1000 }, ops: { size: 10, refill_time: 1000 } } });
  request(r, VIRTIO_BLK_T_IN, 0n, { len: 1024, write: true });
  request(r, VIRTIO_BLK_T_IN, 2n, { len: 512, write: true });
  r.mq.kick();
  assert.is(r.mq.takeUsed().length, 1);
  assert.is(r.dev.rateLimiter.ops!.budget, 9n, 'one op spent, the throttled one refunded');
});

test('a malicious avail.idx stops the device and asks for a reset', () => {
  const r = rig();
  r.mq.setAvailIdx(100);
  r.mq.kick();
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_NEEDS_RESET);
  assert.equal(r.irqs, [VIRTIO_MMIO_INT_CONFIG]);
  assert.is(r.metrics.count('event_fails'), 1);
  r.mq.kick();
  assert.is(r.metrics.count('event_fails'), 1, 'the broken queue is not touched again');
});

test('EVENT_IDX suppresses the used-buffer interrupt until used_event is reached', () => {
  const r = rig();
  r.mq.setUsedEvent(5);
  request(r, VIRTIO_BLK_T_FLUSH, 0n, null);
  r.mq.kick();
  assert.equal(r.irqs, []);
  r.mq.setUsedEvent(1);
  request(r, VIRTIO_BLK_T_FLUSH, 0n, null);
  r.mq.kick();
  assert.equal(r.irqs, [VIRTIO_MMIO_INT_VRING]);
  const noIdx = rig({ features: (f) => f & ~featureBit(VIRTIO_F_RING_EVENT_IDX) });
  noIdx.mq.setUsedEvent(5);
  request(noIdx, VIRTIO_BLK_T_FLUSH, 0n, null);
  noIdx.mq.kick();
  assert.equal(noIdx.irqs, [VIRTIO_MMIO_INT_VRING], 'used_event ignored without EVENT_IDX');
});

test('activation with the wrong queue count fails and asks for a reset', () => {
  const r = rig();
  const needs: number[] = [];
  const err = r.dev.activate(r.mem, { trigger: () => {}, needsReset: () => needs.push(1) }, { ackedFeatures: 0n, queues: [] });
  assert.is(err?.code, 'VIRTIO_DEVICE_ACTIVATE');
  assert.equal(needs, [1]);
  assert.is(r.metrics.count('activate_fails'), 1);
});

test('status 0 on the active device latches FAILED (block cannot reset)', () => {
  const r = rig();
  mmioWrite32(r.transport, VIRTIO_MMIO_STATUS, 0);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_STATUS), VIRTIO_CONFIG_S_FAILED);
  assert.is(r.dev.isActive, false);
  request(r, VIRTIO_BLK_T_FLUSH, 0n, null);
  assert.is(r.dev.processQueue(), undefined);
  assert.is(r.mq.usedIdx(), 0);
});

test('a new backing file updates capacity and raises a config interrupt', () => {
  const r = rig();
  r.dev.updateBackend(new MemBlockBackend(1024), 1024);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG), 2);
  assert.equal(r.irqs, [VIRTIO_MMIO_INT_CONFIG]);
  assert.is(r.metrics.count('update_count'), 1);
});

test('backing file size: st_size for a regular file, not rounded (the device rounds down)', () => {
  const p = join(mkdtempSync(join(tmpdir(), 'kindling-size-')), 'disk.img');
  writeFileSync(p, Buffer.alloc(3 * 512 + 100));
  const fd = openSync(p, 'r');
  try {
    assert.is(backingFileSize(fd), 3 * 512 + 100);
  } finally {
    closeSync(fd);
  }
});

test("a block device's size comes from sysfs, found through glibc's major/minor split of st_rdev", () => {
  // glibc makedev(): minor bits 0-7 and 20-31 (of 12-39), major bits 8-19 and 32-43 (of 44-63).
  const makedev = (major: bigint, minor: bigint): bigint =>
    ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
  for (const [major, minor] of [[8n, 0n], [253n, 3n], [7n, 255n], [259n, 1_048_575n], [4097n, 256n]] as const) {
    assert.is(blockDeviceSizePath(makedev(major, minor)), `/sys/dev/block/${major}:${minor}/size`);
  }
});

test('random request chains never make the device throw', () => {
  const rnd = xorshift32(0x9e3779b9);
  const r = rig();
  for (let i = 0; i < 300; i++) {
    const types = [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, rnd(20)];
    const q = request(r, types[rnd(types.length)]!, BigInt(rnd(SECTORS + 4)), rnd(4) === 0 ? null : { len: rnd(3) * 512 + rnd(2) * rnd(40), write: rnd(2) === 0 });
    if (rnd(5) === 0) r.mq.patchDescriptor(q.idx[rnd(q.idx.length)]!, { flags: rnd(8), len: rnd(2048) });
    r.mq.kick();
    r.mq.takeUsed();
    r.arena.alloc(0);
    if (i % 40 === 39) r.arena = new GuestArena(r.mq.end, RAM);
  }
  assert.ok(r.metrics.count('queue_event_count') === 300);
});

test.run();
