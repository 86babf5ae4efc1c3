/**
 * The DSDT definition block: the devices a guest cannot enumerate by itself (firecracker
 * src/vmm/src/acpi/mod.rs; device_manager/mmio.rs add_virtio_aml and device_manager/legacy.rs
 * append_aml_bytes).
 *
 * Stock distribution kernels (e.g. Debian's) are built without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES
 * and find virtio-mmio transports only here: Linux's virtio_mmio platform driver matches the
 * ACPI id "LNRO0005" (drivers/virtio/virtio_mmio.c, virtio_mmio_acpi_match) and takes the
 * register window and interrupt from _CRS. The serial port and i8042 are matched by the
 * PNP ACPI layer through their EISA ids.
 *
 * Order (Firecracker's acpi/mod.rs `build_dsdt`): the virtio devices in attach order, so the
 * root block device is the first one and becomes /dev/vda; then VMGenID `_SB_.VGEN`, VMClock
 * `_SB_.VCLK` and the Generic Event Device `_SB_.GED_` (acpi-devices.ts); then COM1 and PS2_.
 * PS2_ has no _STA method (Firecracker's returns 0x0F), and an absent _STA means "present,
 * enabled, shown, functioning" (ACPI 6.5 §6.3.7).
 */
import { AcpiError } from '../../../errors.js';
import {
  FIRST_ADDR_PAST_32BITS, GSI_LEGACY_END, GSI_LEGACY_START, I8042_COMMAND_PORT, I8042_DATA_PORT, I8042_GSI,
  SERIAL_COM1_GSI, SERIAL_COM1_PORT, SERIAL_PORT_SIZE, VIRTIO_MMIO_SIZE,
} from '../layout.js';
import {
  concat, device, eisaId, integer, interrupt, ioPort, memory32Fixed, name, resourceTemplate, string,
  type AmlBytes, type InterruptFlags,
} from './aml.js';
import { acpiDevicesAml, type AcpiDevicesPlan } from './acpi-devices.js';
import { pciRootAml } from './pci.js';

/** One virtio-mmio transport as the DSDT announces it. */
export interface VirtioMmioAcpiDevice {
  /** Guest physical base of its 4 KiB register window (below 4 GiB). */
  readonly addr: number;
  /** Its GSI = IOAPIC pin, GSI_LEGACY_START..GSI_LEGACY_END. */
  readonly gsi: number;
}

/** ACPI hardware ids. */
export const VIRTIO_MMIO_HID = 'LNRO0005';
export const COM1_HID = 'PNP0501'; // 16550A-compatible serial port
export const PS2_KEYBOARD_HID = 'PNP0303'; // IBM enhanced keyboard (8042)
/** The namespace scope devices live in, and the names Firecracker gives them. */
export const ACPI_SB_SCOPE = '_SB_';
export const COM1_NAME = 'COM1';
export const PS2_NAME = 'PS2_';
/** _UID of COM1, and its _DDN (DOS device name). */
export const COM1_UID = 0;
export const COM1_DDN = 'COM1';
/** Firecracker's _CCA for virtio devices: DMA is cache-coherent (ACPI 6.5 §6.2.17). */
export const VIRTIO_CCA_COHERENT = 1;
/** Port IO descriptors use byte alignment; the i8042 announces its two ports as one byte each. */
export const IO_ALIGN_BYTE = 1;
export const I8042_ACPI_PORT_LENGTH = 1;

/** Every interrupt Kindling announces: edge-triggered, active-high, exclusive (firecracker src/vmm/src/devices/virtio/transport/mmio.rs). */
const EDGE_HIGH_EXCLUSIVE: InterruptFlags = { edge: true, activeLow: false, shared: false };

/** The NameSeg of the device on `gsi`: "V" + three decimal digits of gsi − GSI_LEGACY_START. */
export function virtioDeviceName(gsi: number): string {
  return `V${String(gsi - GSI_LEGACY_START).padStart(3, '0')}`;
}

/** Throws AcpiError unless every device has a distinct legacy GSI and an aligned 32-bit window. */
export function validateVirtioDevices(devices: readonly VirtioMmioAcpiDevice[]): void {
  const gsis = new Set<number>();
  const addrs = new Set<number>();
  for (const d of devices) {
    if (!Number.isInteger(d.gsi) || d.gsi < GSI_LEGACY_START || d.gsi > GSI_LEGACY_END) {
      throw new AcpiError(`virtio-mmio GSI ${d.gsi} outside ${GSI_LEGACY_START}..${GSI_LEGACY_END}`);
    }
    const aligned = Number.isInteger(d.addr) && d.addr >= 0 && d.addr % VIRTIO_MMIO_SIZE === 0;
    if (!aligned || d.addr + VIRTIO_MMIO_SIZE > FIRST_ADDR_PAST_32BITS) {
      throw new AcpiError(`virtio-mmio window 0x${d.addr.toString(16)} is not a 4 KiB-aligned 32-bit address`);
    }
    if (gsis.has(d.gsi)) throw new AcpiError(`two virtio-mmio devices share GSI ${d.gsi}`);
    if (addrs.has(d.addr)) throw new AcpiError(`two virtio-mmio devices share window 0x${d.addr.toString(16)}`);
    gsis.add(d.gsi);
    addrs.add(d.addr);
  }
}

/**
 * Device (_SB_.Vnnn) { _HID "LNRO0005", _UID nnn, _CCA One,
 *   _CRS { Memory32Fixed (ReadWrite, addr, 0x1000), Interrupt (Consumer, Edge, ActiveHigh, Exclusive) {gsi} } }
 */
export function virtioMmioDeviceAml(d: VirtioMmioAcpiDevice): AmlBytes {
  const uid = d.gsi - GSI_LEGACY_START;
  return device(`${ACPI_SB_SCOPE}.${virtioDeviceName(d.gsi)}`, [
    name('_HID', string(VIRTIO_MMIO_HID)),
    name('_UID', integer(uid)),
    name('_CCA', integer(VIRTIO_CCA_COHERENT)),
    name('_CRS', resourceTemplate([memory32Fixed(d.addr, VIRTIO_MMIO_SIZE), interrupt(d.gsi, EDGE_HIGH_EXCLUSIVE)])),
  ]);
}

/** Device (_SB_.COM1) { _HID EisaId("PNP0501"), _UID 0, _DDN "COM1", _CRS { Interrupt {4}, IO 0x3f8/8 } }. */
export function com1DeviceAml(): AmlBytes {
  return device(`${ACPI_SB_SCOPE}.${COM1_NAME}`, [
    name('_HID', eisaId(COM1_HID)),
    name('_UID', integer(COM1_UID)),
    name('_DDN', string(COM1_DDN)),
    name('_CRS', resourceTemplate([
      interrupt(SERIAL_COM1_GSI, EDGE_HIGH_EXCLUSIVE),
      ioPort(SERIAL_COM1_PORT, SERIAL_COM1_PORT, IO_ALIGN_BYTE, SERIAL_PORT_SIZE),
    ])),
  ]);
}

/**
 * Device (_SB_.PS2_) { _HID EisaId("PNP0303"), _CRS { IO 0x60/1, IO 0x64/1, Interrupt {1} } }.
 * The command port is listed so Linux's i8042 PNP probe finds both ports.
 */
export function ps2DeviceAml(): AmlBytes {
  return device(`${ACPI_SB_SCOPE}.${PS2_NAME}`, [
    name('_HID', eisaId(PS2_KEYBOARD_HID)),
    name('_CRS', resourceTemplate([
      ioPort(I8042_DATA_PORT, I8042_DATA_PORT, IO_ALIGN_BYTE, I8042_ACPI_PORT_LENGTH),
      ioPort(I8042_COMMAND_PORT, I8042_COMMAND_PORT, IO_ALIGN_BYTE, I8042_ACPI_PORT_LENGTH),
      interrupt(I8042_GSI, EDGE_HIGH_EXCLUSIVE),
    ])),
  ]);
}

/** The whole DSDT definition block (the bytes after the table header). */
export function dsdtDefinitionBlock(virtioDevices: readonly VirtioMmioAcpiDevice[], acpiDevices?: AcpiDevicesPlan, pci = false): AmlBytes {
  validateVirtioDevices(virtioDevices);
  if (acpiDevices && virtioDevices.some((d) => d.gsi === acpiDevices.vmgenid.gsi || d.gsi === acpiDevices.vmclock.gsi)) {
    throw new AcpiError('a virtio-mmio device shares its GSI with VMGenID or VMClock');
  }
  return concat([
    ...virtioDevices.map(virtioMmioDeviceAml), ...(pci ? [pciRootAml()] : []), ...(acpiDevices ? [acpiDevicesAml(acpiDevices)] : []),
    com1DeviceAml(), ps2DeviceAml(),
  ]);
}
