/**
 * The device worker's interrupt for either transport, so device workers stay transport-
 * agnostic: virtio-mmio raises the device's one GSI through its irqfd; virtio-pci raises the
 * MSI-X vector the driver mapped to the queue or to configuration changes, each vector its own
 * irqfd (src/devices/virtio/pci-state.ts `pciInterrupt`).
 */
import { EventFd } from '../../kvm/eventfd.js';
import { MmioInterrupt, type MmioState } from '../../devices/virtio/mmio-state.js';
import { VirtioPciState, pciInterrupt } from '../../devices/virtio/pci-state.js';
import type { VirtioPciDoorbells } from './virtio-actor.js';

export function transportInterrupt(pci: VirtioPciDoorbells | null, state: MmioState, irqEvt: EventFd): MmioInterrupt {
  if (!pci) return new MmioInterrupt(state, () => irqEvt.signal());
  const vectors = pci.vectorFds.map((fd) => new EventFd(fd));
  return pciInterrupt(state, new VirtioPciState(pci.state), (v) => vectors[v]?.signal());
}

/**
 * As `transportInterrupt`, but the irqfd writes wait for `flush()`, which the worker calls
 * once per turn of its loop, before it sleeps. A turn that uses buffers on both queues (the
 * net device: frames sent, then the answers the host queued meanwhile) raises one interrupt,
 * not one per queue: each irqfd write injects an interrupt the guest must take, at two MMIO
 * exits (InterruptStatus, InterruptACK) on virtio-mmio. InterruptStatus is still set at the
 * trigger, so a guest handling an earlier interrupt meanwhile sees the buffers at once; the
 * edge that then finds the bit clear costs it one spurious interrupt. Every turn that
 * triggered writes once, so a lost edge is recovered as without batching (mmio-state.ts).
 * Invariant: the worker never sleeps with a write pending (flush right before every wait).
 * virtio-mmio only; on virtio-pci `flush` has nothing to do.
 */
export function deferredTransportInterrupt(pci: VirtioPciDoorbells | null, state: MmioState, irqEvt: EventFd): { interrupt: MmioInterrupt; flush(): void } {
  if (!pci) {
    let pending = false;
    return {
      interrupt: new MmioInterrupt(state, () => { pending = true; }),
      flush() {
        if (!pending) return;
        pending = false;
        irqEvt.signal();
      },
    };
  }
  // MSI-X writes stay immediate: the mask check and the write are one step under the
  // function's lock (pci-state.ts `raise`), and a deferred write could land after a mask.
  return { interrupt: transportInterrupt(pci, state, irqEvt), flush() {} };
}
