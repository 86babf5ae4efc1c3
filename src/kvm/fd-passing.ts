/**
 * File descriptors passed between processes over a Unix stream socket (unix(7), "Ancillary
 * messages": SCM_RIGHTS). The receiving process gets a new descriptor for the same open file.
 * Kindling uses it for two things: the vhost-user frontend (vhost-user-socket.ts) sends guest
 * RAM's memfd and the vrings' eventfds to a virtio-fs backend, and PUT /snapshot/load with `mem_backend.backend_type = "Uffd"`
 * hands the guest memory's userfaultfd to the page-fault handler process listening at
 * `backend_path` (firecracker src/vmm/src/persist.rs `guest_memory_from_uffd`, which calls
 * `UnixStream::send_with_fd`), and the example handler (examples/uffd/handler.ts) receives it.
 *
 * Both calls are blocking and for set-up only (one message per snapshot load), so they use
 * plain blocking sockets: a connect to a listener whose backlog is full waits, exactly as
 * Firecracker's `UnixStream::connect` does. The sender's connection stays open (returned):
 * Firecracker keeps its own for the life of the process.
 *
 * SAFETY: the msghdr, iovec and control buffers are Buffers that live across the sendmsg /
 * recvmsg call; their host addresses (libc.addressOf) go into the msghdr's u64 fields.
 */
import koffi from 'koffi';
import * as libc from './libc.js';
import { IOVEC_SIZE, iovec } from './tun-abi.js';
import {
  AF_UNIX, CMSG_DATA_OFFSET, CMSG_LEN, CMSG_SPACE, MSG_CMSG_CLOEXEC, MSG_CTRUNC, SCM_RIGHTS, SOCKADDR_UN_SIZE,
  SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET, SO_PEERCRED, SUN_PATH_OFFSET, UCRED_SIZE, cmsghdr, msghdr, ucred,
} from './socket-abi.js';
import { SyscallError } from '../errors.js';

const FD_SIZE = 4;
const EINTR = 4;
const ENAMETOOLONG = 36;
/** send(2) flag: EPIPE instead of SIGPIPE on a closed peer. */
const MSG_NOSIGNAL = 0x4000;

/** Throws SyscallError for `what` with the current errno. */
function fail(what: string): never {
  const e = libc.errno();
  throw new SyscallError(what, e, libc.errnoName(e));
}

/** A msghdr over one iovec (`data`) and an optional control buffer. */
function message(data: Uint8Array, control: Buffer | null): { msg: Buffer; iov: Buffer } {
  const iov = Buffer.alloc(IOVEC_SIZE);
  koffi.encode(iov, iovec, { iov_base: data.length ? libc.addressOf(data) : 0n, iov_len: data.length });
  const msg = Buffer.alloc(koffi.sizeof(msghdr));
  koffi.encode(msg, msghdr, {
    msg_name: 0n, msg_namelen: 0, msg_iov: libc.addressOf(iov), msg_iovlen: 1,
    msg_control: control ? libc.addressOf(control) : 0n, msg_controllen: control ? control.length : 0, msg_flags: 0,
  });
  return { msg, iov };
}

/**
 * Connects to the Unix stream socket at `socketPath`, sends `payload` with `fd` attached as
 * one SCM_RIGHTS control message, and returns the connected socket (blocking, close-on-exec)
 * for the caller to close: a peer may take the hang-up as the end of the conversation, so the
 * caller decides when that is. The descriptor travels with the first byte; a payload the
 * kernel takes only in part is finished with plain writes. Throws SyscallError whose
 * `syscall` names the path, e.g. `connect(/tmp/uffd.sock)` with ENOENT.
 */
export function sendWithFd(socketPath: string, payload: Uint8Array, fd: number): number {
  if (payload.length === 0) throw new RangeError('sendWithFd needs at least one byte of payload to carry the descriptor');
  const sock = connectUnix(socketPath);
  try {
    sendWithFds(sock, payload, [fd], socketPath);
    return sock;
  } catch (e) {
    libc.close(sock);
    throw e;
  }
}

/**
 * A blocking, close-on-exec Unix stream socket connected to `socketPath`, for the caller to
 * close. Throws SyscallError whose `syscall` names the path (`connect(/tmp/x.sock)`, ENOENT).
 */
export function connectUnix(socketPath: string): number {
  const path = Buffer.from(socketPath);
  if (path.length + 1 > SOCKADDR_UN_SIZE - SUN_PATH_OFFSET || path.includes(0)) {
    throw new SyscallError(`connect(${socketPath})`, ENAMETOOLONG, 'ENAMETOOLONG');
  }
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  addr.writeUInt16LE(AF_UNIX, 0);
  path.copy(addr, SUN_PATH_OFFSET);
  const sock = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) fail('socket(AF_UNIX)');
  if (libc.connect(sock, addr, SUN_PATH_OFFSET + path.length + 1) < 0) {
    const e = libc.errno();
    libc.close(sock);
    throw new SyscallError(`connect(${socketPath})`, e, libc.errnoName(e));
  }
  return sock;
}

/**
 * Sends all of `payload` on the connected socket `sock`, with `fds` (possibly none) attached
 * as one SCM_RIGHTS message to its first byte; the rest of a payload the kernel takes only in
 * part is finished with plain writes. `what` names the peer in errors.
 */
export function sendWithFds(sock: number, payload: Uint8Array, fds: readonly number[], what: string): void {
  let control: Buffer | null = null;
  if (fds.length > 0) {
    control = Buffer.alloc(CMSG_SPACE(FD_SIZE * fds.length));
    koffi.encode(control, cmsghdr, { cmsg_len: CMSG_LEN(FD_SIZE * fds.length), cmsg_level: SOL_SOCKET, cmsg_type: SCM_RIGHTS });
    fds.forEach((fd, i) => control!.writeInt32LE(fd, CMSG_DATA_OFFSET + FD_SIZE * i));
  }
  const { msg } = message(payload, control);
  let sent: number;
  // MSG_NOSIGNAL: a peer that hung up gives EPIPE here, not a SIGPIPE to the VMM.
  do sent = Number(libc.sendmsg(sock, msg, MSG_NOSIGNAL));
  while (sent < 0 && libc.errno() === EINTR);
  if (sent < 0) fail(`sendmsg(${what})`);
  while (sent < payload.length) {
    const n = Number(libc.write(sock, payload.subarray(sent), payload.length - sent));
    if (n < 0 && libc.errno() === EINTR) continue;
    if (n < 0) fail(`write(${what})`);
    sent += n;
  }
}

/**
 * One recvmsg on the connected socket `connFd`: up to `maxLen` bytes, and the descriptor an
 * SCM_RIGHTS message carried with them (opened close-on-exec), or null. `data` is empty at
 * end of stream. Throws SyscallError on failure (EAGAIN included, on a non-blocking socket),
 * and when the kernel dropped descriptors for want of control space (MSG_CTRUNC).
 */
export function recvWithFd(connFd: number, maxLen: number): { data: Uint8Array; fd: number | null } {
  const data = new Uint8Array(maxLen);
  // Room for one descriptor; a sender attaching more makes the kernel set MSG_CTRUNC.
  const control = Buffer.alloc(CMSG_SPACE(FD_SIZE));
  const { msg } = message(data, control);
  let n: number;
  do n = Number(libc.recvmsg(connFd, msg, MSG_CMSG_CLOEXEC));
  while (n < 0 && libc.errno() === EINTR);
  if (n < 0) fail('recvmsg');
  const hdr = koffi.decode(msg, msghdr) as { msg_controllen: number | bigint; msg_flags: number };
  let fd: number | null = null;
  if (Number(hdr.msg_controllen) >= CMSG_LEN(FD_SIZE)) {
    const c = koffi.decode(control, cmsghdr) as { cmsg_len: number | bigint; cmsg_level: number; cmsg_type: number };
    if (c.cmsg_level === SOL_SOCKET && c.cmsg_type === SCM_RIGHTS && Number(c.cmsg_len) >= CMSG_LEN(FD_SIZE)) {
      fd = control.readInt32LE(CMSG_DATA_OFFSET);
    }
  }
  if (hdr.msg_flags & MSG_CTRUNC) {
    if (fd !== null) libc.close(fd);
    throw new SyscallError('recvmsg (control data truncated: more than one descriptor sent)', 0, 'MSG_CTRUNC');
  }
  return { data: data.subarray(0, n), fd };
}

/** The pid of the process at the other end of the connected Unix socket `connFd` (SO_PEERCRED). */
export function peerPid(connFd: number): number {
  const buf = Buffer.alloc(UCRED_SIZE);
  const len = [UCRED_SIZE];
  if (libc.getsockopt(connFd, SOL_SOCKET, SO_PEERCRED, buf, len) < 0) fail('getsockopt(SO_PEERCRED)');
  return (koffi.decode(buf, ucred) as { pid: number }).pid;
}
