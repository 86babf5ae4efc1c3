/**
 * Zero page (struct boot_params) and PVH start info encoders: layouts asserted against
 * bootparam.h / start_info.h offsets, field values and the e820 map exactly as firecracker src/vmm/src/arch/x86_64/mod.rs
 * lists them. Raw reads at absolute offsets check the bytes, not just the codec round trip.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arrayGuestMemory } from '../../src/memory/guest-memory.js';
import { GiB, MiB, ramRanges, ZERO_PAGE_START } from '../../src/arch/x86_64/layout.js';
import {
  BOOT_E820_ENTRY_SIZE,
  BOOT_PARAMS,
  BOOT_PARAMS_SIZE,
  E820_MAX_ENTRIES_ZEROPAGE,
  SETUP_HEADER,
  SETUP_HEADER_SIZE,
} from '../../src/boot/bootparam.js';
import { bootMemoryMap, decodeBootParams, encodeBootParams, readBootParams, writeBootParams } from '../../src/boot/zero-page.js';
import { HVM_MEMMAP_TABLE_ENTRY_SIZE, HVM_MODLIST_ENTRY_SIZE, HVM_START_INFO_SIZE, readPvhInfo, writePvhInfo } from '../../src/boot/pvh.js';
import { BootParamsError } from '../../src/errors.js';

const mem = () => arrayGuestMemory([{ gpa: 0, size: 256 * MiB }]);
const cmdline = { addr: 0x20000, size: 42 };
const initrd = { addr: 0xf000000, size: 0x123456 };

/** Firecracker's e820 for a 256 MiB guest (firecracker src/vmm/src/arch/x86_64/mod.rs, in this order). */
const E820_256M = [
  { addr: 0n, size: 0x9fc00n, type: 1 },
  { addr: 0x9fc00n, size: 0x40400n, type: 2 },
  { addr: 0xeec00000n, size: 0x10000000n, type: 2 },
  { addr: 0x100000n, size: BigInt(255 * MiB), type: 1 },
];

test('struct layouts match bootparam.h and start_info.h', () => {
  assert.is(BOOT_PARAMS_SIZE, 4096);
  assert.is(SETUP_HEADER_SIZE, 0x7b);
  assert.is(BOOT_PARAMS.e820_entries, 0x1e8);
  assert.is(BOOT_PARAMS.acpi_rsdp_addr, 0x070);
  assert.is(SETUP_HEADER.cmd_line_ptr, 0x228);
  // e820_table[128] of 20-byte entries ends where _pad8 starts (0xcd0).
  assert.is(BOOT_PARAMS.e820_table + E820_MAX_ENTRIES_ZEROPAGE * BOOT_E820_ENTRY_SIZE, 0xcd0);
  assert.is(HVM_START_INFO_SIZE, 56);
  assert.is(HVM_MODLIST_ENTRY_SIZE, 32);
  assert.is(HVM_MEMMAP_TABLE_ENTRY_SIZE, 24);
});

test('ELF zero page: fixed loader fields, cmdline, initrd, RSDP, kernel_alignment 16 MiB', () => {
  const m = mem();
  writeBootParams(m, { cmdline, initrd });
  const at = (off: number) => ZERO_PAGE_START + off;
  assert.is(m.readU8(at(0x210)), 0xff); // type_of_loader
  assert.is(m.readU16(at(0x1fe)), 0xaa55); // boot_flag
  assert.is(m.readU32(at(0x202)), 0x53726448); // header "HdrS"
  assert.is(m.readU32(at(0x228)), 0x20000); // cmd_line_ptr
  assert.is(m.readU32(at(0x238)), 42); // cmdline_size
  assert.is(m.readU32(at(0x218)), 0xf000000); // ramdisk_image
  assert.is(m.readU32(at(0x21c)), 0x123456); // ramdisk_size
  assert.is(m.readU32(at(0x230)), 0x1000000); // kernel_alignment
  assert.is(m.readU64(at(0x070)), 0xe0000n); // acpi_rsdp_addr
  assert.is(m.readU8(at(0x1f1)), 0); // setup_sects: the ELF header starts zeroed
  assert.is(m.readU16(at(0x206)), 0); // version
});

test('e820: exactly the 4 kinds of entries in Firecracker order, raw 20-byte entries', () => {
  const m = mem();
  writeBootParams(m, { cmdline });
  assert.is(m.readU8(ZERO_PAGE_START + 0x1e8), 4);
  E820_256M.forEach((e, i) => {
    const at = ZERO_PAGE_START + 0x2d0 + i * 20;
    assert.is(m.readU64(at), e.addr, `entry ${i} addr`);
    assert.is(m.readU64(at + 8), e.size, `entry ${i} size`);
    assert.is(m.readU32(at + 16), e.type, `entry ${i} type`);
  });
  assert.is(m.readU64(ZERO_PAGE_START + 0x2d0 + 4 * 20), 0n);
  assert.equal(readBootParams(m).e820, E820_256M);
});

test('e820 for a guest above 3 GiB: low RAM from 1 MiB to 3 GiB, then 4 GiB up', () => {
  const map = bootMemoryMap(ramRanges(5 * GiB));
  assert.equal(map.slice(3), [
    { addr: 0x100000n, size: BigInt(3 * GiB - MiB), type: 1 },
    { addr: BigInt(4 * GiB), size: BigInt(2 * GiB), type: 1 },
  ]);
});

test('bzImage zero page starts from the image header and overrides the loader fields', () => {
  const hdr = new Uint8Array(SETUP_HEADER_SIZE);
  const v = new DataView(hdr.buffer);
  const rel = (off: number) => off - 0x1f1;
  hdr[rel(0x1f1)] = 31; // setup_sects
  v.setUint16(rel(0x206), 0x020f, true); // version
  v.setUint32(rel(0x230), 0x200000, true); // kernel_alignment (kept)
  v.setUint16(rel(0x236), 0x7f, true); // xloadflags
  hdr[rel(0x210)] = 0x12; // type_of_loader (overridden)
  v.setUint32(rel(0x228), 0xdead, true); // cmd_line_ptr (overridden)
  const m = mem();
  writeBootParams(m, { setupHeader: hdr, cmdline });
  assert.is(m.readU8(ZERO_PAGE_START + 0x1f1), 31);
  assert.is(m.readU16(ZERO_PAGE_START + 0x206), 0x020f);
  assert.is(m.readU32(ZERO_PAGE_START + 0x230), 0x200000);
  assert.is(m.readU16(ZERO_PAGE_START + 0x236), 0x7f);
  assert.is(m.readU8(ZERO_PAGE_START + 0x210), 0xff);
  assert.is(m.readU32(ZERO_PAGE_START + 0x228), 0x20000);
  assert.is(m.readU32(ZERO_PAGE_START + 0x218), 0); // no initrd
});

test('encode/decode round trip: re-encoding a decoded page gives the same bytes', () => {
  const m = mem();
  const written = writeBootParams(m, { cmdline, initrd });
  const page = encodeBootParams(written);
  assert.equal(m.slice(ZERO_PAGE_START, BOOT_PARAMS_SIZE), page);
  const decoded = decodeBootParams(page);
  assert.equal(encodeBootParams(decoded), page);
  assert.equal({ ...decoded, setupHeader: written.setupHeader }, written);
});

test('more than 128 e820 entries: BOOT_PARAMS_E820_FULL', () => {
  const p = readBootParams((() => { const m = mem(); writeBootParams(m, { cmdline }); return m; })());
  const e820 = Array.from({ length: 129 }, (_, i) => ({ addr: BigInt(i) << 32n, size: 4096n, type: 1 }));
  try {
    encodeBootParams({ ...p, e820 });
    assert.unreachable('expected BOOT_PARAMS_E820_FULL');
  } catch (e) {
    assert.instance(e, BootParamsError);
    assert.is((e as BootParamsError).code, 'BOOT_PARAMS_E820_FULL');
  }
  assert.is(encodeBootParams({ ...p, e820: e820.slice(0, 128) })[0x1e8], 128);
});

test('PVH start info: magic, version 1, cmdline, memmap at 0x7000, initrd module at 0x6040, rsdp 0', () => {
  const m = mem();
  writePvhInfo(m, { cmdline, initrd });
  assert.is(m.readU32(0x6000), 0x336ec578); // magic
  assert.is(m.readU32(0x6004), 1); // version
  assert.is(m.readU32(0x6008), 0); // flags
  assert.is(m.readU32(0x600c), 1); // nr_modules
  assert.is(m.readU64(0x6010), 0x6040n); // modlist_paddr
  assert.is(m.readU64(0x6018), 0x20000n); // cmdline_paddr
  assert.is(m.readU64(0x6020), 0n); // rsdp_paddr, as Firecracker
  assert.is(m.readU64(0x6028), 0x7000n); // memmap_paddr
  assert.is(m.readU32(0x6030), 4); // memmap_entries
  assert.is(m.readU64(0x6040), 0xf000000n); // module 0 paddr
  assert.is(m.readU64(0x6048), 0x123456n); // module 0 size
  E820_256M.forEach((e, i) => {
    const at = 0x7000 + i * 24;
    assert.is(m.readU64(at), e.addr);
    assert.is(m.readU64(at + 8), e.size);
    assert.is(m.readU32(at + 16), e.type);
    assert.is(m.readU32(at + 20), 0);
  });
  const back = readPvhInfo(m);
  assert.equal(back.memmap, E820_256M);
  assert.equal(back.modules, [{ paddr: 0xf000000n, size: 0x123456n, cmdlinePaddr: 0n }]);
});

test('PVH without an initrd: no modules and modlist_paddr 0', () => {
  const m = mem();
  const info = writePvhInfo(m, { cmdline });
  assert.is(info.startInfo.nrModules, 0);
  assert.is(m.readU64(0x6010), 0n);
  assert.equal(readPvhInfo(m).modules, []);
});

test.run();
