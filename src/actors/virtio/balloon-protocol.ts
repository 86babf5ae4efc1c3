/**
 * The balloon device actor's protocol (the shape is the entropy actor's, entropy-protocol.ts).
 * The worker sleeps in poll() on its queues' doorbells (filled by KVM_IOEVENTFD) and the
 * control doorbell, with the statistics polling interval as the poll timeout.
 */
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import type { RamBacking } from '../../memory/discard.js';
import type { BalloonStatsReply } from '../../devices/virtio/balloon/device.js';
import type { HintingStatusReply } from '../../devices/virtio/balloon/hinting.js';
import type { SnapshotControl, VirtioRestore, VirtioPciDoorbells } from './virtio-actor.js';

/** What a vCPU worker needs to serve the balloon's registers and config space. */
export interface VirtioBalloonManifest {
  kind: 'virtio-balloon';
  /** MMIO base of the 4 KiB register window. */
  addr: number;
  /** Transport state (MmioState.create). */
  state: SharedArrayBuffer;
  /** The 12-byte config space (balloon/config.ts BalloonConfig). */
  config: SharedArrayBuffer;
  deflateOnOom: boolean;
  statsEnabled: boolean;
  reporting: boolean;
  hinting: boolean;
  ctlFd: number;
  /** inflate, deflate[, stats][, hinting][, reporting] doorbells. */
  queueFds: number[];
  irqFd: number;
  /** virtio-pci (--enable-pci): the PCI state and MSI-X vector doorbells; null on virtio-mmio. */
  pci: VirtioPciDoorbells | null;
}

/** workerData of the balloon worker. */
export interface BalloonWorkerInit {
  state: SharedArrayBuffer;
  config: SharedArrayBuffer;
  metrics: SharedArrayBuffer;
  memory: GuestMemoryDescriptor;
  /** How guest RAM is backed: which madvise frees it (memory/discard.ts). */
  backing: RamBacking;
  deflateOnOom: boolean;
  /** stats_polling_interval_s (0: no statistics queue). */
  statsIntervalS: number;
  /** free_page_reporting: a reporting queue. */
  reporting: boolean;
  /** free_page_hinting: a hinting queue. */
  hinting: boolean;
  ctlFd: number;
  queueFds: number[];
  irqFd: number;
  /** virtio-pci (--enable-pci): the PCI state and MSI-X vector doorbells; null on virtio-mmio. */
  pci: VirtioPciDoorbells | null;
  /** Set when the device comes back from a snapshot (transport and config already restored). */
  restore: (VirtioRestore & { statsHead: number | null }) | null;
}

/** What main may ask of the balloon worker (control-channel.ts). */
export interface BalloonControl extends SnapshotControl {
  /** PATCH /balloon: the new target in MiB (config interrupt). */
  setTarget(amountMib: number): void;
  /** PATCH /balloon/statistics: a new polling interval; asks the guest for statistics now. */
  setStatsInterval(seconds: number): void;
  /** GET /balloon/statistics. */
  stats(): BalloonStatsReply;
  /** PATCH /balloon/hinting/start. */
  startHinting(acknowledgeOnStop: boolean): void;
  /** PATCH /balloon/hinting/stop. */
  stopHinting(): void;
  /** GET /balloon/hinting/status. */
  hintingStatus(): HintingStatusReply;
  /** Snapshot (after quiesce): the stats buffer the device holds. */
  savedStatsHead(): number | null;
  /** Ends the worker after replying. */
  stop(): void;
}
