/**
 * The virtio-mmio devices of a VM being built: where each one sits and its actor started.
 *
 * Placement follows Firecracker's attach order (src/vmm/src/builder.rs: the balloon, then block
 * devices, then network interfaces, then pmem devices, then vsock, then the entropy device,
 * then virtio-mem; firecracker-facts §4.4): each device gets the next 4 KiB MMIO window from VIRTIO_MMIO_START and
 * the next GSI from GSI_LEGACY_START (device_manager/mmio.rs `allocate_mmio_resources`).
 * VmResources keeps the root drive first, so it becomes /dev/vda.
 */
import { openSync, closeSync } from 'node:fs';
import { IoUring } from '../kvm/io-uring.js';
import type { VmFd } from '../kvm/kvm.js';
import type { GuestMemoryDescriptor } from '../memory/guest-memory.js';
import {
  GSI_LEGACY_END, GSI_LEGACY_START, MMIO64_MEM_START, MSI_GSI_START, MSI_GSIS_PER_DEVICE, VIRTIO_MMIO_SIZE, VIRTIO_MMIO_START,
} from '../arch/x86_64/layout.js';
import { VIRTIO_PCI_BAR_SIZE } from '../devices/virtio/pci-state.js';
import { PCI_SLOTS } from '../devices/pci/config.js';
import type { VirtioPciPlacement } from '../actors/virtio/virtio-actor.js';
import { backingFileSize } from '../devices/virtio/block/file-backend.js';
import { BlockHandle } from '../actors/virtio/block-handle.js';
import { NetHandle } from '../actors/virtio/net-handle.js';
import { TokenAuthority } from '../mmds/token.js';
import type { NetMmdsInit } from '../actors/virtio/net-protocol.js';
import { VsockHandle } from '../actors/virtio/vsock-handle.js';
import { EntropyHandle } from '../actors/virtio/entropy-handle.js';
import { BalloonHandle } from '../actors/virtio/balloon-handle.js';
import { MemHandle, hotplugSlotPieces } from '../actors/virtio/mem-handle.js';
import { PmemHandle } from '../actors/virtio/pmem-handle.js';
import type { HostGuestMemory } from '../memory/host-memory.js';
import type { PmemMapping } from '../memory/pmem-mapping.js';
import { MiB } from '../arch/x86_64/layout.js';
import { FsHandle } from '../actors/virtio/fs-handle.js';
import type { VhostMemoryMap } from '../actors/virtio/fs-protocol.js';
import type { FsDeviceConfig } from '../config/fs.js';
import type { RamBacking } from '../memory/discard.js';
import type { VirtioDeviceSnapshot } from '../actors/virtio/virtio-actor.js';
import { HostIoError } from '../util/io-error.js';
import { vsockBindError } from '../config/vsock.js';
import type { VirtioBlockDrive } from '../config/drives.js';
import { DEFAULT_MMDS_IPV4 } from '../config/mmds-config.js';
import { serdeJsonStringify } from '../config/serde-read.js';
import type { VmConfig } from '../config/resources.js';
import type { VmmLog } from './builder.js';

/** The started virtio device actors of a VM, by kind, in attach order. */
export interface VirtioHandles {
  balloon: BalloonHandle | null;
  blocks: BlockHandle[];
  nets: NetHandle[];
  vsock: VsockHandle | null;
  entropy: EntropyHandle | null;
  /** virtio-pmem device actors, in configuration order. */
  pmem: PmemHandle[];
  /** The virtio-mem device actor, when PUT /hotplug/memory configured one. */
  virtioMem: MemHandle | null;
  /** virtio-fs devices (PUT /fs), after every Firecracker device. */
  fs: FsHandle[];
}

/**
 * What the pmem and virtio-mem devices need of the host beyond the plan (src/vmm/device-memory.ts):
 * guest RAM with its hotplug region, each pmem file's mapping and guest window.
 */
export interface DeviceMemoryParts {
  mem: HostGuestMemory;
  /** KVM slot flags of the hotplug region (KVM_MEM_LOG_DIRTY_PAGES with track_dirty_pages). */
  slotFlags: number;
  pmem: readonly { mapping: PmemMapping; start: number }[];
}

/** Saved device states, in the plan's order (snapshot restore). */
export interface VirtioRestoreSet {
  balloon: VirtioDeviceSnapshot | null;
  blocks: readonly VirtioDeviceSnapshot[];
  nets: readonly VirtioDeviceSnapshot[];
  vsock: VirtioDeviceSnapshot | null;
  entropy: VirtioDeviceSnapshot | null;
}

/**
 * A device with its MMIO window and GSI, or (with --enable-pci) its PCI slot, BAR and MSI
 * GSIs: `addr`/`gsi` are then the BAR address and the first MSI GSI, and nothing is on the
 * command line or in the DSDT for it.
 */
export interface Placed<C> {
  config: C;
  addr: number;
  gsi: number;
  pci: VirtioPciPlacement | null;
}

export interface VirtioPlan {
  /** PUT /balloon: placed first, as Firecracker attaches it first. */
  balloon: Placed<NonNullable<VmConfig['balloon']>> | null;
  drives: Placed<VirtioBlockDrive>[];
  nets: Placed<VmConfig['networkInterfaces'][number]>[];
  /** What every MMDS interface's worker starts with (docs/design.md "MMDS"), or null. */
  mmds: Omit<NetMmdsInit, 'metrics'> | null;
  vsock: Placed<NonNullable<VmConfig['vsock']>> | null;
  entropy: Placed<NonNullable<VmConfig['entropy']>> | null;
  pmem: Placed<VmConfig['pmem'][number]>[];
  mem: Placed<NonNullable<VmConfig['memoryHotplug']>> | null;
  /** virtio-fs devices: placed last, after Firecracker's own devices, so those keep Firecracker's addresses. */
  fs: Placed<FsDeviceConfig>[];
  /** --enable-pci: every device is a virtio-pci function; `msiGsis` MSI GSIs from MSI_GSI_START. */
  pci: { msiGsis: number } | null;
}

/** Every virtio-mmio device's window and line, in order (command line, ACPI DSDT); none with PCI. */
export function placements(p: VirtioPlan): { addr: number; gsi: number }[] {
  if (p.pci) return [];
  return [
    ...(p.balloon ? [p.balloon] : []), ...p.drives, ...p.nets, ...p.pmem, ...(p.vsock ? [p.vsock] : []), ...(p.entropy ? [p.entropy] : []), ...(p.mem ? [p.mem] : []), ...(p.fs ?? []),
  ].map(({ addr, gsi }) => ({ addr, gsi }));
}

/** Places the configuration's virtio devices; throws when there are more than GSIs. */
export function planVirtioDevices(cfg: VmConfig): VirtioPlan {
  const drives = cfg.drives.flatMap((d) => (d.kind === 'virtio-block' ? [d] : []));
  // The Async engine's io_uring is set up in the drive's worker; probe here so a kernel
  // without it fails InstanceStart with a clear error instead of a worker that dies.
  if (drives.some((d) => d.io_engine === 'Async')) new IoUring(1).close();
  let next = 0;
  const place = <C>(config: C): Placed<C> => {
    if (cfg.pciEnabled) {
      // Firecracker's PCI attach (device_manager/pci_mngr.rs): the next slot after the host
      // bridge, BAR 0 from the 64-bit window (first fit, aligned to its size), MSI GSIs.
      const slot = 1 + next;
      if (slot >= PCI_SLOTS) throw new Error('Failed to allocate requested resource: no free PCI slot for another virtio device');
      const barAddr = MMIO64_MEM_START + VIRTIO_PCI_BAR_SIZE * next;
      const gsiBase = MSI_GSI_START + MSI_GSIS_PER_DEVICE * next++;
      return { config, addr: barAddr, gsi: gsiBase, pci: { slot, barAddr, gsiBase } };
    }
    const gsi = GSI_LEGACY_START + next;
    if (gsi > GSI_LEGACY_END) throw new Error('Failed to allocate requested resource: no free interrupt line for another virtio device');
    return { config, addr: VIRTIO_MMIO_START + VIRTIO_MMIO_SIZE * next++, gsi, pci: null };
  };
  const balloon = cfg.balloon ? place(cfg.balloon) : null;
  const placedDrives = drives.map(place);
  const nets = cfg.networkInterfaces.map(place);
  const pmem = cfg.pmem.map(place);
  const vsock = cfg.vsock ? place(cfg.vsock) : null;
  const entropy = cfg.entropy ? place(cfg.entropy) : null;
  const mem = cfg.memoryHotplug ? place(cfg.memoryHotplug) : null;
  const fs = (cfg.fs ?? []).map(place);
  return {
    balloon, drives: placedDrives, nets, pmem, vsock, entropy, mem, fs, mmds: mmdsInit(cfg), pci: cfg.pciEnabled ? { msiGsis: MSI_GSIS_PER_DEVICE * next } : null,
  };
}

/**
 * The MMDS settings the interfaces listed in PUT /mmds/config start with: one token key per VM
 * (Firecracker has one MMDS for all interfaces, so a token from one works on another), the
 * data store's text as it is at InstanceStart.
 */
function mmdsInit(cfg: VmConfig): VirtioPlan['mmds'] {
  const m = cfg.mmds;
  if (!m || !cfg.networkInterfaces.some((n) => n.mmds)) return null;
  return {
    key: [...TokenAuthority.generateKey()], instanceId: cfg.instanceId, ipv4: m.config.ipv4_address ?? DEFAULT_MMDS_IPV4,
    version: m.config.version, imdsCompat: m.config.imds_compat, data: serdeJsonStringify(m.store.value()),
  };
}

/** "aa:bb:cc:dd:ee:ff" (validated at PUT time) as 6 bytes. */
function macBytes(mac: string | null): Uint8Array | null {
  return mac === null ? null : Uint8Array.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/**
 * Starts every device actor concurrently (each worker is a fresh isolate loading its module
 * graph, the largest part of InstanceStart); if any fails, the ones that started are stopped
 * and the first failure is thrown, so a failed InstanceStart leaves no worker behind.
 */
export async function spawnVirtioDevices(
  p: VirtioPlan, vm: VmFd, memory: GuestMemoryDescriptor, backing: RamBacking, log: VmmLog, restore?: VirtioRestoreSet, devMem?: DeviceMemoryParts, ram?: VhostMemoryMap,
): Promise<VirtioHandles> {
  const blocks = p.drives.map((d, i) => async () => {
    const fileFd = openSync(d.config.path_on_host, d.config.is_read_only ? 'r' : 'r+');
    try {
      return await BlockHandle.spawn({
        vm, memory, driveId: d.config.drive_id, fileFd, diskSizeBytes: backingFileSize(fileFd),
        readOnly: d.config.is_read_only, cacheType: d.config.cache_type, ioEngine: d.config.io_engine,
        rateLimiter: d.config.rate_limiter ?? {}, addr: d.addr, gsi: d.gsi, pci: d.pci, onLog: log, restore: restore?.blocks[i] ?? null,
      });
    } catch (e) {
      closeSync(fileFd); // a worker that never became ready never took the file
      throw e;
    }
  });
  const nets = p.nets.map((n, i) => () => NetHandle.spawn({
    vm, memory, ifaceId: n.config.iface_id, tapName: n.config.host_dev_name, guestMac: macBytes(n.config.guest_mac), mtu: n.config.mtu,
    rxRateLimiter: n.config.rx_rate_limiter ?? {}, txRateLimiter: n.config.tx_rate_limiter ?? {}, addr: n.addr, gsi: n.gsi, pci: n.pci, onLog: log,
    mmds: n.config.mmds ? p.mmds : null, restore: restore?.nets[i] ?? null,
  }));
  const v = p.vsock;
  // The listener is bound here: a uds_path taken since PUT /vsock fails the start with the
  // text Firecracker's PUT would have answered.
  const vsock = v ? [() => VsockHandle.spawn({
    vm, memory, guestCid: v.config.guest_cid, udsPath: v.config.uds_path, addr: v.addr, gsi: v.gsi, pci: v.pci, onLog: log, restore: restore?.vsock ?? null,
  }).catch((e: unknown) => { throw e instanceof HostIoError ? vsockBindError(e) : e; })] : [];
  const e = p.entropy;
  const entropy = e ? [() => EntropyHandle.spawn({ vm, memory, rateLimiter: e.config.rate_limiter ?? {}, addr: e.addr, gsi: e.gsi, pci: e.pci, onLog: log, restore: restore?.entropy ?? null })] : [];
  const b = p.balloon;
  const balloon = b ? [() => BalloonHandle.spawn({
    vm, memory, backing, amountMib: b.config.amount_mib, deflateOnOom: b.config.deflate_on_oom, statsIntervalS: b.config.stats_polling_interval_s,
    reporting: b.config.free_page_reporting, hinting: b.config.free_page_hinting,
    addr: b.addr, gsi: b.gsi, pci: b.pci, onLog: log, restore: restore?.balloon ?? null,
  })] : [];
  if ((p.pmem.length > 0 || p.mem) && !devMem) throw new Error('internal: pmem or virtio-mem devices without their device memory');
  // KVM slots: boot RAM first (vm-parts.ts), then the hotplug region's, then one per pmem window.
  let nextSlot = devMem ? devMem.mem.bootRegions.length : 0;
  const m = p.mem;
  const hp = devMem?.mem.hotplug;
  const memSlots = m && hp ? hotplugSlotPieces(hp.gpa, hp.size, m.config.slot_size_mib * MiB, devMem.mem.hotplugRegions, nextSlot) : [];
  nextSlot += memSlots.reduce((n, s) => n + s.length, 0);
  const mem = m && devMem ? [() => MemHandle.spawn({
    vm, memory, backing, slots: memSlots, slotFlags: devMem.slotFlags, blockSize: m.config.block_size_mib * MiB, slotSize: m.config.slot_size_mib * MiB,
    addr: m.addr, gsi: m.gsi, pci: m.pci, onLog: log,
  })] : [];
  const pmem = p.pmem.map((d, i) => () => {
    const w = devMem!.pmem[i]!;
    return PmemHandle.spawn({
      vm, memory, id: d.config.id, mapping: w.mapping, readOnly: d.config.read_only, start: w.start, kvmSlot: nextSlot + i,
      rateLimiter: d.config.rate_limiter ?? {}, addr: d.addr, gsi: d.gsi, pci: d.pci, onLog: log,
    });
  });
  // A restored VM never has virtio-fs (snapshots refuse it), so `ram` is given at boot only.
  const fs = (p.fs ?? []).map((f) => () => FsHandle.spawn({
    vm, memory, ram: ram ?? { memfd: -1, regions: [] }, id: f.config.id, tag: f.config.tag, socket: f.config.socket, sharedDir: f.config.shared_dir,
    addr: f.addr, gsi: f.gsi, onLog: log,
  }));
  type Handle = BlockHandle | NetHandle | VsockHandle | EntropyHandle | BalloonHandle | PmemHandle | MemHandle | FsHandle;
  const all = await spawnAll<Handle>([...blocks, ...nets, ...pmem, ...vsock, ...entropy, ...balloon, ...mem, ...fs]);
  const n = blocks.length + nets.length;
  const rest = all.slice(n);
  return {
    fs: rest.filter((h): h is FsHandle => h instanceof FsHandle),
    blocks: all.slice(0, blocks.length) as BlockHandle[], nets: all.slice(blocks.length, n) as NetHandle[],
    pmem: rest.filter((h): h is PmemHandle => h instanceof PmemHandle),
    vsock: (rest.find((h) => h instanceof VsockHandle) as VsockHandle | undefined) ?? null,
    entropy: (rest.find((h) => h instanceof EntropyHandle) as EntropyHandle | undefined) ?? null,
    balloon: (rest.find((h) => h instanceof BalloonHandle) as BalloonHandle | undefined) ?? null,
    virtioMem: (rest.find((h) => h instanceof MemHandle) as MemHandle | undefined) ?? null,
  };
}

/**
 * Runs the spawners concurrently; if any fails, stops the ones that started and rethrows the
 * first failure.
 */
export async function spawnAll<T extends { stop(): Promise<unknown> }>(spawners: (() => Promise<T>)[]): Promise<T[]> {
  const settled = await Promise.allSettled(spawners.map((f) => f()));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
  await Promise.all(settled.map((r) => (r.status === 'fulfilled' ? r.value.stop().catch(() => undefined) : undefined)));
  throw failed.reason;
}
