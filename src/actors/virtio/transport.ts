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
  if (!pci) return new MmioInterrupt(state, () => irqEvt.signal(), true);
  const vectors = pci.vectorFds.map((fd) => new EventFd(fd));
  return pciInterrupt(state, new VirtioPciState(pci.state), (v) => vectors[v]?.signal());
}
