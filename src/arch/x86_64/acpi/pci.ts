/**
 * The PCI root bridge in the DSDT (Firecracker devices/pci/pci_segment.rs `Aml for
 * PciSegment`, segment 0): Linux's acpi_pci_root driver binds `_SB_.PC00` by _HID PNP0A08
 * (PCI Express root) / _CID PNP0A03 and takes from _CRS the bus range (bus 0), the
 * configuration ports 0xcf8..0xcff, the ECAM window and the windows it may place BARs in: the
 * 32-bit device range and the 64-bit one Kindling puts virtio-pci BARs in, plus the I/O ports
 * around 0xcf8. _DSM function 5 returning 0 tells the OS to keep the BARs where the VMM put
 * them (PCI Firmware Specification 3.3 §4.6.5).
 *
 * Not described: Firecracker's hotplug slots and _PRT (INTx routing): Kindling's virtio-pci
 * functions use MSI-X only and have no interrupt pin.
 */
import {
  MEM_32BIT_DEVICES_SIZE, MEM_32BIT_DEVICES_START, MMIO64_MEM_SIZE, MMIO64_MEM_START, PCI_MMCONFIG_START,
  PCI_MMIO_CONFIG_SIZE_PER_SEGMENT,
} from '../layout.js';
import {
  arg, buffer, device, eisaId, ifThen, integer, ioPort, lEqual, memory32Fixed, method, name, qwordMemory,
  resourceTemplate, returnValue, wordBusNumber, wordIo, type AmlBytes,
} from './aml.js';

export const PCI_ROOT_NAME = '_SB_.PC00';
export const PCI_EXPRESS_ROOT_HID = 'PNP0A08';
export const PCI_ROOT_CID = 'PNP0A03';
/** The PCI Firmware _DSM UUID e5c937d0-3553-4d7a-9117-ea4d19c3434d, in ACPI's mixed-endian byte order. */
export const PCI_DSM_UUID = Uint8Array.of(
  0xd0, 0x37, 0xc9, 0xe5, 0x53, 0x35, 0x7a, 0x4d, 0x91, 0x17, 0xea, 0x4d, 0x19, 0xc3, 0x43, 0x4d,
);
/** _DSM function 5: "ignore PCI boot configuration" — 0 means keep it. */
const DSM_PRESERVE_BOOT_CONFIG = 5;
/** The type 1 configuration ports and the I/O ranges around them. */
const CONFIG_IO_PORT = 0xcf8;
const CONFIG_IO_SIZE = 8;
const IO_BELOW_CONFIG_END = 0x0cf7;
const IO_ABOVE_CONFIG_START = 0x0d00;
const IO_END = 0xffff;

/** Method (_DSM, 4) { If (Arg0 == UUID) { If (Arg2 == 0) Return (Buffer{0x21}); If (Arg2 == 5) Return (0) } Return (Buffer{0}) }. */
function pciDsm(): AmlBytes {
  return method('_DSM', 4, false, [
    ifThen(lEqual(arg(0), buffer(PCI_DSM_UUID)), [
      ifThen(lEqual(arg(2), integer(0)), [returnValue(buffer(Uint8Array.of(0x21)))]),
      ifThen(lEqual(arg(2), integer(DSM_PRESERVE_BOOT_CONFIG)), [returnValue(integer(0))]),
    ]),
    returnValue(buffer(Uint8Array.of(0))),
  ]);
}

/** Device (_SB_.PC00) for PCI segment 0 with bus 0. */
export function pciRootAml(): AmlBytes {
  return device(PCI_ROOT_NAME, [
    name('_HID', eisaId(PCI_EXPRESS_ROOT_HID)),
    name('_CID', eisaId(PCI_ROOT_CID)),
    name('_ADR', integer(0)),
    name('_SEG', integer(0)),
    name('_UID', integer(0)),
    name('_CCA', integer(1)),
    name('SUPP', integer(0)),
    method('_PXM', 0, false, [returnValue(integer(0))]),
    pciDsm(),
    name('_CRS', resourceTemplate([
      wordBusNumber(0, 0),
      ioPort(CONFIG_IO_PORT, CONFIG_IO_PORT, 1, CONFIG_IO_SIZE),
      memory32Fixed(PCI_MMCONFIG_START, PCI_MMIO_CONFIG_SIZE_PER_SEGMENT),
      qwordMemory(BigInt(MEM_32BIT_DEVICES_START), BigInt(MEM_32BIT_DEVICES_START + MEM_32BIT_DEVICES_SIZE - 1), { cacheable: false, readWrite: true }),
      qwordMemory(BigInt(MMIO64_MEM_START), BigInt(MMIO64_MEM_START + MMIO64_MEM_SIZE - 1), { cacheable: false, readWrite: true }),
      wordIo(0, IO_BELOW_CONFIG_END),
      wordIo(IO_ABOVE_CONFIG_START, IO_END),
    ])),
  ]);
}

