/**
 * The block model with io_engine Async (src/devices/virtio/block/async-io.ts): requests are
 * queued on the engine, submitted once per drained batch and completed later, in any order.
 * The engine here is ManualAsyncEngine, so the test decides when and how each completes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { must } from '../../src/memory/guest-memory.js';
import { InFlightTable } from '../../src/devices/virtio/block/async-io.js';
import { SUBMIT_RETRY_MS } from '../../src/devices/virtio/block/device.js';
import {
  VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT, VIRTIO_MMIO_INT_VRING,
} from '../../src/devices/virtio/constants.js';
import { UNTOUCHED, guestBytes, pattern, request, rig, type RigOptions } from '../helpers/block-rig.js';
import { ManualAsyncEngine } from '../helpers/manual-async-engine.js';

const EIO = 5;

function asyncRig(slots = 8, o: RigOptions = {}) {
  const r = rig({ ...o, engine: (disk) => new ManualAsyncEngine(disk, slots) });
  return { ...r, eng: r.engine as ManualAsyncEngine };
}

test('requests are submitted as one batch and complete in the order the engine finishes them', () => {
  const r = asyncRig();
  r.backend.disk.set(pattern(1024, 3), 4 * 512);
  const rd = request(r, VIRTIO_BLK_T_IN, 4n, { len: 1024, write: true });
  const wr = request(r, VIRTIO_BLK_T_OUT, 9n, { len: 512, write: false });
  must(r.mem.write(wr.dataAddr, pattern(512, 8)));
  const fl = request(r, VIRTIO_BLK_T_FLUSH, 0n, null);
  r.mq.kick();
  assert.is(r.eng.submits, 1, 'one submission for the whole batch');
  assert.equal(r.eng.inFlight.map((o) => o.kind), ['read', 'write', 'flush']);
  assert.equal(r.mq.takeUsed(), [], 'nothing is used before the engine completes');
  assert.is(rd.status(), UNTOUCHED);
  assert.is(r.dev.inFlight, 3);

  r.eng.complete(2); // the flush first
  r.dev.onIoCompletion();
  assert.equal(r.mq.takeUsed(), [{ id: fl.head, len: 1 }]);
  assert.equal(r.irqs, [VIRTIO_MMIO_INT_VRING]);
  r.eng.complete(1); // then the write
  r.eng.complete(0); // then the read
  r.dev.onIoCompletion();
  assert.equal(r.mq.takeUsed(), [{ id: wr.head, len: 1 }, { id: rd.head, len: 1025 }]);
  assert.equal([rd.status(), wr.status(), fl.status()], [VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
  assert.equal(guestBytes(r.mem, rd.dataAddr, 1024), pattern(1024, 3));
  assert.equal(r.backend.disk.subarray(9 * 512, 10 * 512), pattern(512, 8));
  const m = r.metrics.snapshot();
  assert.equal([m.read_count, m.read_bytes, m.write_count, m.write_bytes, m.flush_count], [1, 1024, 1, 512, 1]);
  assert.is(r.dev.inFlight, 0);
});

test('operations the kernel refuses at submit are retried on the timer, without another kick', () => {
  const r = asyncRig();
  const wr = request(r, VIRTIO_BLK_T_OUT, 2n, { len: 512, write: false });
  must(r.mem.write(wr.dataAddr, pattern(512, 5)));
  r.eng.refuseSubmits = 1;
  r.mq.kick();
  assert.is(r.eng.inFlight.length, 0, 'the kernel took nothing');
  assert.is(r.dev.retryAfterMs(), SUBMIT_RETRY_MS, 'the device asks for the retry timer');
  r.dev.onRateLimiterTimer();
  assert.is(r.eng.inFlight.length, 1, 'the timer resubmitted the write');
  assert.is(r.dev.retryAfterMs(), 0, 'no timer once everything is in the kernel');
  assert.is(r.metrics.count('rate_limiter_event_count'), 0, 'a resubmit is not a rate limiter event');
  r.eng.complete();
  r.dev.onIoCompletion();
  assert.equal(r.mq.takeUsed(), [{ id: wr.head, len: 1 }]);
  assert.equal(r.backend.disk.subarray(2 * 512, 3 * 512), pattern(512, 5));
});

test('GET_ID and unsupported types are answered at once, without the engine', () => {
  const r = asyncRig();
  const id = request(r, VIRTIO_BLK_T_GET_ID, 0n, { len: 20, write: true });
  const odd = request(r, 77, 0n, null);
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: id.head, len: 21 }, { id: odd.head, len: 1 }]);
  assert.is(odd.status(), VIRTIO_BLK_S_UNSUPP);
  assert.equal(new TextDecoder().decode(guestBytes(r.mem, id.dataAddr, 12)), 'manual-async');
  assert.is(r.eng.inFlight.length, 0);
});

test('a full engine stops the drain; completions resume it', () => {
  const r = asyncRig(2);
  const reqs = [0, 1, 2, 3].map((i) => request(r, VIRTIO_BLK_T_IN, BigInt(i), { len: 512, write: true }));
  r.mq.kick();
  assert.is(r.eng.inFlight.length, 2);
  assert.is(r.metrics.count('io_engine_throttled_events'), 1);
  assert.is(r.metrics.count('no_avail_buffer'), 0, 'a full engine is not an empty ring');
  r.eng.complete();
  r.eng.complete();
  r.dev.onIoCompletion();
  assert.equal(r.mq.takeUsed(), [{ id: reqs[0]!.head, len: 513 }, { id: reqs[1]!.head, len: 513 }]);
  assert.is(r.eng.inFlight.length, 2, 'the completion resumed the drain');
  r.eng.complete();
  r.eng.complete();
  r.dev.onIoCompletion();
  assert.equal(r.mq.takeUsed(), [{ id: reqs[2]!.head, len: 513 }, { id: reqs[3]!.head, len: 513 }]);
  assert.ok(reqs.every((q) => q.status() === VIRTIO_BLK_S_OK));
});

test('engine errors: -errno, short transfers and refused queueing are IOERR; a read-only OUT never reaches the engine', () => {
  const r = asyncRig();
  const a = request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  const b = request(r, VIRTIO_BLK_T_IN, 1n, { len: 1024, write: true });
  const c = request(r, VIRTIO_BLK_T_FLUSH, 0n, null);
  r.mq.kick();
  r.eng.complete(0, -EIO);
  r.eng.complete(0, 512); // short
  r.eng.complete(0, -EIO);
  r.dev.onIoCompletion();
  assert.equal(r.mq.takeUsed(), [{ id: a.head, len: 1 }, { id: b.head, len: 513 }, { id: c.head, len: 1 }]);
  assert.equal([a.status(), b.status(), c.status()], [VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_IOERR]);
  assert.is(r.metrics.count('read_count'), 0);
  assert.is(r.metrics.count('flush_count'), 0);
  r.eng.refuseNext = true;
  const d = request(r, VIRTIO_BLK_T_OUT, 0n, { len: 512, write: false });
  r.mq.kick();
  assert.equal(r.mq.takeUsed(), [{ id: d.head, len: 1 }], 'refused by the engine: failed at once');
  assert.is(d.status(), VIRTIO_BLK_S_IOERR);
  assert.is(r.dev.inFlight, 0, 'the slot was given back');

  const ro = asyncRig(8, { readOnly: true });
  const w = request(ro, VIRTIO_BLK_T_OUT, 0n, { len: 512, write: false });
  ro.mq.kick();
  assert.equal(ro.mq.takeUsed(), [{ id: w.head, len: 1 }]);
  assert.is(w.status(), VIRTIO_BLK_S_IOERR);
  assert.is(ro.eng.inFlight.length + ro.eng.queued.length, 0);
});

test('a completion for a tag never queued is counted and ignored', () => {
  const r = asyncRig();
  const a = request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  r.mq.kick();
  r.eng.bogus(5);
  r.eng.bogus(-1);
  r.eng.bogus(1e9);
  r.dev.onIoCompletion();
  assert.equal(r.mq.takeUsed(), []);
  assert.is(r.metrics.count('event_fails'), 3);
  r.eng.complete();
  r.dev.onIoCompletion();
  assert.equal(r.mq.takeUsed(), [{ id: a.head, len: 513 }]);
});

test('after a reset, late completions do not touch the rings', () => {
  const r = asyncRig();
  request(r, VIRTIO_BLK_T_IN, 0n, { len: 512, write: true });
  r.mq.kick();
  r.dev.reset();
  r.eng.complete();
  r.dev.onIoCompletion();
  assert.equal(r.mq.takeUsed(), []);
  assert.is(r.dev.inFlight, 0);
});

test('settleInFlight and a backing-file swap wait for every request in flight', () => {
  const r = asyncRig();
  const reqs = [0, 1, 2].map((i) => request(r, VIRTIO_BLK_T_IN, BigInt(i), { len: 512, write: true }));
  r.mq.kick();
  assert.is(r.dev.inFlight, 3);
  r.dev.updateBackend(new ManualAsyncEngine(new Uint8Array(4096)), 4096);
  assert.is(r.dev.inFlight, 0);
  assert.equal(r.mq.takeUsed().map((u) => u.id), reqs.map((q) => q.head));
  assert.is(r.metrics.count('update_count'), 1);
});

test('InFlightTable: tags are reused, unknown tags are refused, capacity is enforced', () => {
  const t = new InFlightTable<string>(2);
  const e = (s: string) => ({ req: {} as never, active: s, startUs: 0 });
  const a = t.add(e('a'))!;
  const b = t.add(e('b'))!;
  assert.not.equal(a, b);
  assert.is(t.add(e('c')), undefined);
  assert.is(t.take(b)?.active, 'b');
  assert.is(t.take(b), undefined, 'a dead tag');
  assert.is(t.take(7), undefined);
  assert.is(t.take(0.5), undefined);
  assert.is(t.add(e('d')), b, 'the freed slot is reused');
  assert.is(t.size, 2);
});

test.run();
