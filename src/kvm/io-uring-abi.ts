/**
 * io_uring's user ABI (linux/include/uapi/linux/io_uring.h, x86_64), defined once: the
 * structures as koffi structs (sizes and offsets asserted in test/unit/io-uring-abi.test.ts)
 * and the constants by their uapi names. The SQE and CQE layouts are also needed as byte
 * offsets, because the rings are shared memory that io-uring.ts reads and writes in place;
 * those offsets are taken from the koffi structs here, so a layout mistake cannot hide in a
 * second copy.
 */
import koffi from 'koffi';
import { namedStruct } from './koffi-types.js';

const u8 = 'uint8_t';
const u16 = 'uint16_t';
const u32 = 'uint32_t';
const u64 = 'uint64_t';
const s32 = 'int32_t';

/** struct io_sqring_offsets: where the SQ ring's fields live in its mmap. */
export const io_sqring_offsets = namedStruct('io_sqring_offsets', {
  head: u32, tail: u32, ring_mask: u32, ring_entries: u32, flags: u32, dropped: u32, array: u32, resv1: u32, user_addr: u64,
});

/** struct io_cqring_offsets: where the CQ ring's fields live in its mmap. */
export const io_cqring_offsets = namedStruct('io_cqring_offsets', {
  head: u32, tail: u32, ring_mask: u32, ring_entries: u32, overflow: u32, cqes: u32, flags: u32, resv1: u32, user_addr: u64,
});

/** struct io_uring_params: io_uring_setup's in/out argument. */
export const io_uring_params = namedStruct('io_uring_params', {
  sq_entries: u32, cq_entries: u32, flags: u32, sq_thread_cpu: u32, sq_thread_idle: u32, features: u32, wq_fd: u32,
  resv: koffi.array(u32, 3), sq_off: io_sqring_offsets, cq_off: io_cqring_offsets,
});

/** struct io_uring_sqe (the 64-byte form), the fields a read/write/fsync uses. */
export const io_uring_sqe = namedStruct('io_uring_sqe', {
  opcode: u8, flags: u8, ioprio: u16, fd: s32, off: u64, addr: u64, len: u32, rw_flags: u32, user_data: u64,
  buf_index: u16, personality: u16, splice_fd_in: s32, addr3: u64, pad2: u64,
});

/** struct io_uring_cqe (the 16-byte form). */
export const io_uring_cqe = namedStruct('io_uring_cqe', { user_data: u64, res: s32, flags: u32 });

/** Decoded io_uring_params as the kernel fills it in. */
export interface IoUringParams {
  sq_entries: number;
  cq_entries: number;
  features: number;
  sq_off: { head: number; tail: number; ring_mask: number; ring_entries: number; flags: number; dropped: number; array: number };
  cq_off: { head: number; tail: number; ring_mask: number; ring_entries: number; overflow: number; cqes: number };
}

/** Byte offsets inside one SQE / CQE, from the structs above. */
export const SQE = {
  SIZE: koffi.sizeof(io_uring_sqe),
  OPCODE: koffi.offsetof(io_uring_sqe, 'opcode'),
  FD: koffi.offsetof(io_uring_sqe, 'fd'),
  OFF: koffi.offsetof(io_uring_sqe, 'off'),
  ADDR: koffi.offsetof(io_uring_sqe, 'addr'),
  LEN: koffi.offsetof(io_uring_sqe, 'len'),
  RW_FLAGS: koffi.offsetof(io_uring_sqe, 'rw_flags'),
  USER_DATA: koffi.offsetof(io_uring_sqe, 'user_data'),
} as const;

export const CQE = {
  SIZE: koffi.sizeof(io_uring_cqe),
  USER_DATA: koffi.offsetof(io_uring_cqe, 'user_data'),
  RES: koffi.offsetof(io_uring_cqe, 'res'),
} as const;

/** x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
export const SYS_io_uring_setup = 425;
export const SYS_io_uring_enter = 426;
export const SYS_io_uring_register = 427;

/** mmap offsets of the three shared areas. */
export const IORING_OFF_SQ_RING = 0;
export const IORING_OFF_CQ_RING = 0x8000000;
export const IORING_OFF_SQES = 0x10000000;

/** io_uring_params.features: SQ and CQ rings share one mmap (5.4+). */
export const IORING_FEAT_SINGLE_MMAP = 1 << 0;
/** io_uring_enter flags: wait for min_complete completions. */
export const IORING_ENTER_GETEVENTS = 1 << 0;
/** io_uring_register opcode: signal an eventfd on every completion. */
export const IORING_REGISTER_EVENTFD = 4;
/** Opcodes (enum io_uring_op). READV/WRITEV take an iovec array; READ/WRITE one buffer (5.6+). */
export const IORING_OP_READV = 1;
export const IORING_OP_WRITEV = 2;
export const IORING_OP_FSYNC = 3;
export const IORING_OP_READ = 22;
export const IORING_OP_WRITE = 23;
