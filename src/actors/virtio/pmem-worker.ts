/**
 * A virtio-pmem device worker: one worker_thread per pmem device (pmem-protocol.ts),
 * Firecracker's pmem event handler on its own thread, so a slow msync stalls only this
 * device's flushes, never a vCPU.
 *
 * Loop (single-queue-loop.ts): poll(ctl, request queue doorbell; timeout = the rate limiter's retry)
 *   ctl     → control calls (PATCH rate limiter, stop); activation once DRIVER_OK was seen;
 *   queue   → FLUSH requests: one msync(MS_SYNC) of the mapped file per queue run;
 *   timeout → the limiter's budget is back: serve what waited.
 */
import { actorInit } from '../actor-init.js';
import { flushPmem } from '../../memory/pmem-mapping.js';
import { RateLimiter } from '../../devices/rate-limiter/rate-limiter.js';
import { PMEM_QUEUE, PmemDevice } from '../../devices/virtio/pmem/device.js';
import { PmemMetrics } from '../../devices/virtio/pmem/metrics.js';
import { postToMain, runSingleQueueLoop } from './single-queue-loop.js';
import type { PmemControl, PmemWorkerInit } from './pmem-protocol.js';

const init = actorInit<PmemWorkerInit>();
const label = `pmem ${init.id}`;

let flushFailsLogged = 0;
const device = new PmemDevice({
  start: init.start, size: init.size, fileLen: init.fileLen, rateLimiter: new RateLimiter(init.rateLimiter), metrics: new PmemMetrics(init.metrics),
  flush: () => {
    const ok = flushPmem({ addr: init.mapAddr, fileLen: init.fileLen });
    if (!ok && flushFailsLogged++ < 10) postToMain({ kind: 'log', level: 'error', message: `${label}: Unable to msync the file.` });
    return ok;
  },
});

runSingleQueueLoop<PmemControl>({
  label,
  init,
  device,
  onQueueNotify: () => device.onQueueNotify(PMEM_QUEUE),
  timer: device,
  control: (life) => ({
    updateRateLimiter(rateLimiter) {
      life.refuseAfterStop();
      device.rateLimiter.update(rateLimiter);
    },
  }),
});
