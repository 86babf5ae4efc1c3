/**
 * BlockHandle: the main thread's side of one virtio-block device actor. It creates the
 * doorbells and shared state, registers the ioeventfd (QueueNotify, datamatch = queue 0) and
 * the irqfd (the drive's GSI) with KVM, starts the worker, and makes control calls (PATCH
 * /drives, stop) through the actor control channel, whose doorbell is the ctl eventfd.
 */
import type { Worker } from 'node:worker_threads';
import { startActor } from '../actor-pool.js';
import { connectControl, type ControlClient } from '../control-channel.js';
import type { KindlingError } from '../../errors.js';
import type { VmFd } from '../../kvm/kvm.js';
import { EventFd } from '../../kvm/eventfd.js';
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { BlockMetrics, type BlockMetricsSnapshot } from '../../devices/virtio/block/metrics.js';
import { encodeBlockConfig, blockCapacity, type CacheType, type FileEngineType } from '../../devices/virtio/block/device.js';
import { VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_BLK_CONFIG_SIZE } from '../../devices/virtio/constants.js';
import type { RateLimiterConfig } from '../../devices/rate-limiter/rate-limiter.js';
import type { BlockControl, BlockEventMessage, BlockWorkerInit, VirtioBlockManifest } from './protocol.js';

/** Queue index of the block device's only queue (the ioeventfd datamatch). */
const BLOCK_QUEUE_INDEX = 0n;
/** QueueNotify is a 4-byte register. */
const QUEUE_NOTIFY_WIDTH = 4;

export interface BlockSpawnOptions {
  vm: VmFd;
  memory: GuestMemoryDescriptor;
  driveId: string;
  fileFd: number;
  diskSizeBytes: number;
  readOnly: boolean;
  cacheType: CacheType;
  /** Firecracker `io_engine` (default Sync). */
  ioEngine?: FileEngineType;
  rateLimiter: RateLimiterConfig;
  /** MMIO window and interrupt line assigned to this device. */
  addr: number;
  gsi: number;
  onLog?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export class BlockHandle {
  readonly driveId: string;
  /** The entry vCPU workers need to serve this device's registers. */
  readonly manifest: VirtioBlockManifest;
  private readonly control: ControlClient<BlockControl>;
  private readonly fds: EventFd[];
  private readonly metrics: BlockMetrics;
  private readonly ended: Promise<void>;
  private stopped: Promise<void> | undefined;

  private constructor(opts: BlockSpawnOptions, worker: Worker, fds: { ctl: EventFd; queue: EventFd; irq: EventFd }, manifest: VirtioBlockManifest, metrics: BlockMetrics) {
    this.driveId = opts.driveId;
    this.control = connectControl<BlockControl>(worker, fds.ctl, `drive ${opts.driveId}`);
    this.fds = [fds.ctl, fds.queue, fds.irq];
    this.manifest = manifest;
    this.metrics = metrics;
    worker.on('message', (m: BlockEventMessage) => {
      if (m.kind === 'log') opts.onLog?.(m.level, m.message);
    });
    this.ended = new Promise((r) => worker.once('exit', () => r()));
  }

  /** Sets up KVM doorbells and starts the device worker; resolves when it is ready. */
  static async spawn(opts: BlockSpawnOptions): Promise<BlockHandle> {
    const fds = { ctl: new EventFd(), queue: new EventFd(), irq: new EventFd() };
    opts.vm.registerIoeventfd(fds.queue.fd, BigInt(opts.addr + VIRTIO_MMIO_QUEUE_NOTIFY), QUEUE_NOTIFY_WIDTH, { datamatch: BLOCK_QUEUE_INDEX });
    opts.vm.registerIrqfd(fds.irq.fd, opts.gsi);
    const state = MmioState.create(1);
    const config = new SharedArrayBuffer(VIRTIO_BLK_CONFIG_SIZE);
    encodeBlockConfig(blockCapacity(opts.diskSizeBytes), new Uint8Array(config));
    const metrics = new BlockMetrics();
    const init: BlockWorkerInit = {
      driveId: opts.driveId, fileFd: opts.fileFd, readOnly: opts.readOnly, cacheType: opts.cacheType,
      ioEngine: opts.ioEngine ?? 'Sync', diskSizeBytes: opts.diskSizeBytes, rateLimiter: opts.rateLimiter, state, config,
      metrics: metrics.buffer, memory: opts.memory, ctlFd: fds.ctl.fd, queueFd: fds.queue.fd, irqFd: fds.irq.fd,
    };
    const manifest: VirtioBlockManifest = {
      kind: 'virtio-block', addr: opts.addr, state, config, readOnly: opts.readOnly, cacheType: opts.cacheType,
      diskSizeBytes: opts.diskSizeBytes, ctlFd: fds.ctl.fd, queueFd: fds.queue.fd, irqFd: fds.irq.fd,
    };
    const worker = startActor('block', init, `fc_blk ${opts.driveId}`);
    const h = new BlockHandle(opts, worker, fds, manifest, metrics);
    await new Promise<void>((resolve, reject) => {
      const onMsg = (m: BlockEventMessage): void => { if (m.kind === 'ready') { worker.off('message', onMsg); resolve(); } };
      worker.on('message', onMsg);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`block worker for ${opts.driveId} exited (${code}) before ready`)));
    });
    return h;
  }

  /** PATCH /drives path_on_host: swap the backing file (the worker closes the old fd). */
  updateBackingFile(fileFd: number, diskSizeBytes: number): Promise<void> {
    return this.control.remote.updateBackingFile(fileFd, diskSizeBytes);
  }

  /** PATCH /drives rate_limiter. */
  updateRateLimiter(rateLimiter: RateLimiterConfig): Promise<void> {
    return this.control.remote.updateRateLimiter(rateLimiter);
  }

  /**
   * Makes the worker look at its queue as if the guest had notified it. On resume Firecracker
   * kicks every device before the vCPUs run again (src/vmm/src/lib.rs `resume_vm` →
   * `kick_devices`): requests a driver queued while its notification was lost or deferred get
   * served. A worker whose device is not active ignores it.
   */
  kick(): void {
    this.fds[1]!.signal();
  }

  /** Block metrics (absolute counters). */
  metricsSnapshot(): BlockMetricsSnapshot {
    return this.metrics.snapshot();
  }

  /** Stops the worker and closes its doorbells; later calls return the same promise. */
  stop(): Promise<void> {
    this.stopped ??= this.stopOnce();
    return this.stopped;
  }

  private async stopOnce(): Promise<void> {
    // A worker that already ended (it failed) has nothing left to stop: ACTOR_EXITED is fine.
    const reply = this.control.remote.stop().then(
      () => undefined,
      (e: KindlingError) => (e.code === 'ACTOR_EXITED' ? undefined : e),
    );
    await this.ended;
    this.control.close(); // before the doorbells close: no later call may ring a reused fd
    this.fds.forEach((f) => f.close());
    const failed = await reply;
    if (failed) throw failed;
  }
}
