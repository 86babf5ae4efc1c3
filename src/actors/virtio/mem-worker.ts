/**
 * The virtio-mem device worker: one worker_thread for the VM's memory hotplug device
 * (mem-protocol.ts), Firecracker's virtio-mem event handler on its own thread.
 *
 * Loop (single-queue-loop.ts): poll(ctl, request queue doorbell)
 *   ctl   → control calls (PATCH size, GET status, stop); activation once DRIVER_OK was seen;
 *   queue → PLUG / UNPLUG / UNPLUG_ALL / STATE requests: KVM slots mapped or removed here,
 *           unplugged blocks discarded (MADV_REMOVE on the memfd, src/memory/discard.ts).
 */
import { actorInit } from '../actor-init.js';
import { VmFd } from '../../kvm/kvm.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { discardGuestPages } from '../../memory/discard.js';
import { MemConfig } from '../../devices/virtio/mem/config.js';
import { VirtioMemDevice } from '../../devices/virtio/mem/device.js';
import { MemMetrics } from '../../devices/virtio/mem/metrics.js';
import { runSingleQueueLoop } from './single-queue-loop.js';
import type { MemControl, MemWorkerInit } from './mem-protocol.js';

const init = actorInit<MemWorkerInit>();
const label = 'virtio-mem';

const mem = GuestMemory.fromDescriptor(init.memory);
const vm = VmFd.adopt(init.vmFd, 0);
const guard = mem.hotplug;
if (!guard) throw new Error(`${label}: guest memory has no hotplug region`);

const device = new VirtioMemDevice({
  config: new MemConfig(init.config), slotSize: init.slotSize, plugged: new Uint8Array(guard.plugged), metrics: new MemMetrics(init.metrics),
  backend: {
    setSlot(index, mapped) {
      for (const p of init.slots[index] ?? []) vm.setUserMemoryRegion(p.kvmSlot, BigInt(p.gpa), mapped ? BigInt(p.size) : 0n, p.hostAddr, init.slotFlags);
    },
    // The guard refuses unplugged blocks, so the views come from the regions themselves.
    discard(gpa, len) {
      let ok = true;
      for (const r of mem.regions) {
        const from = Math.max(gpa, r.gpa);
        const to = Math.min(gpa + len, r.gpa + r.size);
        if (from < to) ok = discardGuestPages(r.bytes.subarray(from - r.gpa, to - r.gpa), init.backing) && ok;
      }
      return ok;
    },
  },
});

runSingleQueueLoop<MemControl>({
  label,
  init,
  mem,
  device,
  onQueueNotify: () => device.onQueueNotify(0),
  // Activation first: a PATCH that arrives with DRIVER_OK finds the device active.
  activateFirst: true,
  control: (life) => ({
    setRequestedSize(bytes) {
      life.refuseAfterStop();
      device.setRequestedSize(bytes);
    },
    status() {
      return device.status();
    },
  }),
});
