/**
 * The PCI root complex of segment 0, bus 0 (Firecracker src/vmm/src/pci/bus.rs and
 * devices/pci/pci_segment.rs): the host bridge at 00:00.0 and one function per slot after it,
 * reached three ways, each a BusDevice a vCPU thread serves:
 *
 *   PciEcam       the ECAM window (MCFG: 1 MiB for bus 0 at PCI_MMCONFIG_START):
 *                 offset = bus << 20 | device << 15 | function << 12 | register
 *   PciConfigIo   ports 0xcf8 (CONFIG_ADDRESS, 32-bit only) and 0xcfc..0xcff (CONFIG_DATA),
 *                 PCI Local Bus 3.0 §3.2.2.3.2. Linux needs it even with MCFG: it only trusts
 *                 an MCFG region reserved in e820 when type 1 access works (arch/x86/pci/
 *                 mmconfig-shared.c pci_mmcfg_check_reserved), and its type 1 probe wants a
 *                 host bridge at 00:00.0 (direct.c pci_sanity_check)
 *   PciMmioWindow the 64-bit BAR window: an access goes to the function whose memory BAR
 *                 holds the address while its memory decoding is on, wherever the driver put
 *                 the BAR
 *
 * A function that does not exist reads as all-ones and ignores writes (§6.1: vendor 0xffff
 * means "no function"). Only function 0 of each slot exists (header type bit 7 clear).
 */
import type { BusDevice } from '../bus.js';
import { lockSlot, unlockSlot } from '../shared-lock.js';
import { PCI_CONFIG_SPACE_SIZE, PCI_SLOTS, hostBridgeImage, type PciConfigImage } from './config.js';

/** A PCI function as the root sees it. */
export interface PciFunction {
  /** Reads `data.length` (1, 2 or 4) bytes of configuration space at `reg` (0..4095). */
  configRead(reg: number, data: Uint8Array): void;
  /** Writes configuration space. */
  configWrite(reg: number, data: Uint8Array): void;
  /** The function's memory BAR, when it has one. */
  readonly bar?: PciBarRegion;
}

/** A memory BAR's current placement and its register window. */
export interface PciBarRegion extends BusDevice {
  /** Where the BAR decodes now, or undefined while memory decoding is off. */
  currentBase(): number | undefined;
  readonly size: number;
}

const ECAM_BUS_SHIFT = 20;
const ECAM_DEVICE_SHIFT = 15;
const ECAM_FUNCTION_SHIFT = 12;
const ECAM_REGISTER_MASK = 0xfff;
/** CONFIG_ADDRESS fields. */
const CF8_ENABLE = 0x8000_0000;
const CF8_BUS_SHIFT = 16;
const CF8_DEVICE_SHIFT = 11;
const CF8_FUNCTION_SHIFT = 8;
const CF8_REGISTER_MASK = 0xfc;
/** Port offsets from 0xcf8. */
export const PCI_CONFIG_IO_PORT = 0xcf8;
export const PCI_CONFIG_IO_SIZE = 8;
const CONFIG_DATA_OFFSET = 4;

/** The root's shared state: LOCK, CONFIG_ADDRESS, then the host bridge's 256 bytes. */
const ROOT_LOCK = 0;
const ROOT_CF8 = 1;
const ROOT_HEADER_SLOTS = 2;

/** A function over a shared 256-byte image with a fixed write mask (the host bridge). */
export class SimplePciFunction implements PciFunction {
  private readonly bytes: Uint8Array;

  constructor(private readonly i32: Int32Array, private readonly lockIndex: number, byteOffset: number, private readonly image: PciConfigImage) {
    this.bytes = new Uint8Array(i32.buffer, byteOffset, PCI_CONFIG_SPACE_SIZE);
  }

  configRead(reg: number, data: Uint8Array): void {
    if (reg + data.length > PCI_CONFIG_SPACE_SIZE) return void data.fill(0);
    lockSlot(this.i32, this.lockIndex);
    data.set(this.bytes.subarray(reg, reg + data.length));
    unlockSlot(this.i32, this.lockIndex);
  }

  configWrite(reg: number, data: Uint8Array): void {
    if (reg + data.length > PCI_CONFIG_SPACE_SIZE) return;
    lockSlot(this.i32, this.lockIndex);
    for (let i = 0; i < data.length; i++) {
      const m = this.image.writeMask[reg + i]!;
      this.bytes[reg + i] = (this.bytes[reg + i]! & ~m) | (data[i]! & m);
    }
    unlockSlot(this.i32, this.lockIndex);
  }
}

/** The bus-0 function table every vCPU thread builds over the same shared state. */
export class PciRoot {
  private readonly i32: Int32Array;
  /** Index = slot (device number); slot 0 is the host bridge. */
  private readonly slots: (PciFunction | undefined)[] = new Array<PciFunction | undefined>(PCI_SLOTS);

  constructor(state: SharedArrayBuffer) {
    this.i32 = new Int32Array(state);
    this.slots[0] = new SimplePciFunction(this.i32, ROOT_LOCK, ROOT_HEADER_SLOTS * 4, hostBridgeImage());
  }

  /** The root's shared state with the host bridge's initial image (made once, on main). */
  static createState(): SharedArrayBuffer {
    const buffer = new SharedArrayBuffer(ROOT_HEADER_SLOTS * 4 + PCI_CONFIG_SPACE_SIZE);
    new Uint8Array(buffer, ROOT_HEADER_SLOTS * 4).set(hostBridgeImage().bytes);
    return buffer;
  }

  /** Puts `fn` in `slot` (1..31). */
  attach(slot: number, fn: PciFunction): void {
    if (!Number.isInteger(slot) || slot < 1 || slot >= PCI_SLOTS || this.slots[slot]) throw new RangeError(`PCI slot ${slot} is taken or out of range`);
    this.slots[slot] = fn;
  }

  /** The function at bus/device/function, if any. */
  function(bus: number, device: number, fn: number): PciFunction | undefined {
    return bus === 0 && fn === 0 ? this.slots[device] : undefined;
  }

  /** Functions with a BAR, for the MMIO window. */
  barFunctions(): PciFunction[] {
    return this.slots.filter((f): f is PciFunction => f?.bar !== undefined);
  }

  /** Configuration read through either mechanism: absent functions read all-ones. */
  configRead(bus: number, device: number, fn: number, reg: number, data: Uint8Array): void {
    const f = this.function(bus, device, fn);
    if (!f || !aligned(reg, data.length)) return void data.fill(0xff);
    f.configRead(reg, data);
  }

  configWrite(bus: number, device: number, fn: number, reg: number, data: Uint8Array): void {
    const f = this.function(bus, device, fn);
    if (f && aligned(reg, data.length)) f.configWrite(reg, data);
  }

  /** CONFIG_ADDRESS, shared by every vCPU. */
  get configAddress(): number {
    return Atomics.load(this.i32, ROOT_CF8) >>> 0;
  }

  set configAddress(v: number) {
    Atomics.store(this.i32, ROOT_CF8, v | 0);
  }
}

/** A naturally aligned 1, 2 or 4-byte access inside one dword. */
function aligned(reg: number, len: number): boolean {
  return (len === 1 || len === 2 || len === 4) && reg % len === 0;
}

/** The ECAM window of bus 0 on the MMIO bus. */
export class PciEcam implements BusDevice {
  constructor(private readonly root: PciRoot) {}

  private decode(offset: number): [number, number, number, number] {
    return [
      Math.floor(offset / 2 ** ECAM_BUS_SHIFT), (offset >>> ECAM_DEVICE_SHIFT) & (PCI_SLOTS - 1),
      (offset >>> ECAM_FUNCTION_SHIFT) & 7, offset & ECAM_REGISTER_MASK,
    ];
  }

  read(offset: number, data: Uint8Array): void {
    const [bus, dev, fn, reg] = this.decode(offset);
    this.root.configRead(bus, dev, fn, reg, data);
  }

  write(offset: number, data: Uint8Array): void {
    const [bus, dev, fn, reg] = this.decode(offset);
    this.root.configWrite(bus, dev, fn, reg, data);
  }
}

/** Type 1 configuration access: ports 0xcf8..0xcff on the port bus. */
export class PciConfigIo implements BusDevice {
  constructor(private readonly root: PciRoot) {}

  read(offset: number, data: Uint8Array): void {
    if (offset < CONFIG_DATA_OFFSET) {
      // CONFIG_ADDRESS is a 32-bit register; narrower reads see nothing (as QEMU does).
      if (offset === 0 && data.length === 4) new DataView(data.buffer, data.byteOffset, 4).setUint32(0, this.root.configAddress, true);
      else data.fill(0xff);
      return;
    }
    const a = this.root.configAddress;
    const reg = (a & CF8_REGISTER_MASK) + (offset - CONFIG_DATA_OFFSET);
    if (!(a & CF8_ENABLE) || reg % data.length !== 0) return void data.fill(0xff);
    this.root.configRead((a >>> CF8_BUS_SHIFT) & 0xff, (a >>> CF8_DEVICE_SHIFT) & (PCI_SLOTS - 1), (a >>> CF8_FUNCTION_SHIFT) & 7, reg, data);
  }

  write(offset: number, data: Uint8Array): void {
    if (offset < CONFIG_DATA_OFFSET) {
      if (offset === 0 && data.length === 4) this.root.configAddress = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
      return;
    }
    const a = this.root.configAddress;
    const reg = (a & CF8_REGISTER_MASK) + (offset - CONFIG_DATA_OFFSET);
    if (!(a & CF8_ENABLE) || reg % data.length !== 0) return;
    this.root.configWrite((a >>> CF8_BUS_SHIFT) & 0xff, (a >>> CF8_DEVICE_SHIFT) & (PCI_SLOTS - 1), (a >>> CF8_FUNCTION_SHIFT) & 7, reg, data);
  }
}

/**
 * The 64-bit device window on the MMIO bus (`base` = its guest address): each access goes to
 * the BAR that decodes it now. Accesses that hit no BAR read all-ones and are dropped.
 */
export class PciMmioWindow implements BusDevice {
  constructor(private readonly root: PciRoot, private readonly base: number) {}

  private find(offset: number): [PciBarRegion, number] | undefined {
    const addr = this.base + offset;
    for (const f of this.root.barFunctions()) {
      const bar = f.bar!;
      const b = bar.currentBase();
      if (b !== undefined && addr >= b && addr < b + bar.size) return [bar, addr - b];
    }
    return undefined;
  }

  read(offset: number, data: Uint8Array): void {
    const hit = this.find(offset);
    if (hit) hit[0].read(hit[1], data);
    else data.fill(0xff);
  }

  write(offset: number, data: Uint8Array): void {
    const hit = this.find(offset);
    if (hit) hit[0].write(hit[1], data);
  }
}

