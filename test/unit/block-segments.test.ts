/**
 * virtio-blk requests of several segments (VIRTIO_BLK_F_SEG_MAX / VIRTIO_BLK_F_SIZE_MAX,
 * virtio 1.2 §5.2.3–§5.2.4): the offer in the features and the config space, data scattered
 * over non-adjacent descriptors on both engines, and chains beyond the offer answered with
 * IOERR while the device goes on.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { must } from '../../src/memory/guest-memory.js';
import { BLOCK_QUEUE_SIZE, BLOCK_SEG_MAX, BLOCK_SIZE_MAX } from '../../src/devices/virtio/block/device.js';
import {
  VIRTIO_BLK_CONFIG_SEG_MAX, VIRTIO_BLK_CONFIG_SIZE_MAX, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK, VIRTIO_BLK_SECTOR_SIZE, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_MMIO_CONFIG, VIRTIO_F_RING_INDIRECT_DESC, VIRTQ_DESC_F_NEXT, hasFeature,
} from '../../src/devices/virtio/constants.js';
import { mmioRead32 } from '../helpers/mock-queue.js';
import { ManualAsyncEngine } from '../helpers/manual-async-engine.js';
import { UNTOUCHED, guestBytes, pattern, request, rig, segmentedRequest, type Rig } from '../helpers/block-rig.js';

/** Writes `bytes` across the segments of a request, in order. */
function fill(r: Rig, segs: readonly { addr: number; len: number }[], bytes: Uint8Array): void {
  let at = 0;
  for (const s of segs) {
    must(r.mem.write(s.addr, bytes.subarray(at, at + s.len)));
    at += s.len;
  }
}

/** The bytes of a request's segments, concatenated. */
function gather(r: Rig, segs: readonly { addr: number; len: number }[]): Uint8Array {
  const parts = segs.map((s) => guestBytes(r.mem, s.addr, s.len));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test('SEG_MAX and SIZE_MAX are offered, with seg_max and size_max in the config space', () => {
  const r = rig();
  assert.ok(hasFeature(r.offered, VIRTIO_BLK_F_SEG_MAX));
  assert.ok(hasFeature(r.offered, VIRTIO_BLK_F_SIZE_MAX));
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CONFIG_SIZE_MAX), BLOCK_SIZE_MAX);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CONFIG_SEG_MAX), BLOCK_SEG_MAX);
  // A request of seg_max segments plus header and status is a chain the ring itself can hold.
  assert.is(BLOCK_SEG_MAX + 2, BLOCK_QUEUE_SIZE);
  assert.ok(hasFeature(r.offered, VIRTIO_F_RING_INDIRECT_DESC), 'INDIRECT_DESC is offered');
  assert.ok(BLOCK_SIZE_MAX % VIRTIO_BLK_SECTOR_SIZE === 0 && BLOCK_SIZE_MAX >= 4096, 'size_max holds at least a page');
});

test('an OUT and an IN of several odd-sized segments round-trip, one backend call each', () => {
  const r = rig();
  const lens = [512, 1536, 100, 412, 2048]; // 4608 bytes: a multiple of 512, the segments are not
  const data = pattern(4608, 21);
  const wr = segmentedRequest(r, VIRTIO_BLK_T_OUT, 5n, lens, false);
  fill(r, wr.segs, data);
  const rd = segmentedRequest(r, VIRTIO_BLK_T_IN, 5n, [...lens].reverse(), true);
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: wr.head, len: 1 }, { id: rd.head, len: 4608 + 1 }]);
  assert.equal([wr.status(), rd.status()], [VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
  assert.equal(r.backend.disk.subarray(5 * 512, 5 * 512 + 4608), data);
  assert.equal(gather(r, rd.segs), data);
  assert.equal(r.backend.segmentCounts, [5, 5], 'one vectored call per request');
  const m = r.metrics.snapshot();
  assert.equal([m.write_count, m.write_bytes, m.read_count, m.read_bytes], [1, 4608, 1, 4608]);
});

test('a short vectored read fills the leading segments and answers IOERR', () => {
  const r = rig();
  r.backend.disk.set(pattern(2048, 4), 0);
  const rd = segmentedRequest(r, VIRTIO_BLK_T_IN, 0n, [1024, 1024], true);
  r.backend.shortNext = 1536;
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: rd.head, len: 1536 + 1 }]);
  assert.is(rd.status(), VIRTIO_BLK_S_IOERR);
  assert.equal(guestBytes(r.mem, rd.segs[1]!.addr, 512), pattern(2048, 4).subarray(1024, 1536));
});

test('seg_max segments in one indirect table run; one more makes a chain longer than the queue, refused while the device goes on', () => {
  const r = rig({ queueSize: BLOCK_QUEUE_SIZE, disk: 2 * BLOCK_SEG_MAX * VIRTIO_BLK_SECTOR_SIZE, ram: 1 << 20 });
  // Header + seg_max + status is exactly the queue size: the longest chain a driver may build.
  const atMax = segmentedRequest(r, VIRTIO_BLK_T_OUT, 0n, new Array<number>(BLOCK_SEG_MAX).fill(512), false, true);
  const data = pattern(512 * BLOCK_SEG_MAX, 9);
  fill(r, atMax.segs, data);
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: atMax.head, len: 1 }]);
  assert.is(atMax.status(), VIRTIO_BLK_S_OK);
  assert.equal(r.backend.disk.subarray(0, data.length), data);
  assert.equal(r.backend.segmentCounts, [BLOCK_SEG_MAX], 'one vectored call');
  // seg_max + 1: a table of queue size + 1 descriptors, which the queue refuses before the
  // parser sees it (VIRTQ_INDIRECT_INVALID): used length 0, status and disk untouched.
  const over = segmentedRequest(r, VIRTIO_BLK_T_OUT, BigInt(BLOCK_SEG_MAX), new Array<number>(BLOCK_SEG_MAX + 1).fill(512), false, true);
  fill(r, over.segs, pattern(512 * (BLOCK_SEG_MAX + 1), 3));
  const next = segmentedRequest(r, VIRTIO_BLK_T_IN, 0n, [512, 512], true, true);
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: over.head, len: 0 }, { id: next.head, len: 1024 + 1 }]);
  assert.equal([over.status(), next.status()], [UNTOUCHED, VIRTIO_BLK_S_OK]);
  assert.ok(r.backend.disk.subarray(data.length).every((b) => b === 0), 'the refused write never reached the disk');
  assert.equal(gather(r, next.segs), data.subarray(0, 1024));
  assert.is(r.metrics.count('execute_fails'), 1);
});

test('a segment longer than size_max is answered with IOERR; one of exactly size_max runs', () => {
  const disk = 4 * BLOCK_SIZE_MAX;
  const r = rig({ ram: 4 * BLOCK_SIZE_MAX, disk });
  const over = segmentedRequest(r, VIRTIO_BLK_T_IN, 0n, [512, BLOCK_SIZE_MAX + 512], true);
  const atMax = segmentedRequest(r, VIRTIO_BLK_T_IN, 0n, [BLOCK_SIZE_MAX, 512], true);
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: over.head, len: 1 }, { id: atMax.head, len: BLOCK_SIZE_MAX + 512 + 1 }]);
  assert.equal([over.status(), atMax.status()], [VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK]);
  assert.equal(r.backend.segmentCounts, [2], 'only the request within the limits reached the backend');
});

test('a read-only segment inside an IN chain is a malformed chain: no status, used length 0', () => {
  const r = rig();
  const rd = segmentedRequest(r, VIRTIO_BLK_T_IN, 0n, [512, 512], true);
  r.mq.patchDescriptor(rd.head + 2, { flags: VIRTQ_DESC_F_NEXT }); // second segment: device-read-only
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: rd.head, len: 0 }]);
  assert.is(rd.status(), UNTOUCHED);
  assert.equal(r.backend.segmentCounts, []);
});

test('Async engine: a request hands all its segments to one engine operation', () => {
  const r = rig({ engine: (disk) => new ManualAsyncEngine(disk, 8) });
  const eng = r.engine as ManualAsyncEngine;
  r.backend.disk.set(pattern(3072, 12), 8 * 512);
  const rd = segmentedRequest(r, VIRTIO_BLK_T_IN, 8n, [1024, 512, 1536], true);
  const wr = segmentedRequest(r, VIRTIO_BLK_T_OUT, 40n, [512, 512], false);
  fill(r, wr.segs, pattern(1024, 30));
  const one = request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  r.mq.kick();
  assert.equal(eng.inFlight.map((o) => o.bufs.length), [3, 2, 1]);
  eng.wait(3);
  r.dev.onIoCompletion();
  assert.equal(r.mq.takeUsed(), [{ id: rd.head, len: 3073 }, { id: wr.head, len: 1 }, { id: one.head, len: 513 }]);
  assert.equal(gather(r, rd.segs), pattern(3072, 12));
  assert.equal(r.backend.disk.subarray(40 * 512, 42 * 512), pattern(1024, 30));
});

test.run();
