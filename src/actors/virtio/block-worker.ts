/**
 * The virtio-block device worker: one worker_thread per drive (protocol.ts).
 *
 * Loop: poll(queue eventfd, ctl eventfd[, io_uring completion eventfd];
 *            timeout = the rate limiter's retry delay or none)
 *   ctl    → serve control calls (BlockControl: PATCH, stop; control-channel.ts); activate
 *            the device once the transport says the driver set DRIVER_OK (state read from
 *            shared memory), then process the queue (Firecracker re-kicks queues after
 *            activation);
 *   queue  → process the queue (the guest's QueueNotify arrived through KVM_IOEVENTFD);
 *   completion → (io_engine Async) finish the requests io_uring completed;
 *   timeout→ the rate limiter's 100 ms retry timer (Firecracker's REFILL_TIMER_INTERVAL_MS,
 *            src/vmm/src/rate_limiter/mod.rs).
 * io_engine Sync: I/O is synchronous on this thread, a slow disk delays only this drive.
 * io_engine Async: requests go to an io_uring and complete while the worker sleeps in poll().
 * Before a backing-file swap and before stopping, requests in flight are settled first.
 */
import { parentPort } from 'node:worker_threads';
import { actorInit } from '../actor-init.js';
import { serveControl } from '../control-channel.js';
import { KindlingError } from '../../errors.js';
import { closeSync } from 'node:fs';
import { EventFd } from '../../kvm/eventfd.js';
import { DeviceLoopTimer } from './device-poll.js';
import { WorkerLifecycle } from './worker-lifecycle.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { BlockDevice } from '../../devices/virtio/block/device.js';
import { BlockMetrics } from '../../devices/virtio/block/metrics.js';
import { FileBlockBackend } from '../../devices/virtio/block/file-backend.js';
import { UringBlockBackend } from './uring-backend.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { transportInterrupt } from './transport.js';
import { RateLimiter } from '../../devices/rate-limiter/rate-limiter.js';
import type { BlockWorkerInit, BlockControl, BlockEventMessage } from './protocol.js';

const init = actorInit<BlockWorkerInit>();
const port = parentPort!;
const post = (m: BlockEventMessage): void => port.postMessage(m);

const mem = GuestMemory.fromDescriptor(init.memory);
const state = new MmioState(init.state);
const queueEvt = new EventFd(init.queueFd);
const ctlEvt = new EventFd(init.ctlFd);
const irqEvt = new EventFd(init.irqFd);
const openBackend = (fd: number): FileBlockBackend | UringBlockBackend =>
  (init.ioEngine === 'Async' ? new UringBlockBackend(fd) : new FileBlockBackend(fd));
let backend = openBackend(init.fileFd);
const device = new BlockDevice(
  { diskSizeBytes: init.diskSizeBytes, readOnly: init.readOnly, cacheType: init.cacheType },
  backend,
  { rateLimiter: new RateLimiter(init.rateLimiter), metrics: new BlockMetrics(init.metrics), configBytes: new Uint8Array(init.config) },
);
const interrupt = transportInterrupt(init.pci, state, irqEvt);

// The backing file is closed once stop() began: touching its fd number again could hit a reused fd.
const life = new WorkerLifecycle(`drive ${init.driveId}`, (message) => post({ kind: 'log', level: 'error', message }));

const control: BlockControl = {
  updateBackingFile(fileFd, diskSizeBytes) {
    life.refuseAfterStop();
    const old = backend;
    try {
      backend = openBackend(fileFd);
    } catch (e) {
      // e.g. no io_uring slot left: the drive keeps its old file, the PATCH fails (the
      // sender still owns fileFd and closes it: Vmm.updateDrive).
      const code = e instanceof KindlingError ? e.code : 'INTERNAL';
      throw new KindlingError(code, `drive ${init.driveId}: cannot open the new backing file's engine: ${(e as Error).message}`, { cause: e });
    }
    device.updateBackend(backend, diskSizeBytes); // settles the old backend's requests first
    if (old instanceof UringBlockBackend) old.close();
    closeSync(old.fd);
  },
  quiesce() {
    return life.quiesce(device);
  },
  release() {
    life.release();
  },
  updateRateLimiter(rateLimiter) {
    life.refuseAfterStop();
    device.rateLimiter.update(rateLimiter);
  },
  stop() {
    life.stop();
    device.settleInFlight();
    if (backend instanceof UringBlockBackend) backend.close();
    closeSync(backend.fd); // the worker owns the current backing file from spawn or PATCH on
  },
};
const server = serveControl(control, port);

async function loop(): Promise<void> {
  const timer = new DeviceLoopTimer();
  life.restore(device, state, mem, interrupt, init.restore?.queues ?? null);
  post({ kind: 'ready' });
  for (;;) {
    const ring = backend instanceof UringBlockBackend ? backend : undefined;
    const fds = life.quiesced ? [ctlEvt.fd] : ring ? [queueEvt.fd, ctlEvt.fd, ring.completionFd] : [queueEvt.fd, ctlEvt.fd];
    const ready = timer.wait(fds, life.quiesced ? 0 : device.retryAfterMs());
    if (ring && ready.includes(ring.completionFd)) {
      ring.drainDoorbell(); // before reaping: a completion after the reap rings it again
      device.onIoCompletion();
    }
    if (ready.includes(ctlEvt.fd)) {
      ctlEvt.drain();
      await server.dispatch();
      if (life.stopping) return;
      if (life.quiesced) continue; // a snapshot is being taken: guest memory is not ours to touch
      const wasActive = device.isActive;
      life.activate(device, state, mem, interrupt);
      if (!wasActive && device.isActive) await device.processQueue();
    }
    if (ready.includes(queueEvt.fd)) {
      queueEvt.drain();
      if (device.isActive) await device.onQueueNotify(0);
    }
    if (timer.due()) await device.onRateLimiterTimer();
  }
}

loop().then(
  () => process.exit(0),
  (e: Error) => {
    post({ kind: 'log', level: 'error', message: `drive ${init.driveId}: device worker failed: ${e.stack ?? e}` });
    process.exit(1);
  },
);
