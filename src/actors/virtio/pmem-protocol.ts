/**
 * The virtio-pmem device actor's protocol (the shape is the entropy actor's,
 * entropy-protocol.ts). The backing file is mapped by main (src/memory/pmem-mapping.ts) and
 * into the guest as a KVM slot; the worker serves FLUSH requests with msync on that mapping,
 * off the vCPU threads, and sleeps in poll() on its queue, its control doorbell and the rate
 * limiter's timer.
 */
import type { RateLimiterConfig } from '../../devices/rate-limiter/rate-limiter.js';
import type { SingleQueueWorkerInit, SnapshotControl, VirtioPciDoorbells } from './virtio-actor.js';

/** What a vCPU worker needs to serve a pmem device's registers. */
export interface VirtioPmemManifest {
  kind: 'virtio-pmem';
  addr: number;
  state: SharedArrayBuffer;
  /** The guest window (config space start / size). */
  start: number;
  size: number;
  /** The device's metrics buffer: a driver's config write counts `cfg_fails` on the vCPU thread. */
  metrics: SharedArrayBuffer;
  ctlFd: number;
  queueFds: number[];
  irqFd: number;
  pci: VirtioPciDoorbells | null;
}

/** workerData of a pmem device worker. */
export interface PmemWorkerInit extends SingleQueueWorkerInit {
  id: string;
  /** Host address and file length of the mapping FLUSH writes back. */
  mapAddr: bigint;
  fileLen: number;
  start: number;
  size: number;
  rateLimiter: RateLimiterConfig;
  metrics: SharedArrayBuffer;
}

/** What main may ask of a pmem worker (control-channel.ts). */
export interface PmemControl extends SnapshotControl {
  /** PATCH /pmem/{id} rate_limiter. */
  updateRateLimiter(rateLimiter: RateLimiterConfig): void;
  stop(): void;
}
