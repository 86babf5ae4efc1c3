/**
 * The balloon's pure parts (src/devices/virtio/balloon/pages.ts): PFN buffers as a guest
 * writes them, their compaction into ranges, and the statistics buffer — hostile shapes
 * included (odd lengths, overlong buffers, duplicates, unknown tags, a torn entry).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BALLOON_PFN_SIZE, BALLOON_STAT_NAMES, BALLOON_STAT_SIZE, MAX_PAGES_IN_DESC, compactPfns, parseBalloonStats, rangeBytes, readPfns,
} from '../../src/devices/virtio/balloon/pages.js';

function pfnBuf(pfns: readonly number[]): Uint8Array {
  const b = new Uint8Array(pfns.length * BALLOON_PFN_SIZE);
  const v = new DataView(b.buffer);
  pfns.forEach((p, i) => v.setUint32(i * BALLOON_PFN_SIZE, p, true));
  return b;
}

function statBuf(entries: readonly [number, bigint][], trailing = 0): Uint8Array {
  const b = new Uint8Array(entries.length * BALLOON_STAT_SIZE + trailing);
  const v = new DataView(b.buffer);
  entries.forEach(([tag, val], i) => {
    v.setUint16(i * BALLOON_STAT_SIZE, tag, true);
    v.setBigUint64(i * BALLOON_STAT_SIZE + 2, val, true);
  });
  return b;
}

test('readPfns: little-endian u32 frames; a length that is not whole frames is refused', () => {
  assert.equal([...(readPfns(pfnBuf([1, 0xfffff, 2 ** 32 - 1])) as Uint32Array)], [1, 0xfffff, 2 ** 32 - 1]);
  assert.is(readPfns(new Uint8Array(6)), 'length-not-multiple-of-pfn');
  assert.equal([...(readPfns(new Uint8Array(0)) as Uint32Array)], []);
});

test('readPfns: at most MAX_PAGES_IN_DESC frames from one buffer', () => {
  const many = Array.from({ length: MAX_PAGES_IN_DESC + 10 }, (_, i) => i);
  const r = readPfns(pfnBuf(many)) as Uint32Array;
  assert.is(r.length, MAX_PAGES_IN_DESC);
  assert.is(r[MAX_PAGES_IN_DESC - 1], MAX_PAGES_IN_DESC - 1);
});

test('compactPfns: unsorted frames become sorted ranges of consecutive frames', () => {
  assert.equal(compactPfns(Uint32Array.from([7, 3, 4, 5, 10, 9, 1])), [
    { start: 1, count: 1 }, { start: 3, count: 3 }, { start: 7, count: 1 }, { start: 9, count: 2 },
  ]);
  assert.equal(compactPfns(new Uint32Array(0)), []);
});

test('compactPfns: duplicates are taken once; numeric order, not text order', () => {
  assert.equal(compactPfns(Uint32Array.from([5, 5, 6, 6, 6, 7])), [{ start: 5, count: 3 }]);
  assert.equal(compactPfns(Uint32Array.from([100, 20, 3])), [{ start: 3, count: 1 }, { start: 20, count: 1 }, { start: 100, count: 1 }]);
});

test('rangeBytes: 4 KiB frames, addresses beyond 4 GiB exact', () => {
  assert.equal(rangeBytes({ start: 0x100, count: 2 }), { gpa: 0x100000, len: 0x2000 });
  assert.equal(rangeBytes({ start: 2 ** 32 - 1, count: 1 }), { gpa: (2 ** 32 - 1) * 4096, len: 4096 });
});

test('parseBalloonStats: named values by tag, u64 exact, later entries win', () => {
  const big = 2n ** 64n - 1n;
  const p = parseBalloonStats(statBuf([[0, 1n], [4, 4096n], [5, big], [4, 8192n], [15, 7n]]));
  assert.equal(p.values, { swap_in: 1n, free_memory: 8192n, total_memory: big, direct_reclaim: 7n });
  assert.is(p.unknownTags, 0);
  assert.is(p.trailingBytes, 0);
  assert.is(BALLOON_STAT_NAMES.length, 16);
});

test('parseBalloonStats: unknown tags skipped and counted, a torn last entry ignored', () => {
  const p = parseBalloonStats(statBuf([[16, 1n], [0xffff, 2n], [6, 3n]], 7));
  assert.equal(p.values, { available_memory: 3n });
  assert.is(p.unknownTags, 2);
  assert.is(p.trailingBytes, 7);
  assert.equal(parseBalloonStats(new Uint8Array(9)), { values: {}, unknownTags: 0, trailingBytes: 9 });
});

test.run();
