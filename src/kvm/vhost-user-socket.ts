/**
 * A vhost-user frontend's connection to its backend (QEMU docs/interop/vhost-user.rst,
 * "Communication"): a Unix stream socket, messages with file descriptors attached as
 * SCM_RIGHTS (fd-passing.ts). It is the channel src/devices/virtio/fs/frontend.ts talks
 * through (`VhostUserChannel`, matched structurally: kvm sits below devices).
 *
 * The socket is blocking for sends (a few small messages at set-up) and waits for replies
 * with poll(2) and a timeout, so a peer that is not a vhost-user backend — a socket that never
 * answers — fails InstanceStart after `timeoutMs` instead of hanging the VMM. Read while set up,
 * the same fd is later polled by the device worker, where a hang-up means the backend died.
 */
import { VhostUserError } from '../errors.js';
import * as libc from './libc.js';
import { connectUnix, sendWithFds } from './fd-passing.js';

/** Largest chunk one recv takes (replies are at most a header and a few bytes). */
const RECV_CHUNK = 4096;

export class VhostUserSocket {
  private readonly pollFd = Buffer.alloc(libc.POLLFD_SIZE);

  private constructor(readonly fd: number, private readonly path: string) {}

  /** Connects to the backend listening at `path`; VHOST_USER_BACKEND with the OS error when it cannot. */
  static connect(path: string): VhostUserSocket {
    try {
      return new VhostUserSocket(connectUnix(path), path);
    } catch (e) {
      throw new VhostUserError('VHOST_USER_BACKEND', `cannot connect to the vhost-user socket ${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** A socket already connected (a worker given the fd main connected). */
  static adopt(fd: number, path: string): VhostUserSocket {
    return new VhostUserSocket(fd, path);
  }

  send(message: Uint8Array, fds: readonly number[]): void {
    try {
      sendWithFds(this.fd, message, fds, this.path);
    } catch (e) {
      throw new VhostUserError('VHOST_USER_BACKEND', `cannot send to the vhost-user backend at ${this.path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Waits up to `timeoutMs` for bytes; empty when the backend hung up. */
  recv(timeoutMs: number): Uint8Array {
    this.pollFd.writeInt32LE(this.fd, 0);
    this.pollFd.writeInt16LE(libc.POLLIN, 4);
    this.pollFd.writeInt16LE(0, 6);
    let n: number;
    do n = libc.poll(this.pollFd, 1, timeoutMs);
    while (n < 0 && libc.errno() === libc.EINTR);
    if (n === 0) {
      throw new VhostUserError('VHOST_USER_BACKEND', `the vhost-user backend at ${this.path} did not answer within ${timeoutMs} ms (is it a vhost-user socket?)`);
    }
    const buf = Buffer.alloc(RECV_CHUNK);
    let got: number;
    do got = Number(libc.read(this.fd, buf, buf.length));
    while (got < 0 && libc.errno() === libc.EINTR);
    if (got < 0) {
      const e = libc.errno();
      // ECONNRESET: the backend died with bytes unread; a hang-up like any other.
      if (libc.errnoName(e) === 'ECONNRESET') return new Uint8Array(0);
      throw new VhostUserError('VHOST_USER_BACKEND', `reading from the vhost-user backend at ${this.path} failed: ${libc.errnoName(e)}`);
    }
    return new Uint8Array(buf.subarray(0, got));
  }

  close(): void {
    libc.close(this.fd);
  }
}
