/**
 * What every virtio device worker (block, net, vsock, entropy) does the same way around its
 * device: activate it once the transport has validated the driver's DRIVER_OK (virtio 1.1
 * §3.1.1; MmioState.activated), and refuse control calls once stop() has begun, because by
 * then the worker may have closed what the device uses (a backing file, a TAP, sockets) and a
 * reused fd number must never be touched again.
 */
import { KindlingError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { MmioState } from '../../devices/virtio/mmio-state.js';
import type { VirtioDevice, VirtioInterrupt } from '../../devices/virtio/device.js';
import type { QueueIndices } from '../../devices/virtio/queue.js';

/** A device model as the worker activates it. */
export interface Activatable extends Pick<VirtioDevice, 'activate' | 'activeQueues' | 'prepareSave'> {
  readonly isActive: boolean;
}

export class WorkerLifecycle {
  /** Set by `stop()`: the worker's loop ends once the reply is out. */
  stopping = false;
  /**
   * Set by `quiesce()` (a snapshot is being taken): the loop serves control calls only and
   * touches neither guest memory nor host I/O until `release()`. Events meanwhile stay
   * pending in their eventfds and sockets and are served after.
   */
  quiesced = false;

  constructor(private readonly label: string, private readonly logError: (message: string) => void) {}

  /** Activates `device` once DRIVER_OK was validated; true when it just did (a failure is logged, false). */
  activate(device: Activatable, state: MmioState, mem: GuestMemory, interrupt: VirtioInterrupt): boolean {
    if (device.isActive || !state.activated()) return false;
    const err = device.activate(mem, interrupt, state.activation());
    if (err) {
      this.logError(`${this.label}: activation failed: ${err.message}`);
      return false;
    }
    return true;
  }

  /**
   * Snapshot restore: activates `device` over the restored transport's queues, continuing
   * from the saved indices, and raises again an interrupt the transport shows pending
   * (MmioInterrupt.resend); true when the device is active afterwards.
   */
  restore(device: Activatable, state: MmioState, mem: GuestMemory, interrupt: VirtioInterrupt, queues: readonly QueueIndices[] | null): boolean {
    if (device.isActive || !state.activated() || !queues) return false;
    const err = device.activate(mem, interrupt, { ...state.activation(), restore: queues });
    if (err) {
      this.logError(`${this.label}: activation from the snapshot failed: ${err.message}`);
      return false;
    }
    interrupt.resend?.();
    return true;
  }

  /**
   * Snapshot: stops the loop touching guest memory, lets the device settle what it holds
   * (VirtioDevice.prepareSave) and returns its queue indices (null while inactive).
   */
  quiesce(device: Activatable): QueueIndices[] | null {
    this.refuseAfterStop();
    this.quiesced = true;
    if (!device.isActive) return null;
    device.prepareSave?.();
    return device.activeQueues().map((q) => q.indices());
  }

  /** After a snapshot: the loop serves the device again. */
  release(): void {
    this.refuseAfterStop();
    this.quiesced = false;
  }

  /** Throws ACTOR_EXITED once `stop()` has begun. */
  refuseAfterStop(): void {
    if (this.stopping) throw new KindlingError('ACTOR_EXITED', `${this.label}: the device worker is stopping`);
  }

  /** Marks the worker stopping; a second stop is refused like any late call. */
  stop(): void {
    this.refuseAfterStop();
    this.stopping = true;
  }
}
