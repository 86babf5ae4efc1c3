/**
 * The virtio-pci modern transport (virtio 1.1 §4.1; Firecracker devices/virtio/transport/pci/
 * device.rs and common_config.rs), one PCI function per device, served on the vCPU threads:
 *
 * - configuration space (PciFunction): the type 0 header with one 64-bit memory BAR 0, the
 *   virtio capabilities (common, ISR, device, notify, PCI-cfg window) and MSI-X, built by
 *   `virtioPciImage`; bits the driver may not write keep their value;
 * - BAR 0 (PciBarRegion): the common configuration structure, mapped field by field onto the
 *   same register state machine as virtio-mmio (MmioTransport over MmioState: status
 *   transitions, feature acks, queue fields gated on status, queue validation at DRIVER_OK,
 *   reset), so both transports accept and refuse the same driver behaviour and the device
 *   worker activates the same way; then ISR (read-to-clear), the device configuration space,
 *   the notification area (4 bytes per queue: KVM_IOEVENTFD normally takes these writes before
 *   they exit), the MSI-X table and PBA.
 *
 * Hostile or confused drivers: accesses of the wrong width or alignment, to reserved bytes, or
 * past a structure read as zero (all-ones in the MSI-X table) and are dropped with a warning;
 * a BAR may be sized and moved (the window serves it wherever it lands inside the 64-bit
 * device window; the notify ioeventfds stay at the build-time address, so a moved BAR's
 * notifies exit to here and still reach the device); MSI-X entries may hold any address
 * (KVM gets the message as written). Nothing a driver writes can throw out of here.
 */
import { MmioTransport, type GuestRam } from './mmio.js';
import { MMIO_QUEUE_SLOT, MMIO_SLOT, MmioState } from './mmio-state.js';
import {
  VIRTIO_CONFIG_S_FAILED, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, VIRTIO_MMIO_QUEUE_AVAIL_LOW,
  VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_USED_HIGH, VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_STATUS,
} from './constants.js';
import type { VirtioDeviceDescription } from './device.js';
import {
  CAP_BODY_BAR, CAP_BODY_LENGTH, CAP_BODY_OFFSET, CAP_BODY_PCI_CFG_DATA, COMMON_CONFIG_SIZE, DEVICE_CONFIG_OFFSET,
  DEVICE_CONFIG_SIZE, ISR_CONFIG_OFFSET, MSIX_PBA_OFFSET, MSIX_PBA_SIZE, MSIX_TABLE_OFFSET, NOTIFICATION_OFFSET,
  NOTIFY_OFF_MULTIPLIER, SIZING_HI, SIZING_LO, VIRTIO_MSI_NO_VECTOR, VIRTIO_PCI_BAR_SIZE, VirtioPciState, virtioPciImage,
  type VirtioPciCaps, type VirtioPciLayout,
} from './pci-state.js';
import {
  PCI_BAR_FLAGS_MASK, PCI_BASE_ADDRESS_0, PCI_COMMAND, PCI_COMMAND_MEMORY, PCI_CONFIG_SPACE_SIZE, readLe, writeLe,
  type PciConfigImage,
} from '../pci/config.js';
import { MSIX_CONTROL_WRITABLE, MSIX_ENTRY_SIZE, type MsiMessage, type MsixEffects } from '../pci/msix.js';
import type { PciBarRegion, PciFunction } from '../pci/root.js';

/** What the transport asks of its vCPU thread. */
export interface VirtioPciCallbacks {
  /** DRIVER_OK accepted: wake the device worker (its control doorbell). */
  onActivate(): void;
  /** A queue notification reached the bus instead of the ioeventfd. */
  onNotify(queue: number): void;
  /** Fire MSI-X vector `vector` (its irqfd). */
  signalVector(vector: number): void;
  /** Set or remove the KVM routes of these vectors (null: not deliverable now). */
  updateRoutes(changes: readonly { vector: number; message: MsiMessage | null }[]): void;
  /** Deliver one message now (a pending vector just unmasked: KVM_SIGNAL_MSI). */
  injectMsi(message: MsiMessage): void;
  /** An access the transport ignored (guest-triggered: rate limit). */
  warn?(message: string): void;
}

/** Common configuration fields (§4.1.4.3, struct virtio_pci_common_cfg). */
const CC = {
  DEVICE_FEATURE_SELECT: 0x00, DEVICE_FEATURE: 0x04, DRIVER_FEATURE_SELECT: 0x08, DRIVER_FEATURE: 0x0c,
  MSIX_CONFIG: 0x10, NUM_QUEUES: 0x12, DEVICE_STATUS: 0x14, CONFIG_GENERATION: 0x15, QUEUE_SELECT: 0x16,
  QUEUE_SIZE: 0x18, QUEUE_MSIX_VECTOR: 0x1a, QUEUE_ENABLE: 0x1c, QUEUE_NOTIFY_OFF: 0x1e, QUEUE_DESC: 0x20,
  QUEUE_DRIVER: 0x28, QUEUE_DEVICE: 0x30,
} as const;
/** 64-bit queue address fields → the MMIO register of their low half. */
const ADDRESS_FIELDS: ReadonlyMap<number, [number, number, number]> = new Map([
  [CC.QUEUE_DESC, [VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, MMIO_QUEUE_SLOT.DESC_LO]],
  [CC.QUEUE_DRIVER, [VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, MMIO_QUEUE_SLOT.AVAIL_LO]],
  [CC.QUEUE_DEVICE, [VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_QUEUE_USED_HIGH, MMIO_QUEUE_SLOT.USED_LO]],
]);
/** Width of each scalar field. */
const FIELD_WIDTH: ReadonlyMap<number, number> = new Map([
  [CC.DEVICE_FEATURE_SELECT, 4], [CC.DEVICE_FEATURE, 4], [CC.DRIVER_FEATURE_SELECT, 4], [CC.DRIVER_FEATURE, 4],
  [CC.MSIX_CONFIG, 2], [CC.NUM_QUEUES, 2], [CC.DEVICE_STATUS, 1], [CC.CONFIG_GENERATION, 1], [CC.QUEUE_SELECT, 2],
  [CC.QUEUE_SIZE, 2], [CC.QUEUE_MSIX_VECTOR, 2], [CC.QUEUE_ENABLE, 2], [CC.QUEUE_NOTIFY_OFF, 2],
]);
const U32 = 2 ** 32;

/** The virtio-pci function of one device, as one vCPU thread sees it. */
export class VirtioPciTransport implements PciFunction {
  readonly bar: PciBarRegion;
  private readonly mmio: MmioTransport;
  private readonly state: MmioState;
  private readonly pci: VirtioPciState;
  private readonly image: PciConfigImage;
  private readonly cap: VirtioPciCaps;
  private readonly reg = new Uint8Array(4);

  constructor(
    mmioState: SharedArrayBuffer | MmioState,
    pciState: SharedArrayBuffer | VirtioPciState,
    private readonly device: VirtioDeviceDescription,
    layout: VirtioPciLayout,
    private readonly cb: VirtioPciCallbacks,
    ram: GuestRam,
  ) {
    this.state = mmioState instanceof MmioState ? mmioState : new MmioState(mmioState);
    this.pci = pciState instanceof VirtioPciState ? pciState : new VirtioPciState(pciState);
    const img = virtioPciImage(layout);
    this.image = img;
    this.cap = img.cap;
    this.mmio = new MmioTransport(this.state, device, {
      onActivate: () => cb.onActivate(),
      onNotify: (q) => cb.onNotify(q),
      // A DRIVER_OK refused by queue validation: the config change interrupt.
      interrupt: () => { this.pci.raise(this.pci.configVector(), (v) => cb.signalVector(v)); },
      onReset: () => false,
      warn: (m) => this.warn(m),
    }, ram);
    const self = this;
    this.bar = {
      size: VIRTIO_PCI_BAR_SIZE,
      currentBase: () => self.currentBase(),
      read: (offset, data) => self.barRead(offset, data),
      write: (offset, data) => self.barWrite(offset, data),
    };
  }

  private warn(m: string): void {
    this.cb.warn?.(m);
  }

  // --- configuration space ---------------------------------------------------------------

  /** Where BAR 0 decodes now: undefined while memory decoding is off or the BAR is being sized. */
  currentBase(): number | undefined {
    const c = this.pci.config;
    if (!(c[PCI_COMMAND]! & PCI_COMMAND_MEMORY) || this.pci.barSizing() !== 0) return undefined;
    const lo = readLe(c.subarray(PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_0 + 4)) & ~PCI_BAR_FLAGS_MASK;
    const hi = readLe(c.subarray(PCI_BASE_ADDRESS_0 + 4, PCI_BASE_ADDRESS_0 + 8));
    return hi * U32 + (lo >>> 0);
  }

  /** The dword at `dw` (4-aligned) as the driver reads it; call under the lock. */
  private configDword(dw: number): number {
    const c = this.pci.config;
    const stored = readLe(c.subarray(dw, dw + 4));
    if (dw === PCI_BASE_ADDRESS_0) {
      return this.pci.barSizing() & SIZING_LO ? ((~(VIRTIO_PCI_BAR_SIZE - 1) & ~PCI_BAR_FLAGS_MASK) | (stored & PCI_BAR_FLAGS_MASK)) >>> 0 : stored;
    }
    if (dw === PCI_BASE_ADDRESS_0 + 4) return this.pci.barSizing() & SIZING_HI ? 0xffff_ffff : stored;
    if (dw === this.cap.msix) return (stored & 0x0000ffff | ((readLe(c.subarray(dw + 2, dw + 4)) & ~MSIX_CONTROL_WRITABLE | this.pci.msix.controlBits()) << 16)) >>> 0;
    if (dw === this.cap.pciCfg + 2 + CAP_BODY_PCI_CFG_DATA) return this.pciCfgWindow(null);
    return stored;
  }

  configRead(reg: number, data: Uint8Array): void {
    if (reg + data.length > PCI_CONFIG_SPACE_SIZE) return void data.fill(0);
    const dw = reg & ~3;
    this.pci.lock();
    let v: number;
    try {
      v = this.configDword(dw);
    } finally {
      this.pci.unlock();
    }
    const bytes = new Uint8Array(4);
    writeLe(bytes, v);
    data.set(bytes.subarray(reg - dw, reg - dw + data.length));
  }

  configWrite(reg: number, data: Uint8Array): void {
    if (reg + data.length > PCI_CONFIG_SPACE_SIZE) return;
    const dw = reg & ~3;
    let effects: MsixEffects | null = null;
    this.pci.lock();
    try {
      if (dw === PCI_BASE_ADDRESS_0 || dw === PCI_BASE_ADDRESS_0 + 4) this.writeBar(dw, reg, data);
      else if (dw === this.cap.pciCfg + 2 + CAP_BODY_PCI_CFG_DATA) this.pciCfgWindow(data, reg - dw);
      else {
        const c = this.pci.config;
        for (let i = 0; i < data.length; i++) {
          const m = this.image.writeMask[reg + i]!;
          c[reg + i] = (c[reg + i]! & ~m) | (data[i]! & m);
        }
        // Message Control's high byte holds MSI-X Enable and Function Mask.
        const ctlHigh = this.cap.msix + 3;
        if (reg <= ctlHigh && ctlHigh < reg + data.length) effects = this.pci.msix.writeControl((data[ctlHigh - reg]! << 8) & MSIX_CONTROL_WRITABLE);
      }
      if (effects) this.apply(effects);
    } finally {
      this.pci.unlock();
    }
  }

  /** BAR 0/1 dword writes: all-ones starts sizing, anything else places the BAR (aligned to its size). */
  private writeBar(dw: number, reg: number, data: Uint8Array): void {
    if (data.length !== 4 || reg !== dw) return this.warn(`virtio-pci BAR write of ${data.length} bytes at 0x${reg.toString(16)}`);
    const v = readLe(data);
    const c = this.pci.config;
    const sizing = this.pci.barSizing();
    if (dw === PCI_BASE_ADDRESS_0) {
      if (((v | PCI_BAR_FLAGS_MASK) >>> 0) === 0xffff_ffff) return this.pci.setBarSizing(sizing | SIZING_LO);
      this.pci.setBarSizing(sizing & ~SIZING_LO);
      const flags = readLe(c.subarray(dw, dw + 4)) & PCI_BAR_FLAGS_MASK;
      writeLe(c.subarray(dw, dw + 4), ((v & ~(VIRTIO_PCI_BAR_SIZE - 1) & ~PCI_BAR_FLAGS_MASK) | flags) >>> 0);
    } else {
      if (v === 0xffff_ffff) return this.pci.setBarSizing(sizing | SIZING_HI);
      this.pci.setBarSizing(sizing & ~SIZING_HI);
      writeLe(c.subarray(dw, dw + 4), v);
    }
  }

  /**
   * VIRTIO_PCI_CAP_PCI_CFG (§4.1.4.7): the driver names a BAR, an offset and a length in the
   * capability, then reads or writes pci_cfg_data to reach that BAR byte range. `write` null
   * reads; only BAR 0, lengths 1/2/4, aligned and inside the BAR are served.
   */
  private pciCfgWindow(write: Uint8Array | null, at = 0): number {
    const c = this.pci.config;
    const body = this.cap.pciCfg + 2;
    const bar = c[body + CAP_BODY_BAR]!;
    const off = readLe(c.subarray(body + CAP_BODY_OFFSET, body + CAP_BODY_OFFSET + 4));
    const len = readLe(c.subarray(body + CAP_BODY_LENGTH, body + CAP_BODY_LENGTH + 4));
    const ok = bar === 0 && (len === 1 || len === 2 || len === 4) && off % len === 0 && off + len <= VIRTIO_PCI_BAR_SIZE;
    if (!ok) {
      this.warn(`virtio-pci PCI-cfg window on BAR ${bar} at 0x${off.toString(16)}+${len} refused`);
      return 0;
    }
    // The BAR handlers take the lock themselves: release it around the access.
    this.pci.unlock();
    try {
      if (write) {
        if (at !== 0 || write.length < len) return 0;
        this.barWrite(off, write.subarray(0, len));
        return 0;
      }
      const out = new Uint8Array(len);
      this.barRead(off, out);
      return readLe(out);
    } finally {
      this.pci.lock();
    }
  }

  // --- BAR 0 -------------------------------------------------------------------------------

  barRead(offset: number, data: Uint8Array): void {
    if (offset < COMMON_CONFIG_SIZE) return this.commonRead(offset, data);
    if (offset === ISR_CONFIG_OFFSET && data.length === 1) {
      // Read-to-clear (§4.1.4.5).
      data[0] = Atomics.exchange(this.state.i32, MMIO_SLOT.INTERRUPT_STATUS, 0) & 0xff;
      return;
    }
    if (offset >= DEVICE_CONFIG_OFFSET && offset < DEVICE_CONFIG_OFFSET + DEVICE_CONFIG_SIZE) {
      return this.mmio.read(VIRTIO_MMIO_CONFIG + offset - DEVICE_CONFIG_OFFSET, data);
    }
    const table = MSIX_TABLE_OFFSET;
    if (offset >= table && offset < table + this.pci.numVectors * MSIX_ENTRY_SIZE) {
      this.pci.lock();
      try { this.pci.msix.readTable(offset - table, data); } finally { this.pci.unlock(); }
      return;
    }
    if (offset >= MSIX_PBA_OFFSET && offset < MSIX_PBA_OFFSET + MSIX_PBA_SIZE) {
      this.pci.lock();
      try { this.pci.msix.readPba(offset - MSIX_PBA_OFFSET, data); } finally { this.pci.unlock(); }
      return;
    }
    data.fill(0);
  }

  barWrite(offset: number, data: Uint8Array): void {
    if (offset < COMMON_CONFIG_SIZE) return this.commonWrite(offset, data);
    if (offset >= DEVICE_CONFIG_OFFSET && offset < DEVICE_CONFIG_OFFSET + DEVICE_CONFIG_SIZE) {
      return this.mmio.write(VIRTIO_MMIO_CONFIG + offset - DEVICE_CONFIG_OFFSET, data);
    }
    const n = offset - NOTIFICATION_OFFSET;
    if (n >= 0 && n < this.state.numQueues * NOTIFY_OFF_MULTIPLIER) {
      if (n % NOTIFY_OFF_MULTIPLIER === 0) return this.mmioWrite(VIRTIO_MMIO_QUEUE_NOTIFY, n / NOTIFY_OFF_MULTIPLIER);
      return this.warn(`virtio-pci notify at unaligned offset 0x${offset.toString(16)}`);
    }
    const table = MSIX_TABLE_OFFSET;
    if (offset >= table && offset < table + this.pci.numVectors * MSIX_ENTRY_SIZE) {
      let effects: MsixEffects | null;
      this.pci.lock();
      try {
        effects = this.pci.msix.writeTable(offset - table, data);
        if (effects) this.apply(effects);
      } finally {
        this.pci.unlock();
      }
      if (!effects) this.warn(`virtio-pci MSI-X table write of ${data.length} bytes at 0x${offset.toString(16)}`);
      return;
    }
    this.warn(`virtio-pci write of ${data.length} bytes to BAR offset 0x${offset.toString(16)} ignored`);
  }

  /**
   * Installs or removes routes, then delivers what was pending; the caller holds the lock.
   * Under the lock because the device's raise() takes it too: were the route installed after
   * the unlock, a device raising the just-unmasked vector in between would write its irqfd
   * while the GSI has no route, and KVM drops such a signal (kvm_set_irq finds no entry), so a
   * queue interrupt is lost and the guest's driver waits forever. Linux masks an entry around
   * every message change (__pci_write_msi_msg), i.e. on each IRQ affinity move, so with two
   * vCPUs this window opened during every boot. Lock order: this function's lock, then the
   * route table's (MsiRoutes.update); nothing takes them the other way round.
   */
  private apply(e: MsixEffects): void {
    if (e.routes.length > 0) this.cb.updateRoutes(e.routes);
    for (const d of e.deliver) this.cb.injectMsi(d.message);
  }

  private mmioRead(off: number): number {
    this.mmio.read(off, this.reg);
    return readLe(this.reg);
  }

  private mmioWrite(off: number, v: number): void {
    const b = new Uint8Array(4);
    writeLe(b, v >>> 0);
    this.mmio.write(off, b);
  }

  private selectedQueue(): number {
    return this.state.load(MMIO_SLOT.QUEUE_SEL) >>> 0;
  }

  private commonRead(offset: number, data: Uint8Array): void {
    const len = data.length;
    const addr = ADDRESS_FIELDS.get(offset) ?? ADDRESS_FIELDS.get(offset - 4);
    const s = this.state;
    const q = this.selectedQueue();
    const qOk = q < s.numQueues;
    if (addr) {
      const hiHalf = !ADDRESS_FIELDS.has(offset);
      if (!(len === 8 && !hiHalf) && len !== 4) return this.badCommon(offset, len, data);
      const slot = addr[2];
      const lo = qOk ? s.load(s.queueSlot(q, slot)) >>> 0 : 0;
      const hi = qOk ? s.load(s.queueSlot(q, slot + 1)) >>> 0 : 0;
      if (len === 8) { writeLe(data.subarray(0, 4), lo); writeLe(data.subarray(4), hi); } else writeLe(data, hiHalf ? hi : lo);
      return;
    }
    if (FIELD_WIDTH.get(offset) !== len) return this.badCommon(offset, len, data);
    let v: number;
    switch (offset) {
      case CC.DEVICE_FEATURE_SELECT: v = s.load(MMIO_SLOT.DEVICE_FEATURES_SEL) >>> 0; break;
      case CC.DEVICE_FEATURE: v = this.mmioRead(VIRTIO_MMIO_DEVICE_FEATURES); break;
      case CC.DRIVER_FEATURE_SELECT: v = s.load(MMIO_SLOT.DRIVER_FEATURES_SEL) >>> 0; break;
      case CC.DRIVER_FEATURE: {
        const page = s.load(MMIO_SLOT.DRIVER_FEATURES_SEL) >>> 0;
        v = page === 0 ? s.load(MMIO_SLOT.DRIVER_FEATURES_LO) >>> 0 : page === 1 ? s.load(MMIO_SLOT.DRIVER_FEATURES_HI) >>> 0 : 0;
        break;
      }
      case CC.MSIX_CONFIG: v = this.pci.configVector(); break;
      case CC.NUM_QUEUES: v = s.numQueues; break;
      case CC.DEVICE_STATUS: {
        const st = s.load(MMIO_SLOT.STATUS) >>> 0;
        // A reset the device could not honour leaves it activated and FAILED (mmio.ts). A PCI
        // driver polls the status until it reads 0 after a reset (Linux vp_reset), so show the
        // reset as done: its next initialisation is refused (FEATURES_OK never sticks) instead
        // of the driver spinning forever.
        v = st === VIRTIO_CONFIG_S_FAILED && s.activated() ? 0 : st;
        break;
      }
      case CC.CONFIG_GENERATION: v = s.load(MMIO_SLOT.CONFIG_GENERATION) & 0xff; break;
      case CC.QUEUE_SELECT: v = q & 0xffff; break;
      case CC.QUEUE_SIZE:
        // Reads the maximum until the driver picks a size (§4.1.4.3: queue_size starts at the maximum).
        v = qOk ? (s.load(s.queueSlot(q, MMIO_QUEUE_SLOT.NUM)) || this.device.queueMaxSizes[q]!) : 0;
        break;
      case CC.QUEUE_MSIX_VECTOR: v = qOk ? this.pci.queueVector(q) : VIRTIO_MSI_NO_VECTOR; break;
      case CC.QUEUE_ENABLE: v = qOk ? s.load(s.queueSlot(q, MMIO_QUEUE_SLOT.READY)) : 0; break;
      case CC.QUEUE_NOTIFY_OFF: v = qOk ? q : 0; break;
      default: return this.badCommon(offset, len, data);
    }
    writeLe(data, v);
  }

  private commonWrite(offset: number, data: Uint8Array): void {
    const len = data.length;
    const addr = ADDRESS_FIELDS.get(offset) ?? ADDRESS_FIELDS.get(offset - 4);
    if (addr) {
      const hiHalf = !ADDRESS_FIELDS.has(offset);
      if (len === 8 && !hiHalf) {
        this.mmioWrite(addr[0], readLe(data.subarray(0, 4)));
        this.mmioWrite(addr[1], readLe(data.subarray(4)));
      } else if (len === 4) this.mmioWrite(hiHalf ? addr[1] : addr[0], readLe(data));
      else this.badCommon(offset, len);
      return;
    }
    if (FIELD_WIDTH.get(offset) !== len) return this.badCommon(offset, len);
    const v = readLe(data);
    const q = this.selectedQueue();
    switch (offset) {
      case CC.DEVICE_FEATURE_SELECT: return this.mmioWrite(VIRTIO_MMIO_DEVICE_FEATURES_SEL, v);
      case CC.DRIVER_FEATURE_SELECT: return this.mmioWrite(VIRTIO_MMIO_DRIVER_FEATURES_SEL, v);
      case CC.DRIVER_FEATURE: return this.mmioWrite(VIRTIO_MMIO_DRIVER_FEATURES, v);
      case CC.MSIX_CONFIG:
        this.pci.lock();
        try { this.pci.setConfigVector(v); } finally { this.pci.unlock(); }
        return;
      case CC.DEVICE_STATUS:
        this.mmioWrite(VIRTIO_MMIO_STATUS, v);
        if (v === 0) {
          this.pci.lock();
          try { this.pci.resetVectors(); } finally { this.pci.unlock(); }
        }
        return;
      case CC.QUEUE_SELECT: return this.mmioWrite(VIRTIO_MMIO_QUEUE_SEL, v);
      case CC.QUEUE_SIZE: return this.mmioWrite(VIRTIO_MMIO_QUEUE_NUM, v);
      case CC.QUEUE_MSIX_VECTOR:
        if (q >= this.state.numQueues) return this.warn(`virtio-pci vector for queue ${q}, which does not exist`);
        this.pci.lock();
        try { this.pci.setQueueVector(q, v); } finally { this.pci.unlock(); }
        return;
      case CC.QUEUE_ENABLE:
        if (v !== 1) return this.warn(`virtio-pci queue_enable written with ${v}`);
        // A driver that keeps the offered size never writes queue_size: take the maximum.
        if (q < this.state.numQueues && this.state.load(this.state.queueSlot(q, MMIO_QUEUE_SLOT.NUM)) === 0) {
          this.mmioWrite(VIRTIO_MMIO_QUEUE_NUM, this.device.queueMaxSizes[q]!);
        }
        return this.mmioWrite(VIRTIO_MMIO_QUEUE_READY, 1);
      default:
        // device_feature, num_queues, config_generation, queue_notify_off are read-only.
        return this.warn(`virtio-pci write to read-only common config field 0x${offset.toString(16)}`);
    }
  }

  private badCommon(offset: number, len: number, data?: Uint8Array): void {
    data?.fill(0);
    this.warn(`virtio-pci common config access of ${len} bytes at 0x${offset.toString(16)}`);
  }
}

