/**
 * The virtio-mem device actor's protocol (the shape is the balloon actor's, balloon-protocol.ts).
 * The worker sleeps in poll() on its request queue's doorbell and the control doorbell; it
 * maps and unmaps the hotplug region's KVM memory slots itself (KVM_SET_USER_MEMORY_REGION on
 * the VM fd, which every thread of the process may use), so a PLUG is answered only once the
 * guest can reach the memory.
 */
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import type { RamBacking } from '../../memory/discard.js';
import type { MemStatus } from '../../devices/virtio/mem/device.js';
import type { SingleQueueWorkerInit, SnapshotControl, VirtioPciDoorbells } from './virtio-actor.js';

/** What a vCPU worker needs to serve the virtio-mem device's registers. */
export interface VirtioMemManifest {
  kind: 'virtio-mem';
  addr: number;
  state: SharedArrayBuffer;
  /** struct virtio_mem_config (src/devices/virtio/mem/config.ts), written by the device worker. */
  config: SharedArrayBuffer;
  ctlFd: number;
  queueFds: number[];
  irqFd: number;
  pci: VirtioPciDoorbells | null;
}

/** One KVM memory slot of a hotplug slot (a hotplug slot spans more than one where it crosses a RAM chunk). */
export interface MemSlotPiece {
  kvmSlot: number;
  gpa: number;
  size: number;
  hostAddr: bigint;
}

/** workerData of the virtio-mem device worker. */
export interface MemWorkerInit extends SingleQueueWorkerInit {
  vmFd: number;
  /** KVM memory slot flags for the pieces (KVM_MEM_LOG_DIRTY_PAGES with track_dirty_pages). */
  slotFlags: number;
  /** The KVM slots of each hotplug slot, by hotplug slot index. */
  slots: MemSlotPiece[][];
  slotSize: number;
  config: SharedArrayBuffer;
  metrics: SharedArrayBuffer;
  /** Guest memory, with the hotplug guard whose bytes the device writes. */
  memory: GuestMemoryDescriptor;
  backing: RamBacking;
}

/** What main may ask of the virtio-mem worker (control-channel.ts). */
export interface MemControl extends SnapshotControl {
  /** PATCH /hotplug/memory: the new requested size in bytes. */
  setRequestedSize(bytes: number): void;
  /** GET /hotplug/memory. */
  status(): MemStatus;
  stop(): void;
}
