/**
 * The argument of KVM_SET_GSI_ROUTING (linux/kvm.h `struct kvm_irq_routing`): an 8-byte
 * header { u32 nr; u32 flags; } then `nr` 48-byte `struct kvm_irq_routing_entry`
 * { u32 gsi; u32 type; u32 flags; u32 pad; union (32 bytes) }.
 *
 * KVM_SET_GSI_ROUTING replaces the whole table, including the default routes KVM installs with
 * its in-kernel irqchip (virt/kvm/irqchip.c, arch/x86/kvm/irq_comm.c `default_routing`):
 * GSI 0..15 go to the IOAPIC pin of the same number and to the PIC (master for 0..7, slave for
 * 8..15, pin = GSI mod 8), GSI 16..23 to the IOAPIC only. `legacyRoutes()` rebuilds exactly
 * those, so the serial port, i8042 and virtio-mmio lines keep working next to MSI routes.
 */
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQ_ROUTING_MSI = 2;
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;
/** Size of one struct kvm_irq_routing_entry. */
export const KVM_IRQ_ROUTING_ENTRY_SIZE = 48;
const HEADER_SIZE = 8;
/** KVM's default routes cover the IOAPIC's 24 pins; the PIC's 16 lines are the first 16. */
const IOAPIC_PINS = 24;
const PIC_LINES = 16;
const PIC_LINES_PER_CHIP = 8;

export type GsiRoute =
  | { gsi: number; kind: 'irqchip'; irqchip: number; pin: number }
  | { gsi: number; kind: 'msi'; addressLo: number; addressHi: number; data: number };

/** KVM's default routes for the in-kernel IOAPIC and PIC. */
export function legacyRoutes(): GsiRoute[] {
  const out: GsiRoute[] = [];
  for (let gsi = 0; gsi < IOAPIC_PINS; gsi++) {
    out.push({ gsi, kind: 'irqchip', irqchip: KVM_IRQCHIP_IOAPIC, pin: gsi });
    if (gsi < PIC_LINES) {
      out.push({ gsi, kind: 'irqchip', irqchip: gsi < PIC_LINES_PER_CHIP ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, pin: gsi % PIC_LINES_PER_CHIP });
    }
  }
  return out;
}

/** Encodes `routes` as the KVM_SET_GSI_ROUTING argument. */
export function encodeGsiRouting(routes: readonly GsiRoute[]): Uint8Array {
  const buf = new Uint8Array(HEADER_SIZE + KVM_IRQ_ROUTING_ENTRY_SIZE * routes.length);
  const v = new DataView(buf.buffer);
  v.setUint32(0, routes.length, true);
  routes.forEach((r, i) => {
    const off = HEADER_SIZE + KVM_IRQ_ROUTING_ENTRY_SIZE * i;
    v.setUint32(off, r.gsi, true);
    if (r.kind === 'irqchip') {
      v.setUint32(off + 4, KVM_IRQ_ROUTING_IRQCHIP, true);
      v.setUint32(off + 16, r.irqchip, true);
      v.setUint32(off + 20, r.pin, true);
    } else {
      v.setUint32(off + 4, KVM_IRQ_ROUTING_MSI, true);
      v.setUint32(off + 16, r.addressLo >>> 0, true);
      v.setUint32(off + 20, r.addressHi >>> 0, true);
      v.setUint32(off + 24, r.data >>> 0, true);
    }
  });
  return buf;
}
