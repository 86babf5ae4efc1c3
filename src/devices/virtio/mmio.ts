/**
 * The virtio-mmio version 2 transport register file (virtio 1.1 §4.2.2–§4.2.3, Firecracker
 * devices/virtio/transport/mmio.rs; firecracker src/vmm/src/devices/virtio/transport/mmio.rs). One 4 KiB window per device:
 *
 *   0x000–0x0ff  registers, 32-bit accesses only (others: reads return 0, writes dropped);
 *                the shared memory registers (0x0ac–0x0bc) say "no region" for every device
 *   0x100–0xfff  device config space, any width, delegated to the device description
 *
 * Threads. Each vCPU worker builds its own MmioTransport over the *same* state buffer
 * (mmio-state.ts) and calls `read`/`write` from its MMIO exits; the callbacks run on that
 * vCPU thread with the state lock released:
 *   onActivate(activation)   DRIVER_OK accepted and every queue valid → tell the device worker
 *   onActivateFailed(err)    DRIVER_OK with a bad queue: NEEDS_RESET is set, config IRQ raised
 *   onNotify(queue)          a QueueNotify write reached the bus (normally an ioeventfd
 *                            consumes it in the kernel and the device worker sees the eventfd)
 *   interrupt(bit)           the transport ORed `bit` into InterruptStatus: raise the line
 *   onReset()                status 0 written while activated; false → the device cannot
 *                            reset: it stays activated and FAILED, and every later reset
 *                            latches FAILED again (Firecracker behaviour)
 *   warn(message)            an illegal access, for a (rate limited) log
 * The device worker never calls this class: it reads the activation from MmioState and raises
 * interrupts through MmioInterrupt.
 *
 * Status state machine (only these transitions; anything else is ignored with a warning):
 *
 *   0 ──► ACK ──► ACK|DRIVER ──► ACK|DRIVER|FEATURES_OK ──► ACK|DRIVER|FEATURES_OK|DRIVER_OK
 *   any value with FAILED ──► status | FAILED (latched)      0 ──► reset (from any status;
 *                                                                  activated: FAILED until
 *                                                                  onReset() drops it)
 *
 * DriverFeatures is writable with DRIVER set and none of FEATURES_OK, FAILED, NEEDS_RESET;
 * queue fields with FEATURES_OK set and neither DRIVER_OK nor FAILED; the config space with
 * DRIVER set and neither FAILED nor NEEDS_RESET; InterruptACK after DRIVER_OK.
 */
import type { BusDevice } from '../bus.js';
import { DeviceStateError, VirtioMmioError } from '../../errors.js';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_INIT, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1,
  VIRTIO_FEATURES_PAGE_BITS, VIRTIO_FEATURES_PAGES, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_MAGIC, VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, VIRTIO_MMIO_QUEUE_AVAIL_LOW,
  VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_USED_HIGH,
  VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_REGION_SIZE, VIRTIO_MMIO_SHM_BASE_HIGH, VIRTIO_MMIO_SHM_BASE_LOW, VIRTIO_MMIO_SHM_LEN_HIGH,
  VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_SHM_NONE, VIRTIO_MMIO_SHM_SEL, VIRTIO_MMIO_REGISTER_WIDTH, VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR, VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_VERSION, VIRTIO_MMIO_VERSION_2, VIRTQ_AVAIL_ALIGN,
  VIRTQ_DESC_ALIGN, VIRTQ_IDX_MASK, VIRTQ_USED_ALIGN, availRingSize, descTableSize, featureBit, usedRingSize,
} from './constants.js';
import type { VirtioActivation, VirtioDeviceDescription } from './device.js';
import { MMIO_QUEUE_SLOT, MMIO_SLOT, MmioState } from './mmio-state.js';

/** What the transport calls back (on the vCPU thread, lock released); see the module comment. */
export interface MmioTransportCallbacks {
  /** The driver set DRIVER_OK and the queues are valid: start the device with `activation`. */
  onActivate(activation: VirtioActivation): void;
  /** DRIVER_OK was refused by queue validation (NEEDS_RESET set, config interrupt raised). */
  onActivateFailed?(error: VirtioMmioError): void;
  /** A QueueNotify write for queue `queue` reached the bus while the device is active. */
  onNotify(queue: number): void;
  /** `bit` (VIRTIO_MMIO_INT_*) is set in InterruptStatus: raise the device's interrupt line. */
  interrupt(bit: number): void;
  /** The driver reset an activated device; return false when the device cannot reset. */
  onReset?(): boolean;
  /** An access the transport ignored (guest-triggered: rate limit before logging). */
  warn?(message: string): void;
}

/** The part of GuestMemory the transport needs to check queue placement. */
export interface GuestRam {
  /** True when [gpa, gpa + len) lies inside one RAM region. */
  contains(gpa: number, len: number): boolean;
}

/** Status from → to pairs the driver may write (§3.1.1 initialisation sequence). */
const VALID_TRANSITIONS: readonly (readonly [number, number])[] = [
  [VIRTIO_CONFIG_S_INIT, VIRTIO_CONFIG_S_ACKNOWLEDGE],
  [VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER],
  [VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK],
  [
    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK,
  ],
];
/** The status at which the device is activated. */
const STATUS_LIVE = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
/** Mask of one 32-bit feature page. */
const FEATURE_PAGE_MASK = (1n << BigInt(VIRTIO_FEATURES_PAGE_BITS)) - 1n;

/** Register offset → per-queue field written by the queue registers. */
const QUEUE_FIELD_OF: ReadonlyMap<number, number> = new Map([
  [VIRTIO_MMIO_QUEUE_DESC_LOW, MMIO_QUEUE_SLOT.DESC_LO],
  [VIRTIO_MMIO_QUEUE_DESC_HIGH, MMIO_QUEUE_SLOT.DESC_HI],
  [VIRTIO_MMIO_QUEUE_AVAIL_LOW, MMIO_QUEUE_SLOT.AVAIL_LO],
  [VIRTIO_MMIO_QUEUE_AVAIL_HIGH, MMIO_QUEUE_SLOT.AVAIL_HI],
  [VIRTIO_MMIO_QUEUE_USED_LOW, MMIO_QUEUE_SLOT.USED_LO],
  [VIRTIO_MMIO_QUEUE_USED_HIGH, MMIO_QUEUE_SLOT.USED_HI],
]);

/** Firecracker's `check_device_status`: every bit of `set` is set and no bit of `clear`. */
function statusIs(status: number, set: number, clear: number): boolean {
  return (status & (set | clear)) === set;
}

const BITS_PER_BYTE = 8;
const BYTE_MASK = 0xff;

function readLeU32(data: Uint8Array): number {
  let v = 0;
  for (let i = 0; i < VIRTIO_MMIO_REGISTER_WIDTH; i++) v |= data[i]! << (BITS_PER_BYTE * i);
  return v >>> 0;
}

function writeLeU32(data: Uint8Array, v: number): void {
  for (let i = 0; i < VIRTIO_MMIO_REGISTER_WIDTH; i++) data[i] = (v >>> (BITS_PER_BYTE * i)) & BYTE_MASK;
}

/** What a status write asks for once the lock is released. */
type StatusAction =
  | { kind: 'none' }
  | { kind: 'activate'; activation: VirtioActivation }
  | { kind: 'activate-failed'; error: VirtioMmioError }
  | { kind: 'reset-active' }
  | { kind: 'invalid'; warning: string };

/** The virtio-mmio register file of one device, as one vCPU thread sees it. */
export class MmioTransport implements BusDevice {
  private readonly state: MmioState;
  /** Offered features, VIRTIO_F_VERSION_1 included (page 1 bit 0 always set). */
  private readonly features: bigint;

  constructor(
    state: SharedArrayBuffer | MmioState,
    private readonly device: VirtioDeviceDescription,
    private readonly callbacks: MmioTransportCallbacks,
    private readonly ram: GuestRam,
  ) {
    this.state = state instanceof MmioState ? state : new MmioState(state);
    if (this.state.numQueues !== device.queueMaxSizes.length) {
      throw new DeviceStateError(`virtio-mmio state holds ${this.state.numQueues} queues, device has ${device.queueMaxSizes.length}`);
    }
    this.features = device.features | featureBit(VIRTIO_F_VERSION_1);
  }

  /** A register or config space read (vCPU thread). */
  read(offset: number, data: Uint8Array): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      if (offset + data.length <= VIRTIO_MMIO_REGION_SIZE) this.device.config.read(offset - VIRTIO_MMIO_CONFIG, data);
      else data.fill(0);
      return;
    }
    if (data.length !== VIRTIO_MMIO_REGISTER_WIDTH) {
      data.fill(0);
      this.warn(`virtio-mmio read of ${data.length} bytes at 0x${offset.toString(16)}`);
      return;
    }
    writeLeU32(data, this.readRegister(offset));
  }

  private readRegister(offset: number): number {
    const s = this.state;
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return VIRTIO_MMIO_VERSION_2;
      case VIRTIO_MMIO_DEVICE_ID:
        return this.device.deviceId;
      case VIRTIO_MMIO_VENDOR_ID:
        return VIRTIO_MMIO_VENDOR;
      case VIRTIO_MMIO_DEVICE_FEATURES: {
        const page = s.load(MMIO_SLOT.DEVICE_FEATURES_SEL) >>> 0;
        if (page >= VIRTIO_FEATURES_PAGES) return 0;
        return Number((this.features >> BigInt(page * VIRTIO_FEATURES_PAGE_BITS)) & FEATURE_PAGE_MASK);
      }
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
      case VIRTIO_MMIO_QUEUE_READY: {
        s.lock();
        const q = s.load(MMIO_SLOT.QUEUE_SEL) >>> 0;
        let v = 0;
        if (q < s.numQueues) {
          v = offset === VIRTIO_MMIO_QUEUE_NUM_MAX ? this.device.queueMaxSizes[q]! : s.load(s.queueSlot(q, MMIO_QUEUE_SLOT.READY));
        }
        s.unlock();
        return v;
      }
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return s.load(MMIO_SLOT.INTERRUPT_STATUS) >>> 0;
      case VIRTIO_MMIO_STATUS:
        return s.load(MMIO_SLOT.STATUS) >>> 0;
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return s.load(MMIO_SLOT.CONFIG_GENERATION) >>> 0;
      // No Kindling device has a shared memory region (virtio 1.2 §4.2.2: a region that does
      // not exist reads length -1). Linux asks whenever its driver could use one — virtio-fs
      // for DAX — and a length of 0 would read as a region at guest address 0, which fails the
      // probe (drivers/virtio/virtio_mmio.c vm_get_shm_region, fs/fuse/virtio_fs.c).
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
      case VIRTIO_MMIO_SHM_BASE_LOW:
      case VIRTIO_MMIO_SHM_BASE_HIGH:
        return VIRTIO_MMIO_SHM_NONE;
      default:
        this.warn(`unknown virtio-mmio register read at 0x${offset.toString(16)}`);
        return 0;
    }
  }

  /** A register or config space write (vCPU thread). */
  write(offset: number, data: Uint8Array): void {
    const s = this.state;
    if (offset >= VIRTIO_MMIO_CONFIG) {
      const status = s.load(MMIO_SLOT.STATUS);
      if (offset + data.length > VIRTIO_MMIO_REGION_SIZE) this.warn(`virtio-mmio config write past the window at 0x${offset.toString(16)}`);
      else if (statusIs(status, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_NEEDS_RESET)) {
        this.device.config.write(offset - VIRTIO_MMIO_CONFIG, data);
      } else this.warn(`virtio-mmio config write in status 0x${status.toString(16)}`);
      return;
    }
    if (data.length !== VIRTIO_MMIO_REGISTER_WIDTH) {
      this.warn(`virtio-mmio write of ${data.length} bytes at 0x${offset.toString(16)}`);
      return;
    }
    const v = readLeU32(data);
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        return s.store(MMIO_SLOT.DEVICE_FEATURES_SEL, v);
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        return s.store(MMIO_SLOT.DRIVER_FEATURES_SEL, v);
      case VIRTIO_MMIO_QUEUE_SEL:
        return s.store(MMIO_SLOT.QUEUE_SEL, v);
      case VIRTIO_MMIO_SHM_SEL:
        return; // every region reads as absent, whichever is selected
      case VIRTIO_MMIO_DRIVER_FEATURES:
        return this.ackFeatures(v);
      case VIRTIO_MMIO_QUEUE_NUM:
        return this.writeQueueField(MMIO_QUEUE_SLOT.NUM, v & VIRTQ_IDX_MASK);
      case VIRTIO_MMIO_QUEUE_READY:
        return this.writeQueueField(MMIO_QUEUE_SLOT.READY, v === 1 ? 1 : 0);
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        if (s.activated() && v < s.numQueues) this.callbacks.onNotify(v);
        else this.warn(`virtio-mmio notify of queue ${v} while inactive or out of range`);
        return;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        if (s.load(MMIO_SLOT.STATUS) & VIRTIO_CONFIG_S_DRIVER_OK) Atomics.and(s.i32, MMIO_SLOT.INTERRUPT_STATUS, ~v);
        else this.warn('virtio-mmio interrupt ACK before DRIVER_OK');
        return;
      case VIRTIO_MMIO_STATUS:
        return this.writeStatus(v);
      default: {
        const field = QUEUE_FIELD_OF.get(offset);
        if (field !== undefined) return this.writeQueueField(field, v);
        this.warn(`unknown virtio-mmio register write at 0x${offset.toString(16)}`);
      }
    }
  }

  /** DriverFeatures: ORs the offered subset of `v` into the selected page (Firecracker `ack_features_by_page`). */
  private ackFeatures(v: number): void {
    const s = this.state;
    let warning: string | undefined;
    s.lock();
    const status = s.load(MMIO_SLOT.STATUS);
    const page = s.load(MMIO_SLOT.DRIVER_FEATURES_SEL) >>> 0;
    if (!statusIs(status, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_NEEDS_RESET)) {
      warning = `virtio-mmio features acked in status 0x${status.toString(16)}`;
    } else if (page >= VIRTIO_FEATURES_PAGES) {
      warning = `virtio-mmio features acked on page ${page}`;
    } else {
      const offered = Number((this.features >> BigInt(page * VIRTIO_FEATURES_PAGE_BITS)) & FEATURE_PAGE_MASK);
      if ((v & ~offered) !== 0) warning = `virtio-mmio driver acked unoffered features 0x${((v & ~offered) >>> 0).toString(16)} on page ${page}`;
      const slot = page === 0 ? MMIO_SLOT.DRIVER_FEATURES_LO : MMIO_SLOT.DRIVER_FEATURES_HI;
      s.store(slot, s.load(slot) | (v & offered));
    }
    s.unlock();
    if (warning) this.warn(warning);
  }

  /** A queue register write, accepted only with FEATURES_OK set and DRIVER_OK, FAILED clear. */
  private writeQueueField(field: number, v: number): void {
    const s = this.state;
    s.lock();
    const status = s.load(MMIO_SLOT.STATUS);
    const q = s.load(MMIO_SLOT.QUEUE_SEL) >>> 0;
    const ok = statusIs(status, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED) && q < s.numQueues;
    if (ok) s.store(s.queueSlot(q, field), v);
    s.unlock();
    if (!ok) this.warn(`virtio-mmio queue ${q} field write in status 0x${status.toString(16)}`);
  }

  /** Status: the state machine in the module comment; callbacks run after unlocking. */
  private writeStatus(v: number): void {
    const s = this.state;
    s.lock();
    let action: StatusAction;
    try {
      action = this.statusTransitionLocked(v);
    } finally {
      s.unlock();
    }
    switch (action.kind) {
      case 'none':
        return;
      case 'invalid':
        return this.warn(action.warning);
      case 'activate':
        return this.callbacks.onActivate(action.activation);
      case 'activate-failed':
        this.callbacks.interrupt(VIRTIO_MMIO_INT_CONFIG);
        this.callbacks.onActivateFailed?.(action.error);
        return;
      case 'reset-active':
        if (this.callbacks.onReset?.() === true) {
          s.lock();
          s.store(MMIO_SLOT.ACTIVATED, 0);
          s.store(MMIO_SLOT.STATUS, s.load(MMIO_SLOT.STATUS) & ~VIRTIO_CONFIG_S_FAILED);
          s.unlock();
        }
        return;
      default: {
        const never: never = action;
        throw new Error(`unhandled status action ${(never as StatusAction).kind}`);
      }
    }
  }

  private statusTransitionLocked(v: number): StatusAction {
    const s = this.state;
    const current = s.load(MMIO_SLOT.STATUS);
    if (v & VIRTIO_CONFIG_S_FAILED) {
      s.store(MMIO_SLOT.STATUS, current | VIRTIO_CONFIG_S_FAILED);
      return { kind: 'none' };
    }
    if (v === VIRTIO_CONFIG_S_INIT) {
      if (current === VIRTIO_CONFIG_S_INIT) return { kind: 'none' };
      const wasActive = s.activated();
      this.resetLocked();
      if (!wasActive) return { kind: 'none' };
      // The device model keeps its activation (its rings) until onReset() says it dropped
      // it. Until then — for a device that cannot reset, for good — the transport stays
      // activated and FAILED: a driver may not initialise it again and have DRIVER_OK
      // accepted for new rings the device would never take over (Firecracker keeps such a
      // device activated and FAILED too, devices/virtio/transport/mmio.rs set_device_status).
      s.store(MMIO_SLOT.ACTIVATED, 1);
      s.store(MMIO_SLOT.STATUS, VIRTIO_CONFIG_S_FAILED);
      return { kind: 'reset-active' };
    }
    if (!VALID_TRANSITIONS.some(([from, to]) => current === from && v === to)) {
      return { kind: 'invalid', warning: `invalid virtio status transition 0x${current.toString(16)} -> 0x${v.toString(16)}` };
    }
    s.store(MMIO_SLOT.STATUS, v);
    if (v !== STATUS_LIVE || s.activated()) return { kind: 'none' };
    for (let q = 0; q < s.numQueues; q++) {
      const error = this.validateQueueLocked(q);
      if (error) {
        s.store(MMIO_SLOT.STATUS, v | VIRTIO_CONFIG_S_NEEDS_RESET);
        Atomics.or(s.i32, MMIO_SLOT.INTERRUPT_STATUS, VIRTIO_MMIO_INT_CONFIG);
        Atomics.add(s.i32, MMIO_SLOT.INTERRUPT_TRIGGERS, 1); // a trigger, as MmioInterrupt counts them
        return { kind: 'activate-failed', error };
      }
    }
    s.store(MMIO_SLOT.ACTIVATED, 1);
    return { kind: 'activate', activation: s.activationLocked() };
  }

  /** Firecracker `Queue::is_valid`: ready, size, alignment, inside RAM (firecracker src/vmm/src/devices/virtio/transport/mmio.rs). */
  private validateQueueLocked(q: number): VirtioMmioError | undefined {
    const c = this.state.queueConfig(q);
    const max = this.device.queueMaxSizes[q]!;
    if (!c.ready) return new VirtioMmioError('VIRTIO_MMIO_QUEUE_NOT_READY', `queue ${q} is not ready`, q);
    if (c.size === 0 || c.size > max || (c.size & (c.size - 1)) !== 0) {
      return new VirtioMmioError('VIRTIO_MMIO_QUEUE_SIZE', `queue ${q} size ${c.size} (max ${max}) is invalid`, q);
    }
    if (c.descTable % VIRTQ_DESC_ALIGN !== 0 || c.availRing % VIRTQ_AVAIL_ALIGN !== 0 || c.usedRing % VIRTQ_USED_ALIGN !== 0) {
      return new VirtioMmioError('VIRTIO_MMIO_QUEUE_ALIGNMENT', `queue ${q} rings are misaligned`, q);
    }
    if (
      !this.ram.contains(c.descTable, descTableSize(c.size)) ||
      !this.ram.contains(c.availRing, availRingSize(c.size)) ||
      !this.ram.contains(c.usedRing, usedRingSize(c.size))
    ) {
      return new VirtioMmioError('VIRTIO_MMIO_QUEUE_OUT_OF_RAM', `queue ${q} rings are not inside guest RAM`, q);
    }
    return undefined;
  }

  /** Device reset (§2.1, status 0): every register back to its initial value; config generation kept. */
  private resetLocked(): void {
    const s = this.state;
    for (const slot of [
      MMIO_SLOT.STATUS, MMIO_SLOT.DEVICE_FEATURES_SEL, MMIO_SLOT.DRIVER_FEATURES_SEL, MMIO_SLOT.QUEUE_SEL,
      MMIO_SLOT.INTERRUPT_STATUS, MMIO_SLOT.DRIVER_FEATURES_LO, MMIO_SLOT.DRIVER_FEATURES_HI, MMIO_SLOT.ACTIVATED,
    ]) {
      s.store(slot, 0);
    }
    for (let q = 0; q < s.numQueues; q++) {
      for (const field of Object.values(MMIO_QUEUE_SLOT)) s.store(s.queueSlot(q, field), 0);
    }
  }

  private warn(message: string): void {
    this.callbacks.warn?.(message);
  }
}
