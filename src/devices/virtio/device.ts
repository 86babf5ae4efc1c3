/**
 * What a virtio device model and a transport agree on (virtio 1.1 §2, §3), independent of
 * the transport (virtio-mmio or virtio-pci) and of threads:
 *
 * - `VirtioDeviceDescription`: the static face a transport shows the driver (device id,
 *   offered features, queue count and maximum sizes, config space). Cheap and free of
 *   backends, so every vCPU thread can build its own copy for its MmioTransport.
 * - `VirtioActivation`: what the driver negotiated at DRIVER_OK (acked features, queue
 *   placement). Plain data: it crosses from a vCPU thread to the device worker by
 *   structured clone or is re-read from the transport state there.
 * - `VirtioInterrupt`: the device's only way back to the transport, injected at activation
 *   with the guest memory (docs/design.md, Layers): raise a used-buffer or config interrupt,
 *   or report that the device needs a reset.
 * - `VirtioDevice`: what the device worker actor calls on the model.
 */
import { VirtioActivateError, VirtqueueError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_RING_INDIRECT_DESC, hasFeature } from './constants.js';
import { Queue, type QueueConfig, type QueueIndices } from './queue.js';

/** Kinds of interrupt a device raises; a transport maps them to its own mechanism. */
export const VIRTIO_INTERRUPT = {
  /** A used buffer notification (§2.6.7), MMIO InterruptStatus bit VIRTIO_MMIO_INT_VRING. */
  VRING: 'vring',
  /** A configuration change notification (§4.2.2), bit VIRTIO_MMIO_INT_CONFIG. */
  CONFIG: 'config',
} as const;

/** One of VIRTIO_INTERRUPT's values. */
export type VirtioInterruptType = (typeof VIRTIO_INTERRUPT)[keyof typeof VIRTIO_INTERRUPT];

/** The device-to-transport channel (Firecracker `VirtioInterrupt`). */
export interface VirtioInterrupt {
  /**
   * Sets the interrupt reason in the transport and raises the guest interrupt. `queue` names
   * the queue of a VRING interrupt (virtio-pci raises that queue's MSI-X vector; virtio-mmio
   * has one line and ignores it).
   */
  trigger(type: VirtioInterruptType, queue?: number): void;
  /**
   * The device hit an unrecoverable error (e.g. a broken queue): sets
   * VIRTIO_CONFIG_S_NEEDS_RESET and raises a config interrupt (§2.1.2).
   */
  needsReset(): void;
  /**
   * After a snapshot restore: raises the interrupt again if the restored transport shows one
   * pending (an edge in flight at the save is not in the snapshot).
   */
  resend?(): void;
}

/** A device-specific configuration space (§4.2.2 offset 0x100 onward, any access width). */
export interface VirtioConfigSpace {
  /** Fills `data` with the bytes at `offset`; bytes past the end read as zero. */
  read(offset: number, data: Uint8Array): void;
  /** A driver write of `data` at `offset` (the transport has checked the device status). */
  write(offset: number, data: Uint8Array): void;
}

/** The static description a transport needs to present a device. */
export interface VirtioDeviceDescription {
  /** VIRTIO_ID_* of the device. */
  readonly deviceId: number;
  /** Offered feature bits (VIRTIO_F_VERSION_1 is always added by the transport). */
  readonly features: bigint;
  /** QueueNumMax of each queue; the length is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** The configuration space. */
  readonly config: VirtioConfigSpace;
}

/** What the driver negotiated, handed to the device at DRIVER_OK. */
export interface VirtioActivation {
  /** Features the driver acked (a subset of the offered ones). */
  readonly ackedFeatures: bigint;
  /** One entry per queue, in queue index order, validated by the transport. */
  readonly queues: readonly QueueConfig[];
  /**
   * Snapshot restore: where each queue's device side stood when the snapshot was taken (same
   * order as `queues`). Absent for a driver's own DRIVER_OK.
   */
  readonly restore?: readonly QueueIndices[];
}

/** The model side of a virtio device, as the device worker actor drives it. */
export interface VirtioDevice {
  /** The description the vCPU-side transport is built from. */
  readonly description: VirtioDeviceDescription;
  /** Starts the device over the driver's queues; an error value means NEEDS_RESET was raised. */
  activate(mem: GuestMemory, interrupt: VirtioInterrupt, activation: VirtioActivation): VirtioActivateError | undefined;
  /** The driver notified queue `queue` (ioeventfd, or a QueueNotify write that reached the bus). */
  onQueueNotify(queue: number): void | Promise<void>;
  /** Drops the activation (driver wrote status 0); false when the device cannot be reset. */
  reset(): boolean;
  /** The activated queues in index order (a snapshot saves their indices); empty when inactive. */
  activeQueues(): readonly Queue[];
  /**
   * Snapshot: bring the device to a state its queue indices fully describe (requests in
   * flight completed, chains popped but not used given back to the avail ring). The device
   * keeps working afterwards. Optional: devices that hold nothing between events omit it.
   */
  prepareSave?(): void;
}

/**
 * A config space over a byte array, which may view a SharedArrayBuffer so that a device
 * worker's updates (e.g. a new capacity) are seen by every vCPU thread. Writes go to
 * `onWrite` (devices whose config is read-only count them as `cfg_fails`).
 */
export class ByteConfigSpace implements VirtioConfigSpace {
  constructor(
    /** The config bytes, little-endian fields as the device type defines them. */
    readonly bytes: Uint8Array,
    private readonly onWrite: (offset: number, data: Uint8Array) => void = () => {},
  ) {}

  /** Copies the overlapping bytes; anything past the end (or a bad offset) reads as zero. */
  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (!Number.isInteger(offset) || offset < 0 || offset >= this.bytes.length) return;
    data.set(this.bytes.subarray(offset, Math.min(offset + data.length, this.bytes.length)));
  }

  /** Forwards the write to the owner's handler. */
  write(offset: number, data: Uint8Array): void {
    this.onWrite(offset, data);
  }
}

/**
 * Builds the device-side Queue objects of an activation, with EVENT_IDX and INDIRECT_DESC as
 * negotiated. The first failure is returned (it cannot happen when the transport validated
 * the same memory).
 */
export function createQueues(mem: GuestMemory, activation: VirtioActivation): Queue[] | VirtqueueError {
  const eventIdx = hasFeature(activation.ackedFeatures, VIRTIO_F_RING_EVENT_IDX);
  const indirect = hasFeature(activation.ackedFeatures, VIRTIO_F_RING_INDIRECT_DESC);
  const queues: Queue[] = [];
  for (const [i, cfg] of activation.queues.entries()) {
    const restore = activation.restore?.[i];
    const q = Queue.create(mem, cfg, restore ? { eventIdx, indirect, restore, index: i } : { eventIdx, indirect, index: i });
    if (!(q instanceof Queue)) return q;
    queues.push(q);
  }
  return queues;
}

/**
 * The queues of an activation for a device of `count` queues (`name` for the message). A wrong
 * queue count or an unusable ring asks the driver for a reset (NEEDS_RESET and a config
 * interrupt) and returns the error; the caller counts it (`activate_fails`).
 */
export function activateQueues(
  mem: GuestMemory, interrupt: VirtioInterrupt, activation: VirtioActivation, count: number, name: string,
): Queue[] | VirtioActivateError {
  let error: VirtioActivateError;
  if (activation.queues.length !== count) {
    error = new VirtioActivateError(`${name} has ${count} queue${count === 1 ? '' : 's'}, got ${activation.queues.length}`);
  } else {
    const queues = createQueues(mem, activation);
    if (!(queues instanceof VirtqueueError)) return queues;
    error = new VirtioActivateError(`${name} queue: ${queues.message}`, { cause: queues });
  }
  interrupt.needsReset();
  return error;
}

/** Raises a used-buffer interrupt when the driver asks for one (§2.6.7.2, EVENT_IDX rules). */
export function signalUsed(queue: Queue, interrupt: VirtioInterrupt): void {
  if (queue.needsNotification()) interrupt.trigger(VIRTIO_INTERRUPT.VRING, queue.index);
}
