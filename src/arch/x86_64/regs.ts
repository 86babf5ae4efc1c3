/**
 * Initial vCPU state for the two x86_64 boot protocols (firecracker src/vmm/src/arch/x86_64/regs.rs; firecracker
 * arch/x86_64/regs.rs, msr.rs, interrupts.rs), as pure values and guest-memory writes.
 *
 * Nothing here talks to KVM: the vCPU owner applies the results in Firecracker's order
 * (CPUID → MSRs → regs → FPU → sregs → LAPIC LINTs). All vCPUs get the same state; APs then
 * wait in the in-kernel LAPIC for INIT/SIPI.
 *
 * Guest memory written here (firecracker src/vmm/src/arch/x86_64/layout.rs): the GDT at BOOT_GDT_START, the IDT at
 * BOOT_IDT_START and, for the Linux 64-bit entry, identity page tables at
 * PML4_START/PDPTE_START/PDE_START. A write outside guest RAM throws its GuestMemoryError
 * (set-up code: a missing low page is a bug, not guest input).
 */
import type { KvmRegs, KvmSegment, KvmSregs } from '../../kvm/vcpu-fd.js';
import { must, type GuestMemory } from '../../memory/guest-memory.js';
import {
  BOOT_GDT_START, BOOT_IDT_START, BOOT_STACK_POINTER, PDE_START, PDPTE_START, PML4_START,
  PVH_INFO_START, ZERO_PAGE_START,
} from './layout.js';

// ================================================================================================
// GDT descriptors (Intel SDM vol. 3A §3.4.5 "Segment Descriptors"; firecracker arch/x86_64/gdt.rs).
//
// A descriptor is a 64-bit value, kept as a bigint so every bit is exact. The `flags` argument
// of `gdtEntry` uses the kernel's GDT_ENTRY_INIT packing (arch/x86/include/asm/segment.h):
// bits 7:0 are descriptor byte 5 (type, S, DPL, P) and bits 15:12 the high nibble of byte 6
// (AVL, L, D/B, G); bits 11:8 are ignored because that nibble of byte 6 holds limit bits 19:16.
// ================================================================================================

// --- Flag bits, in GDT_ENTRY_INIT packing (SDM vol. 3A Figure 3-8) ---
/** Descriptor type field (bits 3:0): execute/read code segment, accessed. */
export const DESC_TYPE_CODE_XRA = 0xb;
/** Descriptor type field: read/write data segment, accessed. */
export const DESC_TYPE_DATA_RWA = 0x3;
/** Descriptor type field (system, S=0): busy TSS (64-bit TSS in long mode, 32-bit TSS otherwise). */
export const DESC_TYPE_TSS_BUSY = 0xb;
/** S: code/data (1) rather than system (0) descriptor. */
export const DESC_S = 1 << 4;
/** P: segment present. */
export const DESC_P = 1 << 7;
/** AVL: available to software. */
export const DESC_AVL = 1 << 12;
/** L: 64-bit code segment. */
export const DESC_L = 1 << 13;
/** D/B: 32-bit default operand size / stack. */
export const DESC_DB = 1 << 14;
/** G: the limit counts 4 KiB pages. */
export const DESC_G = 1 << 15;

/** Flags of the Linux 64-bit boot GDT entries (firecracker src/vmm/src/arch/x86_64/regs.rs: code 0xa09b, data 0xc093, TSS 0x808b). */
export const GDT_CODE64_FLAGS = DESC_G | DESC_L | DESC_P | DESC_S | DESC_TYPE_CODE_XRA;
export const GDT_DATA_FLAGS = DESC_G | DESC_DB | DESC_P | DESC_S | DESC_TYPE_DATA_RWA;
export const GDT_TSS64_FLAGS = DESC_G | DESC_P | DESC_TYPE_TSS_BUSY;
/** Flags of the PVH (32-bit protected mode) boot GDT entries (code 0xc09b, TSS 0x008b). */
export const GDT_CODE32_FLAGS = DESC_G | DESC_DB | DESC_P | DESC_S | DESC_TYPE_CODE_XRA;
export const GDT_TSS32_FLAGS = DESC_P | DESC_TYPE_TSS_BUSY;

/** Boot GDT slots; a selector is its slot times GDT_ENTRY_SIZE (RPL 0, TI 0). */
export const GDT_ENTRY_NULL = 0;
export const GDT_ENTRY_BOOT_CS = 1;
export const GDT_ENTRY_BOOT_DS = 2;
export const GDT_ENTRY_BOOT_TSS = 3;
/** Entries in the boot GDT, and bytes per entry. */
export const BOOT_GDT_MAX = 4;
export const GDT_ENTRY_SIZE = 8;

// Field positions inside the 64-bit descriptor (SDM vol. 3A Figure 3-8).
const LIMIT_LOW_MASK = 0xffff;
const LIMIT_HIGH_MASK = 0xf_0000;
const BASE_LOW_MASK = 0xff_ffff;
const BASE_HIGH_MASK = 0xff00_0000;
const FLAGS_MASK = 0xf0ff;
const BASE_LOW_SHIFT = 16n;
const LIMIT_HIGH_SHIFT = 32n; // limit bits 19:16 → descriptor bits 51:48
const FLAGS_SHIFT = 40n; // flags bits 15:0 → descriptor bits 55:40
const BASE_HIGH_SHIFT = 32n; // base bits 31:24 → descriptor bits 63:56
/** With G set the 20-bit limit counts 4 KiB pages: the byte limit is (limit << 12) | 0xfff. */
const PAGE_GRANULARITY_SHIFT = 12;
const PAGE_GRANULARITY_FILL = 0xfff;

/**
 * Encodes one segment descriptor (firecracker src/vmm/src/arch/x86_64/regs.rs): `(base&0xff000000)<<32 | (flags&0xf0ff)<<40 |
 * (limit&0xf0000)<<32 | (base&0xffffff)<<16 | (limit&0xffff)`. `base` and `limit` are u32.
 */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  return (
    (BigInt((base & BASE_HIGH_MASK) >>> 0) << BASE_HIGH_SHIFT) |
    (BigInt(flags & FLAGS_MASK) << FLAGS_SHIFT) |
    (BigInt(limit & LIMIT_HIGH_MASK) << LIMIT_HIGH_SHIFT) |
    (BigInt(base & BASE_LOW_MASK) << BASE_LOW_SHIFT) |
    BigInt(limit & LIMIT_LOW_MASK)
  );
}

/** Extracts `width` bits of `entry` starting at bit `lsb`. */
function bits(entry: bigint, lsb: number, width: number): number {
  return Number((entry >> BigInt(lsb)) & ((1n << BigInt(width)) - 1n));
}

/**
 * The kvm_segment for descriptor `entry` in GDT slot `index` (firecracker
 * kvm_segment_from_gdt). Invariants: the limit is the byte limit KVM's VMCS field wants, so it
 * is scaled when G is set (0xfffff pages → 0xffffffff bytes); a non-present descriptor yields
 * an unusable segment.
 */
export function segmentFromGdt(entry: bigint, index: number): KvmSegment {
  // Bit positions of SDM vol. 3A Figure 3-8: base 39:16 and 63:56, limit 15:0 and 51:48,
  // type 43:40, S 44, DPL 46:45, P 47, AVL 52, L 53, D/B 54, G 55.
  const base = bits(entry, 16, 24) | (bits(entry, 56, 8) << 24);
  const rawLimit = bits(entry, 0, 16) | (bits(entry, 48, 4) << 16);
  const g = bits(entry, 55, 1);
  const present = bits(entry, 47, 1);
  return {
    base: BigInt(base >>> 0),
    limit: g ? ((rawLimit << PAGE_GRANULARITY_SHIFT) | PAGE_GRANULARITY_FILL) >>> 0 : rawLimit,
    selector: index * GDT_ENTRY_SIZE,
    type: bits(entry, 40, 4),
    present,
    dpl: bits(entry, 45, 2),
    db: bits(entry, 54, 1),
    s: bits(entry, 44, 1),
    l: bits(entry, 53, 1),
    g,
    avl: bits(entry, 52, 1),
    unusable: present ? 0 : 1,
    padding: 0,
  };
}

// ================================================================================================
// Boot state
// ================================================================================================

/** Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst) or Xen PVH (32-bit, no paging). */
export type BootProtocol = 'linux64' | 'pvh';

/** Where and how the kernel is entered. */
export interface BootEntry {
  readonly kind: BootProtocol;
  /** Guest physical address of the entry point. */
  readonly addr: number;
}

// --- Control register and EFER bits (SDM vol. 3A §2.5, §2.2.1) ---
/** CR0.PE: protected mode. */
export const X86_CR0_PE = 0x1n;
/** CR0.ET: extension type (hard-wired to 1 on modern CPUs). */
export const X86_CR0_ET = 0x10n;
/** CR0.PG: paging. */
export const X86_CR0_PG = 0x8000_0000n;
/** CR4.PAE: physical address extension, required for long mode. */
export const X86_CR4_PAE = 0x20n;
/** EFER.LME: long mode enable. */
export const EFER_LME = 0x100n;
/** EFER.LMA: long mode active. */
export const EFER_LMA = 0x400n;
/** RFLAGS bit 1 is reserved and always 1. */
export const X86_EFLAGS_FIXED = 0x2n;

// --- Page-table entry bits (SDM vol. 3A §4.5, Table 4-15..4-19) ---
/** Present. */
export const PAGE_PRESENT = 0x1n;
/** Read/write. */
export const PAGE_RW = 0x2n;
/** PS in a PDE: the entry maps a 2 MiB page directly. */
export const PAGE_PSE = 0x80n;
/** Entries in one page-table page, and the size a PDE with PS maps. */
export const PAGE_TABLE_ENTRIES = 512;
export const LARGE_PAGE_SHIFT = 21n;
const PTE_SIZE = 8;

/**
 * General-purpose registers at entry (firecracker src/vmm/src/arch/x86_64/regs.rs). Linux: `rip=entry, rsp=rbp=BOOT_STACK_POINTER,
 * rsi=ZERO_PAGE_START` (boot_params); PVH: `rip=entry, rbx=PVH_INFO_START` (hvm_start_info).
 * Fields not returned must be zero (VcpuFd.setRegs zero-fills).
 */
export function bootRegs(entry: BootEntry): Partial<KvmRegs> {
  const rip = BigInt(entry.addr);
  if (entry.kind === 'pvh') return { rflags: X86_EFLAGS_FIXED, rip, rbx: BigInt(PVH_INFO_START) };
  return {
    rflags: X86_EFLAGS_FIXED,
    rip,
    rsp: BigInt(BOOT_STACK_POINTER),
    rbp: BigInt(BOOT_STACK_POINTER),
    rsi: BigInt(ZERO_PAGE_START),
  };
}

/** Largest 20-bit descriptor limit: with G set it spans 4 GiB (Linux boot GDT). */
export const GDT_LIMIT_MAX_PAGES = 0xfffff;
/** PVH's flat 4 GiB limit, given in bytes (gdtEntry keeps its low 20 bits, the same value). */
export const GDT_LIMIT_FLAT_BYTES = 0xffff_ffff;
/** Limit of a 32-bit TSS: 104 bytes (SDM vol. 3A §7.2.1) minus one. */
export const TSS32_LIMIT = 0x67;

/** The four boot GDT descriptors for `kind` (firecracker src/vmm/src/arch/x86_64/regs.rs: NULL, CODE, DATA, TSS). */
export function bootGdt(kind: BootProtocol): bigint[] {
  const nul = gdtEntry(0, 0, 0);
  if (kind === 'pvh') {
    // PVH enters in 32-bit protected mode: flat 4 GiB code/data, a 32-bit TSS.
    return [
      nul,
      gdtEntry(GDT_CODE32_FLAGS, 0, GDT_LIMIT_FLAT_BYTES),
      gdtEntry(GDT_DATA_FLAGS, 0, GDT_LIMIT_FLAT_BYTES),
      gdtEntry(GDT_TSS32_FLAGS, 0, TSS32_LIMIT),
    ];
  }
  return [
    nul,
    gdtEntry(GDT_CODE64_FLAGS, 0, GDT_LIMIT_MAX_PAGES),
    gdtEntry(GDT_DATA_FLAGS, 0, GDT_LIMIT_MAX_PAGES),
    gdtEntry(GDT_TSS64_FLAGS, 0, GDT_LIMIT_MAX_PAGES),
  ];
}

/** GDTR/IDTR limits: the last valid byte offset of each table. */
export const BOOT_GDT_LIMIT = BOOT_GDT_MAX * GDT_ENTRY_SIZE - 1;
export const BOOT_IDT_LIMIT = GDT_ENTRY_SIZE - 1;

/** Writes the boot GDT at BOOT_GDT_START and one zero IDT entry at BOOT_IDT_START. */
export function writeGdtIdt(mem: GuestMemory, kind: BootProtocol): void {
  bootGdt(kind).forEach((e, i) => must(mem.writeU64(BOOT_GDT_START + i * GDT_ENTRY_SIZE, e)));
  must(mem.writeU64(BOOT_IDT_START, 0n));
}

/**
 * Identity-maps the first 1 GiB with 2 MiB pages (firecracker src/vmm/src/arch/x86_64/regs.rs): PML4[0] → PDPTE, PDPTE[0] →
 * PDE, PDE[i] = (i << 21) | PS | RW | P. Only the Linux 64-bit entry uses these tables.
 */
export function writeIdentityPageTables(mem: GuestMemory): void {
  must(mem.writeU64(PML4_START, BigInt(PDPTE_START) | PAGE_RW | PAGE_PRESENT));
  must(mem.writeU64(PDPTE_START, BigInt(PDE_START) | PAGE_RW | PAGE_PRESENT));
  for (let i = 0; i < PAGE_TABLE_ENTRIES; i++) {
    must(mem.writeU64(PDE_START + i * PTE_SIZE, (BigInt(i) << LARGE_PAGE_SHIFT) | PAGE_PSE | PAGE_RW | PAGE_PRESENT));
  }
}

/**
 * Special registers at entry, derived from `current` (KVM_GET_SREGS output, so the reset CR0
 * bits CD/NW/ET survive on the Linux path). Returns a new object; `current` is not modified.
 * Linux: CR0 |= PE|PG, CR4 |= PAE, EFER |= LME|LMA, CR3 = PML4_START (the caller also writes
 * the page tables). PVH: CR0 = PE|ET, CR4 = 0, EFER unchanged, no paging.
 */
export function bootSregs(current: KvmSregs, kind: BootProtocol): KvmSregs {
  const gdt = bootGdt(kind);
  const code = segmentFromGdt(gdt[GDT_ENTRY_BOOT_CS]!, GDT_ENTRY_BOOT_CS);
  const data = segmentFromGdt(gdt[GDT_ENTRY_BOOT_DS]!, GDT_ENTRY_BOOT_DS);
  const tss = segmentFromGdt(gdt[GDT_ENTRY_BOOT_TSS]!, GDT_ENTRY_BOOT_TSS);
  const s: KvmSregs = {
    ...current,
    cs: code,
    ds: { ...data }, es: { ...data }, fs: { ...data }, gs: { ...data }, ss: { ...data },
    tr: tss,
    gdt: { ...current.gdt, base: BigInt(BOOT_GDT_START), limit: BOOT_GDT_LIMIT },
    idt: { ...current.idt, base: BigInt(BOOT_IDT_START), limit: BOOT_IDT_LIMIT },
  };
  if (kind === 'pvh') {
    s.cr0 = X86_CR0_PE | X86_CR0_ET;
    s.cr4 = 0n;
    return s;
  }
  s.cr0 = BigInt(current.cr0) | X86_CR0_PE | X86_CR0_PG;
  s.efer = BigInt(current.efer) | EFER_LME | EFER_LMA;
  s.cr3 = BigInt(PML4_START);
  s.cr4 = BigInt(current.cr4) | X86_CR4_PAE;
  return s;
}

/** x87 control word after FNINIT (all exceptions masked, 64-bit precision). */
export const FPU_FCW_DEFAULT = 0x37f;
/** MXCSR reset value (all SSE exceptions masked). */
export const MXCSR_DEFAULT = 0x1f80;

/** The FPU fields KVM_SET_FPU gets at boot (firecracker src/vmm/src/arch/x86_64/regs.rs); every other field is zero. */
export interface BootFpu {
  fcw: number;
  mxcsr: number;
}

/** FPU state at entry: `fcw=0x37f, mxcsr=0x1f80`, rest 0. */
export function bootFpu(): BootFpu {
  return { fcw: FPU_FCW_DEFAULT, mxcsr: MXCSR_DEFAULT };
}

// --- MSR indices (arch/x86/include/asm/msr-index.h) ---
export const MSR_IA32_TSC = 0x10;
export const MSR_IA32_SYSENTER_CS = 0x174;
export const MSR_IA32_SYSENTER_ESP = 0x175;
export const MSR_IA32_SYSENTER_EIP = 0x176;
export const MSR_IA32_MISC_ENABLE = 0x1a0;
export const MSR_MTRRdefType = 0x2ff;
export const MSR_STAR = 0xc000_0081;
export const MSR_LSTAR = 0xc000_0082;
export const MSR_CSTAR = 0xc000_0083;
export const MSR_SYSCALL_MASK = 0xc000_0084;
export const MSR_KERNEL_GS_BASE = 0xc000_0102;
/** IA32_MISC_ENABLE bit 0: fast-string operations. */
export const MSR_IA32_MISC_ENABLE_FAST_STRING = 1n << 0n;
/** IA32_MTRR_DEF_TYPE bit 11: MTRRs enabled; bits 7:0 the default memory type. */
export const MTRR_DEF_TYPE_ENABLE = 1n << 11n;
/** Memory type write-back (SDM vol. 3A Table 11-8). */
export const MTRR_TYPE_WRBACK = 6n;

/** One KVM_SET_MSRS entry. */
export interface MsrEntry {
  index: number;
  data: bigint;
}

/**
 * The boot MSRs (firecracker create_boot_msr_entries); KVM_SET_MSRS must accept
 * all of them. SYSENTER/SYSCALL/TSC start at 0, MISC_ENABLE has fast strings on, and
 * MTRRdefType enables MTRRs with write-back as the default type (0x806).
 */
export function bootMsrs(): MsrEntry[] {
  const zero = [
    MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
    MSR_STAR, MSR_CSTAR, MSR_KERNEL_GS_BASE, MSR_SYSCALL_MASK, MSR_LSTAR,
    MSR_IA32_TSC,
  ];
  return [
    ...zero.map((index) => ({ index, data: 0n })),
    { index: MSR_IA32_MISC_ENABLE, data: MSR_IA32_MISC_ENABLE_FAST_STRING },
    { index: MSR_MTRRdefType, data: MTRR_DEF_TYPE_ENABLE | MTRR_TYPE_WRBACK },
  ];
}

// --- Local APIC registers (arch/x86/include/asm/apicdef.h) ---
/** Size of the LAPIC register page (KVM_APIC_REG_SIZE). */
export const KVM_APIC_REG_SIZE = 0x400;
/** LVT LINT0 and LINT1 register offsets. */
export const APIC_LVT0 = 0x350;
export const APIC_LVT1 = 0x360;
/** LVT delivery mode field, bits 10:8. */
export const APIC_DELIVERY_MODE_SHIFT = 8;
export const APIC_DELIVERY_MODE_MASK = 0x7 << APIC_DELIVERY_MODE_SHIFT;
/** Delivery modes. */
export const APIC_MODE_NMI = 0x4;
export const APIC_MODE_EXTINT = 0x7;

/** Returns `reg` with its LVT delivery mode (bits 10:8) replaced by `mode`, other bits kept. */
export function setApicDeliveryMode(reg: number, mode: number): number {
  return ((reg & ~APIC_DELIVERY_MODE_MASK) | (mode << APIC_DELIVERY_MODE_SHIFT)) >>> 0;
}

/**
 * Rewrites a KVM_GET_LAPIC register page in place (firecracker src/vmm/src/arch/x86_64/regs.rs): LINT0 → ExtINT (the 8259
 * path), LINT1 → NMI. Only bits 10:8 of each register change.
 */
export function setLapicLints(lapicRegs: Uint8Array): void {
  if (lapicRegs.length < KVM_APIC_REG_SIZE) {
    throw new RangeError(`LAPIC register page is ${lapicRegs.length} bytes, expected ${KVM_APIC_REG_SIZE}`);
  }
  const v = new DataView(lapicRegs.buffer, lapicRegs.byteOffset, lapicRegs.byteLength);
  v.setUint32(APIC_LVT0, setApicDeliveryMode(v.getUint32(APIC_LVT0, true), APIC_MODE_EXTINT), true);
  v.setUint32(APIC_LVT1, setApicDeliveryMode(v.getUint32(APIC_LVT1, true), APIC_MODE_NMI), true);
}
