/**
 * The virtio-vsock device actor's protocol (the shape is the net actor's, net-protocol.ts). The
 * worker owns the socket listening on `uds_path` (bound by main at InstanceStart, so a path in
 * use fails the start with Firecracker's text before any worker runs) and every connection's
 * fd, and sleeps in poll() on them and on its eventfds: queue doorbells (RX 0, TX 1, event 2,
 * filled by KVM_IOEVENTFD), the control doorbell, and a timer for the connection timeouts.
 */
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import type { SnapshotControl, VirtioRestore, VirtioPciDoorbells } from './virtio-actor.js';

/** What a vCPU worker needs to serve the vsock device's registers. */
export interface VirtioVsockManifest {
  kind: 'virtio-vsock';
  /** MMIO base of the 4 KiB register window. */
  addr: number;
  /** Transport state (MmioState.create). */
  state: SharedArrayBuffer;
  /** guest_cid, the config space. */
  guestCid: number;
  /** Vsock metrics (VsockMetrics buffer): config accesses are counted on the vCPU thread. */
  metrics: SharedArrayBuffer;
  ctlFd: number;
  /** RX, TX and event queue doorbells. */
  queueFds: number[];
  irqFd: number;
  /** virtio-pci (--enable-pci): the PCI state and MSI-X vector doorbells; null on virtio-mmio. */
  pci: VirtioPciDoorbells | null;
}

/** workerData of the vsock device worker. */
export interface VsockWorkerInit {
  guestCid: number;
  udsPath: string;
  /** The socket listening on udsPath (fds are process-wide); the worker closes it when it stops. */
  listenFd: number;
  state: SharedArrayBuffer;
  metrics: SharedArrayBuffer;
  memory: GuestMemoryDescriptor;
  ctlFd: number;
  rxFd: number;
  txFd: number;
  evFd: number;
  irqFd: number;
  /** virtio-pci (--enable-pci): the PCI state and MSI-X vector doorbells; null on virtio-mmio. */
  pci: VirtioPciDoorbells | null;
  /** Set when the device comes back from a snapshot (its transport state is already restored). */
  restore: VirtioRestore | null;
}

/** What main may ask of the vsock worker (control-channel.ts). */
export interface VsockControl extends SnapshotControl {
  /** Open connections and host clients still sending their CONNECT line. */
  connections(): { open: number; pendingHost: number };
  /** Closes every connection and the listener, and ends the worker after replying. */
  stop(): void;
}
