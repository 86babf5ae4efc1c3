/**
 * The boot layer's entry points (src/boot/index.ts): loadKernel places kernel, initrd and
 * command line; writeBootInfo writes the zero page or the PVH start info per entry kind.
 * Uses the real guest fixtures (fails, never skips, without them) plus one crafted ELF.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arrayGuestMemory } from '../../src/memory/guest-memory.js';
import { CMDLINE_START, MiB, ZERO_PAGE_START } from '../../src/arch/x86_64/layout.js';
import { Cmdline, loadKernel, readBootParams, readPvhInfo, writeBootInfo, writeCmdline } from '../../src/boot/index.js';
import { BootError, CmdlineError, InitrdError } from '../../src/errors.js';
import { fixtureBytes } from '../helpers/guest.js';


const RAM = 256 * MiB;
const mem = () => arrayGuestMemory([{ gpa: 0, size: RAM }]);
const CMDLINE = 'console=ttyS0 reboot=k panic=1 -- init=/bin/sh';
const cstr = (m: ReturnType<typeof mem>, n: number) => new TextDecoder().decode(m.slice(CMDLINE_START, n) as Uint8Array);

/** A one-segment ELF64 x86_64 image loaded at 16 MiB, entry 16 MiB. */
function tinyElf(): Uint8Array {
  const b = new Uint8Array(64 + 56 + 16);
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  v.setUint16(18, 62, true);
  v.setBigUint64(24, 0x1000000n, true);
  v.setBigUint64(32, 64n, true);
  v.setUint16(54, 56, true);
  v.setUint16(56, 1, true);
  v.setUint32(64, 1, true); // PT_LOAD
  v.setBigUint64(64 + 8, 120n, true);
  v.setBigUint64(64 + 24, 0x1000000n, true);
  v.setBigUint64(64 + 32, 16n, true);
  v.setBigUint64(64 + 40, 16n, true);
  b.fill(0xcc, 120);
  return b;
}

test('vmlinux-6.1-mini + initrd: linux64 entry, initrd at the top of RAM, zero page filled', () => {
  const m = mem();
  const rd = fixtureBytes('guest-initrd.cpio.gz');
  const k = loadKernel(m, fixtureBytes('vmlinux-6.1-mini'), { initrd: rd, cmdline: CMDLINE });
  assert.equal(k.entry, { kind: 'linux64', addr: 0x1000000 });
  assert.equal(k.initrd, { addr: (RAM - rd.length) - ((RAM - rd.length) % 4096), size: rd.length });
  assert.equal(m.slice(k.initrd!.addr, 64), rd.subarray(0, 64));
  assert.equal(k.cmdline, { addr: CMDLINE_START, size: CMDLINE.length + 1 });
  assert.is(cstr(m, CMDLINE.length), CMDLINE);

  const info = writeBootInfo(m, k);
  assert.is(info.kind, 'linux64');
  const bp = readBootParams(m);
  assert.is(bp.ramdiskImage, k.initrd!.addr);
  assert.is(bp.ramdiskSize, rd.length);
  assert.is(bp.cmdLinePtr, CMDLINE_START);
  assert.is(bp.cmdlineSize, CMDLINE.length + 1);
  assert.is(bp.kernelAlignment, 0x1000000);
  assert.is(bp.e820.length, 4);
});

test('vmlinux-6.1-fc: pvh entry and hvm_start_info instead of a zero page', () => {
  const m = mem();
  const rd = fixtureBytes('guest-initrd.cpio.gz');
  const k = loadKernel(m, fixtureBytes('vmlinux-6.1-fc'), { initrd: rd, cmdline: new Cmdline().insertStr('console=ttyS0') });
  assert.equal(k.entry, { kind: 'pvh', addr: 0x1000510 });
  const info = writeBootInfo(m, k);
  assert.is(info.kind, 'pvh');
  const pvh = readPvhInfo(m);
  assert.is(pvh.startInfo.magic, 0x336ec578);
  assert.is(pvh.startInfo.cmdlinePaddr, BigInt(CMDLINE_START));
  assert.equal(pvh.modules, [{ paddr: BigInt(k.initrd!.addr), size: BigInt(rd.length), cmdlinePaddr: 0n }]);
  assert.is(pvh.memmap.length, 4);
});

test('bzImage-6.1-mini: entry code32_start + 0x200, zero page from the image header', () => {
  const m = mem();
  const img = fixtureBytes('bzImage-6.1-mini');
  const k = loadKernel(m, img, { cmdline: 'console=ttyS0' });
  assert.equal(k.entry, { kind: 'linux64', addr: 0x100200 });
  assert.is(k.initrd, undefined);
  writeBootInfo(m, k);
  // Image fields survive (setup_sects, version, xloadflags); loader fields are ours.
  assert.is(m.readU8(ZERO_PAGE_START + 0x1f1), img[0x1f1]);
  assert.is(m.readU16(ZERO_PAGE_START + 0x206), img[0x206]! | (img[0x207]! << 8));
  assert.is(m.readU16(ZERO_PAGE_START + 0x236), img[0x236]! | (img[0x237]! << 8));
  assert.is(m.readU8(ZERO_PAGE_START + 0x210), 0xff);
  assert.is(m.readU32(ZERO_PAGE_START + 0x228), CMDLINE_START);
});

test('vmlinuz (Debian bzImage) loads with the 64-bit entry', () => {
  const k = loadKernel(mem(), fixtureBytes('vmlinuz'), { cmdline: 'console=ttyS0' });
  assert.equal(k.entry, { kind: 'linux64', addr: 0x100200 });
});

test('a bad command line fails before the kernel is copied', () => {
  const m = mem();
  try {
    loadKernel(m, tinyElf(), { cmdline: 'x'.repeat(2048) });
    assert.unreachable('expected CMDLINE_TOO_LONG');
  } catch (e) {
    assert.instance(e, CmdlineError);
    assert.instance(e, BootError);
    assert.is((e as CmdlineError).code, 'CMDLINE_TOO_LONG');
  }
  assert.is(m.readU8(0x1000000), 0);
});

test('an initrd too large for the RAM above the kernel: INITRD_TOO_LARGE', () => {
  try {
    loadKernel(mem(), tinyElf(), { cmdline: 'quiet', initrd: new Uint8Array(RAM - 0x1000000) });
    assert.unreachable('expected INITRD_TOO_LARGE');
  } catch (e) {
    assert.instance(e, InitrdError);
    assert.is((e as InitrdError).code, 'INITRD_TOO_LARGE');
  }
});

test('the command line can be extended and re-written before writeBootInfo', () => {
  const m = mem();
  const cl = Cmdline.parse('console=ttyS0 -- init');
  const k = loadKernel(m, tinyElf(), { cmdline: cl });
  cl.insertStr('virtio_mmio.device=4K@0xc0001000:5');
  const placed = writeCmdline(m, cl);
  writeBootInfo(m, { ...k, cmdline: placed });
  assert.is(cstr(m, placed.size - 1), 'console=ttyS0 virtio_mmio.device=4K@0xc0001000:5 -- init');
  assert.is(readBootParams(m).cmdlineSize, placed.size);
});

test.run();
