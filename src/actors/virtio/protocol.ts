/**
 * The virtio device actor's protocol. Each virtio device runs in its own worker_thread:
 *
 *   guest QueueNotify ──KVM_IOEVENTFD──▶ queue eventfd ─┐
 *   vCPU DRIVER_OK (transport onActivate) ─▶ ctl eventfd ┼─▶ poll() in the device worker
 *   main (PATCH drive, stop) ─ message + ctl eventfd ────┘
 *   device worker ──irq eventfd ──KVM_IRQFD──▶ guest interrupt (GSI)
 *
 * Register accesses never reach the worker: vCPU threads serve them from the shared
 * transport state (src/devices/virtio/mmio-state.ts). The worker sleeps in poll() when idle
 * (no busy polling) and drains its message port only after the ctl eventfd fired.
 */
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import type { CacheType, FileEngineType } from '../../devices/virtio/block/device.js';
import type { RateLimiterConfig } from '../../devices/rate-limiter/rate-limiter.js';

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
}

/** workerData of a block device worker. */
export interface BlockWorkerInit {
  driveId: string;
  /** The opened backing file (fds are process-wide). */
  fileFd: number;
  readOnly: boolean;
  cacheType: CacheType;
  /** Firecracker `io_engine`: Sync (blocking pread/pwrite on the worker) or Async (io_uring). */
  ioEngine: FileEngineType;
  diskSizeBytes: number;
  rateLimiter: RateLimiterConfig;
  state: SharedArrayBuffer;
  config: SharedArrayBuffer;
  metrics: SharedArrayBuffer;
  memory: GuestMemoryDescriptor;
  ctlFd: number;
  queueFd: number;
  irqFd: number;
}

/** Main → block worker (each followed by a ctl eventfd signal). */
export type BlockRequestMessage =
  | { kind: 'update'; id: number; fileFd: number; diskSizeBytes: number }
  | { kind: 'update-rate-limiter'; id: number; rateLimiter: RateLimiterConfig }
  | { kind: 'stop'; id: number };

/** Block worker → main. */
export type BlockReplyMessage =
  | { kind: 'ready' }
  | { kind: 'done'; id: number; error?: string }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; message: string };
