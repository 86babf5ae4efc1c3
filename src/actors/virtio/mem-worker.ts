/**
 * The virtio-mem device worker: one worker_thread for the VM's memory hotplug device
 * (mem-protocol.ts), Firecracker's virtio-mem event handler on its own thread.
 *
 * Loop: poll(ctl, request queue doorbell)
 *   ctl   → control calls (PATCH size, GET status, stop); activation once DRIVER_OK was seen;
 *   queue → PLUG / UNPLUG / UNPLUG_ALL / STATE requests: KVM slots mapped or removed here,
 *           unplugged blocks discarded (MADV_REMOVE on the memfd, src/memory/discard.ts).
 */
import { parentPort } from 'node:worker_threads';
import { actorInit } from '../actor-init.js';
import { serveControl } from '../control-channel.js';
import { EventFd } from '../../kvm/eventfd.js';
import { VmFd } from '../../kvm/kvm.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { discardGuestPages } from '../../memory/discard.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { MemConfig } from '../../devices/virtio/mem/config.js';
import { VirtioMemDevice } from '../../devices/virtio/mem/device.js';
import { MemMetrics } from '../../devices/virtio/mem/metrics.js';
import { transportInterrupt } from './transport.js';
import { DeviceLoopTimer } from './device-poll.js';
import { WorkerLifecycle } from './worker-lifecycle.js';
import type { MemControl, MemWorkerInit } from './mem-protocol.js';
import type { VirtioEventMessage } from './virtio-actor.js';

const init = actorInit<MemWorkerInit>();
const port = parentPort!;
const post = (m: VirtioEventMessage): void => port.postMessage(m);
const label = 'virtio-mem';

const mem = GuestMemory.fromDescriptor(init.memory);
const state = new MmioState(init.state);
const ctlEvt = new EventFd(init.ctlFd);
const queueEvt = new EventFd(init.queueFd);
const irqEvt = new EventFd(init.irqFd);
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
const interrupt = transportInterrupt(init.pci, state, irqEvt);

const life = new WorkerLifecycle(label, (message) => post({ kind: 'log', level: 'error', message }));
const control: MemControl = {
  setRequestedSize(bytes) {
    life.refuseAfterStop();
    device.setRequestedSize(bytes);
  },
  status() {
    return device.status();
  },
  quiesce() {
    return life.quiesce(device);
  },
  release() {
    life.release();
  },
  stop() {
    life.stop();
  },
};
const server = serveControl(control, port);

async function loop(): Promise<void> {
  const timer = new DeviceLoopTimer();
  const fds = [ctlEvt.fd, queueEvt.fd];
  life.restore(device, state, mem, interrupt, init.restore?.queues ?? null);
  post({ kind: 'ready' });
  for (;;) {
    const ready = timer.wait(life.quiesced ? [ctlEvt.fd] : fds, 0);
    if (ready.includes(ctlEvt.fd)) {
      ctlEvt.drain();
      // Activation first: a PATCH that arrives with DRIVER_OK finds the device active.
      if (!life.quiesced && life.activate(device, state, mem, interrupt)) device.processQueue();
      await server.dispatch();
      if (life.stopping) return;
      if (life.quiesced) continue;
    }
    if (ready.includes(queueEvt.fd)) {
      queueEvt.drain();
      device.onQueueNotify(0);
    }
  }
}

loop().then(
  () => process.exit(0),
  (e: Error) => {
    post({ kind: 'log', level: 'error', message: `${label}: device worker failed: ${e.stack ?? e}` });
    process.exit(1);
  },
);
