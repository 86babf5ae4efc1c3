/** Shared device state: layout arithmetic and the cross-thread lock. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import {
  defineStateLayout,
  lockWord,
  SharedState,
  STATE_LOCK_SLOT,
  STATE_TAG_SLOT,
  unlockWord,
} from '../../src/devices/legacy/index.js';
import { DeviceStateError } from '../../src/errors.js';

const LAYOUT = defineStateLayout('probe', 0x7e57, ['A', 'B', 'C'] as const, { ring: 13, fifo: 4 });

test('slots follow LOCK and TAG; regions are 8-byte aligned after the slots', () => {
  assert.is(STATE_LOCK_SLOT, 0);
  assert.is(STATE_TAG_SLOT, 1);
  assert.equal(LAYOUT.slots, { A: 2, B: 3, C: 4 });
  assert.equal(LAYOUT.regions.ring, { offset: 24, length: 13 });
  assert.equal(LAYOUT.regions.fifo, { offset: 40, length: 4 });
  assert.is(LAYOUT.byteLength, 48);
});

test('init runs once per buffer, by the first attacher', () => {
  const buf = SharedState.allocate(LAYOUT);
  let inits = 0;
  const a = new SharedState(LAYOUT, buf, (s) => { inits++; s.i32[LAYOUT.slots.A] = 42; });
  const b = new SharedState(LAYOUT, buf, () => { inits++; });
  assert.is(inits, 1);
  assert.is(b.i32[LAYOUT.slots.A], 42);
  a.region('ring')[0] = 9;
  assert.is(b.region('ring')[0], 9);
  assert.is(a.i32[STATE_TAG_SLOT], 0x7e57);
  assert.is(a.i32[STATE_LOCK_SLOT], 0, 'unlocked after attaching');
});

test('counters are unsigned and wrap modulo 2^32; bump notifies', () => {
  const s = new SharedState(LAYOUT, SharedState.allocate(LAYOUT), () => {});
  s.count(LAYOUT.slots.B, 0x7fffffff);
  s.count(LAYOUT.slots.B, 2);
  assert.is(s.counter(LAYOUT.slots.B), 0x80000001);
  s.bump(LAYOUT.slots.C);
  assert.is(s.counter(LAYOUT.slots.C), 1);
});

test('bad buffers are refused', () => {
  const ok = (e: unknown): boolean => e instanceof DeviceStateError;
  assert.throws(() => new SharedState(LAYOUT, new SharedArrayBuffer(LAYOUT.byteLength - 1), () => {}), ok);
  const other = defineStateLayout('other', 0x0e, ['X'] as const, {});
  const buf = SharedState.allocate(LAYOUT);
  new SharedState(other, buf, () => {});
  assert.throws(() => new SharedState(LAYOUT, buf, () => {}), ok);
});

test('lockWord on an uncontended word is free → held → free', () => {
  const w = new Int32Array(new SharedArrayBuffer(4));
  lockWord(w, 0);
  assert.is(w[0], 1);
  unlockWord(w, 0);
  assert.is(w[0], 0);
});

// Each worker does a non-atomic read-modify-write of one slot under the lock; a broken lock
// loses increments. Main takes the lock too (it may, under Node) while they run.
const WORKER_SRC = `
const { workerData, parentPort } = require('node:worker_threads');
import(workerData.url).then((m) => {
  const i32 = new Int32Array(workerData.buf);
  for (let i = 0; i < workerData.n; i++) {
    m.lockWord(i32, 0);
    const v = i32[1];
    i32[1] = v + 1;
    m.unlockWord(i32, 0);
  }
  parentPort.postMessage('done');
});
`;

test('the lock serialises read-modify-writes across four workers and main', async () => {
  const buf = new SharedArrayBuffer(8);
  const i32 = new Int32Array(buf);
  const n = 100_000;
  const url = new URL('../../src/devices/legacy/shared-state.js', import.meta.url).href;
  const workers = Array.from({ length: 4 }, () => new Worker(WORKER_SRC, { eval: true, workerData: { url, buf, n } }));
  const finished = workers.map((w) => new Promise((res, rej) => { w.once('message', res); w.once('error', rej); }));
  let mainIncrements = 0;
  let pending = true;
  void Promise.all(finished).then(() => { pending = false; });
  while (pending) {
    for (let i = 0; i < 1000; i++) {
      lockWord(i32, 0);
      i32[1] = i32[1]! + 1;
      unlockWord(i32, 0);
      mainIncrements++;
    }
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(workers.map((w) => w.terminate()));
  assert.is(i32[1], 4 * n + mainIncrements);
  assert.is(i32[0], 0);
});

test.run();
