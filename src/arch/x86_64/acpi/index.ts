/**
 * Places the ACPI tables in guest memory (firecracker src/vmm/src/arch/x86_64/layout.rs; firecracker acpi/mod.rs
 * create_acpi_tables).
 *
 * Layout: tables are allocated first-fit with byte alignment from `startAddr` (the end of
 * the MP table) inside the system data region [SYSTEM_MEM_START, SYSTEM_MEM_START +
 * SYSTEM_MEM_SIZE), in Firecracker's order DSDT, FADT, MADT, MCFG, XSDT; the RSDP sits at the
 * fixed RSDP_ADDR (0xe0000), which is also `boot_params.acpi_rsdp_addr`. The chain a guest
 * follows is RSDP → XSDT → {FADT → DSDT, MADT, MCFG}.
 *
 * VMGenID and VMClock sit at the top of the region (LastMatch in Firecracker, layout.ts
 * VMGENID_ADDR / VMCLOCK_ADDR): the tables must end below them.
 */
import { AcpiError } from '../../../errors.js';
import { must, type GuestMemory } from '../../../memory/guest-memory.js';
import { RSDP_ADDR, SYSTEM_MEM_SIZE, SYSTEM_MEM_START } from '../layout.js';
import { dsdtDefinitionBlock, type VirtioMmioAcpiDevice } from './dsdt.js';
import type { AcpiDevicesPlan } from './acpi-devices.js';
import { buildDsdt, buildFadt, buildMadt, buildMcfg, buildRsdp, buildXsdt } from './tables.js';

export type { VirtioMmioAcpiDevice } from './dsdt.js';
export { acpiDevicesPlan, newGeneration, writeAcpiDeviceData, type AcpiDevicesPlan } from './acpi-devices.js';

/** What the ACPI tables describe, and where they may start. */
export interface AcpiConfig {
  /** vCPUs: one MADT Local APIC each (APIC id = index). */
  readonly vcpuCount: number;
  /** virtio-mmio transports in attach order (root block device first). */
  readonly virtioDevices: readonly VirtioMmioAcpiDevice[];
  /** First free byte of the system region: the address `writeMptable` returned. */
  readonly startAddr: number;
  /** VMGenID, VMClock and their GED (absent: none, as in tests of the tables alone). */
  readonly acpiDevices?: AcpiDevicesPlan;
  /** --enable-pci: the PCI root bridge `_SB_.PC00` (pci.ts). */
  readonly pci?: boolean;
}

/** Where each table was written. */
export interface AcpiLayout {
  readonly rsdpAddr: number;
  readonly xsdtAddr: number;
  readonly fadtAddr: number;
  readonly dsdtAddr: number;
  readonly madtAddr: number;
  readonly mcfgAddr: number;
  /** First byte after the last table (XSDT). */
  readonly endAddr: number;
}

/** End of the system data region (exclusive). */
const SYSTEM_MEM_END = SYSTEM_MEM_START + SYSTEM_MEM_SIZE;

/** First-fit byte allocator over [start, end), end at most SYSTEM_MEM_END. */
class SystemRegionAllocator {
  private next: number;
  constructor(start: number, private readonly limit: number) {
    if (!Number.isInteger(start) || start < SYSTEM_MEM_START || start > limit) {
      throw new AcpiError(`ACPI start 0x${start.toString(16)} is outside the system region`);
    }
    this.next = start;
  }
  /** Reserves `len` bytes; throws AcpiError when the region is full. */
  allocate(len: number, what: string): number {
    if (this.next + len > this.limit) {
      const at = `0x${this.next.toString(16)}`;
      throw new AcpiError(`${what} (${len} bytes at ${at}) does not fit below 0x${this.limit.toString(16)}`);
    }
    const at = this.next;
    this.next += len;
    return at;
  }
  get end(): number { return this.next; }
}

/**
 * Builds and writes every ACPI table; returns their addresses. Throws AcpiError for a bad
 * device list or vCPU count or when the tables do not fit, and GuestMemoryError when the
 * system region is not guest RAM.
 */
export function writeAcpiTables(mem: GuestMemory, cfg: AcpiConfig): AcpiLayout {
  const d = cfg.acpiDevices;
  const alloc = new SystemRegionAllocator(cfg.startAddr, d ? Math.min(SYSTEM_MEM_END, d.vmgenid.addr, d.vmclock.addr) : SYSTEM_MEM_END);
  const place = (table: Uint8Array, what: string): number => {
    const at = alloc.allocate(table.length, what);
    must(mem.write(at, table));
    return at;
  };
  const dsdtAddr = place(buildDsdt(dsdtDefinitionBlock(cfg.virtioDevices, d, cfg.pci ?? false)), 'DSDT');
  const fadtAddr = place(buildFadt(dsdtAddr), 'FADT');
  const madtAddr = place(buildMadt(cfg.vcpuCount), 'MADT');
  const mcfgAddr = place(buildMcfg(), 'MCFG');
  const xsdtAddr = place(buildXsdt([fadtAddr, madtAddr, mcfgAddr]), 'XSDT');
  must(mem.write(RSDP_ADDR, buildRsdp(xsdtAddr)));
  return { rsdpAddr: RSDP_ADDR, xsdtAddr, fadtAddr, dsdtAddr, madtAddr, mcfgAddr, endAddr: alloc.end };
}
