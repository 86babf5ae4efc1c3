/**
 * Every ioctl Kindling issues, in one table, with numbers computed the way the kernel's
 * include/uapi/asm-generic/ioctl.h computes them: dir(2 bits) | size(14) | type(8) | nr(8).
 * Struct sizes come from abi.ts, so a wrong struct would give a wrong number and the layout
 * test in test/unit/kvm-abi.test.ts would catch both.
 */
import * as abi from './abi.js';
import * as libc from './libc.js';
import { KvmIoctlError } from '../errors.js';

const _IOC_NRBITS = 8;
const _IOC_TYPEBITS = 8;
const _IOC_SIZEBITS = 14;
const _IOC_NRSHIFT = 0;
const _IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS;
const _IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS;
const _IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS;
export const _IOC_NONE = 0;
export const _IOC_WRITE = 1;
export const _IOC_READ = 2;

/** _IOC(dir, type, nr, size), as an unsigned 32-bit number. */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  if (size >= 1 << _IOC_SIZEBITS) throw new RangeError(`ioctl size ${size} does not fit 14 bits`);
  return ((dir << _IOC_DIRSHIFT) | (size << _IOC_SIZESHIFT) | (type << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT)) >>> 0;
}
export const _IO = (type: number, nr: number) => _IOC(_IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number) => _IOC(_IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number) => _IOC(_IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number) => _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);

/** The KVM ioctl type byte (linux/kvm.h: #define KVMIO 0xAE). */
export const KVMIO = 0xae;
const S = abi.sizeOf;

/** Ioctls on the /dev/kvm system fd, the VM fd and the vCPU fd (linux/kvm.h). */
export const KVM = {
  // system
  KVM_GET_API_VERSION: _IO(KVMIO, 0x00),
  KVM_CREATE_VM: _IO(KVMIO, 0x01),
  KVM_GET_MSR_INDEX_LIST: _IOWR(KVMIO, 0x02, S(abi.kvm_msr_list)),
  KVM_CHECK_EXTENSION: _IO(KVMIO, 0x03),
  KVM_GET_VCPU_MMAP_SIZE: _IO(KVMIO, 0x04),
  KVM_GET_SUPPORTED_CPUID: _IOWR(KVMIO, 0x05, S(abi.kvm_cpuid2)),
  // VM
  KVM_CREATE_VCPU: _IO(KVMIO, 0x41),
  KVM_GET_DIRTY_LOG: _IOW(KVMIO, 0x42, S(abi.kvm_dirty_log)),
  KVM_SET_USER_MEMORY_REGION: _IOW(KVMIO, 0x46, S(abi.kvm_userspace_memory_region)),
  KVM_SET_TSS_ADDR: _IO(KVMIO, 0x47),
  KVM_SET_IDENTITY_MAP_ADDR: _IOW(KVMIO, 0x48, 8),
  KVM_CREATE_IRQCHIP: _IO(KVMIO, 0x60),
  KVM_IRQ_LINE: _IOW(KVMIO, 0x61, S(abi.kvm_irq_level)),
  KVM_GET_IRQCHIP: _IOWR(KVMIO, 0x62, S(abi.kvm_irqchip)),
  KVM_SET_IRQCHIP: _IOR(KVMIO, 0x63, S(abi.kvm_irqchip)),
  /** struct kvm_irq_routing's header is { u32 nr; u32 flags; } (entries follow, not counted). */
  KVM_SET_GSI_ROUTING: _IOW(KVMIO, 0x6a, 8),
  KVM_IRQFD: _IOW(KVMIO, 0x76, S(abi.kvm_irqfd)),
  /** struct kvm_msi: address_lo, address_hi, data, flags, devid, pad[12] (32 bytes). */
  KVM_SIGNAL_MSI: _IOW(KVMIO, 0xa5, 32),
  KVM_CREATE_PIT2: _IOW(KVMIO, 0x77, S(abi.kvm_pit_config)),
  KVM_IOEVENTFD: _IOW(KVMIO, 0x79, S(abi.kvm_ioeventfd)),
  KVM_SET_CLOCK: _IOW(KVMIO, 0x7b, S(abi.kvm_clock_data)),
  KVM_GET_CLOCK: _IOR(KVMIO, 0x7c, S(abi.kvm_clock_data)),
  KVM_GET_PIT2: _IOR(KVMIO, 0x9f, S(abi.kvm_pit_state2)),
  KVM_SET_PIT2: _IOW(KVMIO, 0xa0, S(abi.kvm_pit_state2)),
  KVM_GET_STATS_FD: _IO(KVMIO, 0xce),
  // vCPU
  KVM_RUN: _IO(KVMIO, 0x80),
  KVM_GET_REGS: _IOR(KVMIO, 0x81, S(abi.kvm_regs)),
  KVM_SET_REGS: _IOW(KVMIO, 0x82, S(abi.kvm_regs)),
  KVM_GET_SREGS: _IOR(KVMIO, 0x83, S(abi.kvm_sregs)),
  KVM_SET_SREGS: _IOW(KVMIO, 0x84, S(abi.kvm_sregs)),
  KVM_GET_MSRS: _IOWR(KVMIO, 0x88, S(abi.kvm_msrs)),
  KVM_SET_MSRS: _IOW(KVMIO, 0x89, S(abi.kvm_msrs)),
  KVM_GET_FPU: _IOR(KVMIO, 0x8c, S(abi.kvm_fpu)),
  KVM_SET_FPU: _IOW(KVMIO, 0x8d, S(abi.kvm_fpu)),
  KVM_GET_LAPIC: _IOR(KVMIO, 0x8e, S(abi.kvm_lapic_state)),
  KVM_SET_LAPIC: _IOW(KVMIO, 0x8f, S(abi.kvm_lapic_state)),
  KVM_SET_CPUID2: _IOW(KVMIO, 0x90, S(abi.kvm_cpuid2)),
  KVM_GET_CPUID2: _IOWR(KVMIO, 0x91, S(abi.kvm_cpuid2)),
  KVM_GET_MP_STATE: _IOR(KVMIO, 0x98, S(abi.kvm_mp_state)),
  KVM_SET_MP_STATE: _IOW(KVMIO, 0x99, S(abi.kvm_mp_state)),
  KVM_GET_VCPU_EVENTS: _IOR(KVMIO, 0x9f, S(abi.kvm_vcpu_events)),
  KVM_SET_VCPU_EVENTS: _IOW(KVMIO, 0xa0, S(abi.kvm_vcpu_events)),
  KVM_GET_DEBUGREGS: _IOR(KVMIO, 0xa1, S(abi.kvm_debugregs)),
  KVM_SET_DEBUGREGS: _IOW(KVMIO, 0xa2, S(abi.kvm_debugregs)),
  KVM_GET_XSAVE: _IOR(KVMIO, 0xa4, S(abi.kvm_xsave)),
  KVM_SET_XSAVE: _IOW(KVMIO, 0xa5, S(abi.kvm_xsave)),
  KVM_GET_XCRS: _IOR(KVMIO, 0xa6, S(abi.kvm_xcrs)),
  KVM_SET_XCRS: _IOW(KVMIO, 0xa7, S(abi.kvm_xcrs)),
  KVM_KVMCLOCK_CTRL: _IO(KVMIO, 0xad),
  KVM_SET_TSC_KHZ: _IO(KVMIO, 0xa2),
  KVM_GET_TSC_KHZ: _IO(KVMIO, 0xa3),
  /** Same struct as KVM_GET_XSAVE, but the buffer is KVM_CAP_XSAVE2's size (AMX and later state). */
  KVM_GET_XSAVE2: _IOR(KVMIO, 0xcf, S(abi.kvm_xsave)),
} as const;

export type KvmIoctlName = keyof typeof KVM;

/** errno EINTR (asm-generic/errno-base.h). */
const EINTR = 4;

/**
 * Issues ioctl `name` on `fd` with an integer or buffer argument; throws KvmIoctlError. A call
 * a signal interrupted (EINTR) is issued again: KVM_CREATE_VM, for one, fails so when a signal
 * arrives during it (a profiler's SIGPROF did here), and rust-vmm's kvm-ioctls retries it the
 * same way. KVM_RUN, whose EINTR means something, does not come through here (vcpu-fd.ts).
 */
export function kvmIoctl(fd: number, name: KvmIoctlName, arg: number | bigint | Uint8Array = 0): number {
  const req = KVM[name];
  for (;;) {
    const r = typeof arg === 'object' ? libc.ioctlPtr(fd, req, arg) : libc.ioctlInt(fd, req, arg);
    if (r >= 0) return r;
    const e = libc.errno();
    if (e !== EINTR) throw new KvmIoctlError(name, e, libc.errnoName(e));
  }
}
