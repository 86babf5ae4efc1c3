/**
 * Snapshot memory files (src/snapshot/memory-file.ts, memory-file-task.ts) from real
 * memfd-backed guest RAM into real files, without KVM: a Full file is exactly the RAM
 * (regions concatenated, the MMIO gap left out); a file of the right size is not truncated
 * (a Diff merges into it); one of another size is emptied first; a Diff file is sparse with
 * data only at the dirty pages, runs of them coalesced; errors name the path and the OS error;
 * and a 256 MiB write leaves the main thread's event loop running.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapshotMemoryError } from '../../src/errors.js';
import { HostGuestMemory } from '../../src/memory/host-memory.js';
import { collectDirtyPages } from '../../src/snapshot/dirty.js';
import { closeMemoryWriter, snapshotMemory, writeMemoryFile } from '../../src/snapshot/memory-file.js';
import { PAGE, dataExtents, fillPages, ramImage } from '../helpers/sparse-file.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'kindling-memfile-'));
/** Two regions around a gap, as x86 RAM sits around the 32-bit MMIO hole. */
const RANGES = [{ gpa: 0, size: 2 * MiB }, { gpa: 8 * MiB, size: MiB }];
const TOTAL = 3 * MiB;

function ram(trackDirty = true): HostGuestMemory {
  return HostGuestMemory.create(RANGES, 'memfile-test', { trackDirty });
}

test('Full: the file is all RAM, region after region in gpa order, and says how much it wrote', async () => {
  const mem = ram();
  fillPages(mem, 1);
  const path = join(dir, 'full.mem');
  const r = await writeMemoryFile(path, mem.hostRegions);
  assert.equal(r, { bytesWritten: TOTAL });
  const file = readFileSync(path);
  assert.is(file.length, TOTAL);
  assert.ok(file.equals(ramImage(mem)), 'byte for byte');
  assert.is(file[2 * MiB], mem.regions[1]!.bytes[0], 'region 1 starts right after region 0: no gap for the MMIO hole');
  mem.close();
});

test('Full from a booted VM: only the memfd\'s data is written; holes stay holes, or are punched in a same-size file', async () => {
  const big = HostGuestMemory.create([{ gpa: 0, size: 64 * MiB }], 'memfile-sparse', { trackDirty: false });
  big.regions[0]!.bytes.set([1, 2, 3], 5 * MiB);
  big.regions[0]!.bytes.set([9], 40 * MiB + 7);
  const path = join(dir, 'sparse-full.mem');
  const r = await snapshotMemory(path, 'Full', null, big);
  assert.ok(r.bytesWritten > 0 && r.bytesWritten <= 8 * MiB, `wrote only the touched pages (${r.bytesWritten} bytes of 64 MiB; huge pages may round them up)`);
  const file = readFileSync(path);
  assert.is(file.length, 64 * MiB);
  assert.ok(file.equals(ramImage(big)), 'reads exactly as RAM');
  assert.ok(statSync(path).blocks * 512 <= 8 * MiB, 'the untouched RAM is holes in the file');
  // A same-size file holding an older snapshot: the untouched ranges must read zero afterwards.
  writeFileSync(path, Buffer.alloc(64 * MiB, 0xee));
  await snapshotMemory(path, 'Full', null, big);
  assert.ok(readFileSync(path).equals(ramImage(big)), 'old bytes in RAM\'s holes are gone (punched)');
  big.close();
});

test('a file of the right size is not truncated: a Diff merges into it; one of another size is emptied first', async () => {
  const mem = ram();
  fillPages(mem, 2);
  const path = join(dir, 'same-size.mem');
  writeFileSync(path, Buffer.alloc(TOTAL, 0xee));
  const inode = statSync(path).ino;
  const dirty = collectDirtyPages(null, mem).map((b) => b.fill(0));
  dirty[1]![0] = 0b1; // page 0 of region 1 only
  const r = await writeMemoryFile(path, mem.hostRegions, dirty);
  assert.equal(r, { bytesWritten: PAGE });
  const file = readFileSync(path);
  assert.is(statSync(path).ino, inode, 'the same file, rewritten in place');
  assert.ok(file.subarray(2 * MiB, 2 * MiB + PAGE).equals(Buffer.from(mem.regions[1]!.bytes.subarray(0, PAGE))), 'the dirty page written');
  assert.ok(file.subarray(0, 2 * MiB).every((b) => b === 0xee), 'the rest kept: no truncate');
  assert.ok(file.subarray(2 * MiB + PAGE).every((b) => b === 0xee));

  const other = join(dir, 'other-size.mem');
  writeFileSync(other, Buffer.alloc(TOTAL + PAGE, 0xee));
  await writeMemoryFile(other, mem.hostRegions, dirty);
  assert.is(statSync(other).size, TOTAL);
  assert.equal(dataExtents(other), [[2 * MiB, 2 * MiB + PAGE]], 'stale data of another size does not survive');
  mem.close();
});

test('Diff: a sparse file whose data extents are exactly the dirty pages, adjacent ones as one run', async () => {
  const mem = ram();
  fillPages(mem, 3);
  const path = join(dir, 'diff.mem');
  // Full first: it resets the logs, so the Diff holds only what changes after it.
  await snapshotMemory(join(dir, 'diff-base.mem'), 'Full', null, mem);
  for (const p of [5, 6, 7, 100]) mem.writeU8(p * PAGE + 17, 0xab);
  mem.regions[1]!.bytes[3 * PAGE] = 0xcd; // a device write: marked as a queue would
  mem.markDirty(8 * MiB + 3 * PAGE, 1);
  const r = await snapshotMemory(path, 'Diff', null, mem);
  assert.equal(r, { bytesWritten: 5 * PAGE });
  assert.is(statSync(path).size, TOTAL);
  assert.equal(dataExtents(path), [[5 * PAGE, 8 * PAGE], [100 * PAGE, 101 * PAGE], [2 * MiB + 3 * PAGE, 2 * MiB + 4 * PAGE]]);
  assert.ok(statSync(path).blocks * 512 <= 5 * PAGE + 64 * 1024, `allocated ${statSync(path).blocks * 512} bytes`);
  const file = readFileSync(path);
  assert.is(file[5 * PAGE + 17], 0xab);
  assert.is(file[2 * MiB + 3 * PAGE], 0xcd);
  assert.is(file[4 * PAGE], 0, 'a clean page reads as a hole');
  assert.equal(collectDirtyPages(null, mem).map((b) => b.some((x) => x !== 0)), [false, false], 'the Diff took the bits');
  mem.close();
});

test('a Diff with nothing dirty writes nothing; mismatched bitmaps and bad paths are SnapshotMemoryError with the path and OS error', async () => {
  const mem = ram();
  const empty = join(dir, 'empty-diff.mem');
  assert.equal(await snapshotMemory(empty, 'Diff', null, mem), { bytesWritten: 0 });
  assert.equal(dataExtents(empty), []);
  const missing = join(dir, 'no-such-dir', 'x.mem');
  const e1 = await writeMemoryFile(missing, mem.hostRegions).catch((e: unknown) => e);
  assert.instance(e1, SnapshotMemoryError);
  assert.is((e1 as SnapshotMemoryError).code, 'SNAPSHOT_MEMORY_FILE');
  assert.is((e1 as Error).message, `Cannot open the memory file ${missing}: No such file or directory (os error 2)`);
  const e2 = await writeMemoryFile(dir, mem.hostRegions).catch((e: unknown) => e);
  assert.match((e2 as Error).message, `Cannot open the memory file ${dir}: Is a directory (os error 21)`);
  const e3 = await writeMemoryFile(empty, mem.hostRegions, [new Uint8Array(8)]).catch((e: unknown) => e);
  assert.match((e3 as Error).message, '1 dirty bitmaps for 2 regions');
  mem.close();
});

test('writing a 256 MiB memory file leaves the event loop running (the I/O is on the pool thread)', async () => {
  const mem = HostGuestMemory.create([{ gpa: 0, size: 256 * MiB }], 'memfile-big');
  for (let off = 0; off < mem.size; off += 64 * PAGE) mem.regions[0]!.bytes[off] = 1 + (off / PAGE) % 200;
  const path = join(dir, 'big.mem');
  let ticks = 0;
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    ticks++;
  }, 5);
  const started = performance.now();
  const r = await writeMemoryFile(path, mem.hostRegions);
  const ms = performance.now() - started;
  clearInterval(timer);
  console.log(`  256 MiB written in ${ms.toFixed(0)} ms; ${ticks} timer ticks meanwhile, longest gap ${longest.toFixed(1)} ms`);
  assert.is(r.bytesWritten, 256 * MiB);
  assert.ok(ticks > 0, 'the event loop ran during the write');
  const file = readFileSync(path);
  assert.ok(file.equals(Buffer.from(mem.regions[0]!.bytes)));
  rmSync(path);
  mem.close();
});

test('the writer pool closes and comes back on the next write', async () => {
  await closeMemoryWriter();
  const mem = ram(false);
  fillPages(mem, 4);
  const path = join(dir, 'after-close.mem');
  await writeMemoryFile(path, mem.hostRegions);
  assert.ok(readFileSync(path).equals(ramImage(mem)));
  await closeMemoryWriter();
  mem.close();
  rmSync(dir, { recursive: true, force: true });
});

test.run();
