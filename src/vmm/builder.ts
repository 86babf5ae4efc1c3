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
import { type CpuidEntry, type VmFd } from '../kvm/kvm.js';
import type { VcpuFd } from '../kvm/vcpu-fd.js';
import { KVM_MEM_LOG_DIRTY_PAGES } from '../kvm/constants.js';
import { createBootMemory, releaseBootMemory } from './device-memory.js';
import {
  interruptLayout, ramRanges, MiB, SYSTEM_MEM_START, VMGENID_MEM_SIZE, MSI_GSI_START, PCI_MMCONFIG_START,
  PCI_MMIO_CONFIG_SIZE_PER_SEGMENT, MMIO64_MEM_START, MMIO64_MEM_SIZE,
} from '../arch/x86_64/layout.js';
import { PciRoot } from '../devices/pci/root.js';
import { MsiRoutes } from '../devices/pci/msi-routes.js';
import { normalizeCpuid } from '../arch/x86_64/cpuid.js';
import { applyCpuTemplate, vcpuMsrs, type CpuConfiguration, type CustomCpuTemplate } from '../arch/x86_64/cpu-template.js';
import { cpuTemplateInEffect } from '../arch/x86_64/static-cpu-templates.js';
import { CpuTemplateError } from '../errors.js';
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
  // Where the build's time goes, logged once at the end (as the restore's phases are);
  // KvmVmFactory.boot logs InstanceStart's phases around it.
  const t0 = performance.now();
  const marks: string[] = [];
  const mark = (what: string): void => { marks.push(`${what} ${Math.round(performance.now() - t0)} ms`); };
  const machine = cfg.machine;
  const kernel = readKernelImage(cfg.bootSource.kernel_image_path);
  const initrdPath = cfg.bootSource.initrd_path;
  const initrd = initrdPath ? readInitrdImage(initrdPath) : undefined;
  const cmdline = Cmdline.parse(cmdlineString(cfg.bootSource.cmdline));
  // Guest RAM before /dev/kvm, as build_microvm_for_boot (src/vmm/src/builder.rs) allocates it:
  // a size the address space cannot hold fails alike with or without KVM.
  // track_dirty_pages also keeps the VMM's own log of pages devices write (Diff snapshots).
  // With memory hotplug the hotplug region is part of it (every block unplugged); pmem files
  // are mapped here too (src/vmm/device-memory.ts). huge_pages "2M": the memfd is hugetlbfs,
  // and its pages are reserved here (host-memory.ts).
  const boot = createBootMemory(cfg);
  const mem = boot.mem;
  mark('images read, guest memory');
  // Until the pmem actors own their mappings (spawnVirtioDevices), a failure unmaps them here.
  let pmemOwned = false;

  // Released in reverse on any failure below (a VM that starts keeps them until teardown).
  const cleanups: (() => void)[] = [() => (pmemOwned ? mem.close() : releaseBootMemory(boot))];
  try {
    const custom = machine.custom_cpu_template;
    const { kvm, vm, vcpus } = createKvmVm(mem, machine.vcpu_count, machine.track_dirty_pages, cleanups, custom?.kvm_capabilities ?? []);
    // The CPU template in effect (custom_cpu_template.rs `get_cpu_template`): a static one must
    // match the host, which KVM's supported CPUID describes (src/arch/x86_64/cpu-template.ts).
    const supported = kvm.getSupportedCpuid();
    const template = cpuTemplateInEffect({ staticName: machine.cpu_template, custom }, supported);
    mark('KVM VM and vCPUs');

    const plan = planVirtioDevices(cfg);
    const placed = placements(plan);
    // VMGenID and VMClock take the GSIs after the virtio devices (builder.rs attaches them last).
    const irqs = interruptLayout(placed.length);
    if (!irqs) throw new Error('Error attaching device to the microVM: VMGenID: Could not allocate GSI: no free interrupt line left after the virtio devices');
    const acpiDevices = acpiDevicesPlan(irqs);
    addDeviceArgs(cmdline, cfg.pciEnabled, plan);
    const loaded = loadKernel(mem, kernel, { initrd, cmdline });
    configureVcpus(vcpus, cpuConfiguration(supported, template, vcpus[0]!), loaded.entry, machine.smt);
    writeGdtIdt(mem, loaded.entry.kind);
    if (loaded.entry.kind === 'linux64') writeIdentityPageTables(mem);
    const mpEnd = writeMptable(mem, machine.vcpu_count, SYSTEM_MEM_START);
    writeAcpiTables(mem, { vcpuCount: machine.vcpu_count, virtioDevices: placed, startAddr: mpEnd, acpiDevices, pci: plan.pci !== null });
    writeAcpiDeviceData(mem, acpiDevices, randomBytes(VMGENID_MEM_SIZE)); // a new generation id per VM
    // The memory map lists boot RAM only: the hotplug region is the virtio-mem device's.
    writeBootInfo(mem, loaded, ramRanges(machine.mem_size_mib * MiB));
    mark('kernel loaded, tables written');

    const extra: DeviceManifest[] = [];
    let debugRing: ByteRing | undefined;
    if (host.debugPort) {
      const ring = ByteRing.allocate(1 << 16);
      debugRing = new ByteRing(ring);
      extra.push({ kind: 'debug-port', port: DEBUG_PORT, ring });
    }
    if (plan.pci) {
      extra.push({
        kind: 'pci-root', state: PciRoot.createState(), routes: MsiRoutes.create(plan.pci.msiGsis), msiGsiStart: MSI_GSI_START,
        ecamAddr: PCI_MMCONFIG_START, ecamSize: PCI_MMIO_CONFIG_SIZE_PER_SEGMENT, windowAddr: MMIO64_MEM_START, windowSize: MMIO64_MEM_SIZE,
      });
    }
    const outPath = cfg.serial.serial_out_path;
    const devices = createDeviceManager(() => createHostDevices({
      vm, serial: outPath !== null ? { kind: 'file', path: outPath } : { kind: host.console }, stdin: host.stdin ?? false,
      bootTimer: cfg.bootTimer ? started : undefined, extra,
    }));
    // Device manifests must exist before the vCPU workers start.
    let virtio: Awaited<ReturnType<typeof spawnVirtioDevices>>;
    try {
      const ram = { memfd: mem.memfd, regions: mem.hostRegions.map((r) => ({ gpa: r.gpa, size: r.size, hostAddr: r.hostAddr, fdOffset: r.fdOffset })) };
      pmemOwned = true;
      virtio = await spawnVirtioDevices(plan, vm, mem.describe(), ramBacking(mem), log, undefined, {
        mem, slotFlags: machine.track_dirty_pages ? KVM_MEM_LOG_DIRTY_PAGES : 0, pmem: boot.pmem,
      }, ram);
    } catch (e) {
      await devices.close();
      throw e;
    }
    mark('device actors');
    const { handles, vmControl } = await startVcpuActors(vm, vcpus, mem, devices, virtio, log);
    mark('vCPU actors');
    log('info', `microVM build (cumulative): ${marks.join(', ')}`);
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
 * With PCI: no `pci=off` and no virtio_mmio.device (the guest finds the functions on bus 0).
 */
export function addDeviceArgs(cmdline: Cmdline, pciEnabled: boolean, plan: VirtioPlan): void {
  if (!pciEnabled) cmdline.insert('pci', 'off');
  const root = plan.drives[0]?.config.is_root_device ? plan.drives[0] : undefined;
  const rootArg = root ? `root=${root.config.partuuid ? `PARTUUID=${root.config.partuuid}` : '/dev/vda'} ${root.config.is_read_only ? 'ro' : 'rw'}` : undefined;
  // A root pmem device (builder.rs `attach_pmem_devices`): /dev/pmem<N> by its place among the pmem devices.
  const pmemIndex = plan.pmem.findIndex((p) => p.config.root_device);
  const pmemRoot = pmemIndex >= 0 ? plan.pmem[pmemIndex] : undefined;
  const pmemArg = pmemRoot ? `root=/dev/pmem${pmemIndex} ${pmemRoot.config.read_only ? 'ro' : 'rw'}` : undefined;
  if (plan.pci) {
    // virtio-pci devices are enumerated by the guest: only the root device's argument.
    if (rootArg) cmdline.insertStr(rootArg);
    if (pmemArg) cmdline.insertStr(pmemArg);
    return;
  }
  for (const d of placements(plan)) {
    if (rootArg && d.addr === root!.addr) cmdline.insertStr(rootArg);
    if (pmemArg && d.addr === pmemRoot!.addr) cmdline.insertStr(pmemArg);
    cmdline.insertStr(`virtio_mmio.device=4K@0x${d.addr.toString(16)}:${d.gsi}`);
  }
}

/** `ConfigurationError::CreateGuestConfig` inside `StartMicrovmError::ConfigureSystem` (arch/x86_64/mod.rs). */
const GUEST_CONFIG_ERROR = 'System configuration error: Failed to create guest config: ';

/**
 * The configuration every vCPU starts from (arch/x86_64/mod.rs `configure_system_for_boot`):
 * KVM's supported CPUID and the template's MSRs as vCPU 0 reads them, with the template
 * applied. An MSR KVM cannot read, or a CPUID leaf or MSR the template changes that KVM does
 * not offer, fails InstanceStart with Firecracker's text.
 */
function cpuConfiguration(supported: CpuidEntry[], template: CustomCpuTemplate, vcpu0: VcpuFd): CpuConfiguration {
  const wanted = template.msr_modifiers.map((m) => m.addr);
  const msrs = wanted.length ? vcpu0.getMsrs(wanted) : new Map<number, bigint>();
  // KVM_GET_MSRS stops at the first MSR it cannot read (vcpu.rs `get_msr_chunk`: VcpuGetMsr).
  const missing = wanted.find((a) => !msrs.has(a));
  if (missing !== undefined) {
    throw new CpuTemplateError('CPU_TEMPLATE_APPLY', `${GUEST_CONFIG_ERROR}KVM vcpu ioctl failed: Failed to get KVM vcpu msr: 0x${missing.toString(16)}`);
  }
  try {
    return applyCpuTemplate({ cpuid: supported, msrs }, template);
  } catch (e) {
    if (e instanceof CpuTemplateError) throw new CpuTemplateError('CPU_TEMPLATE_APPLY', `${GUEST_CONFIG_ERROR}${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * Per-vCPU state (firecracker src/vmm/src/arch/x86_64/vcpu.rs `configure`, regs.rs): the
 * templated CPUID normalized for this vCPU, the template's MSRs with the boot MSRs over them,
 * regs, FPU, sregs, LAPIC LINT0/LINT1.
 */
function configureVcpus(vcpus: VcpuFd[], cpu: CpuConfiguration, entry: { kind: 'linux64' | 'pvh'; addr: number }, smt: boolean): void {
  const msrs = vcpuMsrs(cpu.msrs, bootMsrs());
  for (const v of vcpus) {
    v.setCpuid2(normalizeCpuid(cpu.cpuid, { vcpuIndex: v.id, vcpuCount: vcpus.length, smt }));
    v.setMsrs(msrs);
    v.setRegs(bootRegs(entry));
    v.setFpu({ ...bootFpu() });
    v.setSregs(bootSregs(v.getSregs(), entry.kind));
    const lapic = v.getLapic();
    setLapicLints(lapic);
    v.setLapic(lapic);
  }
}

export type { VmFd };
