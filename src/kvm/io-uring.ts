/**
 * A minimal io_uring (io_uring(7)) for the Async block engine: one ring per drive, owned by
 * that drive's device worker. Reads and writes move data straight between the backing file
 * and guest RAM (the SQE carries the host address of the guest buffer), many requests in
 * flight; completions are announced on an eventfd the worker polls beside its queue eventfd.
 *
 * Why io_uring and not a piscina pool of blocking workers: Firecracker's Async engine is
 * io_uring, and it keeps the per-request cost at a few stores into shared memory plus one
 * io_uring_enter per batch, with no message per request between threads (docs/design.md,
 * Threads and actors) and no copy of the data. A pool would post a message per request and wake a
 * second thread to block in pread.
 *
 * Shared-memory protocol (io_uring(7) "Submission/Completion Queue Ring"): we own the SQ tail
 * and the CQ head, the kernel owns the SQ head and the CQ tail. Our index stores are
 * Atomics.store (release), the kernel's indices are read with Atomics.load (acquire), so an
 * SQE is complete before its tail is published and a CQE is read only after its tail is seen.
 * Indices are free-running u32 that wrap; differences are taken modulo 2^32.
 *
 * Invariant the caller keeps: at most `entries` operations in flight (submitted and not yet
 * reaped). The CQ ring has at least that many slots (the kernel sizes it 2× the SQ), so the CQ
 * never overflows and no completion is lost.
 */
import koffi from 'koffi';
import { IoUringError, SyscallError } from '../errors.js';
import { EventFd } from './eventfd.js';
import * as libc from './libc.js';
import {
  CQE, IORING_ENTER_GETEVENTS, IORING_FEAT_SINGLE_MMAP, IORING_OFF_SQ_RING, IORING_OFF_SQES, IORING_OP_FSYNC,
  IORING_OP_READ, IORING_OP_READV, IORING_OP_WRITE, IORING_OP_WRITEV, IORING_REGISTER_EVENTFD, SQE, SYS_io_uring_enter, SYS_io_uring_register,
  SYS_io_uring_setup, io_uring_params, type IoUringParams,
} from './io-uring-abi.js';

/** io_uring_params.features bit that arrived with the READ/WRITE opcodes (Linux 5.6). */
const IORING_FEAT_RW_CUR_POS = 1 << 3;
const EINTR = koffi.os.errno.EINTR;
const EAGAIN = koffi.os.errno.EAGAIN;
const EBUSY = koffi.os.errno.EBUSY;

/** One completion: the caller's tag and the result (bytes transferred, or -errno). */
export interface IoCompletion {
  readonly userData: number;
  readonly res: number;
}

export class IoUring {
  /** Ring file descriptor. */
  readonly fd: number;
  /** Submission slots (a power of two). */
  readonly entries: number;
  /** Signalled by the kernel on every completion (IORING_REGISTER_EVENTFD). */
  readonly completions: EventFd;
  private readonly ringPtr: bigint;
  private readonly ringLen: number;
  private readonly sqesPtr: bigint;
  private readonly sqesLen: number;
  private readonly ring: Uint32Array;
  private readonly sqes: DataView;
  private readonly sqesBytes: Uint8Array;
  private readonly cqes: DataView;
  private readonly idx: { sqHead: number; sqTail: number; cqHead: number; cqTail: number; sqMask: number; cqMask: number };
  /** SQEs prepared (our tail) and the part of them already handed to io_uring_enter. */
  private tail = 0;
  private submittedTail = 0;
  private closed = false;

  /** Sets up a ring with `entries` submission slots (rounded up to a power of two by the kernel). */
  constructor(entries: number) {
    const params = Buffer.alloc(koffi.sizeof(io_uring_params));
    const fd = Number(libc.syscall(SYS_io_uring_setup, 'uint32_t', entries, 'void *', params));
    if (fd < 0) {
      const e = libc.errno();
      throw new IoUringError(`io_uring_setup failed: ${libc.errnoName(e)} (errno ${e}); the Async io_engine needs io_uring (Linux 5.10+, not disabled by kernel.io_uring_disabled)`);
    }
    this.fd = fd;
    try {
      const p = koffi.decode(params, io_uring_params) as IoUringParams;
      if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_RW_CUR_POS)) {
        throw new IoUringError(`io_uring on this kernel lacks single-mmap rings or the READ/WRITE opcodes (features 0x${p.features.toString(16)}); the Async io_engine needs Linux 5.10+`);
      }
      this.entries = p.sq_entries;
      // SQ and CQ rings share one mapping (IORING_FEAT_SINGLE_MMAP): map the larger extent.
      this.ringLen = Math.max(p.sq_off.array + p.sq_entries * 4, p.cq_off.cqes + p.cq_entries * CQE.SIZE);
      const rw = libc.PROT_READ | libc.PROT_WRITE;
      const flags = libc.MAP_SHARED | libc.MAP_POPULATE;
      this.ringPtr = libc.mmapChecked(null, this.ringLen, rw, flags, fd, IORING_OFF_SQ_RING);
      this.sqesLen = p.sq_entries * SQE.SIZE;
      this.sqesPtr = libc.mmapChecked(null, this.sqesLen, rw, flags, fd, IORING_OFF_SQES);
      const ringBuf = libc.viewOf(this.ringPtr, this.ringLen);
      this.ring = new Uint32Array(ringBuf);
      this.cqes = new DataView(ringBuf, p.cq_off.cqes, p.cq_entries * CQE.SIZE);
      const sqesBuf = libc.viewOf(this.sqesPtr, this.sqesLen);
      this.sqes = new DataView(sqesBuf);
      this.sqesBytes = new Uint8Array(sqesBuf);
      this.idx = {
        sqHead: p.sq_off.head / 4, sqTail: p.sq_off.tail / 4, cqHead: p.cq_off.head / 4, cqTail: p.cq_off.tail / 4,
        sqMask: this.ring[p.sq_off.ring_mask / 4]!, cqMask: this.ring[p.cq_off.ring_mask / 4]!,
      };
      // The SQ array maps ring slots to SQE indices; an identity map fixed once lets slot
      // (tail & mask) always use SQE (tail & mask).
      const array = new Uint32Array(ringBuf, p.sq_off.array, p.sq_entries);
      for (let i = 0; i < p.sq_entries; i++) array[i] = i;
      this.tail = Atomics.load(this.ring, this.idx.sqTail);
      this.submittedTail = this.tail;
      this.completions = new EventFd();
      const efd = new Int32Array([this.completions.fd]);
      if (Number(libc.syscall(SYS_io_uring_register, 'int', fd, 'uint32_t', IORING_REGISTER_EVENTFD, 'void *', efd, 'uint32_t', 1)) < 0) {
        const e = libc.errno();
        this.completions.close();
        throw new SyscallError('io_uring_register(IORING_REGISTER_EVENTFD)', e, libc.errnoName(e));
      }
    } catch (e) {
      this.unmap();
      libc.close(fd);
      throw e;
    }
  }

  /** Free submission slots (prepared but unsubmitted SQEs count as used). */
  sqFree(): number {
    return this.entries - ((this.tail - Atomics.load(this.ring, this.idx.sqHead)) >>> 0);
  }

  /** Queues a read of `len` bytes at file `offset` into host memory at `addr`. False when the SQ is full. */
  prepRead(fd: number, addr: bigint, len: number, offset: number, userData: number): boolean {
    return this.prep(IORING_OP_READ, fd, addr, len, offset, userData);
  }

  /** Queues a write of `len` bytes from host memory at `addr` to file `offset`. */
  prepWrite(fd: number, addr: bigint, len: number, offset: number, userData: number): boolean {
    return this.prep(IORING_OP_WRITE, fd, addr, len, offset, userData);
  }

  /**
   * Queues a read at file `offset` into the `count` buffers of the iovec array at `iov`
   * (struct iovec: base u64, len u64). The array must stay alive until the completion.
   */
  prepReadv(fd: number, iov: bigint, count: number, offset: number, userData: number): boolean {
    return this.prep(IORING_OP_READV, fd, iov, count, offset, userData);
  }

  /** Queues a write of the `count` buffers of the iovec array at `iov` to file `offset`. */
  prepWritev(fd: number, iov: bigint, count: number, offset: number, userData: number): boolean {
    return this.prep(IORING_OP_WRITEV, fd, iov, count, offset, userData);
  }

  /** Queues an fsync of `fd`. */
  prepFsync(fd: number, userData: number): boolean {
    return this.prep(IORING_OP_FSYNC, fd, 0n, 0, 0, userData);
  }

  private prep(op: number, fd: number, addr: bigint, len: number, offset: number, userData: number): boolean {
    if (this.closed || this.sqFree() <= 0) return false;
    const at = ((this.tail & this.idx.sqMask) >>> 0) * SQE.SIZE;
    this.sqesBytes.fill(0, at, at + SQE.SIZE);
    this.sqes.setUint8(at + SQE.OPCODE, op);
    this.sqes.setInt32(at + SQE.FD, fd, true);
    this.sqes.setBigUint64(at + SQE.OFF, BigInt(offset), true);
    this.sqes.setBigUint64(at + SQE.ADDR, addr, true);
    this.sqes.setUint32(at + SQE.LEN, len, true);
    this.sqes.setBigUint64(at + SQE.USER_DATA, BigInt(userData), true);
    this.tail = (this.tail + 1) >>> 0;
    return true;
  }

  /** Publishes the prepared SQEs and hands them to the kernel; returns how many it took. */
  submit(): number {
    const pending = (this.tail - this.submittedTail) >>> 0;
    if (pending === 0) return 0;
    Atomics.store(this.ring, this.idx.sqTail, this.tail);
    const n = this.enter(pending, 0, 0);
    this.submittedTail = (this.submittedTail + n) >>> 0;
    return n;
  }

  /** Prepared SQEs the kernel has not taken yet (io_uring_enter said EAGAIN/EBUSY or took fewer). */
  get unsubmitted(): number {
    return (this.tail - this.submittedTail) >>> 0;
  }

  /** Blocks until at least `min` completions are waiting in the CQ (used to drain before a swap or stop). */
  waitFor(min: number): void {
    if (min > 0) this.enter(0, min, IORING_ENTER_GETEVENTS);
  }

  /** Takes every waiting completion, oldest first. */
  reap(): IoCompletion[] {
    const out: IoCompletion[] = [];
    let head = this.ring[this.idx.cqHead]!;
    const tail = Atomics.load(this.ring, this.idx.cqTail);
    while (head !== tail) {
      const at = ((head & this.idx.cqMask) >>> 0) * CQE.SIZE;
      out.push({ userData: Number(this.cqes.getBigUint64(at + CQE.USER_DATA, true)), res: this.cqes.getInt32(at + CQE.RES, true) });
      head = (head + 1) >>> 0;
    }
    Atomics.store(this.ring, this.idx.cqHead, head);
    return out;
  }

  /** Unmaps the rings and closes the ring and eventfd. In-flight operations still finish in the kernel. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unmap();
    libc.close(this.fd);
    this.completions.close();
  }

  private unmap(): void {
    if (this.ringPtr) libc.munmap(this.ringPtr, this.ringLen);
    if (this.sqesPtr) libc.munmap(this.sqesPtr, this.sqesLen);
  }

  /** io_uring_enter, retried on EINTR; EAGAIN/EBUSY (kernel short of resources) submit nothing now. */
  private enter(toSubmit: number, minComplete: number, flags: number): number {
    for (;;) {
      const r = Number(libc.syscall(SYS_io_uring_enter, 'int', this.fd, 'uint32_t', toSubmit, 'uint32_t', minComplete, 'uint32_t', flags, 'void *', null, 'size_t', 0));
      if (r >= 0) return r;
      const e = libc.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN || e === EBUSY) return 0;
      throw new SyscallError('io_uring_enter', e, libc.errnoName(e));
    }
  }
}
