/**
 * bzImage loader (src/boot/bzimage.ts): crafted setup headers break one rule each (boot.rst +
 * Firecracker's 2.12 / XLF_KERNEL_64 rules, firecracker src/vmm/src/arch/x86_64/mod.rs) and expect one code; the real bzImage
 * fixtures load at code32_start with the 64-bit entry 0x200 further. Fixture tests fail,
 * never skip, without the files.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arrayGuestMemory } from '../../src/memory/guest-memory.js';
import { HIMEM_START, MiB } from '../../src/arch/x86_64/layout.js';
import { isBzImage, loadBzImage, parseBzImage } from '../../src/boot/bzimage.js';
import { loadKernelImage } from '../../src/boot/index.js';
import { KernelLoaderError } from '../../src/errors.js';
import { fixtureBytes } from '../helpers/guest.js';


// Setup header offsets, written out from Documentation/arch/x86/boot.rst so the test does not
// trust the module under test for them.
const OFF = { setup_sects: 0x1f1, boot_flag: 0x1fe, header: 0x202, version: 0x206, loadflags: 0x211, code32_start: 0x214, kernel_alignment: 0x230, xloadflags: 0x236 };

interface BzOpts { magic?: number; version?: number; loadflags?: number; xloadflags?: number; setupSects?: number; code32Start?: number; kernel?: Uint8Array }

/** A bzImage: boot sector + setup sectors (header inside), then the protected-mode kernel. */
function buildBzImage(o: BzOpts = {}): Uint8Array {
  const sects = o.setupSects ?? 2;
  const kernel = o.kernel ?? Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
  const setupLen = ((sects || 4) + 1) * 512;
  const b = new Uint8Array(setupLen + kernel.length);
  const v = new DataView(b.buffer);
  b[OFF.setup_sects] = sects;
  v.setUint16(OFF.boot_flag, 0xaa55, true);
  v.setUint32(OFF.header, o.magic ?? 0x53726448, true);
  v.setUint16(OFF.version, o.version ?? 0x020f, true);
  b[OFF.loadflags] = o.loadflags ?? 0x01;
  v.setUint32(OFF.code32_start, o.code32Start ?? 0x100000, true);
  v.setUint32(OFF.kernel_alignment, 0x200000, true);
  v.setUint16(OFF.xloadflags, o.xloadflags ?? 0x01, true);
  b.set(kernel, setupLen);
  return b;
}

const mem = () => arrayGuestMemory([{ gpa: 0, size: 8 * MiB }]);

function throwsCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, KernelLoaderError);
    assert.is((e as KernelLoaderError).code, code);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('a valid bzImage loads its protected-mode part at code32_start; entry = code32_start + 0x200', () => {
  const img = buildBzImage();
  const m = mem();
  const r = loadBzImage(m, img);
  assert.equal(r.entry, { kind: 'linux64', addr: 0x100200 });
  assert.is(r.format, 'bzimage');
  assert.is(r.kernelEnd, 0x100000 + 1000);
  assert.equal(m.slice(0x100000, 1000), img.subarray(3 * 512));
  // The setup header comes back raw: boot_params offsets 0x1f1..0x26c.
  assert.equal(r.setupHeader, img.slice(0x1f1, 0x26c));
});

test('loadKernelImage picks bzImage for a non-ELF image with HdrS', () => {
  const r = loadKernelImage(mem(), buildBzImage({ code32Start: 0x200000 }));
  assert.equal(r.entry, { kind: 'linux64', addr: 0x200200 });
});

test('setup_sects 0 means 4 sectors', () => {
  const h = parseBzImage(buildBzImage({ setupSects: 0 }));
  assert.is(h.setupSects, 4);
  assert.is(h.kernelOffset, 5 * 512);
  assert.is(h.kernelSize, 1000);
});

test('no HdrS magic: KERNEL_LOAD_BAD_MAGIC', () => {
  const img = buildBzImage({ magic: 0x53726447 });
  assert.not.ok(isBzImage(img));
  throwsCode(() => loadKernelImage(mem(), img), 'KERNEL_LOAD_BAD_MAGIC');
});

test('old protocol 2.10: KERNEL_LOAD_BZIMAGE_PROTOCOL; 2.12 is accepted', () => {
  throwsCode(() => parseBzImage(buildBzImage({ version: 0x020a })), 'KERNEL_LOAD_BZIMAGE_PROTOCOL');
  throwsCode(() => parseBzImage(buildBzImage({ version: 0x020b })), 'KERNEL_LOAD_BZIMAGE_PROTOCOL');
  assert.is(parseBzImage(buildBzImage({ version: 0x020c })).version, 0x020c);
});

test('loadflags without LOADED_HIGH: KERNEL_LOAD_BZIMAGE_NOT_LOADED_HIGH', () => {
  throwsCode(() => parseBzImage(buildBzImage({ loadflags: 0x80 })), 'KERNEL_LOAD_BZIMAGE_NOT_LOADED_HIGH');
});

test('xloadflags without XLF_KERNEL_64: KERNEL_LOAD_BZIMAGE_NOT_64BIT', () => {
  throwsCode(() => parseBzImage(buildBzImage({ xloadflags: 0x02 })), 'KERNEL_LOAD_BZIMAGE_NOT_64BIT');
});

test('code32_start below 1 MiB: KERNEL_LOAD_ENTRY', () => {
  throwsCode(() => parseBzImage(buildBzImage({ code32Start: HIMEM_START - 0x1000 })), 'KERNEL_LOAD_ENTRY');
});

test('file ending inside the header or the setup sectors: KERNEL_LOAD_TRUNCATED', () => {
  throwsCode(() => parseBzImage(buildBzImage().subarray(0, 0x220)), 'KERNEL_LOAD_TRUNCATED');
  throwsCode(() => parseBzImage(buildBzImage({ setupSects: 40 }).subarray(0, 3 * 512)), 'KERNEL_LOAD_TRUNCATED');
});

test('kernel beyond guest RAM: KERNEL_LOAD_ADDRESS, nothing written', () => {
  const m = arrayGuestMemory([{ gpa: 0, size: 0x100000 + 500 }]);
  throwsCode(() => loadBzImage(m, buildBzImage()), 'KERNEL_LOAD_ADDRESS');
  assert.is(m.readU8(0x100001), 0);
});

for (const name of ['bzImage-6.1-mini', 'vmlinuz']) {
  test(`real ${name} → linux64 entry at code32_start + 0x200`, () => {
    const img = fixtureBytes(name);
    const v = new DataView(img.buffer, img.byteOffset, img.byteLength);
    const code32 = v.getUint32(OFF.code32_start, true);
    const setupLen = ((img[OFF.setup_sects]! || 4) + 1) * 512;
    const m = arrayGuestMemory([{ gpa: 0, size: 256 * MiB }]);
    const r = loadKernelImage(m, img);
    assert.is(r.format, 'bzimage');
    assert.is(code32, 0x100000);
    assert.equal(r.entry, { kind: 'linux64', addr: code32 + 0x200 });
    assert.is(r.kernelEnd, code32 + img.length - setupLen);
    assert.equal(m.slice(code32, 256), img.subarray(setupLen, setupLen + 256));
    assert.ok(v.getUint16(OFF.version, true) >= 0x020c);
  });
}

test.run();
