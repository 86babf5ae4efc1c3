/**
 * The fixed ACPI tables Firecracker gives an x86_64 guest (firecracker src/vmm/src/arch/x86_64/mptable.rs and src/vmm/src/acpi/; firecracker
 * src/acpi-tables, src/vmm/src/acpi), each built as a byte array with its checksum set.
 * Sections are those of the ACPI 6.5 specification, chapter 5.2; MCFG is from the PCI
 * Firmware Specification 3.x §4.1.2.
 *
 * Invariants: every System Description Table starts with the 36-byte header of §5.2.6, its
 * `length` field equals the array's length and its bytes sum to 0 mod 256; the RSDP's first
 * 20 bytes sum to 0 (ACPI 1.0 checksum) and so do all 36 (extended checksum, §5.2.5.3).
 * Addresses are guest physical addresses (JS numbers < 2^53, stored as u64 where the table
 * has 64-bit fields).
 */
import { AcpiError } from '../../../errors.js';
import { APIC_ADDR, IOAPIC_ADDR, PCI_MMCONFIG_START } from '../layout.js';
import { checksum8 } from '../mptable.js';

// --- Identity (firecracker src/vmm/src/arch/x86_64/mptable.rs and src/vmm/src/acpi/; firecracker acpi/mod.rs, acpi-tables/src/lib.rs) ---
/** OEM id of every table, and OEM revision. */
export const ACPI_OEM_ID = 'FIRECK';
export const ACPI_OEM_REVISION = 0;
/** Creator id / revision of the table writer; Firecracker's values, so guests see the same tables. */
export const ACPI_CREATOR_ID = 'FCAT';
export const ACPI_CREATOR_REVISION = 0x2024_0119;
/** FADT Hypervisor Vendor Identity (§5.2.9, offset 268). */
export const HYPERVISOR_VENDOR_ID = 'FIRECKVM';

// --- Signatures (§5.2.5, §5.2.6 Table 5.5) and OEM table ids (firecracker src/vmm/src/arch/x86_64/mptable.rs and src/vmm/src/acpi/, spelled as Firecracker does) ---
export const ACPI_SIG_RSDP = 'RSD PTR ';
export const ACPI_SIG_XSDT = 'XSDT';
export const ACPI_SIG_FADT = 'FACP';
export const ACPI_SIG_MADT = 'APIC';
export const ACPI_SIG_MCFG = 'MCFG';
export const ACPI_SIG_DSDT = 'DSDT';
export const OEM_TABLE_ID_XSDT = 'FCMVXSDT';
export const OEM_TABLE_ID_FADT = 'FCVMFADT';
export const OEM_TABLE_ID_MADT = 'FCVMMADT';
export const OEM_TABLE_ID_MCFG = 'FCMVMCFG';
export const OEM_TABLE_ID_DSDT = 'FCVMDSDT';

// --- Revisions ---
export const RSDP_REVISION = 2;
export const XSDT_REVISION = 1;
export const FADT_REVISION = 6;
export const FADT_MINOR_REVISION = 5;
export const MADT_REVISION = 6;
export const MCFG_REVISION = 1;
export const DSDT_REVISION = 2;

// --- System Description Table header (§5.2.6) ---
export const ACPI_HEADER_SIZE = 36;
/** Header field offsets. */
export const SDT = {
  signature: 0, length: 4, revision: 8, checksum: 9, oemId: 10, oemTableId: 16,
  oemRevision: 24, creatorId: 28, creatorRevision: 32,
} as const;

/** Writes `s` as ASCII at `off` (fixed-width fields: the caller passes exactly-sized strings). */
function ascii(out: Uint8Array, off: number, s: string): void {
  for (let i = 0; i < s.length; i++) out[off + i] = s.charCodeAt(i);
}

/**
 * A complete System Description Table: the §5.2.6 header followed by `body`, with `length`
 * and `checksum` filled in.
 */
export function sdt(signature: string, revision: number, oemTableId: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(ACPI_HEADER_SIZE + body.length);
  const v = new DataView(out.buffer);
  ascii(out, SDT.signature, signature);
  v.setUint32(SDT.length, out.length, true);
  out[SDT.revision] = revision;
  ascii(out, SDT.oemId, ACPI_OEM_ID);
  ascii(out, SDT.oemTableId, oemTableId);
  v.setUint32(SDT.oemRevision, ACPI_OEM_REVISION, true);
  ascii(out, SDT.creatorId, ACPI_CREATOR_ID);
  v.setUint32(SDT.creatorRevision, ACPI_CREATOR_REVISION, true);
  out.set(body, ACPI_HEADER_SIZE);
  out[SDT.checksum] = checksum8(out);
  return out;
}

// --- RSDP (§5.2.5.3) ---
export const RSDP_SIZE = 36;
/** Bytes covered by the ACPI 1.0 checksum. */
export const RSDP_V1_SIZE = 20;
/** RSDP field offsets. */
export const RSDP = {
  signature: 0, checksum: 8, oemId: 9, revision: 15, rsdtAddress: 16, length: 20, xsdtAddress: 24,
  extendedChecksum: 32,
} as const;

/** The Root System Description Pointer (revision 2, no RSDT) pointing at the XSDT. */
export function buildRsdp(xsdtAddr: number): Uint8Array {
  const out = new Uint8Array(RSDP_SIZE);
  const v = new DataView(out.buffer);
  ascii(out, RSDP.signature, ACPI_SIG_RSDP);
  ascii(out, RSDP.oemId, ACPI_OEM_ID);
  out[RSDP.revision] = RSDP_REVISION;
  v.setUint32(RSDP.length, RSDP_SIZE, true);
  v.setBigUint64(RSDP.xsdtAddress, BigInt(xsdtAddr), true);
  out[RSDP.checksum] = checksum8(out.subarray(0, RSDP_V1_SIZE));
  // With the v1 checksum in place the first 20 bytes sum to 0, so this covers all 36.
  out[RSDP.extendedChecksum] = checksum8(out);
  return out;
}

// --- XSDT (§5.2.8) ---
/** The Extended System Description Table: one 64-bit pointer per table. */
export function buildXsdt(tableAddrs: readonly number[]): Uint8Array {
  const body = new Uint8Array(8 * tableAddrs.length);
  const v = new DataView(body.buffer);
  tableAddrs.forEach((a, i) => v.setBigUint64(8 * i, BigInt(a), true));
  return sdt(ACPI_SIG_XSDT, XSDT_REVISION, OEM_TABLE_ID_XSDT, body);
}

// --- FADT (§5.2.9, Table 5.9) ---
export const FADT_SIZE = 276;
/** Field offsets from the start of the table (header included). */
export const FADT = {
  dsdt: 40, iapcBootArch: 109, flags: 112, minorRevision: 131, xDsdt: 140, hypervisorVendorId: 268,
} as const;
/** FADT Fixed Feature Flags (§5.2.9.1, Table 5.10). */
export const FADT_F_PWR_BUTTON = 1 << 4;
export const FADT_F_SLP_BUTTON = 1 << 5;
export const FADT_F_HW_REDUCED_ACPI = 1 << 20;
/** IA-PC Boot Architecture Flags (§5.2.9.3, Table 5.11). */
export const IAPC_BOOT_ARCH_VGA_NOT_PRESENT = 1 << 2;

/**
 * The Fixed ACPI Description Table (revision 6.5): hardware-reduced ACPI (no PM1/GPE
 * blocks, so no SCI and no ACPI power-off), power and sleep buttons absent (as control-method
 * devices, which the DSDT does not define), no VGA, and the DSDT through X_DSDT only (the
 * 32-bit DSDT field stays 0, which OSPM then ignores).
 */
export function buildFadt(dsdtAddr: number): Uint8Array {
  const body = new Uint8Array(FADT_SIZE - ACPI_HEADER_SIZE);
  const v = new DataView(body.buffer);
  const at = (off: number): number => off - ACPI_HEADER_SIZE;
  v.setUint16(at(FADT.iapcBootArch), IAPC_BOOT_ARCH_VGA_NOT_PRESENT, true);
  v.setUint32(at(FADT.flags), FADT_F_HW_REDUCED_ACPI | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON, true);
  body[at(FADT.minorRevision)] = FADT_MINOR_REVISION;
  v.setBigUint64(at(FADT.xDsdt), BigInt(dsdtAddr), true);
  ascii(body, at(FADT.hypervisorVendorId), HYPERVISOR_VENDOR_ID);
  return sdt(ACPI_SIG_FADT, FADT_REVISION, OEM_TABLE_ID_FADT, body);
}

// --- MADT (§5.2.12) ---
/** MADT fields after the header: Local Interrupt Controller Address, Flags. */
export const MADT_FIXED_SIZE = 8;
/** Interrupt controller structure types and sizes (§5.2.12, Table 5.21). */
export const MADT_TYPE_LOCAL_APIC = 0;
export const MADT_TYPE_IO_APIC = 1;
export const MADT_LOCAL_APIC_SIZE = 8;
export const MADT_IO_APIC_SIZE = 12;
/** Local APIC flags bit 0: the processor is usable (§5.2.12.2). */
export const MADT_LAPIC_ENABLED = 1;
/** IOAPIC id in the MADT (Firecracker: 0) and its first GSI. */
export const MADT_IOAPIC_ID = 0;
export const MADT_IOAPIC_GSI_BASE = 0;
/** xAPIC ids are 8 bits and 0xff is broadcast. */
export const MADT_MAX_VCPUS = 254;

/**
 * The Multiple APIC Description Table: LAPIC base, no PCAT_COMPAT flag (Firecracker sets no
 * flags), the IOAPIC, then one enabled Local APIC per vCPU with UID = APIC id = index.
 */
export function buildMadt(vcpuCount: number): Uint8Array {
  if (!Number.isInteger(vcpuCount) || vcpuCount < 1 || vcpuCount > MADT_MAX_VCPUS) {
    throw new AcpiError(`vCPU count ${vcpuCount} outside 1..${MADT_MAX_VCPUS}`);
  }
  const body = new Uint8Array(MADT_FIXED_SIZE + MADT_IO_APIC_SIZE + MADT_LOCAL_APIC_SIZE * vcpuCount);
  const v = new DataView(body.buffer);
  v.setUint32(0, APIC_ADDR, true);
  let off = MADT_FIXED_SIZE;
  body.set([MADT_TYPE_IO_APIC, MADT_IO_APIC_SIZE, MADT_IOAPIC_ID, 0], off);
  v.setUint32(off + 4, IOAPIC_ADDR, true);
  v.setUint32(off + 8, MADT_IOAPIC_GSI_BASE, true);
  off += MADT_IO_APIC_SIZE;
  for (let id = 0; id < vcpuCount; id++, off += MADT_LOCAL_APIC_SIZE) {
    body.set([MADT_TYPE_LOCAL_APIC, MADT_LOCAL_APIC_SIZE, id, id], off);
    v.setUint32(off + 4, MADT_LAPIC_ENABLED, true);
  }
  return sdt(ACPI_SIG_MADT, MADT_REVISION, OEM_TABLE_ID_MADT, body);
}

// --- MCFG (PCI Firmware Specification 3.x §4.1.2) ---
/** Reserved bytes after the header, then 16-byte configuration space allocations. */
export const MCFG_RESERVED_SIZE = 8;
export const MCFG_ALLOCATION_SIZE = 16;
/** One ECAM window: segment 0, buses 0..MCFG_END_BUS (Firecracker: bus 0 only). */
export const MCFG_PCI_SEGMENT = 0;
export const MCFG_START_BUS = 0;
export const MCFG_END_BUS = 0;

/** The PCI Express memory-mapped configuration table for the ECAM at PCI_MMCONFIG_START. */
export function buildMcfg(): Uint8Array {
  const body = new Uint8Array(MCFG_RESERVED_SIZE + MCFG_ALLOCATION_SIZE);
  const v = new DataView(body.buffer);
  v.setBigUint64(MCFG_RESERVED_SIZE, BigInt(PCI_MMCONFIG_START), true);
  v.setUint16(MCFG_RESERVED_SIZE + 8, MCFG_PCI_SEGMENT, true);
  body[MCFG_RESERVED_SIZE + 10] = MCFG_START_BUS;
  body[MCFG_RESERVED_SIZE + 11] = MCFG_END_BUS;
  return sdt(ACPI_SIG_MCFG, MCFG_REVISION, OEM_TABLE_ID_MCFG, body);
}

// --- DSDT (§5.2.11.1) ---
/** The Differentiated System Description Table around an AML definition block. */
export function buildDsdt(definitionBlock: Uint8Array): Uint8Array {
  return sdt(ACPI_SIG_DSDT, DSDT_REVISION, OEM_TABLE_ID_DSDT, definitionBlock);
}
