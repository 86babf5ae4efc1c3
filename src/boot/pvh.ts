/**
 * The Xen PVH boot ABI's start info, for ELF kernels with a XEN_ELFNOTE_PHYS32_ENTRY note
 * (firecracker arch/x86_64/mod.rs `configure_pvh`). Layouts from
 * xen/include/public/arch-x86/hvm/start_info.h (linux-loader
 * `src/loader_gen/x86_64/start_info.rs`):
 *
 *   PVH_INFO_START  struct hvm_start_info        (RBX points here at entry)
 *   MODLIST_START   struct hvm_modlist_entry[]   (the initrd, when there is one)
 *   MEMMAP_START    struct hvm_memmap_table_entry[] (the same 4 kinds of entries as e820)
 *
 * Like Firecracker, rsdp_paddr stays 0: the guest finds the RSDP by scanning the BIOS area,
 * where it sits at RSDP_ADDR. All fields little-endian, u64 as bigint.
 */
import { MEMMAP_START, MODLIST_START, PVH_INFO_START } from '../arch/x86_64/layout.js';
import { must, type GuestMemory, type RamRange } from '../memory/guest-memory.js';
import type { GuestPlacement } from './types.js';
import { bootMemoryMap, type E820Entry } from './zero-page.js';

/** hvm_start_info.magic: "xEn3" with bit 7 of the "E" set (start_info.h XEN_HVM_START_MAGIC_VALUE). */
export const XEN_HVM_START_MAGIC_VALUE = 0x336e_c578;
/** Version 1 adds memmap_paddr / memmap_entries, which Kindling always provides. */
export const HVM_START_INFO_VERSION = 1;

/** struct hvm_start_info field offsets; 56 bytes. */
export const HVM_START_INFO = {
  magic: 0x00, // u32
  version: 0x04, // u32
  flags: 0x08, // u32, SIF_* flags; 0
  nr_modules: 0x0c, // u32
  modlist_paddr: 0x10, // u64
  cmdline_paddr: 0x18, // u64
  rsdp_paddr: 0x20, // u64
  memmap_paddr: 0x28, // u64, version 1+
  memmap_entries: 0x30, // u32, version 1+
  reserved: 0x34, // u32
} as const;
export const HVM_START_INFO_SIZE = 0x38;

/** struct hvm_modlist_entry field offsets; 32 bytes. */
export const HVM_MODLIST_ENTRY = { paddr: 0x00, size: 0x08, cmdline_paddr: 0x10, reserved: 0x18 } as const;
export const HVM_MODLIST_ENTRY_SIZE = 0x20;

/** struct hvm_memmap_table_entry field offsets; 24 bytes. */
export const HVM_MEMMAP_TABLE_ENTRY = { addr: 0x00, size: 0x08, type: 0x10, reserved: 0x14 } as const;
export const HVM_MEMMAP_TABLE_ENTRY_SIZE = 0x18;

/** struct hvm_start_info, decoded. */
export interface HvmStartInfo {
  readonly magic: number;
  readonly version: number;
  readonly flags: number;
  readonly nrModules: number;
  readonly modlistPaddr: bigint;
  readonly cmdlinePaddr: bigint;
  readonly rsdpPaddr: bigint;
  readonly memmapPaddr: bigint;
  readonly memmapEntries: number;
}

/** struct hvm_modlist_entry, decoded (the per-module cmdline is unused: 0). */
export interface HvmModlistEntry {
  readonly paddr: bigint;
  readonly size: bigint;
  readonly cmdlinePaddr: bigint;
}

/** Encodes struct hvm_start_info. */
export function encodeStartInfo(s: HvmStartInfo): Uint8Array {
  const out = new Uint8Array(HVM_START_INFO_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(HVM_START_INFO.magic, s.magic, true);
  v.setUint32(HVM_START_INFO.version, s.version, true);
  v.setUint32(HVM_START_INFO.flags, s.flags, true);
  v.setUint32(HVM_START_INFO.nr_modules, s.nrModules, true);
  v.setBigUint64(HVM_START_INFO.modlist_paddr, s.modlistPaddr, true);
  v.setBigUint64(HVM_START_INFO.cmdline_paddr, s.cmdlinePaddr, true);
  v.setBigUint64(HVM_START_INFO.rsdp_paddr, s.rsdpPaddr, true);
  v.setBigUint64(HVM_START_INFO.memmap_paddr, s.memmapPaddr, true);
  v.setUint32(HVM_START_INFO.memmap_entries, s.memmapEntries, true);
  return out;
}

/** Decodes struct hvm_start_info. */
export function decodeStartInfo(b: Uint8Array): HvmStartInfo {
  const v = new DataView(b.buffer, b.byteOffset, HVM_START_INFO_SIZE);
  return {
    magic: v.getUint32(HVM_START_INFO.magic, true),
    version: v.getUint32(HVM_START_INFO.version, true),
    flags: v.getUint32(HVM_START_INFO.flags, true),
    nrModules: v.getUint32(HVM_START_INFO.nr_modules, true),
    modlistPaddr: v.getBigUint64(HVM_START_INFO.modlist_paddr, true),
    cmdlinePaddr: v.getBigUint64(HVM_START_INFO.cmdline_paddr, true),
    rsdpPaddr: v.getBigUint64(HVM_START_INFO.rsdp_paddr, true),
    memmapPaddr: v.getBigUint64(HVM_START_INFO.memmap_paddr, true),
    memmapEntries: v.getUint32(HVM_START_INFO.memmap_entries, true),
  };
}

/** Encodes an array of struct hvm_modlist_entry. */
export function encodeModlist(mods: readonly HvmModlistEntry[]): Uint8Array {
  const out = new Uint8Array(mods.length * HVM_MODLIST_ENTRY_SIZE);
  const v = new DataView(out.buffer);
  mods.forEach((m, i) => {
    const at = i * HVM_MODLIST_ENTRY_SIZE;
    v.setBigUint64(at + HVM_MODLIST_ENTRY.paddr, m.paddr, true);
    v.setBigUint64(at + HVM_MODLIST_ENTRY.size, m.size, true);
    v.setBigUint64(at + HVM_MODLIST_ENTRY.cmdline_paddr, m.cmdlinePaddr, true);
  });
  return out;
}

/** Encodes an array of struct hvm_memmap_table_entry (reserved stays 0). */
export function encodeMemmap(entries: readonly E820Entry[]): Uint8Array {
  const out = new Uint8Array(entries.length * HVM_MEMMAP_TABLE_ENTRY_SIZE);
  const v = new DataView(out.buffer);
  entries.forEach((e, i) => {
    const at = i * HVM_MEMMAP_TABLE_ENTRY_SIZE;
    v.setBigUint64(at + HVM_MEMMAP_TABLE_ENTRY.addr, e.addr, true);
    v.setBigUint64(at + HVM_MEMMAP_TABLE_ENTRY.size, e.size, true);
    v.setUint32(at + HVM_MEMMAP_TABLE_ENTRY.type, e.type, true);
  });
  return out;
}

/** Decodes `n` struct hvm_memmap_table_entry. */
export function decodeMemmap(b: Uint8Array, n: number): E820Entry[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: E820Entry[] = [];
  for (let i = 0; i < n; i++) {
    const at = i * HVM_MEMMAP_TABLE_ENTRY_SIZE;
    out.push({
      addr: v.getBigUint64(at + HVM_MEMMAP_TABLE_ENTRY.addr, true),
      size: v.getBigUint64(at + HVM_MEMMAP_TABLE_ENTRY.size, true),
      type: v.getUint32(at + HVM_MEMMAP_TABLE_ENTRY.type, true),
    });
  }
  return out;
}

/** What the PVH start info is built from. */
export interface PvhBootConfig {
  /** Where writeCmdline put the command line. */
  readonly cmdline: GuestPlacement;
  /** The initrd becomes module 0. */
  readonly initrd?: GuestPlacement;
  /** RAM ranges for the memory map; defaults to the guest memory's regions. */
  readonly ram?: readonly RamRange[];
}

/** Everything writePvhInfo put in guest memory. */
export interface PvhInfo {
  readonly startInfo: HvmStartInfo;
  readonly modules: readonly HvmModlistEntry[];
  readonly memmap: readonly E820Entry[];
}

/**
 * Writes hvm_start_info at PVH_INFO_START, the module list at MODLIST_START and the memory
 * map at MEMMAP_START (firecracker src/vmm/src/arch/x86_64/mod.rs). modlist_paddr is set only when there is a module, as in
 * Firecracker. MEMMAP_START is ZERO_PAGE_START: never combine with writeBootParams.
 */
export function writePvhInfo(mem: GuestMemory, cfg: PvhBootConfig): PvhInfo {
  // Linux's PVH entry (arch/x86/platform/pvh/enlighten.c) takes module 0 as the initrd.
  const modules: HvmModlistEntry[] = cfg.initrd
    ? [{ paddr: BigInt(cfg.initrd.addr), size: BigInt(cfg.initrd.size), cmdlinePaddr: 0n }]
    : [];
  const memmap = bootMemoryMap(cfg.ram ?? mem.regions);
  const startInfo: HvmStartInfo = {
    magic: XEN_HVM_START_MAGIC_VALUE,
    version: HVM_START_INFO_VERSION,
    flags: 0,
    nrModules: modules.length,
    modlistPaddr: modules.length > 0 ? BigInt(MODLIST_START) : 0n,
    cmdlinePaddr: BigInt(cfg.cmdline.addr),
    rsdpPaddr: 0n,
    memmapPaddr: BigInt(MEMMAP_START),
    memmapEntries: memmap.length,
  };
  // An empty module list writes zero bytes; harmless, and it keeps the three writes uniform.
  // must(): these fixed addresses are in low RAM, which every guest has; a failure is a bug.
  must(mem.write(PVH_INFO_START, encodeStartInfo(startInfo)));
  must(mem.write(MODLIST_START, encodeModlist(modules)));
  must(mem.write(MEMMAP_START, encodeMemmap(memmap)));
  return { startInfo, modules, memmap };
}

/** Reads back the start info and memory map written by writePvhInfo (tests, diagnostics). */
export function readPvhInfo(mem: GuestMemory): PvhInfo {
  const startInfo = decodeStartInfo(must(mem.slice(PVH_INFO_START, HVM_START_INFO_SIZE)));
  const modules: HvmModlistEntry[] = [];
  const modBytes = must(mem.slice(Number(startInfo.modlistPaddr) || MODLIST_START, startInfo.nrModules * HVM_MODLIST_ENTRY_SIZE));
  const mv = new DataView(modBytes.buffer, modBytes.byteOffset, modBytes.byteLength);
  for (let i = 0; i < startInfo.nrModules; i++) {
    const at = i * HVM_MODLIST_ENTRY_SIZE;
    modules.push({
      paddr: mv.getBigUint64(at + HVM_MODLIST_ENTRY.paddr, true),
      size: mv.getBigUint64(at + HVM_MODLIST_ENTRY.size, true),
      cmdlinePaddr: mv.getBigUint64(at + HVM_MODLIST_ENTRY.cmdline_paddr, true),
    });
  }
  const n = startInfo.memmapEntries;
  const memmap = decodeMemmap(must(mem.slice(Number(startInfo.memmapPaddr), n * HVM_MEMMAP_TABLE_ENTRY_SIZE)), n);
  return { startInfo, modules, memmap };
}
