/**
 * The Intel MultiProcessor Specification 1.4 tables (firecracker src/vmm/src/arch/x86_64/mptable.rs and src/vmm/src/acpi/; firecracker
 * arch/x86_64/mptable.rs; struct names from Linux arch/x86/include/asm/mpspec_def.h).
 *
 * Layout, written at SYSTEM_MEM_START (0x9fc00, inside the "last KiB of base memory" Linux
 * scans for "_MP_", MP spec §4):
 *
 *   mpf_intel (16 B) → mpc_table header (44 B)
 *     → one mpc_cpu (20 B) per vCPU → mpc_bus ISA (8 B) → mpc_ioapic (8 B)
 *     → IOAPIC_NUM_PINS × mpc_intsrc (8 B) → 2 × mpc_lintsrc (8 B)
 *
 * Invariants: the 16 bytes of mpf_intel sum to 0 mod 256, and so do the `length` bytes of
 * the configuration table (header + entries); `length` covers exactly the header and the
 * entries. The ACPI tables go right after the MP table (firecracker src/vmm/src/arch/x86_64/mptable.rs and src/vmm/src/acpi/), so `writeMptable`
 * returns the first free address.
 */
import { MptableError } from '../../errors.js';
import { must, type GuestMemory } from '../../memory/guest-memory.js';
import { APIC_ADDR, IOAPIC_ADDR, IOAPIC_NUM_PINS, SYSTEM_MEM_START } from './layout.js';

/** xAPIC ids are 8 bits, 0xff is broadcast and the IOAPIC takes one: 254 CPUs at most. */
export const MAX_SUPPORTED_CPUS = 254;

// --- Signatures and header values (MP spec §4.1, §4.2) ---
/** Floating pointer signature. */
export const SMP_MAGIC_IDENT = '_MP_';
/** Configuration table signature. */
export const MPC_SIGNATURE = 'PCMP';
/** MP spec revision 1.4. */
export const MPC_SPEC = 4;
/** OEM id (8 bytes, space padded) and product id (12 bytes), as Firecracker writes them. */
export const MPC_OEM = 'FC      ';
export const MPC_PRODUCT_ID = '000000000000';
/** mpf_intel.length counts 16-byte paragraphs. */
export const MPF_LENGTH_PARAGRAPHS = 1;

// --- Entry types (mpspec_def.h) ---
export const MP_PROCESSOR = 0;
export const MP_BUS = 1;
export const MP_IOAPIC = 2;
export const MP_INTSRC = 3;
export const MP_LINTSRC = 4;
/** mpc_cpu.cpuflag bits. */
export const CPU_ENABLED = 1;
export const CPU_BOOTPROCESSOR = 2;
/** Local APIC version of an integrated APIC (82489DX is 0x0X). */
export const APIC_VERSION = 0x14;
/** mpc_cpu.cpufeature: family 6, model 0, stepping 0 (CPUID signature layout). */
export const CPU_STEPPING = 0x600;
/** mpc_cpu.featureflag: CPUID.1:EDX bits FPU (0) and APIC (9). */
export const CPU_FEATURE_FPU = 1 << 0;
export const CPU_FEATURE_APIC = 1 << 9;
/** mpc_bus.bustype for ISA (6 bytes, space padded). */
export const BUS_TYPE_ISA = 'ISA   ';
/** mpc_ioapic.flags: usable. */
export const MPC_APIC_USABLE = 1;
/** Interrupt types (enum mp_irq_source_types). */
export const mp_INT = 0;
export const mp_NMI = 1;
export const mp_ExtINT = 3;
/** Polarity/trigger "conforms to the bus" (MP spec Table 4-10). */
export const MP_IRQPOL_DEFAULT = 0;
/** mpc_lintsrc.destapic meaning every local APIC. */
export const MP_APIC_ALL = 0xff;

// --- Structure sizes and field offsets (mpspec_def.h, all little-endian, packed) ---
export const MPF_INTEL_SIZE = 16;
export const MPC_TABLE_SIZE = 44;
export const MPC_CPU_SIZE = 20;
export const MPC_BUS_SIZE = 8;
export const MPC_IOAPIC_SIZE = 8;
export const MPC_INTSRC_SIZE = 8;
export const MPC_LINTSRC_SIZE = 8;
const MPF = { signature: 0, physptr: 4, length: 8, specification: 9, checksum: 10 } as const;
const MPC = { signature: 0, length: 4, spec: 6, checksum: 7, oem: 8, productid: 16, oemcount: 34, lapic: 36 } as const;

/** Bytes the whole MP table takes for `vcpuCount` vCPUs. */
export function mptableSize(vcpuCount: number): number {
  return MPF_INTEL_SIZE + MPC_TABLE_SIZE + MPC_CPU_SIZE * vcpuCount + MPC_BUS_SIZE + MPC_IOAPIC_SIZE +
    MPC_INTSRC_SIZE * IOAPIC_NUM_PINS + MPC_LINTSRC_SIZE * 2;
}

/** The byte that makes `bytes` sum to 0 mod 256 (with the checksum byte itself zero). */
export function checksum8(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

/** Appends little-endian fields to a byte array (MP entries are tiny and fixed). */
class Writer {
  readonly bytes: number[] = [];
  u8(v: number): this { this.bytes.push(v & 0xff); return this; }
  u16(v: number): this { return this.u8(v).u8(v >>> 8); }
  u32(v: number): this { return this.u16(v & 0xffff).u16(v >>> 16); }
  ascii(s: string): this { for (const c of s) this.u8(c.charCodeAt(0)); return this; }
  zeros(n: number): this { for (let i = 0; i < n; i++) this.u8(0); return this; }
}

/** The entries of the configuration table, in Firecracker's order, and how many there are. */
function mpcEntries(vcpuCount: number): { bytes: Uint8Array; count: number } {
  const w = new Writer();
  // The IOAPIC id follows the CPUs' APIC ids (Firecracker uses vcpuCount + 1).
  const ioapicId = vcpuCount + 1;
  for (let id = 0; id < vcpuCount; id++) {
    w.u8(MP_PROCESSOR).u8(id).u8(APIC_VERSION).u8(CPU_ENABLED | (id === 0 ? CPU_BOOTPROCESSOR : 0))
      .u32(CPU_STEPPING).u32(CPU_FEATURE_APIC | CPU_FEATURE_FPU).zeros(8);
  }
  w.u8(MP_BUS).u8(0).ascii(BUS_TYPE_ISA);
  w.u8(MP_IOAPIC).u8(ioapicId).u8(APIC_VERSION).u8(MPC_APIC_USABLE).u32(IOAPIC_ADDR);
  // KVM's default routing: ISA IRQ i → IOAPIC pin i, for every pin (kvm_setup_default_irq_routing).
  for (let irq = 0; irq < IOAPIC_NUM_PINS; irq++) {
    w.u8(MP_INTSRC).u8(mp_INT).u16(MP_IRQPOL_DEFAULT).u8(0).u8(irq).u8(ioapicId).u8(irq);
  }
  // The 8259 reaches the BSP through LINT0; NMIs reach every CPU through LINT1.
  w.u8(MP_LINTSRC).u8(mp_ExtINT).u16(MP_IRQPOL_DEFAULT).u8(0).u8(0).u8(0).u8(0);
  w.u8(MP_LINTSRC).u8(mp_NMI).u16(MP_IRQPOL_DEFAULT).u8(0).u8(0).u8(MP_APIC_ALL).u8(1);
  return { bytes: Uint8Array.from(w.bytes), count: vcpuCount + 1 + 1 + IOAPIC_NUM_PINS + 2 };
}

/**
 * Builds the MP floating pointer and configuration table for `vcpuCount` vCPUs as they sit
 * at guest address `addr` (the floating pointer's physptr is absolute).
 *
 * `oemcount` is the number of entries in the table (MP spec Table 4-2 "Entry Count").
 * Firecracker also counts the floating pointer there (one more); Linux walks the table by
 * `length`, never by this count, so the guest sees no difference.
 */
export function buildMptable(vcpuCount: number, addr: number = SYSTEM_MEM_START): Uint8Array {
  if (!Number.isInteger(vcpuCount) || vcpuCount < 1 || vcpuCount > MAX_SUPPORTED_CPUS) {
    throw new MptableError(`vCPU count ${vcpuCount} outside 1..${MAX_SUPPORTED_CPUS}`);
  }
  const entries = mpcEntries(vcpuCount);
  const out = new Uint8Array(mptableSize(vcpuCount));
  const v = new DataView(out.buffer);
  const ascii = (off: number, s: string): void => { for (let i = 0; i < s.length; i++) out[off + i] = s.charCodeAt(i); };

  // Floating pointer structure (MP spec §4.1).
  ascii(MPF.signature, SMP_MAGIC_IDENT);
  v.setUint32(MPF.physptr, addr + MPF_INTEL_SIZE, true);
  out[MPF.length] = MPF_LENGTH_PARAGRAPHS;
  out[MPF.specification] = MPC_SPEC;
  out[MPF.checksum] = checksum8(out.subarray(0, MPF_INTEL_SIZE));

  // Configuration table header (MP spec §4.2), then its entries.
  const t = MPF_INTEL_SIZE;
  const length = MPC_TABLE_SIZE + entries.bytes.length;
  ascii(t + MPC.signature, MPC_SIGNATURE);
  v.setUint16(t + MPC.length, length, true);
  out[t + MPC.spec] = MPC_SPEC;
  ascii(t + MPC.oem, MPC_OEM);
  ascii(t + MPC.productid, MPC_PRODUCT_ID);
  v.setUint16(t + MPC.oemcount, entries.count, true);
  v.setUint32(t + MPC.lapic, APIC_ADDR, true);
  out.set(entries.bytes, t + MPC_TABLE_SIZE);
  out[t + MPC.checksum] = checksum8(out.subarray(t, t + length));
  return out;
}

/**
 * Writes the MP table for `vcpuCount` vCPUs at `addr` (default SYSTEM_MEM_START) and returns
 * the first address after it, where the ACPI tables start. Throws MptableError for a bad
 * vCPU count and GuestMemoryError when the range is not guest RAM.
 */
export function writeMptable(mem: GuestMemory, vcpuCount: number, addr: number = SYSTEM_MEM_START): number {
  const table = buildMptable(vcpuCount, addr);
  must(mem.write(addr, table));
  return addr + table.length;
}
