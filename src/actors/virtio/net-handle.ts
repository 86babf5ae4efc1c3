/**
 * NetHandle: the main thread's side of one virtio-net device actor: the net device's shared
 * state (transport, config space with the MAC, metrics) over the common virtio actor plumbing
 * (virtio-actor.ts). The TAP is opened here, on main, so a TAP that cannot be attached fails
 * InstanceStart with Firecracker's error before any worker starts; the worker then owns it.
 */
import type { VmFd } from '../../kvm/kvm.js';
import { VIRTIO_ID_NET } from '../../devices/virtio/constants.js';
import { Tap } from '../../kvm/tap.js';
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { NET_CONFIG_STATE_SIZE, encodeNetConfig, type NetDeviceParams } from '../../devices/virtio/net/config.js';
import { NET_NUM_QUEUES } from '../../devices/virtio/net/constants.js';
import { NetMetrics, type NetMetricsSnapshot } from '../../devices/virtio/net/metrics.js';
import type { RateLimiterConfig } from '../../devices/rate-limiter/rate-limiter.js';
import { MmdsMetrics } from '../../mmds/metrics.js';
import type { NetControl, NetMmdsInit, NetWorkerInit, VirtioNetManifest } from './net-protocol.js';
import { VirtioActor, VirtioDeviceHandle, type VirtioDeviceSnapshot, type VirtioPciPlacement } from './virtio-actor.js';

export interface NetSpawnOptions {
  vm: VmFd;
  memory: GuestMemoryDescriptor;
  ifaceId: string;
  /** host_dev_name: an existing TAP. */
  tapName: string;
  guestMac: Uint8Array | null;
  mtu: number | null;
  rxRateLimiter: RateLimiterConfig;
  txRateLimiter: RateLimiterConfig;
  addr: number;
  gsi: number;
  /** With --enable-pci: the device's PCI placement (addr/gsi are then unused). */
  pci?: VirtioPciPlacement | null;
  /** The MMDS settings when PUT /mmds/config listed this interface (its `metrics` buffer is made here). */
  mmds?: Omit<NetMmdsInit, 'metrics'> | null;
  onLog?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** Snapshot restore: the device's saved transport and queue state. */
  restore?: VirtioDeviceSnapshot | null;
}

export class NetHandle extends VirtioDeviceHandle<NetControl, VirtioNetManifest, NetMetricsSnapshot> {
  readonly ifaceId: string;
  /** The worker's MMDS counters, when it runs an MMDS. */
  readonly mmdsMetrics: MmdsMetrics | null;

  private constructor(ifaceId: string, actor: VirtioActor<NetControl>, manifest: VirtioNetManifest, metrics: NetMetrics, mmdsMetrics: MmdsMetrics | null) {
    super(actor, manifest, metrics);
    this.ifaceId = ifaceId;
    this.mmdsMetrics = mmdsMetrics;
  }

  /** Opens the TAP, sets up KVM doorbells and starts the worker; resolves when it is ready. */
  static async spawn(opts: NetSpawnOptions): Promise<NetHandle> {
    const tap = Tap.open(opts.tapName);
    try {
      const params: NetDeviceParams = { guestMac: opts.guestMac, mtu: opts.mtu };
      const state = (opts.restore ? MmioState.restore(opts.restore.transport, NET_NUM_QUEUES) : MmioState.create(NET_NUM_QUEUES));
      const config = new SharedArrayBuffer(NET_CONFIG_STATE_SIZE);
      encodeNetConfig(params, new Uint8Array(config));
      const metrics = new NetMetrics();
      const guestMac = opts.guestMac ? [...opts.guestMac] : null;
      const mmdsMetrics = opts.mmds ? new MmdsMetrics() : null;
      const actor = await VirtioActor.spawn<NetControl, NetWorkerInit>({
        vm: opts.vm, kind: 'net', thread: `fc_net ${opts.ifaceId}`, label: `net ${opts.ifaceId}`,
        addr: opts.addr, gsi: opts.gsi, pci: opts.pci ? { ...opts.pci, deviceId: VIRTIO_ID_NET } : null, queues: NET_NUM_QUEUES, onLog: opts.onLog,
        init: (d) => ({
          restore: opts.restore ? { queues: opts.restore.queues } : null, ifaceId: opts.ifaceId, tapName: opts.tapName, tapFd: tap.fd, guestMac, mtu: opts.mtu,
          rxRateLimiter: opts.rxRateLimiter, txRateLimiter: opts.txRateLimiter, state, config, metrics: metrics.buffer,
          memory: opts.memory, ctlFd: d.ctlFd, rxFd: d.queueFds[0]!, txFd: d.queueFds[1]!, irqFd: d.irqFd, pci: d.pci,
          mmds: opts.mmds && mmdsMetrics ? { ...opts.mmds, metrics: mmdsMetrics.buffer } : null,
        }),
      });
      const d = actor.doorbells;
      const manifest: VirtioNetManifest = {
        kind: 'virtio-net', addr: opts.addr, state, config, guestMac, mtu: opts.mtu, metrics: metrics.buffer, ctlFd: d.ctlFd, queueFds: d.queueFds, irqFd: d.irqFd, pci: d.pci,
      };
      return new NetHandle(opts.ifaceId, actor, manifest, metrics, mmdsMetrics);
    } catch (e) {
      tap.close(); // a worker that never became ready never took the TAP
      throw e;
    }
  }

  /** PATCH /network-interfaces: new rate limiter buckets (null: unchanged). */
  updateRateLimiters(rx: RateLimiterConfig | null, tx: RateLimiterConfig | null): Promise<void> {
    return this.actor.remote.updateRateLimiters(rx, tx);
  }

  /** PUT/PATCH /mmds after boot: the store's new serde_json text (MMDS interfaces only). */
  setMmdsData(json: string): Promise<void> {
    return this.actor.remote.setMmdsData(json);
  }
}
