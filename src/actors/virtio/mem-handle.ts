/**
 * MemHandle: the main thread's side of the virtio-mem device actor: the shared transport and
 * config state, metrics, and the control calls PATCH and GET /hotplug/memory reach the worker
 * through. It cuts the hotplug region into the KVM slots the worker maps (one per hotplug slot,
 * more where a slot crosses two RAM chunks of src/memory/host-memory.ts).
 */
import type { VmFd } from '../../kvm/kvm.js';
import { VIRTIO_ID_MEM } from '../../devices/virtio/constants.js';
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import type { RamBacking } from '../../memory/discard.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { MEM_DEV_ID, MEM_NUM_QUEUES, MEM_QUEUE, MemConfig } from '../../devices/virtio/mem/config.js';
import type { MemStatus } from '../../devices/virtio/mem/device.js';
import { MemMetrics, type MemMetricsSnapshot } from '../../devices/virtio/mem/metrics.js';
import type { MemControl, MemSlotPiece, MemWorkerInit, VirtioMemManifest } from './mem-protocol.js';
import { VirtioActor, VirtioDeviceHandle, type VirtioPciPlacement } from './virtio-actor.js';

export interface MemSpawnOptions {
  vm: VmFd;
  memory: GuestMemoryDescriptor;
  backing: RamBacking;
  /** The KVM slots of each hotplug slot (hotplugSlotPieces), and the flags they get. */
  slots: MemSlotPiece[][];
  slotFlags: number;
  blockSize: number;
  slotSize: number;
  addr: number;
  gsi: number;
  pci?: VirtioPciPlacement | null;
  onLog?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

/** The KVM slots of each hotplug slot of [gpa, gpa + size), numbered from `first`. */
export function hotplugSlotPieces(
  gpa: number, size: number, slotSize: number, regions: readonly { gpa: number; size: number; hostAddr: bigint }[], first: number,
): MemSlotPiece[][] {
  let next = first;
  const out: MemSlotPiece[][] = [];
  for (let s = gpa; s < gpa + size; s += slotSize) {
    const pieces: MemSlotPiece[] = [];
    for (const r of regions) {
      const from = Math.max(s, r.gpa);
      const to = Math.min(s + slotSize, r.gpa + r.size);
      if (from < to) pieces.push({ kvmSlot: next++, gpa: from, size: to - from, hostAddr: r.hostAddr + BigInt(from - r.gpa) });
    }
    out.push(pieces);
  }
  return out;
}

export class MemHandle extends VirtioDeviceHandle<MemControl, VirtioMemManifest, MemMetricsSnapshot> {
  private constructor(actor: VirtioActor<MemControl>, manifest: VirtioMemManifest, metrics: MemMetrics) {
    super(actor, manifest, metrics);
  }

  /** Sets up KVM doorbells and starts the worker; resolves when it is ready. */
  static async spawn(opts: MemSpawnOptions): Promise<MemHandle> {
    const h = opts.memory.hotplug;
    if (!h) throw new Error('virtio-mem: guest memory has no hotplug region');
    const config = MemConfig.create(h.gpa, h.size, opts.blockSize);
    const state = MmioState.create(MEM_NUM_QUEUES);
    const metrics = new MemMetrics();
    const slots = opts.slots;
    const actor = await VirtioActor.spawn<MemControl, MemWorkerInit>({
      vm: opts.vm, kind: 'mem', thread: `fc_${MEM_DEV_ID}`, label: 'virtio-mem', addr: opts.addr, gsi: opts.gsi,
      pci: opts.pci ? { ...opts.pci, deviceId: VIRTIO_ID_MEM } : null, queues: MEM_NUM_QUEUES, onLog: opts.onLog,
      init: (d) => ({
        vmFd: opts.vm.fd, slotFlags: opts.slotFlags, slots, slotSize: opts.slotSize, config: config.buffer as SharedArrayBuffer, state,
        metrics: metrics.buffer, memory: opts.memory, backing: opts.backing, ctlFd: d.ctlFd, queueFd: d.queueFds[MEM_QUEUE]!, irqFd: d.irqFd,
        pci: d.pci, restore: null,
      }),
    });
    const d = actor.doorbells;
    const manifest: VirtioMemManifest = {
      kind: 'virtio-mem', addr: opts.addr, state, config: config.buffer as SharedArrayBuffer, ctlFd: d.ctlFd, queueFds: d.queueFds, irqFd: d.irqFd, pci: d.pci,
    };
    return new MemHandle(actor, manifest, metrics);
  }

  /** PATCH /hotplug/memory. */
  setRequestedSize(bytes: number): Promise<void> {
    return this.actor.remote.setRequestedSize(bytes);
  }

  /** GET /hotplug/memory. */
  status(): Promise<MemStatus> {
    return this.actor.remote.status();
  }
}
