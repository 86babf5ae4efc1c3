/**
 * A virtio-pmem device worker: one worker_thread per pmem device (pmem-protocol.ts),
 * Firecracker's pmem event handler on its own thread, so a slow msync stalls only this
 * device's flushes, never a vCPU.
 *
 * Loop: poll(ctl, request queue doorbell; timeout = the rate limiter's retry)
 *   ctl     → control calls (PATCH rate limiter, stop); activation once DRIVER_OK was seen;
 *   queue   → FLUSH requests: one msync(MS_SYNC) of the mapped file per queue run;
 *   timeout → the limiter's budget is back: serve what waited.
 */
import { parentPort } from 'node:worker_threads';
import { actorInit } from '../actor-init.js';
import { serveControl } from '../control-channel.js';
import { EventFd } from '../../kvm/eventfd.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { flushPmem } from '../../memory/pmem-mapping.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { RateLimiter } from '../../devices/rate-limiter/rate-limiter.js';
import { PMEM_QUEUE, PmemDevice } from '../../devices/virtio/pmem/device.js';
import { PmemMetrics } from '../../devices/virtio/pmem/metrics.js';
import { transportInterrupt } from './transport.js';
import { DeviceLoopTimer } from './device-poll.js';
import { WorkerLifecycle } from './worker-lifecycle.js';
import type { PmemControl, PmemWorkerInit } from './pmem-protocol.js';
import type { VirtioEventMessage } from './virtio-actor.js';

const init = actorInit<PmemWorkerInit>();
const port = parentPort!;
const post = (m: VirtioEventMessage): void => port.postMessage(m);
const label = `pmem ${init.id}`;

const mem = GuestMemory.fromDescriptor(init.memory);
const state = new MmioState(init.state);
const ctlEvt = new EventFd(init.ctlFd);
const queueEvt = new EventFd(init.queueFd);
const irqEvt = new EventFd(init.irqFd);
let flushFailsLogged = 0;
const device = new PmemDevice({
  start: init.start, size: init.size, fileLen: init.fileLen, rateLimiter: new RateLimiter(init.rateLimiter), metrics: new PmemMetrics(init.metrics),
  flush: () => {
    const ok = flushPmem({ addr: init.mapAddr, fileLen: init.fileLen });
    if (!ok && flushFailsLogged++ < 10) post({ kind: 'log', level: 'error', message: `${label}: Unable to msync the file.` });
    return ok;
  },
});
const interrupt = transportInterrupt(init.pci, state, irqEvt);

const life = new WorkerLifecycle(label, (message) => post({ kind: 'log', level: 'error', message }));
const control: PmemControl = {
  updateRateLimiter(rateLimiter) {
    life.refuseAfterStop();
    device.rateLimiter.update(rateLimiter);
  },
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
      if (life.quiesced) continue;
      if (life.activate(device, state, mem, interrupt)) device.processQueue();
    }
    if (ready.includes(queueEvt.fd)) {
      queueEvt.drain();
      device.onQueueNotify(PMEM_QUEUE);
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
