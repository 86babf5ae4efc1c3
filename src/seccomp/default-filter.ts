/**
 * Kindling's default seccomp allow-list (docs/design.md, Seccomp), in the seccompiler form
 * filter.ts compiles. One list for the whole process: Node's threads (main, V8 platform
 * workers, libuv's pool, one worker_thread per vCPU and device actor, piscina's snapshot
 * threads) share one address space and JIT code, so Firecracker's per-thread split would not
 * confine a compromised thread; what matters is what the process as a whole may never do.
 *
 * How the list was made: `strace -f` of a real boot in the KVM sandbox (2 vCPUs, a drive, a
 * TAP in a namespace, an entropy device, FlushMetrics, pause, Full snapshot, resume, reboot)
 * gave the syscalls marked `measured`; the paths that boot did not take were added from the
 * code that makes them (the comment names it). Never allowed, among others: execve/execveat,
 * fork/vfork/clone of a process (clone only with CLONE_THREAD, as pthread_create), ptrace,
 * mount/pivot_root/chroot/setns/unshare, module loading, bpf, perf_event_open, keyctl,
 * setuid/setgid, reboot. Any other syscall traps (SIGSYS → exit 148, seccomp.num_faults).
 * ioctl is allowed only for the request types Kindling uses, matched on the type byte of
 * the request number (asm-generic/ioctl.h `_IOC_TYPE`, bits 8–15).
 */
import type { FilterSpec, SyscallRule } from './filter.js';

/** The type byte of an ioctl request (_IOC_TYPEMASK << _IOC_TYPESHIFT). */
export const IOC_TYPE_MASK = 0xff00;
/** KVMIO (linux/kvm.h): every KVM_* ioctl. */
export const KVMIO = 0xae;
/** 'T' (asm-generic/ioctls.h, linux/if_tun.h): TCGETS, FIONBIO, FIOCLEX, TUNSETIFF, TUNSETOFFLOAD… */
export const TTY_TUN_IOC = 0x54;
/** UFFDIO (linux/userfaultfd.h): the Uffd snapshot backend (src/memory/uffd.ts). */
export const UFFDIO = 0xaa;
/** 0x12 (linux/fs.h): BLKGETSIZE64 and friends, a drive on a block device. */
export const BLOCK_IOC = 0x12;

/** clone(2) flags glibc's pthread_create passes (CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID). */
export const PTHREAD_CLONE_FLAGS = 0x3d0f00;

const ioctlTypes = [KVMIO, TTY_TUN_IOC, UFFDIO, BLOCK_IOC];

/** asm-generic/errno.h: "Function not implemented". */
export const ENOSYS = 38;

/** Measured under the strace'd boot (see above). */
const MEASURED = [
  'accept4', 'access', 'arch_prctl', 'bind', 'brk', 'capget', 'clock_gettime', 'close', 'epoll_create1',
  'epoll_ctl', 'epoll_pwait', 'eventfd2', 'exit', 'exit_group', 'fcntl', 'fstat', 'fsync', 'ftruncate', 'futex',
  'getcwd', 'getegid', 'geteuid', 'getgid', 'getpid', 'getrandom', 'getrusage', 'getsockname', 'getsockopt', 'gettid',
  'gettimeofday', 'getuid', 'listen', 'lseek', 'madvise', 'memfd_create', 'mmap', 'mprotect', 'munmap', 'newfstatat',
  'openat', 'pipe2', 'pkey_alloc', 'poll', 'pread64', 'prlimit64', 'pwrite64', 'read', 'readlink', 'readv', 'rseq',
  'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'sched_getaffinity', 'set_robust_list', 'set_tid_address',
  'shutdown', 'socket', 'statx', 'sysinfo', 'tgkill', 'uname', 'unlink', 'write', 'writev',
];

/** Paths the measured boot did not take, with the code that makes the call. */
const FEATURE_PATHS: [string, string][] = [
  ['io_uring_setup', 'src/kvm/io-uring.ts: the Async block engine'],
  ['io_uring_enter', 'src/kvm/io-uring.ts'],
  ['io_uring_register', 'src/kvm/io-uring.ts (eventfd) and libuv\'s own io_uring for fs calls'],
  ['userfaultfd', 'src/memory/uffd.ts: the Uffd snapshot backend'],
  ['connect', 'src/kvm/unix-socket.ts: the Uffd handler socket, vsock host connections; fd-passing.ts: a vhost-user backend (virtio-fs)'],
  ['sendmsg', 'src/kvm/fd-passing.ts: SCM_RIGHTS to the Uffd handler and to a vhost-user backend (memfd, eventfds)'],
  ['recvmsg', 'src/kvm/fd-passing.ts'],
  ['recvfrom', 'src/kvm/libc.ts recv(MSG_PEEK): the vsock CONNECT line'],
  ['sendto', 'Node net sockets (vsock host side, API replies)'],
  ['mincore', 'src/kvm/libc.ts: resident pages of guest RAM (balloon, snapshots)'],
  ['fallocate', 'src/memory/discard.ts: PUNCH_HOLE for discarded guest pages and block discards'],
  ['msync', 'src/actors/virtio/pmem-worker.ts: virtio-pmem FLUSH writes the mapped file back'],
  ['fdatasync', 'block flush with cache_type Writeback, snapshot files'],
  ['ppoll', 'src/kvm/poll.ts (glibc poll may use ppoll)'],
  ['epoll_wait', 'libuv event loop (older glibc path)'],
  ['nanosleep', 'Node timers, Atomics.wait fallbacks'],
  ['clock_nanosleep', 'Node / V8 platform threads'],
  ['sched_yield', 'V8 and libuv spin-waits'],
  ['dup', 'Node stdio setup'],
  ['dup3', 'Node stdio setup'],
  ['pipe', 'libuv'],
  ['getdents64', 'fs.readdir (module resolution, /proc/self/task)'],
  ['mkdir', 'fs.mkdir of a snapshot or log folder'],
  ['mkdirat', 'fs.mkdir'],
  ['rename', 'fs.rename'],
  ['renameat', 'fs.rename'],
  ['unlinkat', 'fs.rm of an API socket left over'],
  ['ftruncate', 'memory files (src/snapshot/memory-file.ts)'],
  ['truncate', 'fs.truncate'],
  ['fchmod', 'fs.chmod of created files'],
  ['fchown', 'fs.chown'],
  ['utimensat', 'fs.utimes'],
  ['readlinkat', 'fs.realpath'],
  ['membarrier', 'V8 code patching'],
  ['mremap', 'V8 / glibc realloc of large blocks'],
  ['prctl', 'src/util/thread-name.ts (PR_SET_NAME) and V8'],
  ['sigaltstack', 'Node / V8 signal stacks in new threads'],
  ['rt_sigtimedwait', 'libuv signal handling'],
  ['rt_sigqueueinfo', 'libuv'],
  ['restart_syscall', 'a syscall restarted after a signal (the vCPU kick)'],
  ['kill', 'process.kill of itself (SIGABRT on a panic)'],
  ['getppid', 'Node'],
  ['getpgrp', 'Node tty'],
  ['setsockopt', 'Node net sockets'],
  ['getpeername', 'Node net sockets'],
  ['socketpair', 'Node / libuv'],
  ['epoll_pwait2', 'libuv (newer)'],
  ['statfs', 'fs.statfs'],
  ['fstatfs', 'glibc / Node'],
  ['fadvise64', 'block backends'],
  ['preadv', 'block backends (readv at offset)'],
  ['pwritev', 'block backends (writev at offset)'],
  ['preadv2', 'libuv fs'],
  ['pwritev2', 'libuv fs'],
  ['copy_file_range', 'fs.copyFile'],
  ['sendfile', 'fs.copyFile fallback'],
  ['sched_setaffinity', 'V8 platform threads'],
  ['get_mempolicy', 'glibc / V8'],
  ['times', 'process.cpuUsage fallbacks'],
  ['clock_getres', 'Node performance timers'],
  ['timerfd_create', 'libuv'],
  ['timerfd_settime', 'libuv'],
  ['inotify_init1', 'fs.watch (not used; harmless)'],
];

const simple = (name: string, comment?: string): SyscallRule => (comment === undefined ? { syscall: name } : { syscall: name, comment });

export const DEFAULT_FILTER: FilterSpec = {
  default_action: 'trap',
  filter_action: 'allow',
  filter: [
    ...[...new Set([...MEASURED])].map((n) => simple(n, 'measured')),
    ...FEATURE_PATHS.filter(([n]) => !MEASURED.includes(n)).map(([n, why]) => simple(n, why)),
    ...ioctlTypes.map((t): SyscallRule => ({
      syscall: 'ioctl',
      args: [{ index: 1, type: 'dword', op: { masked_eq: IOC_TYPE_MASK }, val: t << 8 }],
      comment: `ioctl type 0x${t.toString(16)}`,
    })),
    // clone3 passes its flags in memory, where seccomp cannot look: it fails with ENOSYS, and
    // glibc's pthread_create falls back to clone, whose flags are checked (measured: clone3).
    { syscall: 'clone3', action: { errno: ENOSYS }, comment: 'threads go through clone' },
    { syscall: 'clone', args: [{ index: 0, type: 'qword', op: { masked_eq: PTHREAD_CLONE_FLAGS }, val: PTHREAD_CLONE_FLAGS }], comment: 'threads only (older glibc pthread_create)' },
  ],
};
