/**
 * FsHandle: the main thread's side of a virtio-fs device (docs/design.md "virtio-fs"). At
 * InstanceStart it reaches the vhost-user backend — starting virtiofsd for a `shared_dir`, or
 * connecting to the user's `socket` — and does the handshake (SET_OWNER, features) here, so a
 * missing virtiofsd, a socket nobody listens on or a peer that is not a vhost-user backend fail
 * the start with a clear VHOST_USER_* error before any vCPU runs. The worker then owns the
 * connection; stop closes it (virtiofsd exits on the hang-up) and kills a virtiofsd Kindling
 * started.
 */
import type { VmFd } from '../../kvm/kvm.js';
import { VhostUserError } from '../../errors.js';
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { VIRTIO_F_VERSION_1, featureBit } from '../../devices/virtio/constants.js';
import { VIRTIO_FS_NUM_QUEUES } from '../../devices/virtio/fs/device.js';
import { VhostUserFrontend } from '../../devices/virtio/fs/frontend.js';
import { VHOST_USER_REPLY_TIMEOUT_MS, type FsControl, type FsWorkerInit, type FsWorkerStatus, type VhostMemoryMap, type VirtioFsManifest } from './fs-protocol.js';
import { VirtioActor, VirtioDeviceHandle } from './virtio-actor.js';
import { connectBackend, startVirtiofsd, type StartedBackend } from './virtiofsd.js';

export interface FsSpawnOptions {
  vm: VmFd;
  memory: GuestMemoryDescriptor;
  /** Guest RAM's memfd and regions, sent to the backend at DRIVER_OK. */
  ram: VhostMemoryMap;
  id: string;
  tag: string;
  socket: string | null;
  sharedDir: string | null;
  addr: number;
  gsi: number;
  onLog?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

/** FsWorkerStatus plus the backend Kindling started, if it did (pid, last stderr). */
export interface FsStatus extends FsWorkerStatus {
  backendPid: number | null;
  backendStderr: string;
}

/** The device's (empty) metrics: Firecracker has no virtio-fs group; the counts are in the log. */
const NO_METRICS = { snapshot: (): Record<string, never> => ({}) };

export class FsHandle extends VirtioDeviceHandle<FsControl, VirtioFsManifest, Record<string, never>> {
  private constructor(actor: VirtioActor<FsControl>, manifest: VirtioFsManifest, private readonly backend: StartedBackend) {
    super(actor, manifest, NO_METRICS);
  }

  /** Reaches the backend, shakes hands, starts the worker; resolves when it is ready. */
  static async spawn(opts: FsSpawnOptions): Promise<FsHandle> {
    const label = `fs ${opts.id}`;
    if (opts.ram.memfd < 0) throw new VhostUserError('VHOST_USER_BACKEND', `${label}: guest RAM is not memfd-backed, so a vhost-user backend cannot map it`);
    const backend = opts.sharedDir !== null ? await startVirtiofsd(opts.sharedDir, label) : connectBackend(opts.socket!);
    try {
      const negotiated = new VhostUserFrontend(backend.socket, VHOST_USER_REPLY_TIMEOUT_MS).handshake();
      if (!(negotiated.features & featureBit(VIRTIO_F_VERSION_1))) {
        throw new VhostUserError('VHOST_USER_BACKEND', `${label}: the vhost-user backend at ${backend.socketPath} does not offer VIRTIO_F_VERSION_1`);
      }
      const state = MmioState.create(VIRTIO_FS_NUM_QUEUES);
      const actor = await VirtioActor.spawn<FsControl, FsWorkerInit>({
        vm: opts.vm, kind: 'fs', thread: `fc_fs ${opts.id}`, label, addr: opts.addr, gsi: opts.gsi, pci: null, queues: VIRTIO_FS_NUM_QUEUES,
        onLog: opts.onLog,
        init: (d) => ({
          id: opts.id, tag: opts.tag, sockFd: backend.socket.fd, socketPath: backend.socketPath, negotiated, ram: opts.ram,
          state, memory: opts.memory, ctlFd: d.ctlFd, queueFds: d.queueFds, irqFd: d.irqFd, pci: null, restore: null,
        }),
      });
      const d = actor.doorbells;
      const manifest: VirtioFsManifest = {
        kind: 'virtio-fs', addr: opts.addr, state, tag: opts.tag, backendFeatures: negotiated.features,
        ctlFd: d.ctlFd, queueFds: d.queueFds, irqFd: d.irqFd, pci: null,
      };
      return new FsHandle(actor, manifest, backend);
    } catch (e) {
      // The worker closes the socket only in its stop path, which a worker that never became
      // ready did not reach: the fd is still ours.
      backend.socket.close();
      backend.dispose();
      throw e;
    }
  }

  /** True once the backend hung up (the device answers EIO). */
  backendGone(): Promise<boolean> {
    return this.actor.remote.backendGone();
  }

  /** Counters, ring positions and the backend process: what to look at when the guest waits on the share. */
  async status(): Promise<FsStatus> {
    const w = await this.actor.remote.status();
    return { ...w, backendPid: this.backend.child?.pid ?? null, backendStderr: this.backend.child?.stderrTail() ?? '' };
  }

  override async stop(): Promise<void> {
    try {
      await super.stop();
    } finally {
      this.backend.dispose();
    }
  }
}
