/**
 * The virtio device actor's protocol. Each virtio device runs in its own worker_thread:
 *
 *   guest QueueNotify ──KVM_IOEVENTFD──▶ queue eventfd ─┐
 *   vCPU DRIVER_OK (transport onActivate) ─▶ ctl eventfd ┼─▶ poll() in the device worker
 *   main (PATCH drive, stop) ─ control call + ctl eventfd┘  (src/actors/control-channel.ts)
 *   device worker ──irq eventfd ──KVM_IRQFD──▶ guest interrupt (GSI)
 *
 * Register accesses never reach the worker: vCPU threads serve them from the shared
 * transport state (src/devices/virtio/mmio-state.ts). The worker sleeps in poll() when idle
 * (no busy polling) and serves control calls (BlockControl) only after the ctl eventfd fired.
 */
import type { CacheType, FileEngineType } from '../../devices/virtio/block/device.js';
import type { RateLimiterConfig } from '../../devices/rate-limiter/rate-limiter.js';
import type { SingleQueueWorkerInit, SnapshotControl, VirtioPciDoorbells } from './virtio-actor.js';

/** What a vCPU worker needs to serve a block device's registers. */
export interface VirtioBlockManifest {
  kind: 'virtio-block';
  /** MMIO base of the 4 KiB register window. */
  addr: number;
  /** Transport state (MmioState.create). */
  state: SharedArrayBuffer;
  /** struct virtio_blk_config, shared with the device worker (capacity updates on PATCH). */
  config: SharedArrayBuffer;
  readOnly: boolean;
  cacheType: CacheType;
  diskSizeBytes: number;
  /** Doorbells: ctl wakes the worker on activation; queue is rung if a notify reaches the bus. */
  ctlFd: number;
  queueFd: number;
  irqFd: number;
  /** virtio-pci (--enable-pci): the PCI state and MSI-X vector doorbells; null on virtio-mmio. */
  pci: VirtioPciDoorbells | null;
}

/** workerData of a block device worker. */
export interface BlockWorkerInit extends SingleQueueWorkerInit {
  driveId: string;
  /** The opened backing file (fds are process-wide). */
  fileFd: number;
  readOnly: boolean;
  cacheType: CacheType;
  /** Firecracker `io_engine`: Sync (blocking pread/pwrite on the worker) or Async (io_uring). */
  ioEngine: FileEngineType;
  diskSizeBytes: number;
  rateLimiter: RateLimiterConfig;
  config: SharedArrayBuffer;
  metrics: SharedArrayBuffer;
}

/**
 * What main may ask of a block device worker, as control calls (control-channel.ts): the
 * worker's side of Firecracker's Vmm::update_block_device_path / update_block_rate_limiter
 * (src/vmm/src/lib.rs) and of stopping the device.
 */
export interface BlockControl extends SnapshotControl {
  /**
   * PATCH /drives path_on_host: settle in-flight requests, then serve `fileFd` (a new capacity
   * of `diskSizeBytes`). The worker owns `fileFd` once this resolves and closes the old file;
   * if it throws, the drive keeps its old file and the caller still owns `fileFd`.
   */
  updateBackingFile(fileFd: number, diskSizeBytes: number): void;
  /** PATCH /drives rate_limiter: new token buckets. */
  updateRateLimiter(rateLimiter: RateLimiterConfig): void;
  /** Settles in-flight requests, closes the backing file and ends the worker after replying. */
  stop(): void;
}

/** Block worker → main, besides control replies. */
export type { VirtioEventMessage as BlockEventMessage } from './virtio-actor.js';
