/**
 * The virtio-rng (entropy) device actor's protocol (the shape is the net actor's,
 * net-protocol.ts). The worker sleeps in poll() on its request queue's doorbell (filled by
 * KVM_IOEVENTFD), the control doorbell, and the rate limiter's timer as the poll timeout.
 */
import type { RateLimiterConfig } from '../../devices/rate-limiter/rate-limiter.js';
import type { SingleQueueWorkerInit, SnapshotControl, VirtioPciDoorbells } from './virtio-actor.js';

/** What a vCPU worker needs to serve the entropy device's registers. */
export interface VirtioEntropyManifest {
  kind: 'virtio-rng';
  /** MMIO base of the 4 KiB register window. */
  addr: number;
  /** Transport state (MmioState.create). */
  state: SharedArrayBuffer;
  ctlFd: number;
  /** The request queue's doorbell. */
  queueFds: number[];
  irqFd: number;
  /** virtio-pci (--enable-pci): the PCI state and MSI-X vector doorbells; null on virtio-mmio. */
  pci: VirtioPciDoorbells | null;
}

/** workerData of the entropy device worker. */
export interface EntropyWorkerInit extends SingleQueueWorkerInit {
  /** PUT /entropy rate_limiter (an empty object: unlimited). */
  rateLimiter: RateLimiterConfig;
  metrics: SharedArrayBuffer;
}

/** What main may ask of the entropy worker (control-channel.ts). */
export interface EntropyControl extends SnapshotControl {
  /** Ends the worker after replying. */
  stop(): void;
}
