/**
 * The userfaultfd user ABI (include/uapi/linux/userfaultfd.h, x86_64), defined once: the
 * UFFDIO_* ioctl argument structs, `struct uffd_msg` as read(2) returns it, the ioctl numbers
 * (computed with the kernel's _IOWR/_IOR from the struct sizes, so a wrong struct gives a
 * wrong number) and the flag values by their uapi names. Sizes, offsets and numbers are
 * asserted in test/unit/uffd.test.ts. The kernel's guide: Documentation/admin-guide/mm/userfaultfd.rst.
 */
import koffi from 'koffi';
import { namedStruct, namedUnion } from '../kvm/koffi-types.js';
import { _IOR, _IOWR } from '../kvm/ioctls.js';

/** userfaultfd(2) has no glibc wrapper before 2.36: syscall number on x86_64 (arch/x86/entry/syscalls/syscall_64.tbl). */
export const SYS_userfaultfd = 323;
/** userfaultfd(2) flag: only faults raised in user mode are handled (allowed without privilege). */
export const UFFD_USER_MODE_ONLY = 1;

/** The only API version (uffdio_api.api must be set to it). */
export const UFFD_API = 0xaa;
/** The ioctl type byte of every UFFDIO_* request. */
const UFFDIO = 0xaa;

const u64 = 'uint64_t';
const s64 = 'int64_t';

/** struct uffdio_api { __u64 api; __u64 features; __u64 ioctls; } */
export const uffdio_api = namedStruct('uffdio_api', { api: u64, features: u64, ioctls: u64 });
/** struct uffdio_range { __u64 start; __u64 len; } */
export const uffdio_range = namedStruct('uffdio_range', { start: u64, len: u64 });
/** struct uffdio_register { struct uffdio_range range; __u64 mode; __u64 ioctls; } */
export const uffdio_register = namedStruct('uffdio_register', { range: uffdio_range, mode: u64, ioctls: u64 });
/** struct uffdio_copy { __u64 dst; __u64 src; __u64 len; __u64 mode; __s64 copy; } — `copy` is written back. */
export const uffdio_copy = namedStruct('uffdio_copy', { dst: u64, src: u64, len: u64, mode: u64, copy: s64 });
/** struct uffdio_zeropage { struct uffdio_range range; __u64 mode; __s64 zeropage; } */
export const uffdio_zeropage = namedStruct('uffdio_zeropage', { range: uffdio_range, mode: u64, zeropage: s64 });

/** uffd_msg.arg.pagefault: flags, faulting address, and the faulting thread (UFFD_FEATURE_THREAD_ID). */
const uffd_pagefault = namedStruct('uffd_msg_pagefault', { flags: u64, address: u64, ptid: 'uint32_t' });
/** uffd_msg.arg.remove: the range an madvise(MADV_DONTNEED / MADV_REMOVE) dropped. */
const uffd_remove = namedStruct('uffd_msg_remove', { start: u64, end: u64 });
/** uffd_msg.arg.remap: an mremap moved [from, from + len) to `to`. */
const uffd_remap = namedStruct('uffd_msg_remap', { from: u64, to: u64, len: u64 });
/** uffd_msg.arg.fork: the new userfaultfd of a forked child. */
const uffd_fork = namedStruct('uffd_msg_fork', { ufd: 'uint32_t' });
const uffd_msg_arg = namedUnion('uffd_msg_arg', {
  pagefault: uffd_pagefault, fork: uffd_fork, remap: uffd_remap, remove: uffd_remove,
  reserved: koffi.array(u64, 3, 'Array'),
});
/** struct uffd_msg (__packed in the header; these fields need no padding either way). */
export const uffd_msg = namedStruct('uffd_msg', {
  event: 'uint8_t', reserved1: 'uint8_t', reserved2: 'uint16_t', reserved3: 'uint32_t', arg: uffd_msg_arg,
});
export const UFFD_MSG_SIZE = 32;

/** Byte offsets into a uffd_msg, from the struct definitions above (read with DataView on the hot path). */
const ARG = koffi.offsetof(uffd_msg, 'arg');
export const UFFD_MSG_OFFSETS = {
  event: koffi.offsetof(uffd_msg, 'event'),
  pagefaultFlags: ARG + koffi.offsetof(uffd_pagefault, 'flags'),
  pagefaultAddress: ARG + koffi.offsetof(uffd_pagefault, 'address'),
  removeStart: ARG + koffi.offsetof(uffd_remove, 'start'),
  removeEnd: ARG + koffi.offsetof(uffd_remove, 'end'),
} as const;

/** uffd_msg.event values. */
export const UFFD_EVENT_PAGEFAULT = 0x12;
export const UFFD_EVENT_FORK = 0x13;
export const UFFD_EVENT_REMAP = 0x14;
export const UFFD_EVENT_REMOVE = 0x15;
export const UFFD_EVENT_UNMAP = 0x16;

/** uffd_msg.arg.pagefault.flags bits. */
export const UFFD_PAGEFAULT_FLAG_WRITE = 1 << 0;
export const UFFD_PAGEFAULT_FLAG_WP = 1 << 1;
export const UFFD_PAGEFAULT_FLAG_MINOR = 1 << 2;

/** uffdio_api.features bits the VMM may ask for (the ones Kindling or its handler read). */
export const UFFD_FEATURE_EVENT_FORK = 1 << 1;
export const UFFD_FEATURE_EVENT_REMAP = 1 << 2;
/** madvise(MADV_DONTNEED/MADV_REMOVE) on a registered range is reported (the balloon's inflate). */
export const UFFD_FEATURE_EVENT_REMOVE = 1 << 3;
export const UFFD_FEATURE_EVENT_UNMAP = 1 << 6;

/** uffdio_register.mode: report faults on pages that are not present. */
export const UFFDIO_REGISTER_MODE_MISSING = 1 << 0;
export const UFFDIO_REGISTER_MODE_WP = 1 << 1;
export const UFFDIO_REGISTER_MODE_MINOR = 1 << 2;
/** uffdio_copy.mode / uffdio_zeropage.mode: resolve without waking the faulting thread. */
export const UFFDIO_COPY_MODE_DONTWAKE = 1 << 0;
export const UFFDIO_ZEROPAGE_MODE_DONTWAKE = 1 << 0;

/** The ioctl command numbers (the header's _UFFDIO_* values). */
const _UFFDIO_REGISTER = 0x00;
const _UFFDIO_UNREGISTER = 0x01;
const _UFFDIO_WAKE = 0x02;
const _UFFDIO_COPY = 0x03;
const _UFFDIO_ZEROPAGE = 0x04;
const _UFFDIO_API = 0x3f;

export const UFFDIO_API = _IOWR(UFFDIO, _UFFDIO_API, koffi.sizeof(uffdio_api));
export const UFFDIO_REGISTER = _IOWR(UFFDIO, _UFFDIO_REGISTER, koffi.sizeof(uffdio_register));
export const UFFDIO_UNREGISTER = _IOR(UFFDIO, _UFFDIO_UNREGISTER, koffi.sizeof(uffdio_range));
export const UFFDIO_WAKE = _IOR(UFFDIO, _UFFDIO_WAKE, koffi.sizeof(uffdio_range));
export const UFFDIO_COPY = _IOWR(UFFDIO, _UFFDIO_COPY, koffi.sizeof(uffdio_copy));
export const UFFDIO_ZEROPAGE = _IOWR(UFFDIO, _UFFDIO_ZEROPAGE, koffi.sizeof(uffdio_zeropage));
