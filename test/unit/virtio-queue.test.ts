/** Split virtqueue device side: each driver malformation yields its own VirtqueueError, never a throw. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arrayGuestMemory, type GuestMemory } from '../../src/memory/guest-memory.js';
import { Queue, vringNeedEvent, type DescriptorChain } from '../../src/devices/virtio/queue.js';
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_IDX_MODULUS, VIRTQ_USED_F_NO_NOTIFY,
} from '../../src/devices/virtio/constants.js';
import { VirtqueueError } from '../../src/errors.js';
import { GuestArena, MockQueue } from '../helpers/mock-queue.js';
import { xorshift32 } from '../helpers/xorshift.js';

const RAM = 64 * 1024;

interface Rig {
  mem: GuestMemory;
  mq: MockQueue;
  q: Queue;
  arena: GuestArena;
}

function rig(size = 8, eventIdx = false): Rig {
  const mem = arrayGuestMemory([{ gpa: 0, size: RAM }]);
  const mq = new MockQueue(mem, size, 0);
  const q = Queue.create(mem, mq.config, { eventIdx });
  if (!(q instanceof Queue)) throw q;
  return { mem, mq, q, arena: new GuestArena(mq.end, RAM) };
}

function expectError(r: unknown, code: string): VirtqueueError {
  assert.instance(r, VirtqueueError);
  assert.is((r as VirtqueueError).code, code);
  return r as VirtqueueError;
}

function expectChain(r: unknown): DescriptorChain {
  assert.ok(r && !(r instanceof VirtqueueError), `expected a chain, got ${String(r)}`);
  return r as DescriptorChain;
}

test('an empty ring pops null', () => {
  const { q } = rig();
  assert.is(q.pop(), null);
  assert.is(q.len(), 0);
});

test('a chain round trips: descriptors in order with directions, used element published', () => {
  const { q, mq, arena } = rig();
  const a = arena.alloc(16);
  const b = arena.alloc(512);
  const [head] = mq.addChain([{ addr: a, len: 16 }, { addr: b, len: 512, write: true }]);
  assert.is(q.len(), 1);
  const c = expectChain(q.pop());
  assert.is(c.head, head);
  assert.equal(c.descriptors.map((d) => [d.addr, d.len, d.writable]), [[a, 16, false], [b, 512, true]]);
  assert.is(c.totalLen, 528);
  assert.is(q.addUsed(c.head, 512), undefined);
  assert.equal(mq.takeUsed(), [{ id: head, len: 512 }]);
  assert.is(q.pop(), null);
});

test('a descriptor loop is VIRTQ_DESC_LOOP with the head and the revisited index', () => {
  const { q, mq, arena } = rig();
  const [h, second] = mq.addChain([{ addr: arena.alloc(16), len: 16 }, { addr: arena.alloc(16), len: 16 }]);
  mq.patchDescriptor(second!, { flags: VIRTQ_DESC_F_NEXT, next: h! });
  const e = expectError(q.pop(), 'VIRTQ_DESC_LOOP');
  assert.is(e.head, h);
  assert.is(e.index, h);
});

test('a chain longer than the queue size must revisit a descriptor: VIRTQ_DESC_LOOP', () => {
  const { q, mq, arena } = rig(4);
  const bufs = [0, 1, 2, 3].map(() => ({ addr: arena.alloc(8), len: 8 }));
  const idx = mq.addChain(bufs);
  // Fifth link: the last descriptor points back into the chain.
  mq.patchDescriptor(idx[3]!, { flags: VIRTQ_DESC_F_NEXT, next: idx[0]! });
  expectError(q.pop(), 'VIRTQ_DESC_LOOP');
});

test('a self-referencing descriptor is a loop', () => {
  const { q, mq, arena } = rig();
  const [h] = mq.addChain([{ addr: arena.alloc(8), len: 8 }]);
  mq.patchDescriptor(h!, { flags: VIRTQ_DESC_F_NEXT, next: h! });
  expectError(q.pop(), 'VIRTQ_DESC_LOOP');
});

test('a next index outside the table is VIRTQ_DESC_INDEX_OUT_OF_RANGE', () => {
  const { q, mq, arena } = rig(8);
  const [h] = mq.addChain([{ addr: arena.alloc(8), len: 8 }]);
  mq.patchDescriptor(h!, { flags: VIRTQ_DESC_F_NEXT, next: 8 });
  const e = expectError(q.pop(), 'VIRTQ_DESC_INDEX_OUT_OF_RANGE');
  assert.is(e.index, 8);
  assert.is(e.head, h);
});

test('a head index outside the table is VIRTQ_DESC_INDEX_OUT_OF_RANGE and cannot be used', () => {
  const { q, mq } = rig(8);
  mq.publish(9);
  const e = expectError(q.pop(), 'VIRTQ_DESC_INDEX_OUT_OF_RANGE');
  assert.is(e.head, 9);
  expectError(q.addUsed(9, 0), 'VIRTQ_DESC_INDEX_OUT_OF_RANGE');
  assert.is(mq.usedIdx(), 0);
  assert.is(q.pop(), null, 'the bad head was consumed');
});

test('buffers outside guest RAM are VIRTQ_DESC_OUT_OF_RAM', () => {
  for (const [addr, len] of [
    [RAM, 1], // just past the end
    [RAM - 8, 16], // straddles the end
    [2 ** 40, 8], // high address bits set
    [2 ** 60, 8], // beyond 2^53
  ] as const) {
    const { q, mq, arena } = rig();
    const [, bad] = mq.addChain([{ addr: arena.alloc(16), len: 16 }, { addr, len, write: true }]);
    const e = expectError(q.pop(), 'VIRTQ_DESC_OUT_OF_RAM');
    assert.is(e.index, bad, `${addr}+${len}`);
  }
});

test('a zero-length buffer inside RAM is structurally fine', () => {
  const { q, mq, arena } = rig();
  mq.addChain([{ addr: arena.alloc(8), len: 0 }]);
  assert.is(expectChain(q.pop()).totalLen, 0);
});

test('VIRTQ_DESC_F_INDIRECT is refused when INDIRECT_DESC was not negotiated', () => {
  const { q, mq, arena } = rig();
  const [h] = mq.addChain([{ addr: arena.alloc(16), len: 16 }]);
  mq.patchDescriptor(h!, { flags: VIRTQ_DESC_F_INDIRECT });
  expectError(q.pop(), 'VIRTQ_DESC_INDIRECT');
});

/** A queue with INDIRECT_DESC negotiated. */
function indirectRig(size = 8): Rig {
  const mem = arrayGuestMemory([{ gpa: 0, size: RAM }]);
  const mq = new MockQueue(mem, size, 0);
  const q = Queue.create(mem, mq.config, { eventIdx: false, indirect: true });
  if (!(q instanceof Queue)) throw q;
  return { mem, mq, q, arena: new GuestArena(mq.end, RAM) };
}

test('an indirect chain yields its table entries in order, in one ring slot', () => {
  const { q, mq, arena } = indirectRig();
  const bufs = [{ addr: arena.alloc(12), len: 12 }, { addr: arena.alloc(4096), len: 4096 }, { addr: arena.alloc(100), len: 100, write: true }];
  const head = mq.addIndirectChain(bufs, arena.alloc(16 * bufs.length));
  const c = expectChain(q.pop());
  assert.is(c.head, head);
  assert.equal(c.descriptors.map((d) => [d.index, d.addr, d.len, d.writable]), bufs.map((b, k) => [k, b.addr, b.len, b.write === true]));
  assert.is(c.totalLen, 12 + 4096 + 100);
  // The walk starts at entry 0 and follows `next` inside the table, in any order: 0 → 2 → 1.
  const t = arena.alloc(48);
  mq.addIndirectChain([{ addr: bufs[0]!.addr, len: 1 }, { addr: bufs[1]!.addr, len: 2 }, { addr: bufs[1]!.addr, len: 3 }], t);
  mq.patchDescriptor(0, { next: 2 }, t);
  mq.patchDescriptor(2, { flags: VIRTQ_DESC_F_NEXT, next: 1 }, t);
  mq.patchDescriptor(1, { flags: 0 }, t);
  const c2 = expectChain(q.pop());
  assert.equal(c2.descriptors.map((d) => [d.index, d.len]), [[0, 1], [2, 3], [1, 2]]);
  // A ring descriptor may lead to the indirect one.
  const t3 = arena.alloc(16);
  const [h3, ind] = mq.addChain([{ addr: bufs[0]!.addr, len: 5 }, { addr: t3, len: 16 }]);
  mq.patchDescriptor(ind!, { flags: VIRTQ_DESC_F_INDIRECT });
  mq.writeDescriptor(0, { addr: bufs[1]!.addr, len: 7, flags: 0, next: 0 }, t3);
  const c3 = expectChain(q.pop());
  assert.is(c3.head, h3);
  assert.equal(c3.descriptors.map((d) => d.len), [5, 7]);
});

test('malformed indirect descriptors and tables each fail as a value, and the queue goes on', () => {
  const cases: [string, (r: Rig) => void, string][] = [
    ['INDIRECT with NEXT', ({ mq, arena }) => { mq.addIndirectChain([{ addr: arena.alloc(8), len: 8 }], arena.alloc(16), { flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, next: 5 }); }, 'VIRTQ_INDIRECT_INVALID'],
    ['empty table', ({ mq, arena }) => { mq.addIndirectChain([{ addr: arena.alloc(8), len: 8 }], arena.alloc(16), { len: 0 }); }, 'VIRTQ_INDIRECT_INVALID'],
    ['table length not whole descriptors', ({ mq, arena }) => { mq.addIndirectChain([{ addr: arena.alloc(8), len: 8 }], arena.alloc(32), { len: 24 }); }, 'VIRTQ_INDIRECT_INVALID'],
    ['table of more entries than the queue size', ({ mq, arena }) => { mq.addIndirectChain([{ addr: arena.alloc(8), len: 8 }], arena.alloc(16 * 9), { len: 16 * 9 }); }, 'VIRTQ_INDIRECT_INVALID'],
    ['table straddling the end of RAM', ({ mq }) => { mq.addIndirectChain([], 0, { addr: RAM - 16, len: 32 }); }, 'VIRTQ_INDIRECT_INVALID'],
    ['table at 2^64 - 16', ({ mq }) => { mq.addIndirectChain([], 0, { addr: 2 ** 64 - 16, len: 16 }); }, 'VIRTQ_INDIRECT_INVALID'],
    ['nested indirect', ({ mq, arena }) => {
      const t = arena.alloc(16);
      mq.addIndirectChain([{ addr: arena.alloc(16), len: 16 }], t);
      mq.patchDescriptor(0, { flags: VIRTQ_DESC_F_INDIRECT }, t);
    }, 'VIRTQ_INDIRECT_INVALID'],
    ['next past the table', ({ mq, arena }) => {
      const t = arena.alloc(32);
      mq.addIndirectChain([{ addr: arena.alloc(8), len: 8 }, { addr: arena.alloc(8), len: 8 }], t);
      mq.patchDescriptor(0, { next: 2 }, t);
    }, 'VIRTQ_DESC_INDEX_OUT_OF_RANGE'],
    ['loop inside the table', ({ mq, arena }) => {
      const t = arena.alloc(48);
      mq.addIndirectChain([{ addr: arena.alloc(8), len: 8 }, { addr: arena.alloc(8), len: 8 }, { addr: arena.alloc(8), len: 8 }], t);
      mq.patchDescriptor(2, { flags: VIRTQ_DESC_F_NEXT, next: 1 }, t);
    }, 'VIRTQ_DESC_LOOP'],
    ['a self-linked single entry', ({ mq, arena }) => {
      const t = arena.alloc(16);
      mq.addIndirectChain([{ addr: arena.alloc(8), len: 8 }], t);
      mq.patchDescriptor(0, { flags: VIRTQ_DESC_F_NEXT, next: 0 }, t);
    }, 'VIRTQ_DESC_LOOP'],
    ['entry buffer outside RAM', ({ mq, arena }) => { mq.addIndirectChain([{ addr: RAM - 4, len: 8 }], arena.alloc(16)); }, 'VIRTQ_DESC_OUT_OF_RAM'],
    ['entries over 2^32 bytes', ({ mq, arena }) => { mq.addIndirectChain([{ addr: 0, len: 2 ** 31 + 1 }, { addr: 0, len: 2 ** 31 + 1 }], arena.alloc(32)); }, 'VIRTQ_CHAIN_TOO_LONG'],
  ];
  for (const [name, build, code] of cases) {
    const r = indirectRig();
    build(r);
    const e = expectError(r.q.pop(), code);
    assert.ok(e.head !== undefined, `${name}: the head is consumed`);
    assert.is(r.q.addUsed(e.head!, 0), undefined, name);
    // The queue is not broken: a good chain after it pops.
    const a = r.arena.alloc(8);
    r.mq.addIndirectChain([{ addr: a, len: 8 }], r.arena.alloc(16));
    assert.is(expectChain(r.q.pop()).descriptors[0]!.addr, a, `${name}: the next chain pops`);
  }
});

test('an indirect table the guest rewrites after the pop does not change the popped chain', () => {
  const { q, mq, arena } = indirectRig();
  const t = arena.alloc(16);
  const a = arena.alloc(64);
  mq.addIndirectChain([{ addr: a, len: 64 }], t);
  const c = expectChain(q.pop());
  mq.patchDescriptor(0, { addr: RAM + 4096, len: 2 ** 31 }, t);
  assert.equal([c.descriptors[0]!.addr, c.descriptors[0]!.len], [a, 64]);
});

test('more than 2^32 bytes in one chain is VIRTQ_CHAIN_TOO_LONG (checked before RAM)', () => {
  const { q, mq } = rig();
  mq.addChain([{ addr: 0, len: 2 ** 31 + 1 }, { addr: 0, len: 2 ** 31 + 1 }]);
  expectError(q.pop(), 'VIRTQ_CHAIN_TOO_LONG');
});

test('avail.idx more than the queue size ahead breaks the queue for good', () => {
  const { q, mq } = rig(8);
  mq.setAvailIdx(9);
  const e = expectError(q.pop(), 'VIRTQ_AVAIL_INDEX_INVALID');
  assert.is(q.broken, e);
  assert.is(q.len(), 0);
  mq.setAvailIdx(1);
  assert.is(q.pop(), e, 'still broken after the driver backs off');
});

test('exactly queue-size chains outstanding is legal', () => {
  const { q, mq, arena } = rig(8);
  for (let i = 0; i < 8; i++) mq.addChain([{ addr: arena.alloc(8), len: 8 }]);
  assert.is(q.len(), 8);
  for (let i = 0; i < 8; i++) expectChain(q.pop());
  assert.is(q.pop(), null);
});

test('undoPop gives the same chain back', () => {
  const { q, mq, arena } = rig();
  const [h] = mq.addChain([{ addr: arena.alloc(8), len: 8 }]);
  assert.is(expectChain(q.pop()).head, h);
  q.undoPop();
  assert.is(q.len(), 1);
  assert.is(expectChain(q.pop()).head, h);
});

test('indices wrap at 2^16 on both rings', () => {
  const { q, mq, arena } = rig(4);
  const buf = arena.alloc(8);
  for (let i = 0; i < VIRTQ_IDX_MODULUS + 3; i++) {
    const [h] = mq.addChain([{ addr: buf, len: 8 }]);
    const c = expectChain(q.pop());
    assert.is(c.head, h);
    q.addUsed(c.head, i & 7);
  }
  assert.is(q.nextAvail, 3);
  assert.is(mq.usedIdx(), 3);
  assert.is(mq.usedEntry(2).len, (VIRTQ_IDX_MODULUS + 2) & 7, 'the last element landed in slot 2 after the wrap');
});

test('needsNotification without EVENT_IDX follows VIRTQ_AVAIL_F_NO_INTERRUPT', () => {
  const { q, mq, arena } = rig();
  assert.is(q.needsNotification(), false, 'nothing used');
  mq.addChain([{ addr: arena.alloc(8), len: 8 }]);
  q.addUsed(expectChain(q.pop()).head, 0);
  assert.is(q.needsNotification(), true);
  mq.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  mq.addChain([{ addr: arena.alloc(8), len: 8 }]);
  q.addUsed(expectChain(q.pop()).head, 0);
  assert.is(q.needsNotification(), false);
});

test('needsNotification with EVENT_IDX: notify iff used_event is in [old, new)', () => {
  const { q, mq, arena } = rig(8, true);
  const buf = arena.alloc(8);
  const useOne = () => {
    mq.addChain([{ addr: buf, len: 8 }]);
    q.addUsed(expectChain(q.pop()).head, 0);
  };
  mq.setUsedEvent(0);
  useOne(); // used 0 -> 1
  assert.is(q.needsNotification(), true, 'used_event 0 crossed');
  mq.setUsedEvent(5);
  useOne(); // 1 -> 2
  assert.is(q.needsNotification(), false, 'used_event 5 not reached');
  useOne();
  useOne();
  useOne();
  useOne(); // 2 -> 6
  assert.is(q.needsNotification(), true, 'used_event 5 crossed in a batch');
  mq.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  mq.setUsedEvent(6);
  useOne(); // 6 -> 7
  assert.is(q.needsNotification(), true, 'flags are ignored with EVENT_IDX');
});

test('vring_need_event handles 16-bit wrap-around', () => {
  assert.is(vringNeedEvent(0xffff, 0x0001, 0xfffe), true);
  assert.is(vringNeedEvent(0x0000, 0x0001, 0xfffe), true);
  assert.is(vringNeedEvent(0x0001, 0x0001, 0xfffe), false);
  assert.is(vringNeedEvent(0xfffd, 0x0001, 0xfffe), false);
});

test('enableNotification publishes avail_event and reports pending work', () => {
  const { q, mq, arena } = rig(8, true);
  assert.is(q.popOrEnableNotification(), null);
  assert.is(mq.availEvent(), 0);
  mq.addChain([{ addr: arena.alloc(8), len: 8 }]);
  expectChain(q.popOrEnableNotification());
  assert.is(q.popOrEnableNotification(), null);
  assert.is(mq.availEvent(), 1, 'asks to be told about the next chain');
  mq.addChain([{ addr: arena.alloc(8), len: 8 }]);
  assert.is(q.enableNotification(), true, 'a chain is already there');
});

test('without EVENT_IDX notifications toggle VIRTQ_USED_F_NO_NOTIFY', () => {
  const { q, mq } = rig();
  q.disableNotification();
  assert.is(mq.usedFlags() & VIRTQ_USED_F_NO_NOTIFY, VIRTQ_USED_F_NO_NOTIFY);
  assert.is(q.enableNotification(), false);
  assert.is(mq.usedFlags() & VIRTQ_USED_F_NO_NOTIFY, 0);
});

test('Queue.create refuses bad sizes and rings outside RAM', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: RAM }]);
  for (const size of [0, 3, 6, 65536]) {
    expectError(Queue.create(mem, { size, descTable: 0, availRing: 4096, usedRing: 8192 }, { eventIdx: false }), 'VIRTQ_INVALID_CONFIG');
  }
  expectError(Queue.create(mem, { size: 8, descTable: RAM - 64, availRing: 4096, usedRing: 8192 }, { eventIdx: false }), 'VIRTQ_RING_OUT_OF_RAM');
});

test('random descriptor tables and rings never make pop() throw', () => {
  const rnd = xorshift32(0x1234567);
  for (let round = 0; round < 200; round++) {
    const { q, mq, mem } = rig(8, round % 2 === 0);
    const ringBytes = mq.end;
    const s = mem.slice(0, ringBytes) as Uint8Array;
    for (let i = 0; i < ringBytes; i++) s[i] = rnd() & 0xff;
    for (let i = 0; i < 12; i++) {
      const r = q.pop();
      if (r === null) break;
      if (!(r instanceof VirtqueueError)) q.addUsed(r.head, r.totalLen);
      else if (r.head !== undefined) q.addUsed(r.head, 0);
      q.needsNotification();
    }
  }
});

test.run();
