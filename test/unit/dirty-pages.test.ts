/**
 * Dirty-page tracking for Diff snapshots (docs/design.md, "Snapshot memory files"), without
 * KVM: GuestMemory's shared dirty bitmap (markDirty, the write accessors, the descriptor a
 * worker rebuilds), what a virtqueue marks (writable buffers at pop and again at addUsed, the
 * used ring words; never read-only buffers), and src/snapshot/dirty.ts taking KVM's log OR the
 * device bitmap and clearing the latter.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { Queue, type DescriptorChain } from '../../src/devices/virtio/queue.js';
import { KVM_DIRTY_LOG_PAGE_SIZE, dirtyLogBytes } from '../../src/kvm/constants.js';
import { GuestMemory, arrayGuestMemory, dirtyBitmapLayout } from '../../src/memory/guest-memory.js';
import { HostGuestMemory } from '../../src/memory/host-memory.js';
import { collectDirtyPages, countDirtyPages, resetDirtyPages } from '../../src/snapshot/dirty.js';
import { VirtqueueError } from '../../src/errors.js';
import { GuestArena, MockQueue } from '../helpers/mock-queue.js';

const PAGE = KVM_DIRTY_LOG_PAGE_SIZE;
const MiB = 1024 * 1024;

/** Dirty page numbers of region `i`. */
function dirtyPages(mem: GuestMemory, i = 0): number[] {
  const words = mem.dirtyBitmap(i)!;
  const out: number[] = [];
  for (let w = 0; w < words.length; w++) for (let b = 0; b < 32; b++) if (Atomics.load(words, w) & (1 << b)) out.push(w * 32 + b);
  return out;
}

function clear(mem: GuestMemory): void {
  for (let i = 0; i < mem.regions.length; i++) mem.dirtyBitmap(i)!.fill(0);
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, k) => from + k);

test('the bitmap has KVM_GET_DIRTY_LOG\'s shape: one bit per 4 KiB page, each region in whole u64 words', () => {
  assert.is(dirtyLogBytes(64 * 1024), 8, '16 pages round up to one u64');
  assert.is(dirtyLogBytes(256 * PAGE), 32);
  assert.is(dirtyLogBytes(256 * PAGE + 1), 40, 'a partial page counts');
  assert.equal(dirtyBitmapLayout([64 * 1024, MiB]), { offsets: [0, 8], bytes: 8 + 32 });
});

test('markDirty sets exactly the pages a range touches, across words and in the second region', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: MiB }, { gpa: 4 * MiB, size: MiB }], { trackDirty: true });
  assert.ok(mem.tracksDirty);
  mem.markDirty(PAGE - 1, 2);
  assert.equal(dirtyPages(mem), [0, 1], 'two bytes straddling a page boundary');
  clear(mem);
  mem.markDirty(30 * PAGE + 5, 70 * PAGE);
  assert.equal(dirtyPages(mem), range(30, 101), 'first, middle and last word of a long range');
  clear(mem);
  mem.markDirty(31 * PAGE, PAGE);
  assert.equal(dirtyPages(mem), [31], 'bit 31 of a word');
  clear(mem);
  mem.markDirty(4 * MiB + 3 * PAGE, 1);
  assert.equal(dirtyPages(mem, 0), []);
  assert.equal(dirtyPages(mem, 1), [3]);
  mem.markDirty(0, 0);
  mem.markDirty(2 * MiB, PAGE);
  mem.markDirty(MiB - 1, 2);
  assert.equal(dirtyPages(mem, 0), [], 'len 0, outside RAM and straddling regions mark nothing');
});

test('the write accessors mark what they wrote; reads and out-of-range writes do not', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: MiB }], { trackDirty: true });
  mem.writeU8(1 * PAGE, 1);
  mem.writeU16(2 * PAGE, 1);
  mem.writeU32(3 * PAGE - 2, 1);
  mem.writeU64(5 * PAGE, 1n);
  mem.write(7 * PAGE + 100, new Uint8Array(PAGE));
  mem.readU64(9 * PAGE);
  mem.read(10 * PAGE, new Uint8Array(8));
  mem.writeU32(MiB - 2, 1);
  assert.equal(dirtyPages(mem), [1, 2, 3, 5, 7, 8]);
});

test('without a bitmap nothing is tracked and markDirty is a no-op', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: MiB }]);
  assert.not.ok(mem.tracksDirty);
  assert.is(mem.dirtyBitmap(0), undefined);
  mem.markDirty(0, MiB);
  assert.is(mem.describe().dirty, undefined);
});

test('a worker rebuilding memory from the descriptor marks the same shared bitmap', async () => {
  const mem = HostGuestMemory.create([{ gpa: 0, size: 2 * MiB }], 'dirty-test', { trackDirty: true });
  const desc = mem.describe();
  assert.instance(desc.dirty, SharedArrayBuffer);
  const url = new URL('../../src/memory/guest-memory.js', import.meta.url).href;
  await new Promise<void>((resolve, reject) => {
    const w = new Worker(`
      import { workerData, parentPort } from 'node:worker_threads';
      const { GuestMemory } = await import(${JSON.stringify(url)});
      const m = GuestMemory.fromDescriptor(workerData);
      m.regions[0].bytes[9 * 4096] = 1;
      m.markDirty(9 * 4096, 1);
      parentPort.postMessage('done');`, { eval: true, workerData: desc, type: 'module' } as never);
    w.once('message', () => resolve());
    w.once('error', reject);
  });
  assert.equal(dirtyPages(mem), [9]);
  mem.close();
});

interface Rig { mem: GuestMemory; mq: MockQueue; q: Queue; arena: GuestArena }

function rig(trackDirty: boolean): Rig {
  const mem = arrayGuestMemory([{ gpa: 0, size: MiB }], { trackDirty });
  const mq = new MockQueue(mem, 8, 0);
  const q = Queue.create(mem, mq.config, { eventIdx: false });
  if (!(q instanceof Queue)) throw q;
  return { mem, mq, q, arena: new GuestArena(64 * 1024, MiB) };
}

function pop(q: Queue): DescriptorChain {
  const c = q.pop();
  if (c === null || c instanceof VirtqueueError) throw new Error(`expected a chain, got ${String(c)}`);
  return c;
}

test('a popped chain marks exactly the pages of its writable descriptors, not the read-only ones', () => {
  const { mem, mq, q } = rig(true);
  const header = 20 * PAGE + 16; // read-only
  const data = 40 * PAGE + 100; // writable, three pages
  const status = 60 * PAGE + PAGE - 1; // writable, one byte
  mq.addChain([{ addr: header, len: 16 }, { addr: data, len: 2 * PAGE, write: true }, { addr: status, len: 1, write: true }]);
  clear(mem); // the driver's ring writes went through the accessors
  pop(q);
  assert.equal(dirtyPages(mem), [40, 41, 42, 60]);
});

test('a chain of read-only buffers marks nothing; addUsed marks the buffers again and the used ring words', () => {
  const { mem, mq, q } = rig(true);
  mq.addChain([{ addr: 30 * PAGE, len: 100 }]);
  clear(mem);
  const ro = pop(q);
  assert.equal(dirtyPages(mem), [], 'read-only: nothing');
  mq.addChain([{ addr: 50 * PAGE, len: PAGE, write: true }]);
  const rw = pop(q);
  clear(mem); // as if a snapshot took the bits between pop and the device's write
  q.addUsed(rw.head, PAGE);
  const usedPage = Math.floor(mq.config.usedRing / PAGE);
  assert.equal(dirtyPages(mem), [...new Set([usedPage, 50])].sort((a, b) => a - b), 'the writable buffer again, and the used ring');
  clear(mem);
  q.addUsed(ro.head, 0);
  assert.equal(dirtyPages(mem), [usedPage], 'a read-only chain completes with the used ring alone');
});

test('without a bitmap a queue pops and completes as before and marks nothing', () => {
  const { mem, mq, q } = rig(false);
  mq.addChain([{ addr: 40 * PAGE, len: PAGE, write: true }]);
  const c = pop(q);
  assert.is(q.addUsed(c.head, PAGE), undefined);
  assert.equal(mq.takeUsed(), [{ id: c.head, len: PAGE }]);
  assert.not.ok(mem.tracksDirty);
});

test('collectDirtyPages ORs the KVM log (slot = region index) with the device bitmap and clears the latter', () => {
  const mem = HostGuestMemory.create([{ gpa: 0, size: MiB }, { gpa: 4 * MiB, size: 2 * MiB }], 'dirty-collect', { trackDirty: true });
  mem.markDirty(3 * PAGE, 1);
  mem.markDirty(4 * MiB + 100 * PAGE, 1);
  const calls: [number, number][] = [];
  const vm = {
    getDirtyLog(slot: number, size: number): Uint8Array {
      calls.push([slot, size]);
      const b = new Uint8Array(dirtyLogBytes(size));
      b[0] = slot === 0 ? 0b1 : 0b10; // page 0 of region 0, page 1 of region 1
      return b;
    },
  };
  const got = collectDirtyPages(vm, mem);
  assert.equal(calls, [[0, MiB], [1, 2 * MiB]]);
  assert.equal(got.map((b) => b.length), [dirtyLogBytes(MiB), dirtyLogBytes(2 * MiB)]);
  assert.is(got[0]![0], 0b1001, 'KVM page 0 | device page 3');
  assert.is(got[1]![0], 0b10);
  assert.is(got[1]![100 >> 3], 1 << (100 & 7), 'device page 100 of region 1');
  assert.equal(got.map(countDirtyPages), [2, 2]);
  assert.equal(dirtyPages(mem, 0), [], 'the device bitmap was taken');
  assert.equal(collectDirtyPages(null, mem).map(countDirtyPages), [0, 0], 'null vm: device bitmap alone, now empty');
  mem.markDirty(5 * PAGE, 1);
  resetDirtyPages(null, mem);
  assert.equal(dirtyPages(mem, 0), [], 'reset clears');
  mem.close();
});

test.run();
