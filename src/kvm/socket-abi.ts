/**
 * The Unix-domain socket ABI (x86_64 Linux: include/uapi/linux/un.h, asm-generic/socket.h,
 * linux/socket.h), defined once: `struct sockaddr_un` and the flag values the vsock backend
 * passes to socket(2), accept4(2) and recv(2); msghdr/cmsghdr/ucred for fd passing. Sizes and
 * offsets are asserted in test/unit/unix-socket.test.ts (sockaddr_un) and test/unit/uffd.test.ts
 * (the rest). `struct iovec` is tun-abi.ts's (readv/writev take the same one).
 */
import koffi from 'koffi';
import { namedStruct } from './koffi-types.js';
import { SUN_PATH_MAX } from '../util/io-error.js';

/** Address family of Unix-domain sockets (AF_UNIX = AF_LOCAL). */
export const AF_UNIX = 1;
/** Connection-oriented byte stream. */
export const SOCK_STREAM = 1;
/** socket(2)/accept4(2) type flags: O_NONBLOCK and O_CLOEXEC on the new fd, set atomically. */
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
/** recv(2) flag: return queued bytes without removing them. */
export const MSG_PEEK = 0x2;
/**
 * listen(2) backlog: a negative value asks for the system's maximum (net.core.somaxconn),
 * which is what Rust's std `UnixListener::bind` passes on Linux and so what Firecracker's
 * vsock muxer listens with (devices/virtio/vsock/unix/muxer.rs `VsockMuxer::new`).
 */
export const LISTEN_BACKLOG_MAX = -1;

/** struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; } */
export const sockaddr_un = namedStruct('sockaddr_un', {
  sun_family: 'uint16_t',
  sun_path: koffi.array('char', SUN_PATH_MAX, 'Array'),
});
/** sizeof(struct sockaddr_un). */
export const SOCKADDR_UN_SIZE = 110;
/** offsetof(struct sockaddr_un, sun_path). */
export const SUN_PATH_OFFSET = 2;

/**
 * Ancillary data (include/linux/socket.h, unix(7), cmsg(3)): SCM_RIGHTS passes open file
 * descriptors over a Unix socket, which is how the VMM hands a userfaultfd to a page-fault
 * handler process (fd-passing.ts). Pointer fields are u64s filled with host addresses.
 */
export const SOL_SOCKET = 1;
export const SCM_RIGHTS = 1;
/** getsockopt(SOL_SOCKET, SO_PEERCRED): the pid, uid and gid of the connected peer. */
export const SO_PEERCRED = 17;
/** recvmsg(2) flag: received descriptors are opened close-on-exec. */
export const MSG_CMSG_CLOEXEC = 0x40000000;
/** msg_flags bit: the control buffer was too small and descriptors were dropped. */
export const MSG_CTRUNC = 0x8;

/** struct msghdr { void *msg_name; socklen_t msg_namelen; struct iovec *msg_iov; size_t msg_iovlen; void *msg_control; size_t msg_controllen; int msg_flags; } */
export const msghdr = namedStruct('msghdr', {
  msg_name: 'uint64_t',
  msg_namelen: 'uint32_t',
  msg_iov: 'uint64_t',
  msg_iovlen: 'uint64_t',
  msg_control: 'uint64_t',
  msg_controllen: 'uint64_t',
  msg_flags: 'int32_t',
});
export const MSGHDR_SIZE = 56;

/** struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } followed by the data. */
export const cmsghdr = namedStruct('cmsghdr', { cmsg_len: 'uint64_t', cmsg_level: 'int32_t', cmsg_type: 'int32_t' });
export const CMSGHDR_SIZE = 16;

/** struct ucred { pid_t pid; uid_t uid; gid_t gid; } (SO_PEERCRED). */
export const ucred = namedStruct('ucred', { pid: 'int32_t', uid: 'uint32_t', gid: 'uint32_t' });
export const UCRED_SIZE = 12;

/** CMSG_ALIGN: control data is padded to sizeof(size_t). */
const CMSG_ALIGN = (len: number): number => (len + 7) & ~7;
/** CMSG_LEN(n): cmsg_len of a message carrying `n` data bytes. */
export const CMSG_LEN = (n: number): number => CMSG_ALIGN(CMSGHDR_SIZE) + n;
/** CMSG_SPACE(n): the control buffer bytes one such message takes. */
export const CMSG_SPACE = (n: number): number => CMSG_ALIGN(CMSGHDR_SIZE) + CMSG_ALIGN(n);
/** CMSG_DATA offset from the start of its cmsghdr. */
export const CMSG_DATA_OFFSET = CMSG_ALIGN(CMSGHDR_SIZE);
