/**
 * Initrd placement (src/boot/initrd.ts): align_down(end of low RAM - size, 4096), above the
 * kernel, below MMIO32_MEM_START (firecracker src/vmm/src/arch/x86_64/mod.rs).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arrayGuestMemory, type GuestMemory } from '../../src/memory/guest-memory.js';
import { GiB, MiB, ramRanges } from '../../src/arch/x86_64/layout.js';
import { initrdLoadAddr, loadInitrd, lowMemoryEnd } from '../../src/boot/initrd.js';
import { InitrdError } from '../../src/errors.js';

function throwsCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, InitrdError);
    assert.is((e as InitrdError).code, code);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

const KERNEL_END = 0x1c18000;

test('the initrd goes at the top of RAM, page-aligned down, bytes copied', () => {
  const m = arrayGuestMemory([{ gpa: 0, size: 64 * MiB }]);
  const data = Uint8Array.from({ length: 4097 }, (_, i) => i & 0xff);
  const p = loadInitrd(m, data, KERNEL_END);
  assert.equal(p, { addr: 64 * MiB - 8192, size: 4097 });
  assert.equal(m.slice(p.addr, p.size), data);
});

test('a page-multiple initrd ends exactly at the top of RAM', () => {
  const m = arrayGuestMemory([{ gpa: 0, size: 64 * MiB }]);
  assert.is(initrdLoadAddr(m, 8192, KERNEL_END), 64 * MiB - 8192);
});

test('larger than low RAM: INITRD_TOO_LARGE', () => {
  const m = arrayGuestMemory([{ gpa: 0, size: 64 * MiB }]);
  throwsCode(() => initrdLoadAddr(m, 64 * MiB + 1, KERNEL_END), 'INITRD_TOO_LARGE');
});

test('overlapping the kernel: INITRD_TOO_LARGE, nothing written', () => {
  const m = arrayGuestMemory([{ gpa: 0, size: 64 * MiB }]);
  const size = 64 * MiB - KERNEL_END + 1;
  throwsCode(() => loadInitrd(m, new Uint8Array(size).fill(1), KERNEL_END), 'INITRD_TOO_LARGE');
  assert.is(m.readU8(64 * MiB - 1), 0);
  // One page less fits exactly above the kernel end.
  assert.is(initrdLoadAddr(m, 64 * MiB - KERNEL_END, KERNEL_END), KERNEL_END);
});

test('low RAM ends at MMIO32_MEM_START for guests above 3 GiB', () => {
  // lowMemoryEnd only reads the region list; no need to allocate 4 GiB.
  const big = { regions: ramRanges(4 * GiB) } as unknown as GuestMemory;
  assert.is(lowMemoryEnd(big), 3 * GiB);
  assert.is(initrdLoadAddr(big, 10 * MiB + 5, KERNEL_END), 3 * GiB - 10 * MiB - 4096);
});

test('no RAM at address 0 leaves no room: INITRD_TOO_LARGE', () => {
  const m = arrayGuestMemory([{ gpa: 1 * MiB, size: 64 * MiB }]);
  assert.is(lowMemoryEnd(m), 0);
  throwsCode(() => initrdLoadAddr(m, 1, KERNEL_END), 'INITRD_TOO_LARGE');
});

test.run();
