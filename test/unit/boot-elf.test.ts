/**
 * ELF kernel loader (src/boot/elf.ts): crafted images break one field each and expect one
 * error code (docs/design.md, Errors and replies); the real vmlinux fixtures must load with the entry
 * Firecracker would use (firecracker src/vmm/src/arch/x86_64/mod.rs). The fixture tests fail, never skip, without the files.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arrayGuestMemory } from '../../src/memory/guest-memory.js';
import { HIMEM_START, MiB } from '../../src/arch/x86_64/layout.js';
import { isElf, loadElf, parseElf, XEN_ELFNOTE_PHYS32_ENTRY } from '../../src/boot/elf.js';
import { loadKernelImage } from '../../src/boot/index.js';
import { KernelLoaderError } from '../../src/errors.js';
import { fixtureBytes } from '../helpers/guest.js';


const PT_LOAD = 1;
const PT_NOTE = 4;
const EHDR = 64;
const PHDR = 56;

interface Seg { type?: number; paddr: number; data: Uint8Array; memsz?: number }
interface ElfOpts { entry?: number; cls?: number; endian?: number; machine?: number; phentsize?: number; segs?: Seg[] }

/** A minimal ELF64 image: header, program headers, then each segment's bytes. */
function buildElf(o: ElfOpts = {}): Uint8Array {
  const segs = o.segs ?? [{ paddr: 16 * MiB, data: new Uint8Array([1, 2, 3, 4]), memsz: 64 }];
  let off = EHDR + segs.length * PHDR;
  const offsets = segs.map((s) => { const at = off; off += s.data.length; return at; });
  const b = new Uint8Array(off);
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, o.cls ?? 2, o.endian ?? 1, 1]);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, o.machine ?? 62, true);
  v.setUint32(20, 1, true);
  v.setBigUint64(24, BigInt(o.entry ?? 16 * MiB), true);
  v.setBigUint64(32, BigInt(EHDR), true);
  v.setUint16(52, EHDR, true);
  v.setUint16(54, o.phentsize ?? PHDR, true);
  v.setUint16(56, segs.length, true);
  segs.forEach((s, i) => {
    const ph = EHDR + i * PHDR;
    v.setUint32(ph, s.type ?? PT_LOAD, true);
    v.setBigUint64(ph + 8, BigInt(offsets[i]!), true);
    v.setBigUint64(ph + 16, BigInt(s.paddr), true);
    v.setBigUint64(ph + 24, BigInt(s.paddr), true);
    v.setBigUint64(ph + 32, BigInt(s.data.length), true);
    v.setBigUint64(ph + 40, BigInt(s.memsz ?? s.data.length), true);
    b.set(s.data, offsets[i]);
  });
  return b;
}

/** One ELF note: namesz, descsz, type, name (NUL-terminated, padded), desc (padded). */
function note(name: string, type: number, desc: Uint8Array): Uint8Array {
  const pad = (n: number) => Math.ceil(n / 4) * 4;
  const nameLen = name.length + 1;
  const b = new Uint8Array(12 + pad(nameLen) + pad(desc.length));
  const v = new DataView(b.buffer);
  v.setUint32(0, nameLen, true);
  v.setUint32(4, desc.length, true);
  v.setUint32(8, type, true);
  for (let i = 0; i < name.length; i++) b[12 + i] = name.charCodeAt(i);
  b.set(desc, 12 + pad(nameLen));
  return b;
}
const u64le = (n: number) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n), true); return b; };
const u32le = (n: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n, true); return b; };
const load = { paddr: 16 * MiB, data: new Uint8Array([9, 9]), memsz: 16 };
const noteSeg = (...notes: Uint8Array[]): Seg => {
  const data = new Uint8Array(notes.reduce((n, x) => n + x.length, 0));
  let at = 0;
  for (const x of notes) { data.set(x, at); at += x.length; }
  return { type: PT_NOTE, paddr: 0, data };
};

const mem = () => arrayGuestMemory([{ gpa: 0, size: 32 * MiB }]);

/** Asserts `fn` throws a KernelLoaderError with exactly `code`. */
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

test('a valid ELF loads p_filesz bytes at p_paddr, zeroes up to p_memsz, enters linux64 at e_entry', () => {
  const m = mem();
  (m.slice(16 * MiB, 64) as Uint8Array).fill(0xaa); // stale bytes the bss must clear
  const r = loadElf(m, buildElf());
  assert.equal(r.entry, { kind: 'linux64', addr: 16 * MiB });
  assert.is(r.kernelEnd, 16 * MiB + 64);
  assert.equal([...(m.slice(16 * MiB, 6) as Uint8Array)], [1, 2, 3, 4, 0, 0]);
  assert.is(m.readU8(16 * MiB + 63), 0);
  assert.is(r.format, 'elf');
  assert.is(r.setupHeader, undefined);
});

test('an image in a view with a non-zero byteOffset (a pooled Buffer) parses the same', () => {
  const img = buildElf();
  const padded = new Uint8Array(img.length + 3);
  padded.set(img, 3);
  assert.equal(loadElf(mem(), padded.subarray(3)), loadElf(mem(), img));
});

test('kernelEnd is the highest segment end, over all PT_LOAD segments', () => {
  const r = loadElf(mem(), buildElf({ segs: [{ paddr: 20 * MiB, data: new Uint8Array(8), memsz: 0x1000 }, { paddr: 16 * MiB, data: new Uint8Array(8) }] }));
  assert.is(r.kernelEnd, 20 * MiB + 0x1000);
});

test('a Xen PHYS32_ENTRY note with a u64 descriptor selects PVH boot', () => {
  const img = buildElf({ segs: [load, noteSeg(note('GNU', 3, new Uint8Array(20)), note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u64le(0x1000510)))] });
  assert.equal(loadElf(mem(), img).entry, { kind: 'pvh', addr: 0x1000510 });
});

test('a u32 PVH descriptor is accepted too', () => {
  const img = buildElf({ segs: [load, noteSeg(note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u32le(0x1000200)))] });
  assert.is(parseElf(img).pvhEntry, 0x1000200);
});

test('type 18 under another owner name, or another Xen note type, is not a PVH entry', () => {
  const img = buildElf({ segs: [load, noteSeg(note('Linux', XEN_ELFNOTE_PHYS32_ENTRY, u64le(0x1000510)), note('Xen', 17, u64le(0x1000510)))] });
  assert.equal(loadElf(mem(), img).entry, { kind: 'linux64', addr: 16 * MiB });
});

test('bad magic: KERNEL_LOAD_BAD_MAGIC (and loadKernelImage falls back to bzImage, which also fails)', () => {
  const img = buildElf();
  img[1] = 0x46;
  assert.not.ok(isElf(img));
  throwsCode(() => parseElf(img), 'KERNEL_LOAD_BAD_MAGIC');
  throwsCode(() => loadKernelImage(mem(), img), 'KERNEL_LOAD_BAD_MAGIC');
  throwsCode(() => loadKernelImage(mem(), new Uint8Array(3)), 'KERNEL_LOAD_BAD_MAGIC');
});

test('32-bit ELF: KERNEL_LOAD_ELF_CLASS, not a bzImage retry', () => {
  throwsCode(() => loadKernelImage(mem(), buildElf({ cls: 1 })), 'KERNEL_LOAD_ELF_CLASS');
});

test('big-endian ELF: KERNEL_LOAD_ELF_ENDIAN', () => {
  throwsCode(() => parseElf(buildElf({ endian: 2 })), 'KERNEL_LOAD_ELF_ENDIAN');
});

test('non-x86_64 machine: KERNEL_LOAD_ELF_MACHINE', () => {
  throwsCode(() => parseElf(buildElf({ machine: 183 /* EM_AARCH64 */ })), 'KERNEL_LOAD_ELF_MACHINE');
});

test('header shorter than Elf64_Ehdr: KERNEL_LOAD_TRUNCATED', () => {
  throwsCode(() => parseElf(buildElf().subarray(0, 40)), 'KERNEL_LOAD_TRUNCATED');
});

test('wrong e_phentsize: KERNEL_LOAD_ELF_PHDR', () => {
  throwsCode(() => parseElf(buildElf({ phentsize: 32 })), 'KERNEL_LOAD_ELF_PHDR');
});

test('program header table past the end of the file: KERNEL_LOAD_TRUNCATED', () => {
  const img = buildElf();
  new DataView(img.buffer).setUint16(56, 500, true); // e_phnum
  throwsCode(() => parseElf(img), 'KERNEL_LOAD_TRUNCATED');
  const img2 = buildElf();
  new DataView(img2.buffer).setBigUint64(32, 1n << 62n, true); // e_phoff
  throwsCode(() => parseElf(img2), 'KERNEL_LOAD_TRUNCATED');
});

test('e_phoff inside the ELF header: KERNEL_LOAD_ELF_PHDR', () => {
  const img = buildElf();
  new DataView(img.buffer).setBigUint64(32, 8n, true);
  throwsCode(() => parseElf(img), 'KERNEL_LOAD_ELF_PHDR');
});

test('entry below 1 MiB: KERNEL_LOAD_ENTRY', () => {
  throwsCode(() => parseElf(buildElf({ entry: HIMEM_START - 1 })), 'KERNEL_LOAD_ENTRY');
  assert.is(parseElf(buildElf({ entry: HIMEM_START })).entry, HIMEM_START);
});

test('segment data past the end of the file: KERNEL_LOAD_TRUNCATED', () => {
  const img = buildElf();
  new DataView(img.buffer).setBigUint64(EHDR + 32, 1000n, true); // p_filesz
  new DataView(img.buffer).setBigUint64(EHDR + 40, 1000n, true); // p_memsz
  throwsCode(() => parseElf(img), 'KERNEL_LOAD_TRUNCATED');
});

test('p_filesz larger than p_memsz: KERNEL_LOAD_ELF_PHDR', () => {
  throwsCode(() => parseElf(buildElf({ segs: [{ paddr: 16 * MiB, data: new Uint8Array(8), memsz: 4 }] })), 'KERNEL_LOAD_ELF_PHDR');
});

test('no PT_LOAD segment: KERNEL_LOAD_ELF_PHDR', () => {
  throwsCode(() => parseElf(buildElf({ segs: [noteSeg(note('GNU', 3, new Uint8Array(4)))] })), 'KERNEL_LOAD_ELF_PHDR');
});

test('segment below HIMEM_START: KERNEL_LOAD_ADDRESS, nothing written', () => {
  const m = mem();
  const img = buildElf({ segs: [{ paddr: 16 * MiB, data: new Uint8Array([7]) }, { paddr: HIMEM_START - 0x1000, data: new Uint8Array([7]) }] });
  throwsCode(() => loadElf(m, img), 'KERNEL_LOAD_ADDRESS');
  assert.is(m.readU8(16 * MiB), 0);
});

test('segment outside guest RAM: KERNEL_LOAD_ADDRESS', () => {
  throwsCode(() => loadElf(mem(), buildElf({ segs: [{ paddr: 32 * MiB - 8, data: new Uint8Array(4), memsz: 16 }] })), 'KERNEL_LOAD_ADDRESS');
  throwsCode(() => loadElf(mem(), buildElf({ segs: [{ paddr: 2 ** 60, data: new Uint8Array(4) }] })), 'KERNEL_LOAD_ADDRESS');
});

test('PVH descriptor neither 4 nor 8 bytes: KERNEL_LOAD_ELF_NOTE', () => {
  throwsCode(() => parseElf(buildElf({ segs: [load, noteSeg(note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, new Uint8Array(2)))] })), 'KERNEL_LOAD_ELF_NOTE');
});

test('a note overrunning its PT_NOTE segment: KERNEL_LOAD_ELF_NOTE', () => {
  const n = note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u64le(0x1000510));
  new DataView(n.buffer).setUint32(4, 64, true); // descsz beyond the segment
  throwsCode(() => parseElf(buildElf({ segs: [load, noteSeg(n)] })), 'KERNEL_LOAD_ELF_NOTE');
});

test('PVH entry beyond 32 bits: KERNEL_LOAD_ELF_NOTE; below 1 MiB: KERNEL_LOAD_ENTRY', () => {
  throwsCode(() => parseElf(buildElf({ segs: [load, noteSeg(note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u64le(2 ** 32)))] })), 'KERNEL_LOAD_ELF_NOTE');
  throwsCode(() => parseElf(buildElf({ segs: [load, noteSeg(note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u32le(0x8000)))] })), 'KERNEL_LOAD_ENTRY');
});

test('real vmlinux-6.1-mini (no PVH note) → linux64 entry 0x1000000', () => {
  const img = fixtureBytes('vmlinux-6.1-mini');
  const m = arrayGuestMemory([{ gpa: 0, size: 256 * MiB }]);
  const r = loadElf(m, img);
  assert.equal(r.entry, { kind: 'linux64', addr: 0x1000000 });
  // readelf: the last PT_LOAD is 0x1af7000 + memsz 0x121000.
  assert.is(r.kernelEnd, 0x1c18000);
  // The first PT_LOAD is file offset 0x200000 → 0x1000000.
  assert.equal(m.slice(0x1000000, 64), img.subarray(0x200000, 0x200000 + 64));
});

test('real vmlinux-6.1-fc (Xen PHYS32_ENTRY note) → pvh entry', () => {
  const m = arrayGuestMemory([{ gpa: 0, size: 256 * MiB }]);
  const r = loadElf(m, fixtureBytes('vmlinux-6.1-fc'));
  assert.is(r.entry.kind, 'pvh');
  // readelf -n: Xen note type 0x12, descriptor 10 05 00 01 00 00 00 00.
  assert.is(r.entry.addr, 0x1000510);
  assert.is(r.kernelEnd, 0x256b000 + 0x4c1000);
});

test.run();
