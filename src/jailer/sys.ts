/**
 * The libc calls only the jailer makes (namespaces, mounts, pivot_root, device nodes, limits,
 * credentials, execve), declared once through koffi as src/kvm/libc.ts declares the VMM's.
 * Every call here runs on the jailer's main thread: unshare(CLONE_NEWNS), setns and chroot
 * change only the calling thread's namespaces and root (after unshare the thread has its own
 * fs_struct), and execve from that thread carries them into the VMM (docs/design.md, Jailer).
 */
import koffi from 'koffi';
import { namedStruct } from '../kvm/koffi-types.js';
import * as libc from '../kvm/libc.js';
import { SYSCALLS_X86_64 } from '../seccomp/syscalls-x86_64.js';
import { JailerError, errnoIoError } from './errors.js';

const lib = koffi.load('libc.so.6');

/** unshare(2)/setns(2)/clone flags (linux/sched.h). */
export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;
/** mount(2) flags (linux/mount.h). */
export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_REMOUNT = 32;
export const MS_BIND = 4096;
export const MS_REC = 16384;
export const MS_PRIVATE = 1 << 18;
export const MS_SLAVE = 1 << 19;
/** umount2(2): detach now, clean up when no longer busy. */
export const MNT_DETACH = 2;
/** File type and owner permission bits (sys/stat.h). */
export const S_IFCHR = 0o020000;
export const S_IRUSR = 0o400;
export const S_IWUSR = 0o200;
/** getrlimit resources (asm-generic/resource.h). */
export const RLIMIT_FSIZE = 1;
export const RLIMIT_NOFILE = 7;
/** close_range(2) flag: mark the range close-on-exec instead of closing it now. */
export const CLOSE_RANGE_CLOEXEC = 1 << 2;

/** struct rlimit { rlim_t rlim_cur; rlim_t rlim_max; } (asm-generic/resource.h). */
export const rlimit = namedStruct('rlimit', { rlim_cur: 'uint64_t', rlim_max: 'uint64_t' });

const unshareFn = lib.func('int unshare(int flags)');
const mountFn = lib.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const void *data)');
const umount2Fn = lib.func('int umount2(const char *target, int flags)');
const chrootFn = lib.func('int chroot(const char *path)');
const chdirFn = lib.func('int chdir(const char *path)');
const mknodFn = lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');
const setnsFn = lib.func('int setns(int fd, int nstype)');
const setrlimitFn = lib.func('int setrlimit(int resource, const rlimit *rlim)');
const setsidFn = lib.func('int setsid()');
const dup2Fn = lib.func('int dup2(int oldfd, int newfd)');
const setgroupsFn = lib.func('int setgroups(size_t size, const uint32_t *list)');
const setgidFn = lib.func('int setgid(uint32_t gid)');
const setuidFn = lib.func('int setuid(uint32_t uid)');
const execveFn = lib.func('int execve(const char *path, const char **argv, const char **envp)');
const getpidFn = lib.func('int getpid()');
const fcntlFn = lib.func('int fcntl(int fd, int cmd, int arg)');
/** fcntl(2) F_SETFD (asm-generic/fcntl.h). */
export const F_SETFD = 2;

/** Throws `make(io error)` when `r` is negative (errno read at once). */
function ok(r: number, make: (io: ReturnType<typeof errnoIoError>) => JailerError): void {
  if (r < 0) throw make(errnoIoError(libc.errno()));
}

export const unshare = (flags: number, make: Parameters<typeof ok>[1]): void => ok(unshareFn(flags), make);
export const mount = (src: string | null, target: string, fstype: string | null, flags: number, make: Parameters<typeof ok>[1]): void =>
  ok(mountFn(src, target, fstype, flags, null), make);
export const umount2 = (target: string, flags: number, make: Parameters<typeof ok>[1]): void => ok(umount2Fn(target, flags), make);
export const chroot = (path: string, make: Parameters<typeof ok>[1]): void => ok(chrootFn(path), make);
export const chdir = (path: string, make: Parameters<typeof ok>[1]): void => ok(chdirFn(path), make);
/** pivot_root(2) has no glibc wrapper. */
export const pivotRoot = (newRoot: string, putOld: string, make: Parameters<typeof ok>[1]): void =>
  ok(Number(libc.syscall(SYSCALLS_X86_64.pivot_root!, 'const char *', newRoot, 'const char *', putOld)), make);
/** makedev(3) for the classic 8-bit minor / 12-bit major split (glibc sys/sysmacros.h). */
export const makedev = (major: number, minor: number): bigint =>
  (BigInt(minor & 0xff)) | (BigInt(major & 0xfff) << 8n) | (BigInt(minor & ~0xff) << 12n) | (BigInt(major & ~0xfff) << 32n);
export const mknod = (path: string, mode: number, dev: bigint, make: Parameters<typeof ok>[1]): void => ok(mknodFn(path, mode, dev), make);
export const setns = (fd: number, nstype: number, make: Parameters<typeof ok>[1]): void => ok(setnsFn(fd, nstype), make);
export const setrlimit = (resource: number, value: bigint, make: Parameters<typeof ok>[1]): void =>
  ok(setrlimitFn(resource, { rlim_cur: value, rlim_max: value }), make);
export const setsid = (make: Parameters<typeof ok>[1]): void => ok(setsidFn(), make);
export const dup2 = (from: number, to: number, make: Parameters<typeof ok>[1]): void => ok(dup2Fn(from, to), make);
/**
 * Drops supplementary groups, then the gid, then the uid (the order that keeps the right to
 * change the next one). glibc's setgid/setuid apply to every thread of the process.
 */
export function dropPrivileges(uid: number, gid: number, make: Parameters<typeof ok>[1]): void {
  ok(setgroupsFn(0, null), make);
  ok(setgidFn(gid), make);
  ok(setuidFn(uid), make);
}
/** close_range(3, ~0U, CLOSE_RANGE_CLOEXEC): every inherited fd above stderr closes at exec. */
export const closeRangeCloexec = (make: Parameters<typeof ok>[1]): void =>
  ok(Number(libc.syscall(SYSCALLS_X86_64.close_range!, 'unsigned int', 3, 'unsigned int', 0xffff_ffff, 'unsigned int', CLOSE_RANGE_CLOEXEC)), make);
export const getpid = (): number => getpidFn();
/**
 * Clears FD_CLOEXEC on an open fd: Node marks its stdio close-on-exec at start, and the VMM must
 * inherit stdin/stdout/stderr as Firecracker's does. A closed fd is left alone.
 */
export const keepAcrossExec = (fd: number): void => void fcntlFn(fd, F_SETFD, 0);
/** execve(2); returns only on failure. */
export function execve(path: string, argv: readonly string[], envp: readonly string[], make: Parameters<typeof ok>[1]): never {
  execveFn(path, [...argv, null], [...envp, null]);
  throw make(errnoIoError(libc.errno()));
}
