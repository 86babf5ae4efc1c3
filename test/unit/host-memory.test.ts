/**
 * Guest RAM over host mappings (src/memory/host-memory.ts), without KVM: region host addresses
 * are 2 MiB-aligned and advised for transparent huge pages, views rebuilt from the descriptor in another thread see the same bytes, and the memfd
 * backing really is the memfd's pages.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { HUGE_PAGE_SIZE, HostGuestMemory } from '../../src/memory/host-memory.js';
import { ramRanges } from '../../src/arch/x86_64/layout.js';
import { GuestMemoryAllocationError, GuestMemoryLayoutError } from '../../src/errors.js';
import { hugePagePool } from '../../src/memory/huge-pages.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';

const MiB = 1024 * 1024;

/** The smaps block of the mapping that starts at `addr`. */
function smapsAt(addr: bigint): string {
  const hex = addr.toString(16);
  const blocks = readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  return blocks.find((b) => b.startsWith(`${hex}-`)) ?? '';
}

test('2 MiB-aligned regions of exactly the RAM size, advised for huge pages, at aligned memfd offsets', () => {
  const mem = HostGuestMemory.create([{ gpa: 0, size: 8 * MiB }, { gpa: 4096 * MiB, size: 3 * MiB }]);
  assert.ok(mem.memfd >= 0);
  const r = mem.hostRegions[0]!;
  assert.is(r.hostAddr % BigInt(HUGE_PAGE_SIZE), 0n);
  assert.is(r.bytes.length, 8 * MiB);
  const block = smapsAt(r.hostAddr);
  assert.ok(block, 'the guest RAM is a mapping of its own');
  const [lo, hi] = block.split(' ')[0]!.split('-').map((x) => BigInt(`0x${x}`));
  assert.is(Number(hi! - lo!), 8 * MiB, 'exactly the RAM, no neighbour merged in');
  assert.match(block, /VmFlags:.*\bhg\b/, 'MADV_HUGEPAGE took (VM_HUGEPAGE)');
  const setting = readFileSync('/sys/kernel/mm/transparent_hugepage/shmem_enabled', 'utf8');
  if (/\[(always|advise|within_size|force)\]/.test(setting)) assert.match(block, /THPeligible:\s+1/);
  assert.equal(mem.hostRegions.map((x) => x.fdOffset % HUGE_PAGE_SIZE), [0, 0]);
  assert.is(mem.hostRegions[1]!.hostAddr % BigInt(HUGE_PAGE_SIZE), 0n);
});

test('a worker rebuilding memory from the descriptor sees the same bytes, offset included', async () => {
  const mem = HostGuestMemory.create([{ gpa: 0, size: 4 * MiB }, { gpa: 16 * MiB, size: 2 * MiB }]);
  assert.is(mem.writeU32(16 * MiB + 0x40, 0x600dcafe), undefined);
  const desc = mem.describe();
  assert.equal(desc.regions.map((r) => r.offset), mem.hostRegions.map((r) => r.bytes.byteOffset));
  assert.is(GuestMemory.fromDescriptor(desc).readU32(16 * MiB + 0x40), 0x600dcafe);
  const seen = await new Promise<number>((resolve, reject) => {
    const w = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      const r = workerData.regions[1];
      const dv = new DataView(r.buffer, r.offset, r.size);
      dv.setUint32(0x80, 0x12345678, true);
      parentPort.postMessage(dv.getUint32(0x40, true));`, { eval: true, workerData: desc });
    w.once('message', resolve);
    w.once('error', reject);
  });
  assert.is(seen, 0x600dcafe);
  assert.is(mem.readU32(16 * MiB + 0x80), 0x12345678, 'the worker wrote guest RAM');
});

test('the views are the memfd pages', () => {
  const mem = HostGuestMemory.create([{ gpa: 0, size: 2 * MiB }]);
  assert.ok(mem.memfd >= 0);
  assert.is(mem.write(0x1234, Buffer.from('kindling')), undefined);
  const buf = Buffer.alloc(8);
  readSync(mem.memfd, buf, 0, 8, 0x1234);
  assert.is(buf.toString(), 'kindling');
  assert.match(smapsAt(mem.hostRegions[0]!.hostAddr), /memfd:kindling-guest-ram/);
});

test('a size no address space holds (mem_size_mib = usize::MAX) fails at once with Firecracker\'s ENOMEM text (issue 12 defect 6)', () => {
  // Before the check, splitting this size into 3 GiB chunks never ended: the VMM grew its heap
  // until V8 aborted, and the API client saw the connection close.
  assert.throws(() => HostGuestMemory.create(ramRanges(18446744073709551615 * MiB)),
    (e: Error) => e instanceof GuestMemoryAllocationError && e.message === 'Invalid Memory Configuration: Cannot create mmap region: Out of memory (os error 12)');
});

test('huge pages "2M" with a pool too small: a clear error naming the pool at creation, not a SIGBUS later, and nothing stays reserved', () => {
  // The host's pool is left alone (the KVM tier reserves pages in its sandbox and boots from
  // them): asking one page more than it can promise fails whatever its size.
  const before = hugePagePool();
  if (before.free === null || before.reserved === null) {
    console.log('    (no 2 MiB hugetlb pool on this host: memfd_create(MFD_HUGETLB) is what fails)');
    assert.throws(() => HostGuestMemory.create([{ gpa: 0, size: 2 * MiB }], undefined, { hugePages: '2M' }), (e: unknown) => e instanceof GuestMemoryAllocationError && e.code === 'GUEST_MEMORY_HUGE_PAGES');
    return;
  }
  const avail = before.free - before.reserved;
  const need = avail + 1;
  let err: unknown;
  try {
    HostGuestMemory.create([{ gpa: 0, size: need * 2 * MiB }], undefined, { hugePages: '2M' });
  } catch (e) {
    err = e;
  }
  assert.instance(err, GuestMemoryAllocationError);
  const e = err as GuestMemoryAllocationError;
  assert.is(e.code, 'GUEST_MEMORY_HUGE_PAGES');
  assert.is(e.message, `Invalid Memory Configuration: Cannot create mmap region: Out of memory (os error 12): guest memory needs ${need} free 2 MiB huge pages ` +
    `and the host's pool has ${avail} (${before.total} in total; reserve more through /proc/sys/vm/nr_hugepages)`);
  assert.is(hugePagePool().reserved, before.reserved, 'no reservation is left behind');
  // The same for a Uffd restore's anonymous memory.
  assert.throws(() => HostGuestMemory.anonymous([{ gpa: 0, size: need * 2 * MiB }], { hugePages: '2M' }), (x: unknown) => x instanceof GuestMemoryAllocationError && x.code === 'GUEST_MEMORY_HUGE_PAGES');
});

test('huge pages "2M" take whole 2 MiB pages only', () => {
  assert.throws(() => HostGuestMemory.create([{ gpa: 0, size: 3 * MiB }], undefined, { hugePages: '2M' }), (e: unknown) => e instanceof GuestMemoryLayoutError);
});

test.run();
