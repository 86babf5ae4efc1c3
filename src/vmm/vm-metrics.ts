/**
 * The metric groups a running VM feeds from its actors' shared counters (docs/design.md,
 * Metrics): nothing here sends a message per event; each flush reads the counters the vCPU
 * workers, the legacy devices and the virtio transports keep in shared memory and adds their
 * increase to Firecracker's groups:
 *
 * - `vcpu`: every vCPU's metrics buffer (src/actors/vcpu/metrics.ts), summed into one group as
 *   Firecracker's global METRICS.vcpu;
 * - `uart`, `i8042`: the legacy devices' counters in their shared state (wrapping u32 slots);
 * - `interrupts.triggers`: each virtio-mmio transport's trigger count
 *   (MMIO_SLOT.INTERRUPT_TRIGGERS), for every virtio device in the manifest — so a device kind
 *   added later is counted without a change here. `config_updates` counts MSI-X updates, which
 *   only exist with PCI (refused), so it stays 0 as in Firecracker without `--enable-pci`.
 */
import type { VcpuHandle } from '../actors/vcpu/handle.js';
import { sumVcpuMetrics } from '../actors/vcpu/metrics.js';
import type { DeviceManifest } from '../actors/vcpu/protocol.js';
import { interruptTriggers } from '../devices/virtio/mmio-state.js';
import { runningTotalU32, type Metrics } from '../metrics/metrics.js';
import type { HostDeviceSet } from './host-devices.js';

/** A reader of several wrapping u32 counters as running totals, one tracker per key. */
function totals(): (key: string, reading: number) => number {
  const trackers = new Map<string, (r: number) => number>();
  return (key, reading) => {
    let t = trackers.get(key);
    if (!t) trackers.set(key, (t = runningTotalU32()));
    return t(reading);
  };
}

/** Registers the VM's fixed-group sources; the returned functions unregister them (after a last pull). */
export function registerVmMetrics(
  m: Metrics,
  vm: { handles: readonly VcpuHandle[]; devices: HostDeviceSet; manifest: readonly DeviceManifest[] },
): (() => void)[] {
  // Exit latencies cost two clock reads per exit (a syscall where the host clocksource has no
  // vDSO, as under nested TCG), so vCPUs time exits only once a sink can receive them. A sink
  // configured later (a library caller's own Metrics) turns timing on at its first flush.
  const timeExits = (): void => { for (const h of vm.handles) h.timeExits(); };
  if (m.initialized) timeExits();
  const legacy = totals();
  const irq = totals();
  const virtioStates = (): SharedArrayBuffer[] =>
    vm.manifest.flatMap((d) => (d.kind.startsWith('virtio-') && 'state' in d ? [d.state] : []));
  return [
    m.addGroupSource('vcpu', () => {
      timeExits();
      return sumVcpuMetrics(vm.handles.map((h) => h.metrics.snapshot()));
    }),
    m.addGroupSource('uart', () => {
      const u = vm.devices.legacyMetrics().uart;
      return Object.fromEntries(Object.entries(u).map(([k, v]) => [k, legacy(`uart.${k}`, v)]));
    }),
    m.addGroupSource('i8042', () => {
      const k8 = vm.devices.legacyMetrics().i8042;
      return Object.fromEntries(Object.entries(k8).map(([k, v]) => [k, legacy(`i8042.${k}`, v)]));
    }),
    m.addGroupSource('interrupts', () => ({
      triggers: virtioStates().reduce((n, state, i) => n + irq(String(i), interruptTriggers(state)), 0),
    })),
  ];
}
