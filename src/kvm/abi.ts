/**
 * Every KVM structure Kindling passes to the kernel, defined once as a koffi struct with the
 * field names of linux/include/uapi/linux/kvm.h and arch/x86/include/uapi/asm/kvm.h (x86_64).
 * test/unit/kvm-abi.test.ts asserts each size and key offsets against the kernel's values;
 * the ioctl numbers in ioctls.ts are computed from these sizes.
 */
import koffi, { type TypeObject } from 'koffi';
import { namedStruct } from './koffi-types.js';

const u8 = 'uint8_t';
const u16 = 'uint16_t';
const u32 = 'uint32_t';
const u64 = 'uint64_t';
const s32 = 'int32_t';
const s64 = 'int64_t';

/** struct kvm_regs: general purpose registers (KVM_GET_REGS / KVM_SET_REGS). */
export const kvm_regs = namedStruct('kvm_regs', {
  rax: u64, rbx: u64, rcx: u64, rdx: u64, rsi: u64, rdi: u64, rsp: u64, rbp: u64,
  r8: u64, r9: u64, r10: u64, r11: u64, r12: u64, r13: u64, r14: u64, r15: u64,
  rip: u64, rflags: u64,
});

/** struct kvm_segment: one segment register as KVM sees it. */
export const kvm_segment = namedStruct('kvm_segment', {
  base: u64, limit: u32, selector: u16, type: u8, present: u8, dpl: u8, db: u8, s: u8,
  l: u8, g: u8, avl: u8, unusable: u8, padding: u8,
});

/** struct kvm_dtable: GDTR/IDTR. */
export const kvm_dtable = namedStruct('kvm_dtable', { base: u64, limit: u16, padding: koffi.array(u16, 3) });

/** KVM_NR_INTERRUPTS = 256 → interrupt_bitmap has (256 + 63) / 64 words. */
export const KVM_NR_INTERRUPTS = 256;

/** struct kvm_sregs: segment and control registers (KVM_GET_SREGS / KVM_SET_SREGS). */
export const kvm_sregs = namedStruct('kvm_sregs', {
  cs: kvm_segment, ds: kvm_segment, es: kvm_segment, fs: kvm_segment, gs: kvm_segment,
  ss: kvm_segment, tr: kvm_segment, ldt: kvm_segment, gdt: kvm_dtable, idt: kvm_dtable,
  cr0: u64, cr2: u64, cr3: u64, cr4: u64, cr8: u64, efer: u64, apic_base: u64,
  interrupt_bitmap: koffi.array(u64, (KVM_NR_INTERRUPTS + 63) / 64),
});

/** struct kvm_fpu: x87/SSE state (KVM_GET_FPU / KVM_SET_FPU). */
export const kvm_fpu = namedStruct('kvm_fpu', {
  fpr: koffi.array(u8, 8 * 16), fcw: u16, fsw: u16, ftwx: u8, pad1: u8, last_opcode: u16,
  last_ip: u64, last_dp: u64, xmm: koffi.array(u8, 16 * 16), mxcsr: u32, pad2: u32,
});

/** struct kvm_msr_entry and the header of struct kvm_msrs (entries follow the header). */
export const kvm_msr_entry = namedStruct('kvm_msr_entry', { index: u32, reserved: u32, data: u64 });
export const kvm_msrs = namedStruct('kvm_msrs', { nmsrs: u32, pad: u32 });

/** struct kvm_cpuid_entry2 and the header of struct kvm_cpuid2 (entries follow). */
export const kvm_cpuid_entry2 = namedStruct('kvm_cpuid_entry2', {
  function: u32, index: u32, flags: u32, eax: u32, ebx: u32, ecx: u32, edx: u32,
  padding: koffi.array(u32, 3),
});
export const kvm_cpuid2 = namedStruct('kvm_cpuid2', { nent: u32, padding: u32 });

/** CPUID entries KVM fills at most (arch/x86/include/asm/kvm_host.h KVM_MAX_CPUID_ENTRIES). */
export const KVM_MAX_CPUID_ENTRIES = 256;

/**
 * A kvm_cpuid2 with room for KVM_MAX_CPUID_ENTRIES, for the ioctls that fill one
 * (KVM_GET_SUPPORTED_CPUID, KVM_GET_CPUID2). `entries(buf)` is what KVM wrote.
 */
export function cpuid2Buffer(): { buf: Buffer; entries: (buf: Buffer) => Buffer } {
  const hdr = sizeOf(kvm_cpuid2);
  const ent = sizeOf(kvm_cpuid_entry2);
  const buf = Buffer.alloc(hdr + KVM_MAX_CPUID_ENTRIES * ent);
  buf.writeUInt32LE(KVM_MAX_CPUID_ENTRIES, 0);
  return { buf, entries: (b) => b.subarray(hdr, hdr + b.readUInt32LE(0) * ent) };
}

/** KVM_APIC_REG_SIZE = 0x400: struct kvm_lapic_state is the LAPIC register page. */
export const KVM_APIC_REG_SIZE = 0x400;
export const kvm_lapic_state = namedStruct('kvm_lapic_state', { regs: koffi.array(u8, KVM_APIC_REG_SIZE) });

/** struct kvm_pit_config (KVM_CREATE_PIT2). */
export const kvm_pit_config = namedStruct('kvm_pit_config', { flags: u32, pad: koffi.array(u32, 15) });

/** struct kvm_pit_channel_state and struct kvm_pit_state2 (KVM_GET_PIT2 / KVM_SET_PIT2). */
export const kvm_pit_channel_state = namedStruct('kvm_pit_channel_state', {
  count: u32, latched_count: u16, count_latched: u8, status_latched: u8, status: u8,
  read_state: u8, write_state: u8, write_latch: u8, rw_mode: u8, mode: u8, bcd: u8, gate: u8,
  count_load_time: s64,
});
export const kvm_pit_state2 = namedStruct('kvm_pit_state2', {
  channels: koffi.array(kvm_pit_channel_state, 3), flags: u32, reserved: koffi.array(u32, 9),
});

/** struct kvm_irqchip: chip_id + a 512-byte union (PIC or IOAPIC state), kept opaque. */
export const KVM_IRQCHIP_DATA_SIZE = 512;
export const kvm_irqchip = namedStruct('kvm_irqchip', {
  chip_id: u32, pad: u32, chip: koffi.array(u8, KVM_IRQCHIP_DATA_SIZE),
});

/** struct kvm_irqfd (KVM_IRQFD). */
export const kvm_irqfd = namedStruct('kvm_irqfd', {
  fd: u32, gsi: u32, flags: u32, resamplefd: u32, pad: koffi.array(u8, 16),
});

/** struct kvm_ioeventfd (KVM_IOEVENTFD). */
export const kvm_ioeventfd = namedStruct('kvm_ioeventfd', {
  datamatch: u64, addr: u64, len: u32, fd: s32, flags: u32, pad: koffi.array(u8, 36),
});

/** struct kvm_userspace_memory_region (KVM_SET_USER_MEMORY_REGION). */
export const kvm_userspace_memory_region = namedStruct('kvm_userspace_memory_region', {
  slot: u32, flags: u32, guest_phys_addr: u64, memory_size: u64, userspace_addr: u64,
});

/** struct kvm_irq_level (KVM_IRQ_LINE): `irq` shares its slot with `status`. */
export const kvm_irq_level = namedStruct('kvm_irq_level', { irq: u32, level: u32 });

/** struct kvm_dirty_log (KVM_GET_DIRTY_LOG): the bitmap pointer shares a u64 slot. */
export const kvm_dirty_log = namedStruct('kvm_dirty_log', { slot: u32, padding1: u32, dirty_bitmap: u64 });

/** struct kvm_clock_data (KVM_GET_CLOCK / KVM_SET_CLOCK). */
export const kvm_clock_data = namedStruct('kvm_clock_data', {
  clock: u64, flags: u32, pad0: u32, realtime: u64, host_tsc: u64, pad: koffi.array(u32, 4),
});

/** struct kvm_vcpu_events (KVM_GET_VCPU_EVENTS / KVM_SET_VCPU_EVENTS). */
export const kvm_vcpu_events = namedStruct('kvm_vcpu_events', {
  exception: koffi.struct({ injected: u8, nr: u8, has_error_code: u8, pending: u8, error_code: u32 }),
  interrupt: koffi.struct({ injected: u8, nr: u8, soft: u8, shadow: u8 }),
  nmi: koffi.struct({ injected: u8, pending: u8, masked: u8, pad: u8 }),
  sipi_vector: u32,
  flags: u32,
  smi: koffi.struct({ smm: u8, pending: u8, smm_inside_nmi: u8, latched_init: u8 }),
  triple_fault: koffi.struct({ pending: u8 }),
  reserved: koffi.array(u8, 26),
  exception_has_payload: u8,
  exception_payload: u64,
});

/** struct kvm_mp_state (KVM_GET_MP_STATE / KVM_SET_MP_STATE). */
export const kvm_mp_state = namedStruct('kvm_mp_state', { mp_state: u32 });

/** struct kvm_xsave: the legacy 4 KiB XSAVE region (KVM_GET_XSAVE / KVM_SET_XSAVE). */
export const kvm_xsave = namedStruct('kvm_xsave', { region: koffi.array(u32, 1024) });

/** KVM_MAX_XCRS = 16: struct kvm_xcr and struct kvm_xcrs (KVM_GET_XCRS / KVM_SET_XCRS). */
export const KVM_MAX_XCRS = 16;
export const kvm_xcr = namedStruct('kvm_xcr', { xcr: u32, reserved: u32, value: u64 });
export const kvm_xcrs = namedStruct('kvm_xcrs', {
  nr_xcrs: u32, flags: u32, xcrs: koffi.array(kvm_xcr, KVM_MAX_XCRS), padding: koffi.array(u64, 16),
});

/** struct kvm_debugregs (KVM_GET_DEBUGREGS / KVM_SET_DEBUGREGS). */
export const kvm_debugregs = namedStruct('kvm_debugregs', {
  db: koffi.array(u64, 4), dr6: u64, dr7: u64, flags: u64, reserved: koffi.array(u64, 9),
});

/** struct kvm_msr_list header (KVM_GET_MSR_INDEX_LIST); indices follow. */
export const kvm_msr_list = namedStruct('kvm_msr_list', { nmsrs: u32 });

/** Size in bytes of a koffi type. */
export function sizeOf(t: TypeObject): number {
  return koffi.sizeof(t);
}

/** Encodes a JS object as the bytes of struct `t` (for ioctl arguments). */
export function encode(t: TypeObject, value: object): Buffer {
  const buf = Buffer.alloc(koffi.sizeof(t));
  koffi.encode(buf, t, value);
  return buf;
}

/** Decodes struct `t` from bytes the kernel filled in. */
export function decode<T>(t: TypeObject, buf: Uint8Array): T {
  return koffi.decode(buf, t) as T;
}
