/**
 * poll(2) over a set of fds with their own event masks (POLLIN, POLLOUT), for a device worker
 * whose fds change from one wait to the next: the vsock worker polls its listener, the host
 * connections still sending their CONNECT line, and each connection for reading and/or
 * writing as its state allows. `pollReadable` (eventfd.ts) serves workers that only ever wait
 * for input. The pollfd array is kept between waits and grows as needed, so a wait allocates
 * nothing.
 */
import * as libc from './libc.js';

export { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT } from './libc.js';

/** struct pollfd field offsets: int fd; short events; short revents. */
const POLLFD_FD = 0;
const POLLFD_EVENTS = 4;
const POLLFD_REVENTS = 6;

/** A reusable pollfd array: `clear`, `add` each fd, `wait`, then read `revents`. */
export class PollSet {
  private buf = Buffer.alloc(64 * libc.POLLFD_SIZE);
  private fds: number[] = [];

  /** Number of fds added since the last `clear`. */
  get size(): number {
    return this.fds.length;
  }

  /** Forgets every fd. */
  clear(): void {
    this.fds.length = 0;
  }

  /** Adds `fd` with the poll(2) events wanted (POLLIN | POLLOUT). */
  add(fd: number, events: number): void {
    const i = this.fds.length;
    if ((i + 1) * libc.POLLFD_SIZE > this.buf.length) {
      const bigger = Buffer.alloc(this.buf.length * 2);
      this.buf.copy(bigger);
      this.buf = bigger;
    }
    this.fds.push(fd);
    this.buf.writeInt32LE(fd, i * libc.POLLFD_SIZE + POLLFD_FD);
    this.buf.writeInt16LE(events, i * libc.POLLFD_SIZE + POLLFD_EVENTS);
    this.buf.writeInt16LE(0, i * libc.POLLFD_SIZE + POLLFD_REVENTS);
  }

  /**
   * Blocks until an fd is ready or `timeoutMs` passes (-1: no timeout). Returns how many fds
   * have events; 0 on timeout or when interrupted by a signal (EINTR).
   */
  wait(timeoutMs: number): number {
    const n = libc.poll(this.buf, this.fds.length, Math.round(timeoutMs));
    return n > 0 ? n : 0;
  }

  /** The fd at position `i`. */
  fd(i: number): number {
    return this.fds[i]!;
  }

  /** The events poll(2) reported for position `i` (POLLIN, POLLOUT, POLLERR, POLLHUP, POLLNVAL). */
  revents(i: number): number {
    return this.buf.readInt16LE(i * libc.POLLFD_SIZE + POLLFD_REVENTS) & 0xffff;
  }
}
