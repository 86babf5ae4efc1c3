/**
 * x86_64 guest physical memory layout, Firecracker's (firecracker
 * src/vmm/src/arch/x86_64/layout.rs). Every fixed guest address Kindling uses is here.
 */
import type { RamRange } from '../../memory/guest-memory.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** GDT (4 entries) and IDT (one zero entry) used at boot. */
export const BOOT_GDT_START = 0x500;
export const BOOT_IDT_START = 0x520;
/** PVH start info, its module list and memory map. */
export const PVH_INFO_START = 0x6000;
export const MODLIST_START = 0x6040;
export const MEMMAP_START = 0x7000;
/** Linux zero page (struct boot_params). */
export const ZERO_PAGE_START = 0x7000;
/** Boot stack pointer (RSP = RBP). */
export const BOOT_STACK_POINTER = 0x8ff0;
/** Identity page tables for the 64-bit Linux entry. */
export const PML4_START = 0x9000;
export const PDPTE_START = 0xa000;
export const PDE_START = 0xb000;
/** Kernel command line and its maximum size including the NUL. */
export const CMDLINE_START = 0x20000;
export const CMDLINE_MAX_SIZE = 2048;
/** MP table + ACPI tables live in [SYSTEM_MEM_START, SYSTEM_MEM_START + SYSTEM_MEM_SIZE). */
export const SYSTEM_MEM_START = 0x9fc00;
export const SYSTEM_MEM_SIZE = 0xe0000 - SYSTEM_MEM_START;
/** ACPI RSDP, fixed. */
export const RSDP_ADDR = 0xe0000;
/**
 * The VMGenID generation id (16 bytes, 8-aligned) and the VMClock page (4 KiB, page-aligned),
 * where Firecracker's system-memory allocator puts them: `AllocPolicy::LastMatch` from the top
 * of [SYSTEM_MEM_START, RSDP_ADDR), VMGenID first (devices/acpi/vmgenid.rs, vmclock.rs, attached
 * in that order by builder.rs). The MP and ACPI tables are allocated first-fit below them.
 */
export const VMGENID_MEM_SIZE = 16;
export const VMGENID_ADDR = RSDP_ADDR - VMGENID_MEM_SIZE; // 0xdfff0, already 8-aligned
export const VMCLOCK_SIZE = 0x1000;
export const VMCLOCK_ADDR = Math.floor((VMGENID_ADDR - VMCLOCK_SIZE) / VMCLOCK_SIZE) * VMCLOCK_SIZE; // 0xde000
/** Lowest address a kernel may be loaded at. */
export const HIMEM_START = 0x100000;
/** The 32-bit MMIO gap: no RAM in [MMIO32_MEM_START, 4 GiB). */
export const MMIO32_MEM_START = 0xc000_0000;
export const MMIO32_MEM_SIZE = 4 * GiB - MMIO32_MEM_START;
/** The boot-timer device (with --boot-timer) and the first virtio-mmio device slot. */
export const BOOT_DEVICE_MEM_START = MMIO32_MEM_START;
export const VIRTIO_MMIO_START = MMIO32_MEM_START + 0x1000;
export const VIRTIO_MMIO_SIZE = 0x1000;
/** PCI MMCONFIG (ECAM), always reserved in e820. */
export const PCI_MMCONFIG_START = 0xeec0_0000;
export const PCI_MMCONFIG_SIZE = 256 * MiB;
/** ECAM bytes of one PCI segment (bus 0 only: 32 devices × 8 functions × 4 KiB), Firecracker's. */
export const PCI_MMIO_CONFIG_SIZE_PER_SEGMENT = 4096 * 256;
/**
 * The PCI host bridge's 32-bit memory window (the DSDT's _CRS): Firecracker's mmio32
 * allocator range, after the boot-timer page up to the ECAM (layout.rs MEM_32BIT_DEVICES_*).
 */
export const MEM_32BIT_DEVICES_START = MMIO32_MEM_START + 0x1000;
export const MEM_32BIT_DEVICES_SIZE = PCI_MMCONFIG_START - MEM_32BIT_DEVICES_START;
/** IOAPIC and LAPIC register pages. */
export const IOAPIC_ADDR = 0xfec0_0000;
export const APIC_ADDR = 0xfee0_0000;
/** The 64-bit MMIO gap [256 GiB, 512 GiB): RAM beyond 256 GiB resumes at 512 GiB. */
export const MMIO64_MEM_START = 256 * GiB;
export const MMIO64_MEM_SIZE = 256 * GiB;
/**
 * Device memory past the 64-bit MMIO gap (firecracker arch/x86_64/layout.rs
 * FIRST_ADDR_PAST_64BITS_MMIO, PAST_64BITS_MMIO_SIZE; vstate/resources.rs `past_mmio64_memory`):
 * the virtio-mem hotplug region and the virtio-pmem windows are allocated first-fit here.
 */
export const FIRST_ADDR_PAST_64BITS_MMIO = MMIO64_MEM_START + MMIO64_MEM_SIZE;
export const PAST_64BITS_MMIO_SIZE = 512 * GiB;
/** virtio-pmem windows are 2 MiB-aligned in address and size (firecracker pmem/device.rs `Pmem::ALIGNMENT`). */
export const PMEM_ALIGNMENT = 2 * MiB;
/** The hotplug region is aligned to the default slot size (firecracker builder.rs `allocate_virtio_mem_address`). */
export const VIRTIO_MEM_REGION_ALIGNMENT = 128 * MiB;
/** The TSS address KVM_SET_TSS_ADDR gets (three pages below 4 GiB). */
export const KVM_TSS_ADDRESS = 0xfffb_d000;
/** Guest page size (firecracker arch/mod.rs GUEST_PAGE_SIZE); the initrd is aligned to it. */
export const GUEST_PAGE_SIZE = 0x1000;
/** First address a 32-bit pointer cannot hold (firecracker FIRST_ADDR_PAST_32BITS). */
export const FIRST_ADDR_PAST_32BITS = 4 * GiB;

/**
 * Interrupt lines (firecracker src/vmm/src/arch/x86_64/layout.rs): KVM's default routing maps GSI n to IOAPIC pin n for the
 * IOAPIC's IOAPIC_NUM_PINS pins; legacy devices use fixed GSIs, and the rest,
 * GSI_LEGACY_START..=GSI_LEGACY_END, go in attach order (builder.rs): the virtio-mmio devices
 * first, then VMGenID and VMClock (`interruptLayout`).
 */
export const IOAPIC_NUM_PINS = 24;
export const GSI_LEGACY_START = 5;
export const GSI_LEGACY_END = IOAPIC_NUM_PINS - 1;
export const I8042_GSI = 1;
/**
 * MSI GSIs (virtio-pci MSI-X vectors) start after the IOAPIC's pins; each PCI device gets
 * MSI_GSIS_PER_DEVICE of them (one vector per queue plus the config vector: the balloon's 5
 * queues are the most).
 */
export const MSI_GSI_START = IOAPIC_NUM_PINS;
export const MSI_GSIS_PER_DEVICE = 8;
export const SERIAL_COM1_GSI = 4;
/** The GSI of each device that takes one from the legacy range, in Firecracker's order. */
export interface InterruptLayout {
  /** One GSI per virtio-mmio device, in attach order. */
  readonly virtio: readonly number[];
  readonly vmgenid: number;
  readonly vmclock: number;
}

/**
 * Hands out GSI_LEGACY_START.. to `virtioDevices` devices and then VMGenID and VMClock, as
 * Firecracker's ResourceAllocator does (`allocate_gsi_legacy`, vstate/resources.rs): so 17
 * virtio devices at most. Returns null when the range is too small.
 */
export function interruptLayout(virtioDevices: number): InterruptLayout | null {
  const virtio = Array.from({ length: virtioDevices }, (_, i) => GSI_LEGACY_START + i);
  const vmgenid = GSI_LEGACY_START + virtioDevices;
  const vmclock = vmgenid + 1;
  return vmclock > GSI_LEGACY_END ? null : { virtio, vmgenid, vmclock };
}

/**
 * Legacy port IO (firecracker src/vmm/src/device_manager/legacy.rs): COM1 at 0x3f8..0x3ff
 * (a 16550A has 8 registers), i8042 data at 0x60 and status/command at 0x64; the i8042 is put
 * on the port bus as one range of I8042_BUS_PORTS ports from its data port (0x60..0x64).
 */
export const SERIAL_COM1_PORT = 0x3f8;
export const SERIAL_PORT_SIZE = 8;
export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;
export const I8042_BUS_PORTS = 5;

/**
 * The RAM ranges for a guest of `bytes` bytes: [0, min(bytes, 3 GiB)), the rest from 4 GiB
 * up to 256 GiB, then from 512 GiB (firecracker src/vmm/src/arch/x86_64/layout.rs).
 */
export function ramRanges(bytes: number): RamRange[] {
  const out: RamRange[] = [];
  const low = Math.min(bytes, MMIO32_MEM_START);
  out.push({ gpa: 0, size: low });
  let rest = bytes - low;
  if (rest > 0) {
    const mid = Math.min(rest, MMIO64_MEM_START - 4 * GiB);
    out.push({ gpa: 4 * GiB, size: mid });
    rest -= mid;
  }
  if (rest > 0) out.push({ gpa: MMIO64_MEM_START + MMIO64_MEM_SIZE, size: rest });
  return out;
}

/** Where the device memory past the 64-bit MMIO gap lies: the hotplug region and each pmem window. */
export interface DeviceMemoryLayout {
  /** The virtio-mem region, when memory hotplug is configured. */
  readonly hotplug: RamRange | null;
  /** One window per pmem device, in configuration order (each size rounded up to PMEM_ALIGNMENT). */
  readonly pmem: readonly RamRange[];
}

/**
 * Allocates the past-64-bit-MMIO device memory as Firecracker's builder does: the hotplug
 * region first (build_microvm_for_boot allocates it before any device), aligned to
 * VIRTIO_MEM_REGION_ALIGNMENT, then each pmem window in attach order, 2 MiB-aligned. The
 * window starts at FIRST_ADDR_PAST_64BITS_MMIO, or past guest RAM where RAM reaches it (a
 * guest of more than 256 GiB). Returns null when the window cannot hold them all.
 */
export function deviceMemoryLayout(ramBytes: number, hotplugBytes: number | null, pmemBytes: readonly number[]): DeviceMemoryLayout | null {
  if (hotplugBytes === null && pmemBytes.length === 0) return { hotplug: null, pmem: [] };
  const ramEnd = ramRanges(ramBytes).reduce((end, r) => Math.max(end, r.gpa + r.size), 0);
  const windowEnd = FIRST_ADDR_PAST_64BITS_MMIO + PAST_64BITS_MMIO_SIZE;
  let next = Math.max(FIRST_ADDR_PAST_64BITS_MMIO, ramEnd);
  const take = (size: number, align: number): RamRange => {
    const gpa = Math.ceil(next / align) * align;
    next = gpa + size;
    return { gpa, size };
  };
  const hotplug = hotplugBytes === null ? null : take(hotplugBytes, VIRTIO_MEM_REGION_ALIGNMENT);
  const pmem = pmemBytes.map((b) => take(Math.ceil(b / PMEM_ALIGNMENT) * PMEM_ALIGNMENT, PMEM_ALIGNMENT));
  return next > windowEnd ? null : { hotplug, pmem };
}
