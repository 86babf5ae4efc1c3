/**
 * Non-blocking Unix stream sockets through libc, for the vsock device's host side
 * (Firecracker devices/virtio/vsock/unix/muxer.rs: a listener on `uds_path`, accepted host
 * connections, and connections the VMM opens to `<uds_path>_<port>` for the guest).
 *
 * Every fd is created SOCK_NONBLOCK | SOCK_CLOEXEC, so no call here ever sleeps: the device
 * worker learns readiness from poll(2) (poll.ts) and a call that would block returns -EAGAIN.
 * Data moves with readv/writev straight between the socket and the views it is given: the
 * views may be guest RAM (a descriptor chain's buffers), whose host addresses go to the kernel,
 * so packet payload never passes through a JS copy.
 *
 * Results follow the kernel's convention: a count or an fd on success, -errno on failure.
 * Only `listen` throws (set-up, not the data path), with Rust's io::Error wording, since its
 * failure reaches the user as Firecracker's `UnixBind` error text.
 *
 * SIGPIPE: a write to a socket whose peer has gone returns -EPIPE and would also raise SIGPIPE;
 * Node sets SIGPIPE to SIG_IGN for the whole process at start-up (every thread), so the write
 * just fails, as it does in Firecracker (Rust's runtime ignores SIGPIPE the same way).
 */
import * as libc from './libc.js';
import {
  AF_UNIX, LISTEN_BACKLOG_MAX, MSG_PEEK, SOCKADDR_UN_SIZE, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SUN_PATH_OFFSET,
} from './socket-abi.js';
import { HostIoError, unixSocketPathError } from '../util/io-error.js';

/** The most buffers one readv/writev takes here (a vsock packet's data spans at most a chain). */
export const SOCKET_MAX_IOVECS = 256;

const ENAMETOOLONG = 36;
const EINVAL = 22;

/** `struct sockaddr_un` for `path`, and the address length bind/connect take; null when it does not fit. */
function sockaddr(path: string): { addr: Buffer; len: number } | null {
  const bytes = Buffer.from(path);
  if (bytes.length + 1 > SOCKADDR_UN_SIZE - SUN_PATH_OFFSET || bytes.includes(0)) return null;
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  addr.writeUInt16LE(AF_UNIX, 0);
  bytes.copy(addr, SUN_PATH_OFFSET);
  // As Rust's std computes it: the family, the path and its NUL.
  return { addr, len: SUN_PATH_OFFSET + bytes.length + 1 };
}

/** The unix(7) socket calls the vsock backend makes; one instance per thread (scratch buffers). */
export class UnixSocketIo {
  private readonly iov = new libc.IovecArray(SOCKET_MAX_IOVECS);

  /**
   * socket + bind + listen on `path`, non-blocking: the listening fd. Throws HostIoError in
   * Rust's words (`Address in use (os error 98)`, `path must be shorter than SUN_LEN`); a
   * path that exists is never removed first (Firecracker binds without unlinking).
   */
  static listen(path: string, backlog = LISTEN_BACKLOG_MAX): number {
    const invalid = unixSocketPathError(path);
    if (invalid) throw invalid;
    const sa = sockaddr(path)!;
    const fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw HostIoError.os(libc.errno());
    if (libc.bind(fd, sa.addr, sa.len) < 0 || libc.listen(fd, backlog) < 0) {
      const e = libc.errno();
      libc.close(fd);
      throw HostIoError.os(e);
    }
    return fd;
  }

  /** accept4 a pending connection, non-blocking: its fd, or -errno (-EAGAIN: none waiting). */
  accept(listenFd: number): number {
    const fd = libc.accept4(listenFd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd < 0 ? -libc.errno() : fd;
  }

  /**
   * Connects a new non-blocking socket to the listener at `path`: the fd, or -errno. A Unix
   * connect completes at once or fails (ENOENT: no socket file, ECONNREFUSED: nobody listens,
   * EAGAIN: its backlog is full); it never sleeps, unlike Firecracker's blocking
   * `UnixStream::connect`, which a listener with a full backlog would stall.
   */
  connect(path: string): number {
    const sa = sockaddr(path);
    if (!sa) return -ENAMETOOLONG;
    const fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -libc.errno();
    if (libc.connect(fd, sa.addr, sa.len) < 0) {
      const e = libc.errno();
      libc.close(fd);
      return -e;
    }
    return fd;
  }

  /** readv into `bufs`: bytes read (0 at end of stream), or -errno (-EAGAIN when nothing is queued). */
  read(fd: number, bufs: readonly Uint8Array[]): number {
    return this.io(libc.readv, fd, bufs);
  }

  /** writev from `bufs`: bytes written (possibly fewer), or -errno (-EAGAIN when the socket is full). */
  write(fd: number, bufs: readonly Uint8Array[]): number {
    return this.io(libc.writev, fd, bufs);
  }

  /** Copies up to `dst.length` queued bytes into `dst` without consuming them: the count, or -errno. */
  peek(fd: number, dst: Uint8Array): number {
    const n = Number(libc.recv(fd, dst, dst.length, MSG_PEEK));
    return n < 0 ? -libc.errno() : n;
  }

  close(fd: number): void {
    libc.close(fd);
  }

  private io(f: typeof libc.readv, fd: number, bufs: readonly Uint8Array[]): number {
    let n = 0;
    for (const b of bufs) {
      if (b.length === 0) continue;
      if (n === SOCKET_MAX_IOVECS) return -EINVAL;
      this.iov.set(n, b);
      n++;
    }
    if (n === 0) return 0;
    const r = Number(f(fd, this.iov.buffer, n));
    return r < 0 ? -libc.errno() : r;
  }
}
