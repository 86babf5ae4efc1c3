/**
 * VsockHandle: the main thread's side of the vsock device actor: the shared transport state
 * and metrics over the common virtio actor plumbing (virtio-actor.ts). The listener on
 * `uds_path` is bound here, on main, so a path that cannot be bound (it exists, its folder
 * does not) fails InstanceStart before any worker starts; the worker then owns the fd.
 *
 * The socket file stays after the VM stops, as Firecracker's does (it never unlinks what it
 * bound); only a start that fails after the bind removes it again, so that retrying
 * InstanceStart with the same configuration can bind once more.
 */
import { rmSync } from 'node:fs';
import { VIRTIO_ID_VSOCK } from '../../devices/virtio/constants.js';
import type { VmFd } from '../../kvm/kvm.js';
import { UnixSocketIo } from '../../kvm/unix-socket.js';
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { VSOCK_EV_INDEX, VSOCK_NUM_QUEUES, VSOCK_RX_INDEX, VSOCK_TX_INDEX } from '../../devices/virtio/vsock/constants.js';
import { VsockMetrics, type VsockMetricsSnapshot } from '../../devices/virtio/vsock/metrics.js';
import type { VirtioVsockManifest, VsockControl, VsockWorkerInit } from './vsock-protocol.js';
import { VirtioActor, VirtioDeviceHandle, type VirtioDeviceSnapshot, type VirtioPciPlacement } from './virtio-actor.js';

export interface VsockSpawnOptions {
  vm: VmFd;
  memory: GuestMemoryDescriptor;
  /** PUT /vsock guest_cid. */
  guestCid: number;
  /** PUT /vsock uds_path. */
  udsPath: string;
  addr: number;
  gsi: number;
  /** With --enable-pci: the device's PCI placement (addr/gsi are then unused). */
  pci?: VirtioPciPlacement | null;
  onLog?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** Snapshot restore: the device's saved transport and queue state. */
  restore?: VirtioDeviceSnapshot | null;
}

export class VsockHandle extends VirtioDeviceHandle<VsockControl, VirtioVsockManifest, VsockMetricsSnapshot> {
  private constructor(actor: VirtioActor<VsockControl>, manifest: VirtioVsockManifest, metrics: VsockMetrics) {
    super(actor, manifest, metrics);
  }

  /**
   * Binds `udsPath`, sets up KVM doorbells and starts the worker; resolves when it is ready.
   * A bind failure throws HostIoError (Rust's io::Error text, which the caller wraps in
   * Firecracker's `UnixBind` message).
   */
  static async spawn(opts: VsockSpawnOptions): Promise<VsockHandle> {
    const listenFd = UnixSocketIo.listen(opts.udsPath);
    try {
      const state = (opts.restore ? MmioState.restore(opts.restore.transport, VSOCK_NUM_QUEUES) : MmioState.create(VSOCK_NUM_QUEUES));
      const metrics = new VsockMetrics();
      const actor = await VirtioActor.spawn<VsockControl, VsockWorkerInit>({
        vm: opts.vm, kind: 'vsock', thread: 'fc_vsock', label: 'vsock', addr: opts.addr, gsi: opts.gsi, pci: opts.pci ? { ...opts.pci, deviceId: VIRTIO_ID_VSOCK } : null, queues: VSOCK_NUM_QUEUES,
        onLog: opts.onLog,
        init: (d) => ({
          restore: opts.restore ? { queues: opts.restore.queues } : null, guestCid: opts.guestCid, udsPath: opts.udsPath, listenFd, state, metrics: metrics.buffer, memory: opts.memory,
          ctlFd: d.ctlFd, rxFd: d.queueFds[VSOCK_RX_INDEX]!, txFd: d.queueFds[VSOCK_TX_INDEX]!, evFd: d.queueFds[VSOCK_EV_INDEX]!, irqFd: d.irqFd, pci: d.pci,
        }),
      });
      const d = actor.doorbells;
      const manifest: VirtioVsockManifest = {
        kind: 'virtio-vsock', addr: opts.addr, state, guestCid: opts.guestCid, metrics: metrics.buffer, ctlFd: d.ctlFd, queueFds: d.queueFds, irqFd: d.irqFd, pci: d.pci,
      };
      return new VsockHandle(actor, manifest, metrics);
    } catch (e) {
      // A worker that never became ready never took the listener.
      new UnixSocketIo().close(listenFd);
      rmSync(opts.udsPath, { force: true });
      throw e;
    }
  }

  /** Open connections and host clients still sending their CONNECT line (a control call). */
  connections(): Promise<{ open: number; pendingHost: number }> {
    return this.actor.remote.connections();
  }
}
