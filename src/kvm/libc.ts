/**
 * The libc functions Kindling calls through koffi, declared once. Only src/kvm, src/memory
 * and src/snapshot (memory files written from guest RAM's host address) import this file;
 * device models never do.
 *
 * SAFETY (applies to every binding here): koffi passes a TypedArray/ArrayBuffer argument as
 * a pointer to its backing store for the duration of the call, without copying. Callers keep
 * such buffers alive across the call (they are arguments, so they are), and pass lengths that
 * do not exceed the buffer. Raw pointers (`bigint` addresses from mmap) are only ever turned
 * into views with the length they were mapped with. koffi 3 represents pointers as bigint.
 */
import koffi from 'koffi';
import { SyscallError } from '../errors.js';

const lib = koffi.load('libc.so.6');

/** Linux x86_64 constants (asm-generic / x86 uapi headers). */
export const O_RDWR = 0o2;
export const O_RDONLY = 0o0;
export const O_CLOEXEC = 0o2000000;
/** Non-blocking I/O on the new fd (asm-generic/fcntl.h); also userfaultfd(2)'s flag. */
export const O_NONBLOCK = 0o4000;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MFD_CLOEXEC = 0x1;
/** memfd_create(2): a hugetlbfs file (linux/memfd.h); the page size goes in bits 26..31. */
export const MFD_HUGETLB = 0x4;
/** mmap(2): anonymous memory from the hugetlb pool (asm-generic/mman-common.h). */
export const MAP_HUGETLB = 0x40000;
/** log2 of the page size, shifted to bits 26..31 (asm-generic/hugetlb_encode.h HUGETLB_FLAG_ENCODE_SHIFT). */
const HUGETLB_FLAG_ENCODE_SHIFT = 26;
/** 2 MiB pages: HUGETLB_FLAG_ENCODE_2MB, the value of both MFD_HUGE_2MB and MAP_HUGE_2MB. */
export const HUGETLB_FLAG_ENCODE_2MB = 21 << HUGETLB_FLAG_ENCODE_SHIFT;
/** madvise(2): drop the pages; private anonymous memory reads back zero (or faults to a userfaultfd). */
export const MADV_DONTNEED = 4;
/**
 * madvise(2): free the pages AND their backing store, like fallocate(PUNCH_HOLE) on the
 * shmem/tmpfs file behind a shared mapping (the memfd of guest RAM); EINVAL on private mappings.
 */
export const MADV_REMOVE = 9;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const SA_RESTART = 0x10000000;
/** Restore the default action when the handler is entered (asm-generic/signal-defs.h). */
export const SA_RESETHAND = 0x80000000;
/** glibc's struct sigaction on x86_64: handler(8) | sa_mask(128) | sa_flags(4)+pad(4) | restorer(8). */
export const SIGACTION_SIZE = 152;
export const SIGACTION_HANDLER_OFFSET = 0;
export const SIGACTION_FLAGS_OFFSET = 136;
/** mmap's failure value, `(void *)-1`. */
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

export const open = lib.func('int open(const char *path, int flags, uint32_t mode)');
export const close = lib.func('int close(int fd)');
/** ioctl with no argument (or an integer argument) — variadic in C, declared with fixed types. */
export const ioctlInt = lib.func('int ioctl(int fd, unsigned long req, unsigned long arg)');
/** ioctl with a pointer argument: the buffer is read and/or written by the kernel. */
export const ioctlPtr = lib.func('int ioctl(int fd, unsigned long req, void *arg)');
export const mmap = lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)');
export const munmap = lib.func('int munmap(void *addr, size_t len)');
export const madvise = lib.func('int madvise(void *addr, size_t len, int advice)');
/** msync(2): writes a MAP_SHARED file mapping's dirty pages back (virtio-pmem FLUSH). */
export const msync = lib.func('int msync(void *addr, size_t len, int flags)');
/** msync flag: write back and wait for it (asm-generic/mman-common.h). */
export const MS_SYNC = 4;
/** mincore(2): one byte per page of [addr, addr+len), bit 0 set when the page is resident. */
export const mincore = lib.func('int mincore(void *addr, size_t len, _Out_ uint8_t *vec)');
export const memfdCreate = lib.func('int memfd_create(const char *name, unsigned int flags)');
export const ftruncate = lib.func('int ftruncate(int fd, int64_t len)');
/**
 * pwrite(2) from a raw host address (guest RAM's mapping): snapshot memory files are written
 * straight from the pages KVM maps, never copied through a JavaScript buffer.
 */
export const pwriteAddr = lib.func('intptr_t pwrite(int fd, void *buf, size_t n, int64_t off)');
/** lseek(2): with SEEK_DATA / SEEK_HOLE it finds a sparse file's data extents (lseek(2) man page). */
export const lseek = lib.func('int64_t lseek(int fd, int64_t off, int whence)');
export const SEEK_SET = 0;
/** A call interrupted by a signal before it did anything: retry it. */
export const EINTR = koffi.os.errno.EINTR;
export const SEEK_DATA = 3;
/** fallocate(2); with FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE it frees a file range, which then reads as zeros. */
export const fallocate = lib.func('int fallocate(int fd, int mode, int64_t off, int64_t len)');
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
/** lseek(SEEK_DATA) past the last data extent (asm-generic/errno-base.h). */
export const ENXIO = 6;
export const SEEK_HOLE = 4;
export const eventfd = lib.func('int eventfd(unsigned int initval, int flags)');
export const read = lib.func('intptr_t read(int fd, _Out_ void *buf, size_t n)');
/** poll(2) over an array of struct pollfd { int fd; short events; short revents; } (8 bytes each). */
export const poll = lib.func('int poll(void *fds, unsigned long nfds, int timeout)');
export const POLLIN = 0x1;
/** poll(2) event bits besides POLLIN (asm-generic/poll.h): writable, error, hang-up, bad fd. */
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;
export const POLLFD_SIZE = 8;
export const write = lib.func('intptr_t write(int fd, const void *buf, size_t n)');
/** readv/writev over an array of struct iovec (tun-abi.ts): the TAP's frame I/O. */
export const readv = lib.func('intptr_t readv(int fd, const void *iov, int iovcnt)');
export const writev = lib.func('intptr_t writev(int fd, const void *iov, int iovcnt)');
/** Unix stream sockets (socket-abi.ts has the address struct and flags): the vsock backend's host side. */
export const socket = lib.func('int socket(int domain, int type, int protocol)');
export const bind = lib.func('int bind(int fd, const void *addr, uint32_t len)');
export const listen = lib.func('int listen(int fd, int backlog)');
/** accept4 without the peer address (addr and len NULL). */
export const accept4 = lib.func('int accept4(int fd, void *addr, void *len, int flags)');
export const connect = lib.func('int connect(int fd, const void *addr, uint32_t len)');
/**
 * sendmsg/recvmsg over a struct msghdr (socket-abi.ts): the only calls that carry ancillary
 * data, here SCM_RIGHTS, which hands a file descriptor to another process (fd-passing.ts).
 */
export const sendmsg = lib.func('intptr_t sendmsg(int fd, const void *msg, int flags)');
export const recvmsg = lib.func('intptr_t recvmsg(int fd, void *msg, int flags)');
/** getsockopt(2) with a caller-sized buffer (SO_PEERCRED fills a struct ucred). */
export const getsockopt = lib.func('int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32_t *len)');
/** recv(2): with MSG_PEEK the bytes stay queued (the vsock CONNECT line is read no further than its end). */
export const recv = lib.func('intptr_t recv(int fd, void *buf, size_t n, int flags)');
export const pthreadSelf = lib.func('uint64_t pthread_self()');
export const pthreadKill = lib.func('int pthread_kill(uint64_t thread, int sig)');
export const sigaction = lib.func('int sigaction(int sig, const void *act, _Out_ void *old)');
export const dlsym = lib.func('void *dlsym(void *handle, const char *name)');
export const libcSigRtMin = lib.func('int __libc_current_sigrtmin()');
/** _exit(2): ends the process at once, without joining threads (a worker in poll() never joins). */
export const exitImmediately = lib.func('void _exit(int status)');
/**
 * syscall(2) for the io_uring calls glibc does not wrap. Variadic: each argument is passed
 * with its C type ('int', 'uint32_t', 'void *', ...), as koffi's variadic calls require.
 */
export const syscall = lib.func('long syscall(long nr, ...)');
export const strerror = lib.func('const char *strerror(int errnum)');
/** memcpy with n = 0 returns `dst`: the one portable way to learn a buffer's host address. */
const memcpy = lib.func('void *memcpy(void *dst, const void *src, size_t n)');

/** The errno of the last failed call on this thread. */
export function errno(): number {
  return koffi.errno();
}

/** The symbolic name of an errno value (EINTR, EFAULT, ...), or its number. */
export function errnoName(e: number): string {
  for (const [name, value] of Object.entries(koffi.os.errno)) if (value === e) return name;
  return `errno ${e}`;
}

/** Throws a SyscallError for `syscall` when `ret` is negative. */
export function check(syscall: string, ret: number | bigint): number {
  if (ret < 0) {
    const e = errno();
    throw new SyscallError(syscall, e, errnoName(e));
  }
  return Number(ret);
}

/** Host virtual address of a buffer's first byte. */
export function addressOf(buf: ArrayBufferView | ArrayBuffer | SharedArrayBuffer): bigint {
  const view = ArrayBuffer.isView(buf) ? buf : new Uint8Array(buf);
  return memcpy(view, view, 0) as bigint;
}

/**
 * Host address of a view's first byte, as a number. The backing store of an ArrayBuffer or
 * SharedArrayBuffer never moves (none here is resizable; `.buffer` takes a small typed array
 * off V8's heap for good), so each buffer's base is asked of koffi once (a memcpy call) and
 * reused: a readv/writev of N guest buffers then costs one FFI call, not N + 1. x86_64 user
 * addresses are below 2^47, exact as a number, so no bigint per buffer either.
 */
const bases = new WeakMap<ArrayBufferLike, number>();
// Nearly every view on the hot paths is of the one guest-RAM buffer: skip the map for it.
let lastBuffer: ArrayBufferLike | undefined;
let lastBase = 0;
export function hostAddress(v: ArrayBufferView): number {
  const buffer = v.buffer;
  if (buffer !== lastBuffer) {
    let base = bases.get(buffer);
    if (base === undefined) {
      base = Number(addressOf(buffer));
      bases.set(buffer, base);
    }
    lastBuffer = buffer;
    lastBase = base;
  }
  return lastBase + v.byteOffset;
}

/** 2^32, to split an address into the two halves of a u64 field. */
const U32_MODULUS = 2 ** 32;
/**
 * u32 words per `struct iovec` on x86_64: iov_base and iov_len, each a u64 (16 bytes; tun-abi.ts
 * defines the koffi struct, not imported here since tun-abi's imports lead back to this file).
 */
const IOVEC_WORDS = 4;

/**
 * A `struct iovec` array for readv/writev-style calls: `buffer` goes to the call, `set` fills
 * entry `i` for the bytes of a view (x86_64 is little-endian, so u32 halves in order).
 */
export class IovecArray {
  readonly buffer: Buffer;
  private readonly words: Uint32Array;

  constructor(readonly capacity: number) {
    this.buffer = Buffer.alloc(capacity * IOVEC_WORDS * 4);
    this.words = new Uint32Array(this.buffer.buffer, this.buffer.byteOffset, capacity * IOVEC_WORDS);
  }

  set(i: number, v: ArrayBufferView): void {
    const at = i * IOVEC_WORDS;
    const addr = hostAddress(v);
    const w = this.words;
    w[at] = addr % U32_MODULUS;
    w[at + 1] = Math.floor(addr / U32_MODULUS);
    w[at + 2] = v.byteLength;
    w[at + 3] = 0;
  }
}

/** An ArrayBuffer over `len` bytes of host memory at `addr` (no copy). */
export function viewOf(addr: bigint, len: number): ArrayBuffer {
  return koffi.view(addr, len);
}

/** Maps `len` bytes of `fd` at `offset`; throws SyscallError on MAP_FAILED. */
export function mmapChecked(addr: bigint | null, len: number, prot: number, flags: number, fd: number, off = 0): bigint {
  const p = mmap(addr, len, prot, flags, fd, off) as bigint | null;
  if (p === null || p === MAP_FAILED) {
    const e = errno();
    throw new SyscallError('mmap', e, errnoName(e));
  }
  return p;
}
