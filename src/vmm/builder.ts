/**
 * Builds a microVM for boot, in Firecracker's order (facts §3.1):
 *
 *  1. /dev/kvm, API version and required capabilities;
 *  2. KVM_CREATE_VM, KVM_SET_TSS_ADDR, guest RAM (SABs over a huge-page-advised memfd) as KVM memory slots;
 *  3. KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 — before any vCPU;
 *  4. vCPUs; kernel, initrd and command line; per-vCPU CPUID, MSRs, registers, FPU, sregs and
 *     LAPIC LINTs; MP table, ACPI tables, zero page / PVH start info;
 *  5. device state and vCPU actors (workers), created paused; the caller resumes them.
 *
 * Any failure releases what was created and throws: InstanceStart failures are not fatal.
 */
import { readFileSync, openSync, closeSync } from 'node:fs';
import { Kvm, type VmFd } from '../kvm/kvm.js';
import type { VcpuFd } from '../kvm/vcpu-fd.js';
import { IoUring } from '../kvm/io-uring.js';
import { KVM_MEM_LOG_DIRTY_PAGES } from '../kvm/constants.js';
import { HostGuestMemory } from '../memory/host-memory.js';
import { ramRanges, KVM_TSS_ADDRESS, MiB, SYSTEM_MEM_START, VIRTIO_MMIO_START, VIRTIO_MMIO_SIZE, GSI_LEGACY_START } from '../arch/x86_64/layout.js';
import { normalizeCpuid } from '../arch/x86_64/cpuid.js';
import { bootRegs, bootSregs, bootFpu, bootMsrs, setLapicLints, writeGdtIdt, writeIdentityPageTables } from '../arch/x86_64/regs.js';
import { writeMptable } from '../arch/x86_64/mptable.js';
import { writeAcpiTables } from '../arch/x86_64/acpi/index.js';
import { loadKernel, writeBootInfo, Cmdline } from '../boot/index.js';
import { bootTimestamp } from '../devices/legacy/index.js';
import { DEBUG_PORT } from '../devices/debug-port.js';
import { ByteRing } from '../devices/byte-ring.js';
import { VcpuHandle } from '../actors/vcpu/handle.js';
import { VM_CONTROL_SLOTS, VM_SLOT, type DeviceManifest } from '../actors/vcpu/protocol.js';
import { createHostDevices, type HostDeviceSet } from './host-devices.js';
import { DEFAULT_BOOT_ARGS, machineDefaults, type DriveConfig, type MicroVmConfig } from './config.js';
import { BlockHandle } from '../actors/virtio/block-handle.js';
import { backingFileSize } from '../devices/virtio/block/file-backend.js';
import { Vmm } from './vmm.js';
import type { Metrics } from '../metrics/metrics.js';

export interface BuiltVm {
  vmm: Vmm;
  devices: HostDeviceSet;
  /** The debug-port ring, when the config asked for one (tests). */
  debugRing?: ByteRing;
}

export type VmmLog = (level: 'info' | 'warn' | 'error', msg: string) => void;

/** Builds the VM and its actors; vCPUs wait for Vmm.start(). */
export async function buildMicroVm(cfg: MicroVmConfig, log: VmmLog, metrics?: Metrics): Promise<BuiltVm> {
  const started = bootTimestamp();
  const machine = machineDefaults(cfg['machine-config']);
  const kernel = readFileSync(cfg['boot-source'].kernel_image_path);
  const initrdPath = cfg['boot-source'].initrd_path;
  const initrd = initrdPath ? readFileSync(initrdPath) : undefined;
  const cmdline = Cmdline.parse(cfg['boot-source'].boot_args ?? DEFAULT_BOOT_ARGS);

  const kvm = Kvm.open();
  const cleanups: (() => void)[] = [() => kvm.close()];
  try {
    kvm.requireCaps();
    const vm = kvm.createVm();
    cleanups.push(() => vm.close());
    vm.setTssAddr(KVM_TSS_ADDRESS);
    const mem = HostGuestMemory.create(ramRanges(machine.mem_size_mib * MiB));
    const slotFlags = machine.track_dirty_pages ? KVM_MEM_LOG_DIRTY_PAGES : 0;
    mem.hostRegions.forEach((r, slot) => vm.setUserMemoryRegion(slot, BigInt(r.gpa), BigInt(r.size), r.hostAddr, slotFlags));
    vm.createIrqchip();
    vm.createPit2();

    const vcpus: VcpuFd[] = [];
    for (let i = 0; i < machine.vcpu_count; i++) {
      const v = vm.createVcpu(i);
      vcpus.push(v);
      cleanups.push(() => v.close());
    }

    const drives = planDrives(cfg.drives ?? []);
    for (const d of drives) {
      // Kernels with VIRTIO_MMIO_CMDLINE_DEVICES take the devices from here; the rest from ACPI.
      cmdline.insertStr(`virtio_mmio.device=4K@0x${d.addr.toString(16)}:${d.gsi}`);
    }
    const root = drives.find((d) => d.config.is_root_device);
    if (root) {
      const dev = root.config.partuuid ? `PARTUUID=${root.config.partuuid}` : '/dev/vda';
      cmdline.insertStr(`root=${dev} ${root.config.is_read_only ? 'ro' : 'rw'}`);
    }
    const loaded = loadKernel(mem, kernel, { initrd, cmdline });
    configureVcpus(kvm, vcpus, loaded.entry, machine.smt ?? false);
    writeGdtIdt(mem, loaded.entry.kind);
    if (loaded.entry.kind === 'linux64') writeIdentityPageTables(mem);
    const mpEnd = writeMptable(mem, machine.vcpu_count, SYSTEM_MEM_START);
    writeAcpiTables(mem, { vcpuCount: machine.vcpu_count, virtioDevices: drives.map((d) => ({ addr: d.addr, gsi: d.gsi })), startAddr: mpEnd });
    writeBootInfo(mem, loaded);

    const extra: DeviceManifest[] = [];
    let debugRing: ByteRing | undefined;
    if (cfg.debugPort) {
      const ring = ByteRing.allocate(1 << 16);
      debugRing = new ByteRing(ring);
      extra.push({ kind: 'debug-port', port: DEBUG_PORT, ring });
    }
    const devices = createHostDevices({
      vm, serial: cfg.serial ?? { kind: 'stream' }, stdin: cfg.stdin ?? false,
      bootTimer: cfg.bootTimer ? started : undefined, extra,
    });
    // Workers start concurrently: each one is a fresh isolate loading its module graph, the
    // largest part of InstanceStart. Block manifests must exist before the vCPU workers start.
    let blocks: BlockHandle[];
    try {
      blocks = await spawnAll(drives.map((d) => async () => {
        const fileFd = openSync(d.config.path_on_host, d.config.is_read_only ? 'r' : 'r+');
        try {
          return await BlockHandle.spawn({
            vm, memory: mem.describe(), driveId: d.config.drive_id, fileFd, diskSizeBytes: backingFileSize(fileFd),
            readOnly: d.config.is_read_only ?? false, cacheType: d.config.cache_type ?? 'Unsafe', ioEngine: d.config.io_engine ?? 'Sync',
            rateLimiter: { bandwidth: d.config.rate_limiter?.bandwidth ?? null, ops: d.config.rate_limiter?.ops ?? null },
            addr: d.addr, gsi: d.gsi, onLog: log,
          });
        } catch (e) {
          closeSync(fileFd); // a worker that never became ready never took the file
          throw e;
        }
      }));
    } catch (e) {
      await devices.host.close();
      throw e;
    }
    devices.manifest.push(...blocks.map((b) => b.manifest));
    const vmControl = new Int32Array(new SharedArrayBuffer(VM_CONTROL_SLOTS * 4));
    Atomics.store(vmControl, VM_SLOT.EXIT_CODE, -1);
    let handles: VcpuHandle[];
    try {
      handles = await spawnAll(vcpus.map((vcpu) => () => VcpuHandle.spawn({
        vm, vcpu, memory: mem.describe(), vmControl: vmControl.buffer as SharedArrayBuffer,
        devices: devices.manifest, onLog: (m) => log(m.level, m.message),
      })));
    } catch (e) {
      await Promise.all(blocks.map((b) => b.stop().catch(() => undefined)));
      await devices.host.close();
      throw e;
    }
    const vmm = new Vmm({ kvm, vm, mem, vcpus, handles, vmControl, host: devices.host, log, blocks, metrics });
    return { vmm, devices, debugRing };
  } catch (e) {
    for (const c of cleanups.reverse()) {
      try { c(); } catch { /* best effort */ }
    }
    throw e;
  }
}

/**
 * Runs the spawners concurrently; if any fails, stops the ones that started and rethrows the
 * first failure, so a failed InstanceStart leaves no worker behind.
 */
async function spawnAll<T extends { stop(): Promise<unknown> }>(spawners: (() => Promise<T>)[]): Promise<T[]> {
  const settled = await Promise.allSettled(spawners.map((f) => f()));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
  await Promise.all(settled.map((r) => (r.status === 'fulfilled' ? r.value.stop().catch(() => undefined) : undefined)));
  throw failed.reason;
}

/** A drive with its MMIO window and GSI, in Firecracker's order: root device first (→ /dev/vda). */
interface PlannedDrive {
  config: DriveConfig;
  addr: number;
  gsi: number;
}

/** Orders drives (root first) and gives each the next 4 KiB MMIO slot and GSI (facts §4.4). */
function planDrives(drives: readonly DriveConfig[]): PlannedDrive[] {
  const roots = drives.filter((d) => d.is_root_device);
  if (roots.length > 1) throw new Error('A root block device already exists!');
  // The Async engine's io_uring is set up in the drive's worker; probe here so a kernel
  // without it fails InstanceStart with a clear error instead of a worker that dies.
  if (drives.some((d) => d.io_engine === 'Async')) new IoUring(1).close();
  return [...roots, ...drives.filter((d) => !d.is_root_device)].map((config, i) => ({
    config, addr: VIRTIO_MMIO_START + i * VIRTIO_MMIO_SIZE, gsi: GSI_LEGACY_START + i,
  }));
}

/** Per-vCPU state (facts §3.4): CPUID, MSRs, regs, FPU, sregs, LAPIC LINT0/LINT1. */
function configureVcpus(kvm: Kvm, vcpus: VcpuFd[], entry: { kind: 'linux64' | 'pvh'; addr: number }, smt: boolean): void {
  const supported = kvm.getSupportedCpuid();
  for (const v of vcpus) {
    v.setCpuid2(normalizeCpuid(supported, { vcpuIndex: v.id, vcpuCount: vcpus.length, smt }));
    v.setMsrs(bootMsrs());
    v.setRegs(bootRegs(entry));
    v.setFpu({ ...bootFpu() });
    v.setSregs(bootSregs(v.getSregs(), entry.kind));
    const lapic = v.getLapic();
    setLapicLints(lapic);
    v.setLapic(lapic);
  }
}

export type { VmFd };
