/**
 * EntropyHandle: the main thread's side of the virtio-rng device actor: the shared transport
 * state and metrics over the common virtio actor plumbing (virtio-actor.ts). The device has
 * no host resource to open, so spawning cannot fail for a configuration reason.
 */
import type { VmFd } from '../../kvm/kvm.js';
import { VIRTIO_ID_RNG } from '../../devices/virtio/constants.js';
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import type { RateLimiterConfig } from '../../devices/rate-limiter/rate-limiter.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { ENTROPY_DEV_ID, ENTROPY_NUM_QUEUES, ENTROPY_QUEUE } from '../../devices/virtio/rng/device.js';
import { EntropyMetrics, type EntropyMetricsSnapshot } from '../../devices/virtio/rng/metrics.js';
import type { EntropyControl, EntropyWorkerInit, VirtioEntropyManifest } from './entropy-protocol.js';
import { VirtioActor, VirtioDeviceHandle, type VirtioDeviceSnapshot, type VirtioPciPlacement } from './virtio-actor.js';

export interface EntropySpawnOptions {
  vm: VmFd;
  memory: GuestMemoryDescriptor;
  /** PUT /entropy rate_limiter ({} when none). */
  rateLimiter: RateLimiterConfig;
  addr: number;
  gsi: number;
  /** With --enable-pci: the device's PCI placement (addr/gsi are then unused). */
  pci?: VirtioPciPlacement | null;
  onLog?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** Snapshot restore: the device's saved transport and queue state. */
  restore?: VirtioDeviceSnapshot | null;
}

export class EntropyHandle extends VirtioDeviceHandle<EntropyControl, VirtioEntropyManifest, EntropyMetricsSnapshot> {
  private constructor(actor: VirtioActor<EntropyControl>, manifest: VirtioEntropyManifest, metrics: EntropyMetrics) {
    super(actor, manifest, metrics);
  }

  /** Sets up KVM doorbells and starts the worker; resolves when it is ready. */
  static async spawn(opts: EntropySpawnOptions): Promise<EntropyHandle> {
    const state = (opts.restore ? MmioState.restore(opts.restore.transport, ENTROPY_NUM_QUEUES) : MmioState.create(ENTROPY_NUM_QUEUES));
    const metrics = new EntropyMetrics();
    const actor = await VirtioActor.spawn<EntropyControl, EntropyWorkerInit>({
      vm: opts.vm, kind: 'entropy', thread: `fc_${ENTROPY_DEV_ID}`, label: 'entropy', addr: opts.addr, gsi: opts.gsi, pci: opts.pci ? { ...opts.pci, deviceId: VIRTIO_ID_RNG } : null, queues: ENTROPY_NUM_QUEUES,
      onLog: opts.onLog,
      init: (d) => ({
        restore: opts.restore ? { queues: opts.restore.queues } : null, rateLimiter: opts.rateLimiter, state, metrics: metrics.buffer, memory: opts.memory,
        ctlFd: d.ctlFd, queueFd: d.queueFds[ENTROPY_QUEUE]!, irqFd: d.irqFd, pci: d.pci,
      }),
    });
    const d = actor.doorbells;
    const manifest: VirtioEntropyManifest = { kind: 'virtio-rng', addr: opts.addr, state, ctlFd: d.ctlFd, queueFds: d.queueFds, irqFd: d.irqFd, pci: d.pci };
    return new EntropyHandle(actor, manifest, metrics);
  }
}
