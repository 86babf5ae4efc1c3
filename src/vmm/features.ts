/**
 * What a configuration asks of the VM, as a list of feature kinds, and what this build can
 * run. InstanceStart refuses a configuration that needs a kind the VM factory does not support,
 * with a 400 naming it (docs/design.md "API flow"): a configured device is never silently
 * dropped. Pure: the controller and the fake VM of the API tests share it.
 */
import type { VmConfig } from '../config/resources.js';

/** Devices and features a configuration may ask for. */
export type DeviceKind =
  | 'virtio-block'
  | 'vhost-user-block'
  | 'block-io-engine-async'
  | 'virtio-net'
  | 'mmds'
  | 'vsock'
  | 'balloon'
  | 'balloon-free-page-hinting'
  | 'balloon-free-page-reporting'
  | 'entropy'
  | 'pmem'
  | 'virtio-fs'
  | 'virtio-fs-pci'
  | 'memory-hotplug'
  | 'rate-limiter'
  | 'serial-output-file'
  | 'serial-rate-limiter'
  | 'static-cpu-template'
  | 'custom-cpu-template'
  | 'smt'
  | 'huge-pages'
  | 'track-dirty-pages'
  | 'initrd'
  | 'boot-timer'
  | 'pci';

/** Human-readable names used in the "not supported" start error. */
export const DEVICE_KIND_NAMES: Record<DeviceKind, string> = {
  'virtio-block': 'virtio-block drives',
  'vhost-user-block': 'vhost-user-block drives (drive `socket`)',
  'block-io-engine-async': 'the Async (io_uring) block io_engine',
  'virtio-net': 'network interfaces (virtio-net)',
  mmds: 'MMDS',
  vsock: 'vsock',
  balloon: 'the balloon device',
  'balloon-free-page-hinting': 'balloon free page hinting (free_page_hinting)',
  'balloon-free-page-reporting': 'balloon free page reporting (free_page_reporting)',
  entropy: 'the entropy device (virtio-rng)',
  pmem: 'pmem devices',
  'virtio-fs': 'virtio-fs devices (/fs)',
  'virtio-fs-pci': 'virtio-fs devices with --enable-pci (virtio-fs is on virtio-mmio only)',
  'memory-hotplug': 'memory hotplug (virtio-mem)',
  'rate-limiter': 'rate limiters',
  'serial-output-file': 'serial_out_path',
  'serial-rate-limiter': 'the serial rate limiter',
  'static-cpu-template': 'static CPU templates',
  'custom-cpu-template': 'custom CPU templates (/cpu-config)',
  smt: 'SMT',
  'huge-pages': 'huge pages',
  'track-dirty-pages': 'dirty page tracking',
  initrd: 'an initrd',
  'boot-timer': 'the boot timer device (--boot-timer)',
  pci: 'PCI (--enable-pci)',
};

/** What the KVM VM of this build runs (src/vmm/kvm-factory.ts offers exactly these). */
export const KVM_SUPPORTED: ReadonlySet<DeviceKind> = new Set<DeviceKind>([
  'initrd', 'boot-timer', 'serial-output-file', 'smt', 'track-dirty-pages', 'virtio-block', 'block-io-engine-async', 'rate-limiter',
  'virtio-net', 'mmds', 'vsock', 'entropy', 'balloon', 'balloon-free-page-reporting', 'balloon-free-page-hinting', 'pci',
  'pmem', 'memory-hotplug',
  'static-cpu-template', 'custom-cpu-template', 'huge-pages',
  'virtio-fs',
]);

/** The devices/features a configuration needs, in attach order. */
export function requiredKinds(c: VmConfig): DeviceKind[] {
  const k = new Set<DeviceKind>();
  if (c.machine.smt) k.add('smt');
  if (c.machine.huge_pages !== 'None') k.add('huge-pages');
  if (c.machine.track_dirty_pages) k.add('track-dirty-pages');
  if (c.machine.cpu_template) k.add('static-cpu-template');
  if (c.machine.custom_cpu_template) k.add('custom-cpu-template');
  if (c.bootSource.initrd_path !== null) k.add('initrd');
  if (c.balloon) k.add('balloon');
  if (c.balloon?.free_page_hinting) k.add('balloon-free-page-hinting');
  if (c.balloon?.free_page_reporting) k.add('balloon-free-page-reporting');
  for (const d of c.drives) {
    k.add(d.kind);
    if (d.kind === 'virtio-block' && d.io_engine === 'Async') k.add('block-io-engine-async');
    if (d.kind === 'virtio-block' && d.rate_limiter) k.add('rate-limiter');
  }
  for (const n of c.networkInterfaces) {
    k.add('virtio-net');
    if (n.rx_rate_limiter || n.tx_rate_limiter) k.add('rate-limiter');
  }
  if (c.mmds) k.add('mmds');
  if (c.pmem.length) k.add('pmem');
  if (c.pmem.some((p) => p.rate_limiter)) k.add('rate-limiter');
  if (c.fs?.length) k.add(c.pciEnabled ? 'virtio-fs-pci' : 'virtio-fs');
  if (c.vsock) k.add('vsock');
  if (c.entropy) k.add('entropy');
  if (c.entropy?.rate_limiter) k.add('rate-limiter');
  if (c.memoryHotplug) k.add('memory-hotplug');
  if (c.serial.serial_out_path !== null) k.add('serial-output-file');
  if (c.serial.rate_limiter) k.add('serial-rate-limiter');
  if (c.bootTimer) k.add('boot-timer');
  if (c.pciEnabled) k.add('pci');
  return [...k];
}

/** The first kind `c` needs that `supported` lacks, or null. */
export function firstUnsupported(c: VmConfig, supported: (k: DeviceKind) => boolean): DeviceKind | null {
  return requiredKinds(c).find((k) => !supported(k)) ?? null;
}
