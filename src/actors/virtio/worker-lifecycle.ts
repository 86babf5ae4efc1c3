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

/** A device model as the worker activates it. */
interface Activatable extends Pick<VirtioDevice, 'activate'> {
  readonly isActive: boolean;
}

export class WorkerLifecycle {
  /** Set by `stop()`: the worker's loop ends once the reply is out. */
  stopping = false;

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
