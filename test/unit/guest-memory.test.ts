/** GuestMemory bounds checks: a guest address outside RAM is an error value, never a fault. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arrayGuestMemory, GuestMemory } from '../../src/memory/guest-memory.js';
import { ramRanges, GiB, MMIO32_MEM_START, MiB } from '../../src/arch/x86_64/layout.js';
import { GuestMemoryError, GuestMemoryLayoutError } from '../../src/errors.js';

const mem = () => arrayGuestMemory([{ gpa: 0, size: 64 * 1024 }, { gpa: 0x100000, size: 64 * 1024 }]);

test('in-range scalar round trips, little-endian', () => {
  const m = mem();
  assert.is(m.writeU32(0x10, 0xdeadbeef), undefined);
  assert.is(m.readU32(0x10), 0xdeadbeef);
  assert.is(m.readU8(0x10), 0xef);
  assert.is(m.writeU64(0x100008, 0x0102030405060708n), undefined);
  assert.is(m.readU64(0x100008), 0x0102030405060708n);
  assert.is(m.readU16(0x100008), 0x0708);
});

test('reads past the end of a region are errors carrying the address', () => {
  const m = mem();
  const e = m.readU32(64 * 1024 - 2);
  assert.instance(e, GuestMemoryError);
  assert.is((e as GuestMemoryError).code, 'GUEST_MEMORY_OUT_OF_RANGE');
  assert.is((e as GuestMemoryError).gpa, 64 * 1024 - 2);
});

test('addresses in the hole between regions are errors', () => {
  const m = mem();
  assert.instance(m.readU8(0x80000), GuestMemoryError);
  assert.instance(m.writeU8(0x80000, 1), GuestMemoryError);
  assert.instance(m.slice(0xffff, 2), GuestMemoryError);
});

test('negative, fractional, NaN and huge addresses are errors', () => {
  const m = mem();
  for (const a of [-1, 0.5, Number.NaN, 2 ** 60, Number.MAX_SAFE_INTEGER]) {
    assert.instance(m.readU8(a), GuestMemoryError, String(a));
  }
  assert.instance(m.slice(0, -1), GuestMemoryError);
});

test('a failed write writes nothing', () => {
  const m = mem();
  const src = new Uint8Array(16).fill(0xaa);
  assert.instance(m.write(64 * 1024 - 8, src), GuestMemoryError);
  assert.is(m.readU8(64 * 1024 - 8), 0);
});

test('slice is a zero-copy view', () => {
  const m = mem();
  const s = m.slice(0x100000, 4) as Uint8Array;
  s[0] = 7;
  assert.is(m.readU8(0x100000), 7);
});

test('overlapping regions are refused', () => {
  assert.throws(() => arrayGuestMemory([{ gpa: 0, size: 8192 }, { gpa: 4096, size: 8192 }]), (e: unknown) => e instanceof GuestMemoryLayoutError);
});

test('descriptor round trip shares the same bytes', () => {
  const m = mem();
  const again = GuestMemory.fromDescriptor(m.describe());
  m.writeU8(5, 9);
  assert.is(again.readU8(5), 9);
});

test('x86 RAM ranges: below the 3 GiB gap, then from 4 GiB', () => {
  assert.equal(ramRanges(256 * MiB), [{ gpa: 0, size: 256 * MiB }]);
  assert.equal(ramRanges(4.5 * GiB), [{ gpa: 0, size: MMIO32_MEM_START }, { gpa: 4 * GiB, size: 1.5 * GiB }]);
  assert.equal(ramRanges(300 * GiB).map((r) => r.gpa), [0, 4 * GiB, 512 * GiB]);
});

test.run();
