/**
 * BalloonHandle: the main thread's side of the balloon device actor: the shared transport
 * state, the shared config space (num_pages / actual), metrics, and the control calls PATCH
 * /balloon and /balloon/statistics and GET /balloon/statistics reach the worker through.
 */
import type { VmFd } from '../../kvm/kvm.js';
import { VIRTIO_ID_BALLOON } from '../../devices/virtio/constants.js';
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import type { RamBacking } from '../../memory/discard.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { BALLOON_DEV_ID, BalloonConfig, PAGES_PER_MIB, balloonQueueCount } from '../../devices/virtio/balloon/config.js';
import type { BalloonStatsReply } from '../../devices/virtio/balloon/device.js';
import type { HintingStatusReply } from '../../devices/virtio/balloon/hinting.js';
import { BalloonMetrics, type BalloonMetricsSnapshot } from '../../devices/virtio/balloon/metrics.js';
import type { BalloonControl, BalloonWorkerInit, VirtioBalloonManifest } from './balloon-protocol.js';
import { VirtioActor, VirtioDeviceHandle, type VirtioDeviceSnapshot, type VirtioPciPlacement } from './virtio-actor.js';

export interface BalloonSpawnOptions {
  vm: VmFd;
  memory: GuestMemoryDescriptor;
  backing: RamBacking;
  /** PUT /balloon amount_mib: the initial target. */
  amountMib: number;
  deflateOnOom: boolean;
  statsIntervalS: number;
  /** free_page_reporting. */
  reporting: boolean;
  /** free_page_hinting. */
  hinting: boolean;
  addr: number;
  gsi: number;
  /** With --enable-pci: the device's PCI placement (addr/gsi are then unused). */
  pci?: VirtioPciPlacement | null;
  onLog?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** Snapshot restore: the device's saved transport, queue, config and stats-buffer state. */
  restore?: VirtioDeviceSnapshot | null;
}

export class BalloonHandle extends VirtioDeviceHandle<BalloonControl, VirtioBalloonManifest, BalloonMetricsSnapshot> {
  private constructor(actor: VirtioActor<BalloonControl>, manifest: VirtioBalloonManifest, metrics: BalloonMetrics, readonly config: BalloonConfig) {
    super(actor, manifest, metrics);
  }

  /** Sets up KVM doorbells and starts the worker; resolves when it is ready. */
  static async spawn(opts: BalloonSpawnOptions): Promise<BalloonHandle> {
    const params = { deflateOnOom: opts.deflateOnOom, statsEnabled: opts.statsIntervalS > 0, reporting: opts.reporting, hinting: opts.hinting };
    const queues = balloonQueueCount(params);
    const r = opts.restore ?? null;
    const state = r ? MmioState.restore(r.transport, queues) : MmioState.create(queues);
    const config = BalloonConfig.create(opts.amountMib * PAGES_PER_MIB);
    if (r?.config) config.restore(r.config);
    const metrics = new BalloonMetrics();
    const actor = await VirtioActor.spawn<BalloonControl, BalloonWorkerInit>({
      vm: opts.vm, kind: 'balloon', thread: `fc_${BALLOON_DEV_ID}`, label: 'balloon', addr: opts.addr, gsi: opts.gsi, pci: opts.pci ? { ...opts.pci, deviceId: VIRTIO_ID_BALLOON } : null, queues, onLog: opts.onLog,
      init: (d) => ({
        state, config: config.buffer as SharedArrayBuffer, metrics: metrics.buffer, memory: opts.memory, backing: opts.backing,
        deflateOnOom: opts.deflateOnOom, statsIntervalS: opts.statsIntervalS, reporting: opts.reporting, hinting: opts.hinting, ctlFd: d.ctlFd, queueFds: d.queueFds, irqFd: d.irqFd, pci: d.pci,
        restore: r ? { queues: r.queues, statsHead: r.statsHead ?? null } : null,
      }),
    });
    const d = actor.doorbells;
    const manifest: VirtioBalloonManifest = {
      kind: 'virtio-balloon', addr: opts.addr, state, config: config.buffer as SharedArrayBuffer, ...params, ctlFd: d.ctlFd, queueFds: d.queueFds, irqFd: d.irqFd, pci: d.pci,
    };
    return new BalloonHandle(actor, manifest, metrics, config);
  }

  /** Snapshot: the common state plus the config space and the held stats buffer. */
  override async saveState(): Promise<VirtioDeviceSnapshot> {
    const s = await super.saveState();
    return { ...s, config: this.config.save(), statsHead: await this.actor.remote.savedStatsHead() };
  }

  /** PATCH /balloon. */
  setTarget(amountMib: number): Promise<void> {
    return this.actor.remote.setTarget(amountMib);
  }

  /** PATCH /balloon/statistics. */
  setStatsInterval(seconds: number): Promise<void> {
    return this.actor.remote.setStatsInterval(seconds);
  }

  /** GET /balloon/statistics. */
  stats(): Promise<BalloonStatsReply> {
    return this.actor.remote.stats();
  }

  /** PATCH /balloon/hinting/start. */
  startHinting(acknowledgeOnStop: boolean): Promise<void> {
    return this.actor.remote.startHinting(acknowledgeOnStop);
  }

  /** PATCH /balloon/hinting/stop. */
  stopHinting(): Promise<void> {
    return this.actor.remote.stopHinting();
  }

  /** GET /balloon/hinting/status. */
  hintingStatus(): Promise<HintingStatusReply> {
    return this.actor.remote.hintingStatus();
  }
}
