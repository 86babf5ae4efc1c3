/**
 * Builds a microVM for boot from the validated `VmConfig` (src/config/resources.ts), in
 * Firecracker's order (src/vmm/src/builder.rs `build_microvm_for_boot`):
 *
 *  1. guest RAM (SABs over a huge-page-advised memfd); /dev/kvm, API version and capabilities;
 *  2. KVM_CREATE_VM, KVM_SET_TSS_ADDR, guest RAM as KVM memory slots;
 *  3. KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 — before any vCPU;
 *  4. vCPUs; kernel, initrd and command line; per-vCPU CPUID, MSRs, registers, FPU, sregs and
 *     LAPIC LINTs; MP table, ACPI tables, zero page / PVH start info;
 *  5. device state and vCPU actors (workers), created paused; the caller resumes them.
 *
 * Any failure releases what was created and throws: InstanceStart failures are not fatal.
 */
import { randomBytes } from 'node:crypto';
import { Kvm, type VmFd } from '../kvm/kvm.js';
import type { VcpuFd } from '../kvm/vcpu-fd.js';
import { HostGuestMemory } from '../memory/host-memory.js';
import { interruptLayout, ramRanges, MiB, SYSTEM_MEM_START, VMGENID_MEM_SIZE } from '../arch/x86_64/layout.js';
import { normalizeCpuid } from '../arch/x86_64/cpuid.js';
import { bootRegs, bootSregs, bootFpu, bootMsrs, setLapicLints, writeGdtIdt, writeIdentityPageTables } from '../arch/x86_64/regs.js';
import { writeMptable } from '../arch/x86_64/mptable.js';
import { acpiDevicesPlan, writeAcpiDeviceData, writeAcpiTables } from '../arch/x86_64/acpi/index.js';
import { loadKernel, writeBootInfo, Cmdline } from '../boot/index.js';
import { bootTimestamp } from '../devices/legacy/boot-timer.js';
import { DEBUG_PORT } from '../devices/debug-port.js';
import { ByteRing } from '../devices/byte-ring.js';
import { type DeviceManifest } from '../actors/vcpu/protocol.js';
import { createHostDevices } from './host-devices.js';
import { readInitrdImage, readKernelImage } from '../config/boot-source.js';
import { createDeviceManager } from '../config/serial.js';
import { Vmm } from './vmm.js';
import { createKvmVm, startVcpuActors } from './vm-parts.js';
import { ramBacking } from '../memory/discard.js';
import { placements, planVirtioDevices, spawnVirtioDevices, type VirtioPlan } from './virtio-devices.js';
import type { Metrics } from '../metrics/metrics.js';
import { cmdlineString } from '../config/boot-source.js';
import type { VmConfig } from '../config/resources.js';

/** A VMM log line; `thread` names the thread it comes from (`fc_vcpu N`), else the main thread. */
export type VmmLog = (level: 'info' | 'warn' | 'error', msg: string, thread?: string) => void;

/** What the host side of a VM is attached to; the configuration says what the guest sees. */
export interface VmHostOptions {
  /** Serial output when the configuration has no serial_out_path: this process's stdout, or a stream (`Vmm.console`). */
  console: 'stdout' | 'stream';
  /** Feed this process's stdin to the guest serial port (a TTY is put in raw mode). */
  stdin?: boolean;
  /** Test-only: the 0xe9 debug port (src/devices/debug-port.ts), read through `Vmm.debugRing`. */
  debugPort?: boolean;
  log: VmmLog;
  /** Registry the devices report into (`block_<drive_id>`). */
  metrics?: Metrics;
}

/** Builds the VM and its actors; vCPUs wait for Vmm.start(). */
export async function buildMicroVm(cfg: VmConfig, host: VmHostOptions): Promise<Vmm> {
  const started = bootTimestamp();
  const { log, metrics } = host;
  const machine = cfg.machine;
  const kernel = readKernelImage(cfg.bootSource.kernel_image_path);
  const initrdPath = cfg.bootSource.initrd_path;
  const initrd = initrdPath ? readInitrdImage(initrdPath) : undefined;
  const cmdline = Cmdline.parse(cmdlineString(cfg.bootSource.cmdline));
  // Guest RAM before /dev/kvm, as build_microvm_for_boot (src/vmm/src/builder.rs) allocates it:
  // a size the address space cannot hold fails alike with or without KVM.
  // track_dirty_pages also keeps the VMM's own log of pages devices write (Diff snapshots).
  const mem = HostGuestMemory.create(ramRanges(machine.mem_size_mib * MiB), undefined, { trackDirty: machine.track_dirty_pages });

  // Released in reverse on any failure below (a VM that starts keeps them until teardown).
  const cleanups: (() => void)[] = [() => mem.close()];
  try {
    const { kvm, vm, vcpus } = createKvmVm(mem, machine.vcpu_count, machine.track_dirty_pages, cleanups);

    const plan = planVirtioDevices(cfg);
    const placed = placements(plan);
    // VMGenID and VMClock take the GSIs after the virtio devices (builder.rs attaches them last).
    const irqs = interruptLayout(placed.length);
    if (!irqs) throw new Error('Error attaching device to the microVM: VMGenID: Could not allocate GSI: no free interrupt line left after the virtio devices');
    const acpiDevices = acpiDevicesPlan(irqs);
    addDeviceArgs(cmdline, cfg.pciEnabled, plan);
    const loaded = loadKernel(mem, kernel, { initrd, cmdline });
    configureVcpus(kvm, vcpus, loaded.entry, machine.smt);
    writeGdtIdt(mem, loaded.entry.kind);
    if (loaded.entry.kind === 'linux64') writeIdentityPageTables(mem);
    const mpEnd = writeMptable(mem, machine.vcpu_count, SYSTEM_MEM_START);
    writeAcpiTables(mem, { vcpuCount: machine.vcpu_count, virtioDevices: placed, startAddr: mpEnd, acpiDevices });
    writeAcpiDeviceData(mem, acpiDevices, randomBytes(VMGENID_MEM_SIZE)); // a new generation id per VM
    writeBootInfo(mem, loaded);

    const extra: DeviceManifest[] = [];
    let debugRing: ByteRing | undefined;
    if (host.debugPort) {
      const ring = ByteRing.allocate(1 << 16);
      debugRing = new ByteRing(ring);
      extra.push({ kind: 'debug-port', port: DEBUG_PORT, ring });
    }
    const outPath = cfg.serial.serial_out_path;
    const devices = createDeviceManager(() => createHostDevices({
      vm, serial: outPath !== null ? { kind: 'file', path: outPath } : { kind: host.console }, stdin: host.stdin ?? false,
      bootTimer: cfg.bootTimer ? started : undefined, extra,
    }));
    // Device manifests must exist before the vCPU workers start.
    let virtio: Awaited<ReturnType<typeof spawnVirtioDevices>>;
    try {
      virtio = await spawnVirtioDevices(plan, vm, mem.describe(), ramBacking(mem), log);
    } catch (e) {
      await devices.close();
      throw e;
    }
    const { handles, vmControl } = await startVcpuActors(vm, vcpus, mem, devices, virtio, log);
    return new Vmm({ config: cfg, kvm, vm, mem, vcpus, handles, vmControl, devices, debugRing, log, ...virtio, metrics });
  } catch (e) {
    for (const c of cleanups.reverse()) {
      try { c(); } catch { /* best effort */ }
    }
    throw e;
  }
}

/**
 * Firecracker's command line additions, in its order (builder.rs `build_microvm_for_boot`):
 * `pci=off` without PCI, then per device in attach order the root drive's `root=... rw|ro` and
 * its `virtio_mmio.device=` (for kernels with VIRTIO_MMIO_CMDLINE_DEVICES; the rest use ACPI).
 */
export function addDeviceArgs(cmdline: Cmdline, pciEnabled: boolean, plan: VirtioPlan): void {
  if (!pciEnabled) cmdline.insert('pci', 'off');
  const root = plan.drives[0]?.config.is_root_device ? plan.drives[0] : undefined;
  for (const d of placements(plan)) {
    if (root && d.addr === root.addr) {
      cmdline.insertStr(`root=${root.config.partuuid ? `PARTUUID=${root.config.partuuid}` : '/dev/vda'} ${root.config.is_read_only ? 'ro' : 'rw'}`);
    }
    cmdline.insertStr(`virtio_mmio.device=4K@0x${d.addr.toString(16)}:${d.gsi}`);
  }
}

/** Per-vCPU state (firecracker src/vmm/src/arch/x86_64/regs.rs): CPUID, MSRs, regs, FPU, sregs, LAPIC LINT0/LINT1. */
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
