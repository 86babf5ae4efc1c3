/**
 * BlockHandle: the main thread's side of one virtio-block device actor: the block device's
 * shared state (transport, config space with the capacity, metrics) over the common virtio
 * actor plumbing (virtio-actor.ts: doorbells, ioeventfd/irqfd, control calls, stop).
 */
import type { VmFd } from '../../kvm/kvm.js';
import { VIRTIO_ID_BLOCK } from '../../devices/virtio/constants.js';
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { BlockMetrics, type BlockMetricsSnapshot } from '../../devices/virtio/block/metrics.js';
import { encodeBlockConfig, blockCapacity, type CacheType, type FileEngineType } from '../../devices/virtio/block/device.js';
import { VIRTIO_BLK_CONFIG_SIZE } from '../../devices/virtio/constants.js';
import type { RateLimiterConfig } from '../../devices/rate-limiter/rate-limiter.js';
import type { BlockControl, BlockWorkerInit, VirtioBlockManifest } from './protocol.js';
import { VirtioActor, VirtioDeviceHandle, type VirtioDeviceSnapshot, type VirtioPciPlacement } from './virtio-actor.js';

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
  /** With --enable-pci: the device's PCI placement (addr/gsi are then unused). */
  pci?: VirtioPciPlacement | null;
  onLog?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** Snapshot restore: the device's saved transport and queue state. */
  restore?: VirtioDeviceSnapshot | null;
}

export class BlockHandle extends VirtioDeviceHandle<BlockControl, VirtioBlockManifest, BlockMetricsSnapshot> {
  readonly driveId: string;
  /** The entry vCPU workers need to serve this device's registers. */

  private constructor(driveId: string, actor: VirtioActor<BlockControl>, manifest: VirtioBlockManifest, metrics: BlockMetrics) {
    super(actor, manifest, metrics);
    this.driveId = driveId;
  }

  /** Sets up KVM doorbells and starts the device worker; resolves when it is ready. */
  static async spawn(opts: BlockSpawnOptions): Promise<BlockHandle> {
    const state = (opts.restore ? MmioState.restore(opts.restore.transport, 1) : MmioState.create(1));
    const config = new SharedArrayBuffer(VIRTIO_BLK_CONFIG_SIZE);
    encodeBlockConfig(blockCapacity(opts.diskSizeBytes), new Uint8Array(config));
    const metrics = new BlockMetrics();
    const actor = await VirtioActor.spawn<BlockControl, BlockWorkerInit>({
      vm: opts.vm, kind: 'block', thread: `fc_blk ${opts.driveId}`, label: `drive ${opts.driveId}`,
      addr: opts.addr, gsi: opts.gsi, pci: opts.pci ? { ...opts.pci, deviceId: VIRTIO_ID_BLOCK } : null, queues: 1, onLog: opts.onLog,
      init: (d) => ({
        restore: opts.restore ? { queues: opts.restore.queues } : null, driveId: opts.driveId, fileFd: opts.fileFd, readOnly: opts.readOnly, cacheType: opts.cacheType,
        ioEngine: opts.ioEngine ?? 'Sync', diskSizeBytes: opts.diskSizeBytes, rateLimiter: opts.rateLimiter, state, config,
        metrics: metrics.buffer, memory: opts.memory, ctlFd: d.ctlFd, queueFd: d.queueFds[0]!, irqFd: d.irqFd, pci: d.pci,
      }),
    });
    const d = actor.doorbells;
    const manifest: VirtioBlockManifest = {
      kind: 'virtio-block', addr: opts.addr, state, config, readOnly: opts.readOnly, cacheType: opts.cacheType,
      diskSizeBytes: opts.diskSizeBytes, ctlFd: d.ctlFd, queueFd: d.queueFds[0]!, irqFd: d.irqFd, pci: d.pci,
    };
    return new BlockHandle(opts.driveId, actor, manifest, metrics);
  }

  /** PATCH /drives path_on_host: swap the backing file (the worker closes the old fd). */
  updateBackingFile(fileFd: number, diskSizeBytes: number): Promise<void> {
    return this.actor.remote.updateBackingFile(fileFd, diskSizeBytes);
  }

  /** PATCH /drives rate_limiter. */
  updateRateLimiter(rateLimiter: RateLimiterConfig): Promise<void> {
    return this.actor.remote.updateRateLimiter(rateLimiter);
  }
}
