/**
 * The virtio-rng (entropy) device worker: one worker_thread for the VM's entropy device
 * (entropy-protocol.ts), Firecracker's entropy event handler on its own thread.
 *
 * Loop: poll(ctl, request queue doorbell; timeout = the rate limiter's retry)
 *   ctl     → control calls (stop); activation once the transport saw DRIVER_OK;
 *   queue   → serve the posted requests: getrandom straight into the chains' guest-RAM views;
 *   timeout → the limiter's budget is back: serve what waited.
 * Nothing crosses to main per request: interrupts go through the irqfd, counters through the
 * shared metrics buffer.
 */
import { parentPort } from 'node:worker_threads';
import { actorInit } from '../actor-init.js';
import { serveControl } from '../control-channel.js';
import { EventFd } from '../../kvm/eventfd.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { transportInterrupt } from './transport.js';
import { RateLimiter } from '../../devices/rate-limiter/rate-limiter.js';
import { EntropyDevice } from '../../devices/virtio/rng/device.js';
import { EntropyMetrics } from '../../devices/virtio/rng/metrics.js';
import { DeviceLoopTimer } from './device-poll.js';
import { WorkerLifecycle } from './worker-lifecycle.js';
import type { EntropyControl, EntropyWorkerInit } from './entropy-protocol.js';
import type { VirtioEventMessage } from './virtio-actor.js';

const init = actorInit<EntropyWorkerInit>();
const port = parentPort!;
const post = (m: VirtioEventMessage): void => port.postMessage(m);
const label = 'entropy';

const mem = GuestMemory.fromDescriptor(init.memory);
const state = new MmioState(init.state);
const ctlEvt = new EventFd(init.ctlFd);
const queueEvt = new EventFd(init.queueFd);
const irqEvt = new EventFd(init.irqFd);
const device = new EntropyDevice({ rateLimiter: new RateLimiter(init.rateLimiter), metrics: new EntropyMetrics(init.metrics) });
const interrupt = transportInterrupt(init.pci, state, irqEvt);

const life = new WorkerLifecycle(label, (message) => post({ kind: 'log', level: 'error', message }));
const control: EntropyControl = {
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
const server = serveControl(control, port);

async function loop(): Promise<void> {
  const timer = new DeviceLoopTimer();
  const fds = [ctlEvt.fd, queueEvt.fd];
  life.restore(device, state, mem, interrupt, init.restore?.queues ?? null);
  post({ kind: 'ready' });
  for (;;) {
    const ready = timer.wait(life.quiesced ? [ctlEvt.fd] : fds, life.quiesced ? 0 : device.retryAfterMs());
    if (ready.includes(ctlEvt.fd)) {
      ctlEvt.drain();
      await server.dispatch();
      if (life.stopping) return;
      if (life.quiesced) continue; // a snapshot is being taken
      if (life.activate(device, state, mem, interrupt)) device.processQueue();
    }
    if (ready.includes(queueEvt.fd)) {
      queueEvt.drain();
      device.onRequestQueueNotify();
    }
    if (timer.due()) device.onRateLimiterTimer();
  }
}

loop().then(
  () => process.exit(0),
  (e: Error) => {
    post({ kind: 'log', level: 'error', message: `${label}: device worker failed: ${e.stack ?? e}` });
    process.exit(1);
  },
);
