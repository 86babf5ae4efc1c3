/**
 * PCI configuration space basics (PCI Local Bus 3.0 §6.1, PCI Express Base 4.0 §7.5.1): the
 * type 0 header fields Kindling's functions use, and a builder for a function's 256-byte
 * image with the mask of bits the driver may write. Firecracker's PciConfiguration
 * (src/vmm/src/pci/configuration.rs) is the model: capabilities are 4-byte aligned from 0x40
 * and chained in the order they are added.
 */
import { DeviceStateError } from '../../errors.js';

/** Bytes of a conventional configuration space (ECAM gives 4 KiB; the rest reads 0). */
export const PCI_CONFIG_SPACE_SIZE = 256;
/** Bytes of one function's ECAM window. */
export const PCIE_CONFIG_SPACE_SIZE = 4096;
/** Type 0 header offsets. */
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a; // subclass; 0x0b is the base class
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
/** Six BAR dwords, 0x10..0x27. */
export const PCI_NUM_BARS = 6;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
/** First capability: right after the header. */
export const PCI_CAPS_START = 0x40;
/** Command register bits the driver may set: I/O, memory, bus master, parity, SERR, INTx disable. */
export const PCI_COMMAND_IO = 1 << 0;
export const PCI_COMMAND_MEMORY = 1 << 1;
export const PCI_COMMAND_WRITABLE = 0x0547;
/** Status bit 4: the capability list at PCI_CAPABILITY_LIST is valid. */
export const PCI_STATUS_CAP_LIST = 1 << 4;
/** BAR low bits (§6.2.5.1): memory space, 64-bit, prefetchable. */
export const PCI_BAR_MEM_TYPE_64 = 0x4;
export const PCI_BAR_PREFETCH = 0x8;
export const PCI_BAR_FLAGS_MASK = 0xf;
/** Capability ids. */
export const PCI_CAP_ID_MSIX = 0x11;
export const PCI_CAP_ID_VNDR = 0x09;
/** Classes (PCI Code and Assignment Specification). */
export const PCI_CLASS_MASS_STORAGE = 0x01;
export const PCI_SUBCLASS_MASS_STORAGE_OTHER = 0x80;
export const PCI_CLASS_NETWORK = 0x02;
export const PCI_SUBCLASS_ETHERNET = 0x00;
export const PCI_CLASS_BRIDGE = 0x06;
export const PCI_SUBCLASS_HOST_BRIDGE = 0x00;
export const PCI_CLASS_UNASSIGNED = 0xff;
/** Firecracker's host bridge (pci/bus.rs PciRoot): Intel vendor id and its device id. */
export const HOST_BRIDGE_VENDOR_ID = 0x8086;
export const HOST_BRIDGE_DEVICE_ID = 0x0d57;
/** Devices per bus, functions per device. */
export const PCI_SLOTS = 32;

/** A capability's bytes after its id and next pointer, and which of them the driver may write. */
export interface PciCapabilitySpec {
  readonly id: number;
  /** The body (everything after cap_id and cap_next). */
  readonly body: Uint8Array;
  /** Per body byte, the writable bits (absent: read-only). */
  readonly writeMask?: Uint8Array;
}

/** The identity of a type 0 function. */
export interface PciHeaderSpec {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly revision: number;
  readonly classCode: number;
  readonly subclass: number;
  readonly progIf?: number;
  readonly subsystemVendorId?: number;
  readonly subsystemId?: number;
}

/** A function's initial configuration space and writable bits; `caps` gives each capability's offset. */
export interface PciConfigImage {
  readonly bytes: Uint8Array;
  readonly writeMask: Uint8Array;
  /** Offset of each capability, in the order given. */
  readonly caps: readonly number[];
}

/** Builds the 256-byte image of a type 0 function with `caps` chained from 0x40. */
export function buildConfigImage(h: PciHeaderSpec, caps: readonly PciCapabilitySpec[] = []): PciConfigImage {
  const bytes = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  const mask = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint16(PCI_VENDOR_ID, h.vendorId, true);
  v.setUint16(PCI_DEVICE_ID, h.deviceId, true);
  bytes[PCI_REVISION_ID] = h.revision;
  bytes[PCI_CLASS_PROG] = h.progIf ?? 0;
  bytes[PCI_CLASS_DEVICE] = h.subclass;
  bytes[PCI_CLASS_DEVICE + 1] = h.classCode;
  v.setUint16(PCI_SUBSYSTEM_VENDOR_ID, h.subsystemVendorId ?? 0, true);
  v.setUint16(PCI_SUBSYSTEM_ID, h.subsystemId ?? 0, true);
  mask[PCI_COMMAND] = PCI_COMMAND_WRITABLE & 0xff;
  mask[PCI_COMMAND + 1] = PCI_COMMAND_WRITABLE >>> 8;
  mask[PCI_CACHE_LINE_SIZE] = 0xff;
  mask[PCI_LATENCY_TIMER] = 0xff;
  mask[PCI_INTERRUPT_LINE] = 0xff;
  const offsets: number[] = [];
  let at = PCI_CAPS_START;
  let prevNext = PCI_CAPABILITY_LIST;
  for (const c of caps) {
    const len = 2 + c.body.length;
    if (at + len > PCI_CONFIG_SPACE_SIZE) throw new DeviceStateError(`PCI capabilities do not fit in ${PCI_CONFIG_SPACE_SIZE} bytes`);
    bytes[prevNext] = at;
    bytes[at] = c.id;
    bytes.set(c.body, at + 2);
    if (c.writeMask) mask.set(c.writeMask.subarray(0, c.body.length), at + 2);
    offsets.push(at);
    prevNext = at + 1;
    at += (len + 3) & ~3;
  }
  if (caps.length > 0) v.setUint16(PCI_STATUS, PCI_STATUS_CAP_LIST, true);
  return { bytes, writeMask: mask, caps: offsets };
}

/** The host bridge at 00:00.0 (Firecracker's PciRoot): identity only, no BARs, no capabilities. */
export function hostBridgeImage(): PciConfigImage {
  return buildConfigImage({
    vendorId: HOST_BRIDGE_VENDOR_ID, deviceId: HOST_BRIDGE_DEVICE_ID, revision: 0,
    classCode: PCI_CLASS_BRIDGE, subclass: PCI_SUBCLASS_HOST_BRIDGE,
  });
}

/** Little-endian read of `data.length` bytes as a number (≤ 4 bytes). */
export function readLe(data: Uint8Array): number {
  let v = 0;
  for (let i = data.length - 1; i >= 0; i--) v = v * 256 + data[i]!;
  return v;
}

/** Little-endian write of `value` into `data` (every byte of it). */
export function writeLe(data: Uint8Array, value: number): void {
  let v = value;
  for (let i = 0; i < data.length; i++) {
    data[i] = v % 256;
    v = Math.floor(v / 256);
  }
}
