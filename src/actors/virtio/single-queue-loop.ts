/**
 * The event loop of a one-queue virtio device worker (entropy, pmem, virtio-mem): what those
 * workers do alike, so each keeps only its device, its own control calls and the few choices
 * below (SingleQueueLoop).
 *
 * Loop: poll(ctl, queue doorbell; timeout = the rate limiter's retry, when the device has one)
 *   ctl     → control calls (quiesce, release, stop and the device's own); activation once the
 *             transport saw DRIVER_OK, then the queue is served for what was posted before it;
 *   queue   → the device's queue notify;
 *   timeout → the limiter's budget is back: serve what waited.
 * While quiesced (a snapshot is being taken) only ctl is polled and the timer is disarmed:
 * the worker touches no guest memory until release(). The loop ends after a stop() call's
 * reply is out (exit 0); a throw ends the worker with the error logged to main (exit 1).
 * Nothing crosses to main per request: interrupts go through the irqfd, counters through the
 * shared metrics buffer.
 */
import { parentPort } from 'node:worker_threads';
import { serveControl } from '../control-channel.js';
import { EventFd } from '../../kvm/eventfd.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { transportInterrupt } from './transport.js';
import { DeviceLoopTimer } from './device-poll.js';
import { WorkerLifecycle, type Activatable } from './worker-lifecycle.js';
import type { SingleQueueWorkerInit, SnapshotControl, VirtioEventMessage } from './virtio-actor.js';

/** The control calls the loop serves itself. */
type LoopControl = SnapshotControl & { stop(): void };
/** A device's own control calls: the rest of its protocol's control interface. */
type DeviceControl<C> = Omit<C, keyof LoopControl>;

/** A device's rate-limiter timer (RateLimitedQueueDevice). */
export interface QueueTimer {
  /** Milliseconds until `onRateLimiterTimer` is due; 0 when nothing waits. */
  retryAfterMs(): number;
  onRateLimiterTimer(): void;
}

interface LoopOptions {
  /** Names the device in log lines and in ACTOR_EXITED errors. */
  label: string;
  init: SingleQueueWorkerInit;
  device: Activatable & { processQueue(): void };
  /**
   * The guest memory the device was built over, when the worker needed it first (virtio-mem's
   * backend); mapped from `init.memory` otherwise.
   */
  mem?: GuestMemory;
  /** Serves the queue doorbell. */
  onQueueNotify(): void;
  /** The rate limiter's timer; absent, the worker sleeps until an fd is readable. */
  timer?: QueueTimer;
  /**
   * Activate before the control calls are served rather than after them. virtio-mem does, so a
   * PATCH that arrives with DRIVER_OK finds the device active; the others activate only once
   * the calls are served and the worker is neither stopping nor quiesced.
   */
  activateFirst?: boolean;
}

/** The options; `control` is required when the protocol has calls of its own. */
export type SingleQueueLoop<C extends LoopControl> = LoopOptions &
  ({} extends DeviceControl<C>
    ? { control?: (life: WorkerLifecycle) => DeviceControl<C> }
    : {
      /** The device's own control calls; each starts with `life.refuseAfterStop()`. */
      control: (life: WorkerLifecycle) => DeviceControl<C>;
    });

/** Posts to main: `ready` and log lines. */
export function postToMain(m: VirtioEventMessage): void {
  parentPort!.postMessage(m);
}

/** Serves control calls of protocol `C` and runs the device's loop until stop(); then exits the worker. */
export function runSingleQueueLoop<C extends LoopControl>(o: SingleQueueLoop<C>): void {
  const { init, device, label } = o;
  const mem = o.mem ?? GuestMemory.fromDescriptor(init.memory);
  const state = new MmioState(init.state);
  const ctlEvt = new EventFd(init.ctlFd);
  const queueEvt = new EventFd(init.queueFd);
  const irqEvt = new EventFd(init.irqFd);
  const interrupt = transportInterrupt(init.pci, state, irqEvt);

  const life = new WorkerLifecycle(label, (message) => postToMain({ kind: 'log', level: 'error', message }));
  const control: LoopControl = {
    ...o.control?.(life),
    quiesce() {
      return life.quiesce(device);
    },
    release() {
      life.release();
    },
    stop() {
      life.stop();
    },
  };
  const server = serveControl(control, parentPort!);

  const activate = (): void => {
    if (life.activate(device, state, mem, interrupt)) device.processQueue();
  };

  async function loop(): Promise<void> {
    const timer = new DeviceLoopTimer();
    const fds = [ctlEvt.fd, queueEvt.fd];
    life.restore(device, state, mem, interrupt, init.restore?.queues ?? null);
    postToMain({ kind: 'ready' });
    for (;;) {
      const ready = timer.wait(life.quiesced ? [ctlEvt.fd] : fds, life.quiesced || !o.timer ? 0 : o.timer.retryAfterMs());
      if (ready.includes(ctlEvt.fd)) {
        ctlEvt.drain();
        if (o.activateFirst && !life.quiesced) activate();
        await server.dispatch();
        if (life.stopping) return;
        if (life.quiesced) continue; // a snapshot is being taken
        if (!o.activateFirst) activate();
      }
      if (ready.includes(queueEvt.fd)) {
        queueEvt.drain();
        o.onQueueNotify();
      }
      if (o.timer && timer.due()) o.timer.onRateLimiterTimer();
    }
  }

  loop().then(
    () => process.exit(0),
    (e: Error) => {
      postToMain({ kind: 'log', level: 'error', message: `${label}: device worker failed: ${e.stack ?? e}` });
      process.exit(1);
    },
  );
}
