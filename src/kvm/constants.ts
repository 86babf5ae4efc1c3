/**
 * KVM constants by their linux/kvm.h names, grouped by concept.
 * Reference: https://docs.kernel.org/virt/kvm/api.html
 */

/** The only KVM API version there has ever been (KVM_GET_API_VERSION). */
export const KVM_API_VERSION = 12;

/** Capabilities (KVM_CHECK_EXTENSION arguments). */
export const KVM_CAP = {
  KVM_CAP_IRQCHIP: 0,
  KVM_CAP_HLT: 1,
  KVM_CAP_USER_MEMORY: 3,
  KVM_CAP_SET_TSS_ADDR: 4,
  KVM_CAP_EXT_CPUID: 7,
  KVM_CAP_NR_VCPUS: 9,
  KVM_CAP_NR_MEMSLOTS: 10,
  KVM_CAP_MP_STATE: 14,
  KVM_CAP_IRQFD: 32,
  KVM_CAP_PIT2: 33,
  KVM_CAP_PIT_STATE2: 35,
  KVM_CAP_IOEVENTFD: 36,
  KVM_CAP_ADJUST_CLOCK: 39,
  KVM_CAP_VCPU_EVENTS: 41,
  KVM_CAP_DEBUGREGS: 50,
  KVM_CAP_XSAVE: 55,
  KVM_CAP_XCRS: 56,
  KVM_CAP_TSC_DEADLINE_TIMER: 72,
  KVM_CAP_MAX_VCPUS: 66,
  KVM_CAP_IMMEDIATE_EXIT: 136,
  KVM_CAP_BINARY_STATS_FD: 203,
  KVM_CAP_TSC_CONTROL: 60,
  KVM_CAP_GET_TSC_KHZ: 61,
  /** Returns the XSAVE buffer size KVM_GET_XSAVE2 needs (linux/kvm.h, Linux 5.17+). */
  KVM_CAP_XSAVE2: 208,
} as const;
export type KvmCapName = keyof typeof KVM_CAP;

/**
 * What Kindling requires before creating a VM: Firecracker's list (firecracker src/vmm/src/builder.rs) plus
 * KVM_CAP_IMMEDIATE_EXIT, which the vCPU kick relies on (see kick.ts).
 */
export const REQUIRED_CAPS: readonly KvmCapName[] = [
  'KVM_CAP_IRQCHIP', 'KVM_CAP_IOEVENTFD', 'KVM_CAP_IRQFD', 'KVM_CAP_USER_MEMORY',
  'KVM_CAP_SET_TSS_ADDR', 'KVM_CAP_PIT2', 'KVM_CAP_PIT_STATE2', 'KVM_CAP_ADJUST_CLOCK',
  'KVM_CAP_DEBUGREGS', 'KVM_CAP_MP_STATE', 'KVM_CAP_VCPU_EVENTS', 'KVM_CAP_XCRS',
  'KVM_CAP_XSAVE', 'KVM_CAP_EXT_CPUID', 'KVM_CAP_IMMEDIATE_EXIT',
];

/** kvm_run.exit_reason values. */
export const KVM_EXIT = {
  KVM_EXIT_UNKNOWN: 0,
  KVM_EXIT_EXCEPTION: 1,
  KVM_EXIT_IO: 2,
  KVM_EXIT_HYPERCALL: 3,
  KVM_EXIT_DEBUG: 4,
  KVM_EXIT_HLT: 5,
  KVM_EXIT_MMIO: 6,
  KVM_EXIT_IRQ_WINDOW_OPEN: 7,
  KVM_EXIT_SHUTDOWN: 8,
  KVM_EXIT_FAIL_ENTRY: 9,
  KVM_EXIT_INTR: 10,
  KVM_EXIT_NMI: 16,
  KVM_EXIT_INTERNAL_ERROR: 17,
  KVM_EXIT_SYSTEM_EVENT: 24,
} as const;

/** kvm_run.io.direction. */
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

/** kvm_run.system_event.type. */
export const KVM_SYSTEM_EVENT = {
  KVM_SYSTEM_EVENT_SHUTDOWN: 1,
  KVM_SYSTEM_EVENT_RESET: 2,
  KVM_SYSTEM_EVENT_CRASH: 3,
} as const;

/** kvm_userspace_memory_region.flags. */
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;

/**
 * KVM_GET_DIRTY_LOG reports one bit per page of this size (Documentation/virt/kvm/api.rst,
 * 4.8). Guest memory's own dirty bitmap (src/memory/guest-memory.ts) uses the same page size
 * and layout, so the two are OR-ed byte for byte.
 */
export const KVM_DIRTY_LOG_PAGE_SIZE = 4096;
/** The log is an array of `unsigned long` (64 bits on x86_64): its length rounds up to whole 8-byte words. */
const DIRTY_LOG_WORD_BITS = 64;
const DIRTY_LOG_WORD_BYTES = 8;

/** Bytes of a dirty bitmap for a memory slot of `sizeBytes`: one bit per 4 KiB page, whole u64 words. */
export function dirtyLogBytes(sizeBytes: number): number {
  const pages = Math.ceil(sizeBytes / KVM_DIRTY_LOG_PAGE_SIZE);
  return Math.ceil(pages / DIRTY_LOG_WORD_BITS) * DIRTY_LOG_WORD_BYTES;
}

/** kvm_pit_config.flags. */
export const KVM_PIT_SPEAKER_DUMMY = 1;

/** kvm_ioeventfd.flags bits (kvm_ioeventfd_flag_nr_*). */
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
export const KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;

/** kvm_irqfd.flags. */
export const KVM_IRQFD_FLAG_DEASSIGN = 1 << 0;

/** kvm_mp_state.mp_state. */
export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
export const KVM_MP_STATE_HALTED = 3;

/**
 * Byte offsets into struct kvm_run (linux/kvm.h). The page is decoded in place through a
 * DataView (kvm-run.ts), so these are the only layout facts it needs.
 */
export const KVM_RUN_OFFSETS = {
  request_interrupt_window: 0,
  immediate_exit: 1,
  exit_reason: 8,
  ready_for_interrupt_injection: 12,
  if_flag: 13,
  flags: 14,
  cr8: 16,
  apic_base: 24,
  /** Start of the exit-specific union. */
  exit: 32,
  /** io: { u8 direction; u8 size; u16 port; u32 count; u64 data_offset; } */
  io_direction: 32,
  io_size: 33,
  io_port: 34,
  io_count: 36,
  io_data_offset: 40,
  /** mmio: { u64 phys_addr; u8 data[8]; u32 len; u8 is_write; } */
  mmio_phys_addr: 32,
  mmio_data: 40,
  mmio_len: 48,
  mmio_is_write: 52,
  /** fail_entry: { u64 hardware_entry_failure_reason; u32 cpu; } */
  fail_entry_reason: 32,
  fail_entry_cpu: 40,
  /** internal: { u32 suberror; u32 ndata; u64 data[16]; } */
  internal_suberror: 32,
  internal_ndata: 36,
  internal_data: 40,
  /** system_event: { u32 type; u32 ndata; u64 data[16]; } */
  system_event_type: 32,
  system_event_ndata: 36,
  /** hw (KVM_EXIT_UNKNOWN): { u64 hardware_exit_reason; } */
  hw_exit_reason: 32,
} as const;

/** kvm_irqchip.chip_id values (linux/kvm.h). */
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;
/** kvm_clock_data.flags: `realtime` holds CLOCK_REALTIME at `clock` (KVM_SET_CLOCK steps the clock forward by the time since). */
export const KVM_CLOCK_REALTIME = 1 << 2;
