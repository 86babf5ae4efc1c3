/**
 * The virtio-pci side of a device's shared state (virtio 1.1 §4.1): what the PCI transport
 * keeps beyond the virtio register file (which stays in MmioState, shared with the MMIO
 * transport's state machine): the function's configuration space, the BAR sizing latch, the
 * MSI-X vector of the config change interrupt and of each queue, and the MSI-X table and PBA.
 *
 * Threads: every vCPU serves the driver's config space and BAR accesses (pci.ts); the device
 * worker raises interrupts (`raise`, through PciInterrupt). Everything is in one
 * SharedArrayBuffer under one spin lock, so "which vector, is it masked, set pending or fire"
 * is atomic against the driver's table and vector writes.
 *
 * BAR layout (Firecracker devices/virtio/transport/pci/device.rs, one 512 KiB 64-bit BAR 0):
 *   0x00000 common configuration (56 bytes)   0x02000 ISR (1 byte)
 *   0x04000 device configuration (4 KiB)      0x06000 notifications (4 bytes per queue)
 *   0x08000 MSI-X table (16 bytes per vector) 0x48000 MSI-X PBA
 */
import { DeviceStateError } from '../../errors.js';
import { lockSlot, unlockSlot } from '../shared-lock.js';
import {
  PCI_BAR_MEM_TYPE_64, PCI_BASE_ADDRESS_0, PCI_CAP_ID_MSIX, PCI_CAP_ID_VNDR, PCI_CLASS_MASS_STORAGE, PCI_CLASS_NETWORK,
  PCI_CLASS_UNASSIGNED, PCI_CONFIG_SPACE_SIZE, PCI_SUBCLASS_ETHERNET, PCI_SUBCLASS_MASS_STORAGE_OTHER, buildConfigImage,
  type PciCapabilitySpec, type PciConfigImage,
} from '../pci/config.js';
import { MsixRegion, msixSlots } from '../pci/msix.js';
import { VIRTIO_ID_BLOCK, VIRTIO_ID_NET } from './constants.js';
import { VIRTIO_INTERRUPT } from './device.js';
import { MmioInterrupt, type MmioState } from './mmio-state.js';

export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
/** Modern (non-transitional) device ids: 0x1040 + the virtio device id (§4.1.2.1). */
export const VIRTIO_PCI_DEVICE_ID_BASE = 0x1040;
/** Revision 1: a modern device (§4.1.2.1). */
export const VIRTIO_PCI_REVISION = 1;
/** §4.1.4 cfg_type values. */
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
export const VIRTIO_PCI_CAP_PCI_CFG = 5;
/** BAR 0 regions. */
export const COMMON_CONFIG_OFFSET = 0x0000;
export const COMMON_CONFIG_SIZE = 56;
export const ISR_CONFIG_OFFSET = 0x2000;
export const ISR_CONFIG_SIZE = 1;
export const DEVICE_CONFIG_OFFSET = 0x4000;
export const DEVICE_CONFIG_SIZE = 0x1000;
export const NOTIFICATION_OFFSET = 0x6000;
export const NOTIFICATION_SIZE = 0x1000;
export const NOTIFY_OFF_MULTIPLIER = 4;
export const MSIX_TABLE_OFFSET = 0x8000;
export const MSIX_TABLE_SIZE = 0x40000;
export const MSIX_PBA_OFFSET = 0x48000;
export const MSIX_PBA_SIZE = 0x800;
export const VIRTIO_PCI_BAR_SIZE = 0x80000;
/** A vector number meaning "none" (§4.1.4.3). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;
/** virtio_pci_cap: cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2], offset, length. */
const VIRTIO_PCI_CAP_LEN = 16;
/** Body offsets (after cap_vndr/cap_next) inside a virtio_pci_cap. */
export const CAP_BODY_BAR = 2;
export const CAP_BODY_OFFSET = 6;
export const CAP_BODY_LENGTH = 10;
/** virtio_pci_cfg_cap: pci_cfg_data follows the cap (body offset 14). */
export const CAP_BODY_PCI_CFG_DATA = 14;

/** Named slots. */
const SLOT = { LOCK: 0, TAG: 1, NUM_QUEUES: 2, NUM_VECTORS: 3, BAR_SIZING: 4, CONFIG_VECTOR: 5 } as const;
const QUEUE_VECTORS = 6;
/** TAG value: "vpci". */
const TAG = 0x69637076;
/** BAR_SIZING bits: the driver wrote all-ones to the low / high dword. */
export const SIZING_LO = 1;
export const SIZING_HI = 2;

/** PCI class and subclass by device type (Firecracker's choice). */
function classOf(deviceId: number): [number, number] {
  if (deviceId === VIRTIO_ID_NET) return [PCI_CLASS_NETWORK, PCI_SUBCLASS_ETHERNET];
  if (deviceId === VIRTIO_ID_BLOCK) return [PCI_CLASS_MASS_STORAGE, PCI_SUBCLASS_MASS_STORAGE_OTHER];
  return [PCI_CLASS_UNASSIGNED, PCI_CLASS_UNASSIGNED];
}

function virtioCap(cfgType: number, offset: number, length: number, extra: number[] = []): Uint8Array {
  const body = new Uint8Array(VIRTIO_PCI_CAP_LEN - 2 + extra.length);
  const v = new DataView(body.buffer);
  body[0] = VIRTIO_PCI_CAP_LEN + extra.length; // cap_len
  body[1] = cfgType;
  body[CAP_BODY_BAR] = 0;
  v.setUint32(CAP_BODY_OFFSET, offset, true);
  v.setUint32(CAP_BODY_LENGTH, length, true);
  body.set(extra, VIRTIO_PCI_CAP_LEN - 2);
  return body;
}

/** The fixed parts of a virtio-pci function (the same on every thread). */
export interface VirtioPciLayout {
  readonly deviceId: number;
  readonly numQueues: number;
  /** One vector per queue plus one for configuration changes. */
  readonly numVectors: number;
  /** Guest address BAR 0 is given at build time (64-bit window). */
  readonly barAddr: number;
}

/** Capability offsets of the image `virtioPciImage` builds. */
export interface VirtioPciCaps {
  readonly common: number;
  readonly isr: number;
  readonly device: number;
  readonly notify: number;
  readonly pciCfg: number;
  readonly msix: number;
}

/** The configuration space image of a virtio-pci function, its writable bits and capability offsets. */
export function virtioPciImage(l: VirtioPciLayout): PciConfigImage & { readonly cap: VirtioPciCaps } {
  const [classCode, subclass] = classOf(l.deviceId);
  const pciDeviceId = VIRTIO_PCI_DEVICE_ID_BASE + l.deviceId;
  const pciCfgMask = new Uint8Array(VIRTIO_PCI_CAP_LEN - 2 + 4);
  pciCfgMask[CAP_BODY_BAR] = 0xff;
  pciCfgMask.fill(0xff, CAP_BODY_OFFSET, CAP_BODY_PCI_CFG_DATA); // offset, length (data is handled apart)
  const msixBody = new Uint8Array(10);
  const mv = new DataView(msixBody.buffer);
  mv.setUint16(0, l.numVectors - 1, true); // Message Control: table size - 1; Enable/Mask handled apart
  mv.setUint32(2, MSIX_TABLE_OFFSET, true); // BIR 0
  mv.setUint32(6, MSIX_PBA_OFFSET, true); // BIR 0
  const caps: PciCapabilitySpec[] = [
    { id: PCI_CAP_ID_VNDR, body: virtioCap(VIRTIO_PCI_CAP_COMMON_CFG, COMMON_CONFIG_OFFSET, COMMON_CONFIG_SIZE) },
    { id: PCI_CAP_ID_VNDR, body: virtioCap(VIRTIO_PCI_CAP_ISR_CFG, ISR_CONFIG_OFFSET, ISR_CONFIG_SIZE) },
    { id: PCI_CAP_ID_VNDR, body: virtioCap(VIRTIO_PCI_CAP_DEVICE_CFG, DEVICE_CONFIG_OFFSET, DEVICE_CONFIG_SIZE) },
    { id: PCI_CAP_ID_VNDR, body: virtioCap(VIRTIO_PCI_CAP_NOTIFY_CFG, NOTIFICATION_OFFSET, NOTIFICATION_SIZE, [NOTIFY_OFF_MULTIPLIER, 0, 0, 0]) },
    { id: PCI_CAP_ID_VNDR, body: virtioCap(VIRTIO_PCI_CAP_PCI_CFG, 0, 0, [0, 0, 0, 0]), writeMask: pciCfgMask },
    { id: PCI_CAP_ID_MSIX, body: msixBody },
  ];
  const image = buildConfigImage({
    vendorId: VIRTIO_PCI_VENDOR_ID, deviceId: pciDeviceId, revision: VIRTIO_PCI_REVISION, classCode, subclass,
    subsystemVendorId: VIRTIO_PCI_VENDOR_ID, subsystemId: pciDeviceId,
  }, caps);
  const v = new DataView(image.bytes.buffer);
  v.setUint32(PCI_BASE_ADDRESS_0, (l.barAddr % 2 ** 32) | PCI_BAR_MEM_TYPE_64, true);
  v.setUint32(PCI_BASE_ADDRESS_0 + 4, Math.floor(l.barAddr / 2 ** 32), true);
  const [common, isr, device, notify, pciCfg, msix] = image.caps as [number, number, number, number, number, number];
  return { ...image, cap: { common, isr, device, notify, pciCfg, msix } };
}

/** One thread's view of a virtio-pci state buffer. */
export class VirtioPciState {
  readonly i32: Int32Array;
  readonly numQueues: number;
  readonly numVectors: number;
  readonly msix: MsixRegion;
  /** The 256 configuration bytes (access under the lock). */
  readonly config: Uint8Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    if (!(buffer instanceof SharedArrayBuffer)) throw new DeviceStateError('virtio-pci state must be a SharedArrayBuffer');
    this.i32 = new Int32Array(buffer);
    if (this.i32.length < QUEUE_VECTORS || Atomics.load(this.i32, SLOT.TAG) !== TAG) throw new DeviceStateError('buffer does not hold virtio-pci state');
    this.numQueues = Atomics.load(this.i32, SLOT.NUM_QUEUES);
    this.numVectors = Atomics.load(this.i32, SLOT.NUM_VECTORS);
    const msixBase = QUEUE_VECTORS + this.numQueues;
    const configSlot = msixBase + msixSlots(this.numVectors);
    if (buffer.byteLength !== configSlot * 4 + PCI_CONFIG_SPACE_SIZE) throw new DeviceStateError('virtio-pci state of the wrong size');
    this.msix = new MsixRegion(this.i32, msixBase, this.numVectors);
    this.config = new Uint8Array(buffer, configSlot * 4, PCI_CONFIG_SPACE_SIZE);
  }

  /** A fresh state for `layout` (made once, on main): the initial image, every vector NO_VECTOR, MSI-X off. */
  static create(layout: VirtioPciLayout): SharedArrayBuffer {
    const msixBase = QUEUE_VECTORS + layout.numQueues;
    const configSlot = msixBase + msixSlots(layout.numVectors);
    const buffer = new SharedArrayBuffer(configSlot * 4 + PCI_CONFIG_SPACE_SIZE);
    const i32 = new Int32Array(buffer);
    Atomics.store(i32, SLOT.NUM_QUEUES, layout.numQueues);
    Atomics.store(i32, SLOT.NUM_VECTORS, layout.numVectors);
    Atomics.store(i32, SLOT.TAG, TAG);
    const s = new VirtioPciState(buffer);
    s.resetVectors();
    s.msix.reset();
    s.config.set(virtioPciImage(layout).bytes);
    return buffer;
  }

  lock(): void {
    lockSlot(this.i32, SLOT.LOCK);
  }

  unlock(): void {
    unlockSlot(this.i32, SLOT.LOCK);
  }

  /** Whether some thread holds the lock (for assertions about what runs under it). */
  locked(): boolean {
    return Atomics.load(this.i32, SLOT.LOCK) !== 0;
  }

  /** Every vector mapping back to NO_VECTOR (device reset, §4.1.5.1.2). */
  resetVectors(): void {
    Atomics.store(this.i32, SLOT.CONFIG_VECTOR, VIRTIO_MSI_NO_VECTOR);
    for (let q = 0; q < this.numQueues; q++) Atomics.store(this.i32, QUEUE_VECTORS + q, VIRTIO_MSI_NO_VECTOR);
  }

  configVector(): number {
    return Atomics.load(this.i32, SLOT.CONFIG_VECTOR);
  }

  queueVector(q: number): number {
    return q >= 0 && q < this.numQueues ? Atomics.load(this.i32, QUEUE_VECTORS + q) : VIRTIO_MSI_NO_VECTOR;
  }

  /** Stores a vector mapping; a vector the table does not have maps to NO_VECTOR (§4.1.5.1.2.1). */
  setConfigVector(v: number): void {
    Atomics.store(this.i32, SLOT.CONFIG_VECTOR, v < this.numVectors ? v : VIRTIO_MSI_NO_VECTOR);
  }

  setQueueVector(q: number, v: number): void {
    if (q >= 0 && q < this.numQueues) Atomics.store(this.i32, QUEUE_VECTORS + q, v < this.numVectors ? v : VIRTIO_MSI_NO_VECTOR);
  }

  barSizing(): number {
    return Atomics.load(this.i32, SLOT.BAR_SIZING);
  }

  setBarSizing(bits: number): void {
    Atomics.store(this.i32, SLOT.BAR_SIZING, bits);
  }

  /**
   * The device raises `vector` (a config or queue vector): under the lock, fires it through
   * `signal` when MSI-X lets it, else sets its pending bit (masked) or drops it (MSI-X off,
   * NO_VECTOR). Returns true when it fired.
   */
  raise(vector: number, signal: (vector: number) => void): boolean {
    if (vector === VIRTIO_MSI_NO_VECTOR) return false;
    this.lock();
    try {
      if (!this.msix.raise(vector)) return false;
      signal(vector);
      return true;
    } finally {
      this.unlock();
    }
  }
}

/**
 * The device worker's VirtioInterrupt for a virtio-pci device: the virtio register file's
 * ISR bits and trigger count as MMIO keeps them, then the MSI-X vector the driver mapped to the
 * queue (VRING) or to configuration changes (CONFIG), fired through `signalVector` (the
 * vector's irqfd) or left pending while masked.
 */
export function pciInterrupt(state: MmioState, pci: VirtioPciState, signalVector: (vector: number) => void): MmioInterrupt {
  return new MmioInterrupt(state, (_bit, type, queue) => {
    const vector = type === VIRTIO_INTERRUPT.VRING ? pci.queueVector(queue ?? 0) : pci.configVector();
    pci.raise(vector, signalVector);
  });
}
