/**
 * The KVM side of a snapshot: every vCPU's and the VM's in-kernel state, saved as raw KVM
 * structs (the snapshot stores them byte for byte; only the kernel interprets them).
 *
 * Order (firecracker-facts §6; Firecracker src/vmm/src/arch/x86_64/vcpu.rs `save_state` /
 * `restore_state`, vstate/vm.rs):
 * - save a vCPU: MP_STATE first (it can change pending events), then REGS, SREGS, XSAVE,
 *   XCRS, DEBUGREGS, LAPIC, TSC kHz, CPUID, MSRs, and VCPU_EVENTS last;
 * - restore a vCPU: CPUID2, MP_STATE, REGS, SREGS, XSAVE, XCRS, DEBUGREGS, LAPIC, MSRS,
 *   VCPU_EVENTS, then KVMCLOCK_CTRL (the guest learns it was stopped);
 * - VM: PIT2, CLOCK, PIC master, PIC slave, IOAPIC — both ways.
 *
 * Invariant the caller keeps: every vCPU is out of KVM_RUN with its last port-I/O or MMIO exit
 * completed (the vCPU worker re-enters KVM_RUN with immediate_exit before it parks, KVM API
 * doc §5 "KVM_EXIT_IO ... complete only after userspace has re-entered the kernel").
 */
import type { Kvm, VmFd } from '../../kvm/kvm.js';
import type { VcpuFd } from '../../kvm/vcpu-fd.js';
import { KvmIoctlError } from '../../errors.js';
import { KVM_CLOCK_REALTIME, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE } from '../../kvm/constants.js';
import { MSR_IA32_TSC } from './regs.js';

/** IA32_TSC_DEADLINE (Intel SDM vol. 4, table 2-2): restored after IA32_TSC, never as 0. */
export const MSR_IA32_TSC_DEADLINE = 0x6e0;
/** Size of struct kvm_xsave (KVM_GET_XSAVE); larger states need KVM_GET_XSAVE2. */
const KVM_XSAVE_LEGACY_SIZE = 4096;
/**
 * TSC frequency difference, in parts per million, above which a restore rescales the guest TSC
 * (Firecracker src/vmm/src/arch/x86_64/vcpu.rs TSC_KHZ_TOL_NUMERATOR/DENOMINATOR: 250 ppm).
 */
const TSC_KHZ_TOLERANCE_PPM = 250;
const PPM = 1_000_000;
/** kvm_clock_data.flags offset in the raw struct (u64 clock, then u32 flags). */
const CLOCK_FLAGS_OFFSET = 8;
/** kvm_clock_data.realtime offset. */
const CLOCK_REALTIME_OFFSET = 16;

export interface VcpuKvmState {
  mpState: number;
  regs: Uint8Array;
  sregs: Uint8Array;
  xsave: Uint8Array;
  xcrs: Uint8Array;
  debugregs: Uint8Array;
  lapic: Uint8Array;
  /** 0 when KVM cannot tell (no KVM_CAP_GET_TSC_KHZ). */
  tscKhz: number;
  cpuidEntries: number;
  cpuid: Uint8Array;
  msrs: { index: number; data: bigint }[];
  vcpuEvents: Uint8Array;
}

export interface VmKvmState {
  pit2: Uint8Array;
  clock: Uint8Array;
  picMaster: Uint8Array;
  picSlave: Uint8Array;
  ioapic: Uint8Array;
}

/** The MSRs a snapshot asks for: KVM's saveable list, TSC_DEADLINE moved last. */
export function msrsToSave(kvm: Kvm): number[] {
  const list = kvm.getMsrIndexList();
  const rest = list.filter((i) => i !== MSR_IA32_TSC_DEADLINE);
  return list.length === rest.length ? rest : [...rest, MSR_IA32_TSC_DEADLINE];
}

/**
 * Reads `indices`, skipping the ones KVM refuses for this vCPU (KVM_GET_MSRS stops at the
 * first it cannot read; the index list names MSRs some CPU models lack).
 */
function readMsrs(vcpu: VcpuFd, indices: readonly number[]): { index: number; data: bigint }[] {
  const out: { index: number; data: bigint }[] = [];
  let i = 0;
  while (i < indices.length) {
    const rest = indices.slice(i);
    const got = vcpu.getMsrs(rest);
    for (const idx of rest.slice(0, got.size)) out.push({ index: idx, data: got.get(idx)! });
    i += got.size + 1; // the one after the last read was refused: skip it
  }
  // A zero deadline means "disarmed"; restored before the TSC it would fire at once, so
  // Firecracker writes the TSC value there instead (vcpu.rs `fix_zero_tsc_deadline_msr`).
  const tsc = out.find((m) => m.index === MSR_IA32_TSC);
  const deadline = out.find((m) => m.index === MSR_IA32_TSC_DEADLINE);
  if (deadline && deadline.data === 0n && tsc) deadline.data = tsc.data;
  return out;
}

/** Saves one paused vCPU. `xsaveSize` is KVM_CAP_XSAVE2's answer (0 when absent). */
export function saveVcpuState(vcpu: VcpuFd, msrIndices: readonly number[], xsaveSize: number, canReadTsc: boolean): VcpuKvmState {
  const mpState = vcpu.getMpState();
  const regs = vcpu.getRegsRaw();
  const sregs = vcpu.getSregsRaw();
  const xsave = xsaveSize > KVM_XSAVE_LEGACY_SIZE ? vcpu.getXsave2(xsaveSize) : vcpu.getXsave();
  const xcrs = vcpu.getXcrs();
  const debugregs = vcpu.getDebugregs();
  const lapic = vcpu.getLapic();
  const tscKhz = canReadTsc ? vcpu.getTscKhz() : 0;
  const cpuid = vcpu.getCpuid2Raw();
  const msrs = readMsrs(vcpu, msrIndices);
  const vcpuEvents = vcpu.getVcpuEvents();
  return { mpState, regs, sregs, xsave, xcrs, debugregs, lapic, tscKhz, cpuidEntries: cpuid.nent, cpuid: cpuid.entries, msrs, vcpuEvents };
}

/** True when `saved` kHz is more than TSC_KHZ_TOLERANCE_PPM away from `host` kHz. */
export function tscNeedsScaling(saved: number, host: number): boolean {
  if (saved <= 0 || host <= 0) return false;
  return Math.abs(saved - host) * PPM > TSC_KHZ_TOLERANCE_PPM * host;
}

/**
 * Restores one vCPU created fresh on the restoring VM. MSRs KVM refuses are returned (not
 * thrown): the saveable list differs between host kernels, and a missing MSR the guest never
 * used must not stop a restore; the caller logs them.
 */
export function restoreVcpuState(vcpu: VcpuFd, s: VcpuKvmState, opts: { canScaleTsc: boolean }): { refusedMsrs: number[] } {
  vcpu.setCpuid2Raw(s.cpuidEntries, s.cpuid);
  if (opts.canScaleTsc && tscNeedsScaling(s.tscKhz, vcpu.getTscKhz())) vcpu.setTscKhz(s.tscKhz);
  vcpu.setMpState(s.mpState);
  vcpu.setRegsRaw(s.regs);
  vcpu.setSregsRaw(s.sregs);
  vcpu.setXsave(s.xsave);
  vcpu.setXcrs(s.xcrs);
  vcpu.setDebugregs(s.debugregs);
  vcpu.setLapic(s.lapic);
  const refused: number[] = [];
  let rest = s.msrs;
  while (rest.length > 0) {
    const n = vcpu.setMsrsPartial(rest);
    if (n < rest.length) refused.push(rest[n]!.index);
    rest = rest.slice(n + 1);
  }
  vcpu.setVcpuEvents(s.vcpuEvents);
  try {
    vcpu.kvmclockCtrl();
  } catch (e) {
    // EINVAL: the guest has no kvmclock page yet; nothing to tell it.
    if (!(e instanceof KvmIoctlError)) throw e;
  }
  return { refusedMsrs: refused };
}

export function saveVmState(vm: VmFd): VmKvmState {
  return {
    pit2: vm.getPit2(),
    clock: vm.getClockRaw(),
    picMaster: vm.getIrqchip(KVM_IRQCHIP_PIC_MASTER),
    picSlave: vm.getIrqchip(KVM_IRQCHIP_PIC_SLAVE),
    ioapic: vm.getIrqchip(KVM_IRQCHIP_IOAPIC),
  };
}

/**
 * Restores the VM-wide state. The clock is set with flags 0 (the guest's kvmclock continues
 * from the saved value) unless `clockRealtime` asks KVM to advance it by the wall-clock time
 * since the save, which needs a saved clock that carried KVM_CLOCK_REALTIME
 * (Firecracker vstate/vm.rs `restore_state`, LoadSnapshotParams.clock_realtime).
 */
export function restoreVmState(vm: VmFd, s: VmKvmState, opts: { clockRealtime: boolean }): void {
  vm.setPit2(s.pit2);
  const clock = Buffer.from(s.clock);
  const flags = clock.readUInt32LE(CLOCK_FLAGS_OFFSET);
  if (opts.clockRealtime) {
    if (!(flags & KVM_CLOCK_REALTIME)) throw new Error('clock_realtime requested but the snapshot clock has no KVM_CLOCK_REALTIME');
    clock.writeUInt32LE(KVM_CLOCK_REALTIME, CLOCK_FLAGS_OFFSET);
  } else {
    clock.writeUInt32LE(0, CLOCK_FLAGS_OFFSET);
    clock.writeBigUInt64LE(0n, CLOCK_REALTIME_OFFSET);
  }
  vm.setClockRaw(clock);
  vm.setIrqchip(s.picMaster);
  vm.setIrqchip(s.picSlave);
  vm.setIrqchip(s.ioapic);
}
