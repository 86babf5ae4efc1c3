/**
 * The virtio-net device actor's protocol (the shape is the block actor's, protocol.ts): the
 * worker owns the TAP fd and sleeps in poll() on its queue eventfds (RX 0, TX 1, filled by
 * KVM_IOEVENTFD), the control doorbell and — only while the device can take a frame — the TAP.
 */
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import type { RateLimiterConfig } from '../../devices/rate-limiter/rate-limiter.js';
import type { MmdsVersion } from '../../mmds/responder.js';
import type { SnapshotControl, VirtioRestore, VirtioPciDoorbells } from './virtio-actor.js';

/**
 * The MMDS a net worker runs when PUT /mmds/config listed its interface (docs/design.md
 * "MMDS"): one stack per worker, all sharing the token key so a token works on any of them.
 */
export interface NetMmdsInit {
  /** TokenAuthority key (32 bytes), drawn once per VM by main. */
  key: number[];
  instanceId: string;
  ipv4: string;
  version: MmdsVersion;
  imdsCompat: boolean;
  /** The data store's serde_json text at spawn ("null" before the first PUT). */
  data: string;
  /** MmdsMetrics buffer, summed by main into the `mmds` group. */
  metrics: SharedArrayBuffer;
}

/** What a vCPU worker needs to serve a net device's registers. */
export interface VirtioNetManifest {
  kind: 'virtio-net';
  /** MMIO base of the 4 KiB register window. */
  addr: number;
  /** Transport state (MmioState.create). */
  state: SharedArrayBuffer;
  /** Config state (NET_CONFIG_STATE_SIZE): config space plus the known-MAC flag, shared with the worker. */
  config: SharedArrayBuffer;
  /** guest_mac as 6 bytes, or null; mtu or null (the offered features follow from them). */
  guestMac: number[] | null;
  mtu: number | null;
  /** Net metrics (NetMetrics buffer): config writes are counted on the vCPU thread. */
  metrics: SharedArrayBuffer;
  ctlFd: number;
  /** RX then TX queue doorbells. */
  queueFds: number[];
  irqFd: number;
  /** virtio-pci (--enable-pci): the PCI state and MSI-X vector doorbells; null on virtio-mmio. */
  pci: VirtioPciDoorbells | null;
}

/** workerData of a net device worker. */
export interface NetWorkerInit {
  ifaceId: string;
  /** The TAP (host_dev_name), opened and configured by main (fds are process-wide). */
  tapName: string;
  tapFd: number;
  guestMac: number[] | null;
  mtu: number | null;
  rxRateLimiter: RateLimiterConfig;
  txRateLimiter: RateLimiterConfig;
  state: SharedArrayBuffer;
  config: SharedArrayBuffer;
  metrics: SharedArrayBuffer;
  memory: GuestMemoryDescriptor;
  ctlFd: number;
  rxFd: number;
  txFd: number;
  irqFd: number;
  /** virtio-pci (--enable-pci): the PCI state and MSI-X vector doorbells; null on virtio-mmio. */
  pci: VirtioPciDoorbells | null;
  mmds: NetMmdsInit | null;
  /** Set when the device comes back from a snapshot (its transport state is already restored). */
  restore: VirtioRestore | null;
}

/**
 * What main may ask of a net device worker (control-channel.ts): the worker's side of
 * Firecracker's Vmm::update_net_rate_limiters (src/vmm/src/lib.rs) and of stopping it.
 */
export interface NetControl extends SnapshotControl {
  /** PATCH /network-interfaces: new buckets per direction; absent or null: unchanged. */
  updateRateLimiters(rx: RateLimiterConfig | null, tx: RateLimiterConfig | null): void;
  /** PUT/PATCH /mmds after boot: the data store's new serde_json text (only on MMDS interfaces). */
  setMmdsData(json: string): void;
  /** Closes the TAP and ends the worker after replying. */
  stop(): void;
}
