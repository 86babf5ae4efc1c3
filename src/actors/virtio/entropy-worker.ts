/**
 * The virtio-rng (entropy) device worker: one worker_thread for the VM's entropy device
 * (entropy-protocol.ts), Firecracker's entropy event handler on its own thread.
 *
 * Loop (single-queue-loop.ts): poll(ctl, request queue doorbell; timeout = the rate limiter's retry)
 *   ctl     → control calls (stop); activation once the transport saw DRIVER_OK;
 *   queue   → serve the posted requests: getrandom straight into the chains' guest-RAM views;
 *   timeout → the limiter's budget is back: serve what waited.
 */
import { actorInit } from '../actor-init.js';
import { RateLimiter } from '../../devices/rate-limiter/rate-limiter.js';
import { EntropyDevice } from '../../devices/virtio/rng/device.js';
import { EntropyMetrics } from '../../devices/virtio/rng/metrics.js';
import { runSingleQueueLoop } from './single-queue-loop.js';
import type { EntropyControl, EntropyWorkerInit } from './entropy-protocol.js';

const init = actorInit<EntropyWorkerInit>();
const device = new EntropyDevice({ rateLimiter: new RateLimiter(init.rateLimiter), metrics: new EntropyMetrics(init.metrics) });

runSingleQueueLoop<EntropyControl>({
  label: 'entropy',
  init,
  device,
  onQueueNotify: () => device.onRequestQueueNotify(),
  timer: device,
});
