/**
 * The Linux zero page (struct boot_params, arch/x86/include/uapi/asm/bootparam.h) for the
 * 64-bit Linux boot entry, and the guest memory map it and the PVH start info share.
 * Firecracker's `configure_system` (arch/x86_64/mod.rs), firecracker src/vmm/src/arch/x86_64/mod.rs:
 *
 * - start: ELF → zeroed setup header with kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
 *   bzImage → the image's own setup header;
 * - then type_of_loader = KERNEL_LOADER_OTHER, boot_flag = KERNEL_BOOT_FLAG_MAGIC,
 *   header = KERNEL_HDR_MAGIC, cmd_line_ptr/cmdline_size, ramdisk_image/ramdisk_size,
 *   acpi_rsdp_addr = RSDP_ADDR, and the e820 table from `bootMemoryMap`.
 *
 * One DataView codec (encodeBootParams / decodeBootParams), u64 fields as bigint, little-endian
 * explicit (docs/design.md, Layers). The vCPU later gets RSI = ZERO_PAGE_START (firecracker src/vmm/src/arch/x86_64/regs.rs).
 */
import {
  HIMEM_START,
  PCI_MMCONFIG_SIZE,
  PCI_MMCONFIG_START,
  RSDP_ADDR,
  SYSTEM_MEM_SIZE,
  SYSTEM_MEM_START,
  ZERO_PAGE_START,
} from '../arch/x86_64/layout.js';
import { BootParamsError } from '../errors.js';
import { must, type GuestMemory, type RamRange } from '../memory/guest-memory.js';
import {
  BOOT_E820_ENTRY,
  BOOT_E820_ENTRY_SIZE,
  BOOT_PARAMS,
  BOOT_PARAMS_SIZE,
  E820_MAX_ENTRIES_ZEROPAGE,
  E820_RAM,
  E820_RESERVED,
  KERNEL_BOOT_FLAG_MAGIC,
  KERNEL_HDR_MAGIC,
  KERNEL_LOADER_OTHER,
  KERNEL_MIN_ALIGNMENT_BYTES,
  SETUP_HEADER,
  SETUP_HEADER_SIZE,
} from './bootparam.js';
import type { GuestPlacement } from './types.js';

/** One memory map entry (struct boot_e820_entry; the PVH hvm_memmap_table_entry has the same fields). */
export interface E820Entry {
  readonly addr: bigint;
  readonly size: bigint;
  /** E820_RAM or E820_RESERVED. */
  readonly type: number;
}

/**
 * The guest memory map, in Firecracker's order (firecracker src/vmm/src/arch/x86_64/mod.rs; not sorted):
 *   1. [0, SYSTEM_MEM_START) RAM;
 *   2. [SYSTEM_MEM_START, +SYSTEM_MEM_SIZE) reserved (MP table + ACPI tables);
 *   3. [PCI_MMCONFIG_START, +PCI_MMCONFIG_SIZE) reserved (ECAM, always present);
 *   4. each RAM range from max(start, HIMEM_START) to its end, RAM.
 * [RSDP_ADDR, HIMEM_START) is deliberately absent: the guest scans it for the RSDP as ROM.
 */
export function bootMemoryMap(ram: readonly RamRange[]): E820Entry[] {
  const out: E820Entry[] = [
    { addr: 0n, size: BigInt(SYSTEM_MEM_START), type: E820_RAM },
    { addr: BigInt(SYSTEM_MEM_START), size: BigInt(SYSTEM_MEM_SIZE), type: E820_RESERVED },
    { addr: BigInt(PCI_MMCONFIG_START), size: BigInt(PCI_MMCONFIG_SIZE), type: E820_RESERVED },
  ];
  // Low RAM below HIMEM_START is already described by entries 1-2 (and the BIOS area after
  // SYSTEM_MEM_START + SYSTEM_MEM_SIZE must stay unlisted), so each range is cut at 1 MiB; a
  // range wholly below 1 MiB (a tiny test guest) contributes nothing more.
  for (const r of ram) {
    const start = Math.max(r.gpa, HIMEM_START);
    const end = r.gpa + r.size;
    if (end > start) out.push({ addr: BigInt(start), size: BigInt(end - start), type: E820_RAM });
  }
  return out;
}

/** The struct boot_params fields Kindling writes, decoded. Everything else is zero. */
export interface BootParams {
  /**
   * The setup header bytes the page starts from (SETUP_HEADER_SIZE bytes at BOOT_PARAMS.hdr),
   * before the named fields below are laid over them. Decoded, it is the header as stored,
   * named fields included, so encode(decode(page)) reproduces the page.
   */
  readonly setupHeader: Uint8Array;
  readonly typeOfLoader: number;
  readonly bootFlag: number;
  readonly header: number;
  readonly cmdLinePtr: number;
  readonly cmdlineSize: number;
  readonly ramdiskImage: number;
  readonly ramdiskSize: number;
  readonly kernelAlignment: number;
  readonly acpiRsdpAddr: bigint;
  readonly e820: readonly E820Entry[];
}

/**
 * Encodes a zero page: the setup header bytes first, then the named fields over them, then
 * the e820 table. Throws BootParamsError BOOT_PARAMS_E820_FULL beyond
 * E820_MAX_ENTRIES_ZEROPAGE entries.
 */
export function encodeBootParams(p: BootParams): Uint8Array {
  if (p.e820.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new BootParamsError('BOOT_PARAMS_E820_FULL', `${p.e820.length} memory map entries; the zero page holds ${E820_MAX_ENTRIES_ZEROPAGE}`);
  }
  // Every byte not written below stays zero: boot_params must be cleared (zero-page.rst), and
  // the kernel reads a non-zero sentinel as a loader that forgot to, then wipes fields.
  const page = new Uint8Array(BOOT_PARAMS_SIZE);
  page.set(p.setupHeader.subarray(0, SETUP_HEADER_SIZE), BOOT_PARAMS.hdr);
  const v = new DataView(page.buffer);
  v.setUint8(SETUP_HEADER.type_of_loader, p.typeOfLoader);
  v.setUint16(SETUP_HEADER.boot_flag, p.bootFlag, true);
  v.setUint32(SETUP_HEADER.header, p.header, true);
  v.setUint32(SETUP_HEADER.cmd_line_ptr, p.cmdLinePtr, true);
  v.setUint32(SETUP_HEADER.cmdline_size, p.cmdlineSize, true);
  v.setUint32(SETUP_HEADER.ramdisk_image, p.ramdiskImage, true);
  v.setUint32(SETUP_HEADER.ramdisk_size, p.ramdiskSize, true);
  // ext_ramdisk_image/ext_ramdisk_size/ext_cmd_line_ptr stay 0: the initrd sits below
  // MMIO32_MEM_START and the command line at CMDLINE_START, so 32 bits hold both.
  v.setUint32(SETUP_HEADER.kernel_alignment, p.kernelAlignment, true);
  v.setBigUint64(BOOT_PARAMS.acpi_rsdp_addr, p.acpiRsdpAddr, true);
  // Entries are written in the given order; Linux sanitizes (sorts, merges) the map itself.
  v.setUint8(BOOT_PARAMS.e820_entries, p.e820.length);
  p.e820.forEach((e, i) => {
    const at = BOOT_PARAMS.e820_table + i * BOOT_E820_ENTRY_SIZE;
    v.setBigUint64(at + BOOT_E820_ENTRY.addr, e.addr, true);
    v.setBigUint64(at + BOOT_E820_ENTRY.size, e.size, true);
    v.setUint32(at + BOOT_E820_ENTRY.type, e.type, true);
  });
  return page;
}

/**
 * Decodes the fields of `encodeBootParams` from a zero page (for tests and diagnostics).
 * `e820_entries` is clamped to the table's capacity, since the page may come from a guest.
 */
export function decodeBootParams(page: Uint8Array): BootParams {
  if (page.length < BOOT_PARAMS_SIZE) throw new RangeError(`zero page is ${page.length} bytes, not ${BOOT_PARAMS_SIZE}`);
  const v = new DataView(page.buffer, page.byteOffset, BOOT_PARAMS_SIZE);
  const n = Math.min(v.getUint8(BOOT_PARAMS.e820_entries), E820_MAX_ENTRIES_ZEROPAGE);
  const e820: E820Entry[] = [];
  for (let i = 0; i < n; i++) {
    const at = BOOT_PARAMS.e820_table + i * BOOT_E820_ENTRY_SIZE;
    e820.push({
      addr: v.getBigUint64(at + BOOT_E820_ENTRY.addr, true),
      size: v.getBigUint64(at + BOOT_E820_ENTRY.size, true),
      type: v.getUint32(at + BOOT_E820_ENTRY.type, true),
    });
  }
  return {
    setupHeader: page.slice(BOOT_PARAMS.hdr, BOOT_PARAMS.hdr + SETUP_HEADER_SIZE),
    typeOfLoader: v.getUint8(SETUP_HEADER.type_of_loader),
    bootFlag: v.getUint16(SETUP_HEADER.boot_flag, true),
    header: v.getUint32(SETUP_HEADER.header, true),
    cmdLinePtr: v.getUint32(SETUP_HEADER.cmd_line_ptr, true),
    cmdlineSize: v.getUint32(SETUP_HEADER.cmdline_size, true),
    ramdiskImage: v.getUint32(SETUP_HEADER.ramdisk_image, true),
    ramdiskSize: v.getUint32(SETUP_HEADER.ramdisk_size, true),
    kernelAlignment: v.getUint32(SETUP_HEADER.kernel_alignment, true),
    acpiRsdpAddr: v.getBigUint64(BOOT_PARAMS.acpi_rsdp_addr, true),
    e820,
  };
}

/** What the zero page is built from: a loaded kernel plus where the cmdline and initrd went. */
export interface LinuxBootConfig {
  /** The bzImage's setup header; absent for an ELF kernel. */
  readonly setupHeader?: Uint8Array;
  /** Where writeCmdline put the command line (size includes the NUL). */
  readonly cmdline: GuestPlacement;
  readonly initrd?: GuestPlacement;
  /** RAM ranges for the e820 table; defaults to the guest memory's regions. */
  readonly ram?: readonly RamRange[];
}

/** Builds the zero page's field values for a configuration (firecracker src/vmm/src/arch/x86_64/mod.rs). */
export function bootParamsFor(cfg: LinuxBootConfig, mem: GuestMemory): BootParams {
  // The image's header carries fields the kernel checks on entry (version, xloadflags,
  // init_size...), which is why a bzImage zero page must start from it (firecracker src/vmm/src/arch/x86_64/mod.rs `configure_system`).
  const fromImage = cfg.setupHeader !== undefined;
  const setupHeader = new Uint8Array(SETUP_HEADER_SIZE);
  if (cfg.setupHeader) setupHeader.set(cfg.setupHeader.subarray(0, SETUP_HEADER_SIZE));
  const hdr = new DataView(setupHeader.buffer);
  return {
    setupHeader,
    typeOfLoader: KERNEL_LOADER_OTHER,
    bootFlag: KERNEL_BOOT_FLAG_MAGIC,
    header: KERNEL_HDR_MAGIC,
    cmdLinePtr: cfg.cmdline.addr,
    cmdlineSize: cfg.cmdline.size,
    ramdiskImage: cfg.initrd?.addr ?? 0,
    ramdiskSize: cfg.initrd?.size ?? 0,
    // A bzImage keeps its own kernel_alignment; an ELF kernel gets Firecracker's 16 MiB.
    kernelAlignment: fromImage ? hdr.getUint32(SETUP_HEADER.kernel_alignment - BOOT_PARAMS.hdr, true) : KERNEL_MIN_ALIGNMENT_BYTES,
    acpiRsdpAddr: BigInt(RSDP_ADDR),
    e820: bootMemoryMap(cfg.ram ?? mem.regions),
  };
}

/**
 * Writes the zero page at ZERO_PAGE_START for the 64-bit Linux entry and returns what it
 * wrote. The page overlaps MEMMAP_START, so it must not be combined with writePvhInfo.
 */
export function writeBootParams(mem: GuestMemory, cfg: LinuxBootConfig): BootParams {
  const params = bootParamsFor(cfg, mem);
  // must(): ZERO_PAGE_START is in low RAM, which every guest has; a failure is a set-up bug.
  must(mem.write(ZERO_PAGE_START, encodeBootParams(params)));
  return params;
}

/** Reads back the zero page at ZERO_PAGE_START (tests, diagnostics). */
export function readBootParams(mem: GuestMemory): BootParams {
  return decodeBootParams(must(mem.slice(ZERO_PAGE_START, BOOT_PARAMS_SIZE)));
}
