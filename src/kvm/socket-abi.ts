/**
 * The Unix-domain socket ABI (x86_64 Linux: include/uapi/linux/un.h, asm-generic/socket.h,
 * linux/socket.h), defined once: `struct sockaddr_un` and the flag values the vsock backend
 * passes to socket(2), accept4(2) and recv(2). Sizes and offsets are asserted in
 * test/unit/unix-socket.test.ts. `struct iovec` is tun-abi.ts's (readv/writev take the same one).
 */
import koffi from 'koffi';
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
export const sockaddr_un = koffi.struct('sockaddr_un', {
  sun_family: 'uint16_t',
  sun_path: koffi.array('char', SUN_PATH_MAX, 'Array'),
});
/** sizeof(struct sockaddr_un). */
export const SOCKADDR_UN_SIZE = 110;
/** offsetof(struct sockaddr_un, sun_path). */
export const SUN_PATH_OFFSET = 2;
