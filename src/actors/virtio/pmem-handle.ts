/**
 * PmemHandle: the main thread's side of a virtio-pmem device actor. Spawning maps the backing
 * file (src/memory/pmem-mapping.ts) and gives it to the guest as a KVM memory slot at the
 * device's window (KVM_MEM_READONLY for a read-only device), then starts the worker that
 * serves FLUSH. Stopping unmaps the file after the worker ended.
 */
import type { VmFd } from '../../kvm/kvm.js';
import { KVM_MEM_READONLY } from '../../kvm/constants.js';
import { VIRTIO_ID_PMEM } from '../../devices/virtio/constants.js';
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import type { RateLimiterConfig } from '../../devices/rate-limiter/rate-limiter.js';
import { mapPmemFile, unmapPmem, type PmemMapping } from '../../memory/pmem-mapping.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { PMEM_NUM_QUEUES, PMEM_QUEUE } from '../../devices/virtio/pmem/device.js';
import { PmemMetrics, type PmemMetricsSnapshot } from '../../devices/virtio/pmem/metrics.js';
import type { PmemControl, PmemWorkerInit, VirtioPmemManifest } from './pmem-protocol.js';
import { VirtioActor, VirtioDeviceHandle, type VirtioPciPlacement } from './virtio-actor.js';

export interface PmemSpawnOptions {
  vm: VmFd;
  memory: GuestMemoryDescriptor;
  id: string;
  /** An already mapped backing file (mapPmemFile); the handle owns it from here on. */
  mapping: PmemMapping;
  readOnly: boolean;
  /** The guest window (deviceMemoryLayout) and its KVM slot number. */
  start: number;
  kvmSlot: number;
  rateLimiter: RateLimiterConfig;
  addr: number;
  gsi: number;
  pci?: VirtioPciPlacement | null;
  onLog?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export class PmemHandle extends VirtioDeviceHandle<PmemControl, VirtioPmemManifest, PmemMetricsSnapshot> {
  private constructor(actor: VirtioActor<PmemControl>, manifest: VirtioPmemManifest, metrics: PmemMetrics, readonly id: string, private readonly mapping: PmemMapping) {
    super(actor, manifest, metrics);
  }

  /** Maps the file in the guest and starts the worker; on failure the mapping is released. */
  static async spawn(opts: PmemSpawnOptions): Promise<PmemHandle> {
    const m = opts.mapping;
    try {
      opts.vm.setUserMemoryRegion(opts.kvmSlot, BigInt(opts.start), BigInt(m.mmapLen), m.addr, opts.readOnly ? KVM_MEM_READONLY : 0);
      const state = MmioState.create(PMEM_NUM_QUEUES);
      const metrics = new PmemMetrics();
      const actor = await VirtioActor.spawn<PmemControl, PmemWorkerInit>({
        vm: opts.vm, kind: 'pmem', thread: `fc_pmem ${opts.id}`, label: `pmem ${opts.id}`, addr: opts.addr, gsi: opts.gsi,
        pci: opts.pci ? { ...opts.pci, deviceId: VIRTIO_ID_PMEM } : null, queues: PMEM_NUM_QUEUES, onLog: opts.onLog,
        init: (d) => ({
          id: opts.id, mapAddr: m.addr, fileLen: m.fileLen, start: opts.start, size: m.mmapLen, rateLimiter: opts.rateLimiter, state,
          metrics: metrics.buffer, memory: opts.memory, ctlFd: d.ctlFd, queueFd: d.queueFds[PMEM_QUEUE]!, irqFd: d.irqFd, pci: d.pci, restore: null,
        }),
      });
      const d = actor.doorbells;
      const manifest: VirtioPmemManifest = {
        kind: 'virtio-pmem', addr: opts.addr, state, start: opts.start, size: m.mmapLen, metrics: metrics.buffer, ctlFd: d.ctlFd, queueFds: d.queueFds, irqFd: d.irqFd, pci: d.pci,
      };
      return new PmemHandle(actor, manifest, metrics, opts.id, m);
    } catch (e) {
      // The slot goes before the memory behind it.
      try { opts.vm.setUserMemoryRegion(opts.kvmSlot, BigInt(opts.start), 0n, m.addr); } catch { /* never registered */ }
      unmapPmem(m);
      throw e;
    }
  }

  /** PATCH /pmem/{id}: new rate limiter buckets. */
  updateRateLimiter(rateLimiter: RateLimiterConfig): Promise<void> {
    return this.actor.remote.updateRateLimiter(rateLimiter);
  }

  /** Stops the worker, then unmaps the file (the VM's vCPUs have stopped by then). */
  override async stop(): Promise<void> {
    await super.stop();
    this.unmapOnce();
  }

  private unmapped = false;
  private unmapOnce(): void {
    if (this.unmapped) return;
    this.unmapped = true;
    unmapPmem(this.mapping);
  }
}
