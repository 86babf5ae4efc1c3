/**
 * The virtio-fs device actor's protocol (the shape is the entropy actor's, entropy-protocol.ts).
 * Unlike the other devices the worker serves no queue while the vhost-user backend lives: the
 * backend is kicked by the queues' ioeventfds directly and writes a call eventfd per queue,
 * which the worker polls to set InterruptStatus and raise the device's irqfd (fs-worker.ts).
 */
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import type { VhostUserBackendFeatures } from '../../devices/virtio/fs/frontend.js';
import type { SnapshotControl, VirtioRestore, VirtioPciDoorbells } from './virtio-actor.js';

/** How long a vhost-user backend may take to answer one request. */
export const VHOST_USER_REPLY_TIMEOUT_MS = 5000;

/** What a vCPU worker needs to serve the device's registers. */
export interface VirtioFsManifest {
  kind: 'virtio-fs';
  /** MMIO base of the 4 KiB register window. */
  addr: number;
  /** Transport state (MmioState.create). */
  state: SharedArrayBuffer;
  /** The mount tag (config space). */
  tag: string;
  /** GET_FEATURES of the backend: decides the features offered to the driver. */
  backendFeatures: bigint;
  ctlFd: number;
  /** One doorbell per queue (hiprio, request): the backend's kick fds. */
  queueFds: number[];
  irqFd: number;
  /** Always null: virtio-fs is on virtio-mmio only (src/vmm/features.ts). */
  pci: VirtioPciDoorbells | null;
}

/** Guest RAM as a vhost-user backend maps it: the memfd and each region's place in it and in this process. */
export interface VhostMemoryMap {
  memfd: number;
  regions: { gpa: number; size: number; hostAddr: bigint; fdOffset: number }[];
}

/** workerData of the virtio-fs device worker. */
export interface FsWorkerInit {
  id: string;
  tag: string;
  /** The connected vhost-user socket (main did the handshake) and its path, for messages. */
  sockFd: number;
  socketPath: string;
  negotiated: VhostUserBackendFeatures;
  ram: VhostMemoryMap;
  state: SharedArrayBuffer;
  memory: GuestMemoryDescriptor;
  ctlFd: number;
  queueFds: number[];
  irqFd: number;
  pci: VirtioPciDoorbells | null;
  /** Always null: a VM with virtio-fs is never snapshotted. */
  restore: VirtioRestore | null;
}

/** Where one ring stands, read from guest memory (virtio 1.2 §2.7.6, §2.7.8; the event fields exist with EVENT_IDX). */
export interface FsRingState {
  availIdx: number;
  usedIdx: number;
  /** The driver's used_event (after the avail ring): it wants an interrupt once used.idx passes it. */
  usedEvent: number;
  /** The backend's avail_event (after the used ring): it wants a kick once avail.idx passes it. */
  availEvent: number;
}

/** What the worker can tell about its device: for diagnosing a guest that waits on the share. */
export interface FsWorkerStatus {
  backendUp: boolean;
  /** Call eventfd wake-ups relayed as interrupts, per queue. */
  callsRelayed: number[];
  /** Per queue, null before DRIVER_OK or where guest memory could not be read. */
  rings: (FsRingState | null)[];
  eioReplies: number;
  badChains: number;
}

/** What main may ask of the virtio-fs worker (control-channel.ts). */
export interface FsControl extends SnapshotControl {
  /** True once the backend hung up and the device answers EIO itself. */
  backendGone(): boolean;
  /** Counters and ring positions (FsWorkerStatus). */
  status(): FsWorkerStatus;
  /** Closes the vhost-user socket (the backend sees the hang-up) and ends the worker after replying. */
  stop(): void;
}
