/**
 * eventfd(2) wrappers: the doorbells between KVM and device actors (ioeventfd: guest queue
 * notify → device worker; irqfd: device worker → guest interrupt) and the control doorbell
 * that wakes a device worker blocked in poll().
 */
import * as libc from './libc.js';

/** An 8-byte eventfd counter; non-blocking, close-on-exec. */
export class EventFd {
  readonly fd: number;
  private readonly buf = Buffer.alloc(8);
  /** The 1 `signal` writes, encoded once (`buf` is overwritten by `drain`). */
  private static readonly ONE = (() => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(1n, 0);
    return b;
  })();

  constructor(fd?: number) {
    this.fd = fd ?? libc.check('eventfd', libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK));
  }

  /** Adds 1 to the counter (wakes pollers). EAGAIN (counter saturated) is ignored. */
  signal(): void {
    libc.write(this.fd, EventFd.ONE, 8);
  }

  /** Reads and clears the counter; 0 when it was already 0. */
  drain(): bigint {
    const n = libc.read(this.fd, this.buf, 8);
    return n === 8 ? this.buf.readBigUInt64LE(0) : 0n;
  }

  close(): void {
    libc.close(this.fd);
  }
}

/** Most fds one pollReadable call takes without allocating (a device loop polls 2–5). */
const POLL_SCRATCH_FDS = 16;
// One scratch pollfd array per thread (module state is per isolate): a device loop polls on
// every wake-up, and a fresh zero-filled Buffer each time showed in its profile.
const pollScratch = Buffer.alloc(POLL_SCRATCH_FDS * libc.POLLFD_SIZE);

/**
 * Blocks the calling thread until one of `fds` is readable or `timeoutMs` passes (-1: no
 * timeout). Returns the readable subset. Meant for device worker threads, never for main.
 */
export function pollReadable(fds: readonly number[], timeoutMs: number): number[] {
  const arr = fds.length <= POLL_SCRATCH_FDS ? pollScratch : Buffer.alloc(fds.length * libc.POLLFD_SIZE);
  fds.forEach((fd, i) => {
    arr.writeInt32LE(fd, i * libc.POLLFD_SIZE);
    arr.writeInt16LE(libc.POLLIN, i * libc.POLLFD_SIZE + 4);
    arr.writeInt16LE(0, i * libc.POLLFD_SIZE + 6); // revents of an earlier call
  });
  const n = libc.poll(arr, fds.length, Math.round(timeoutMs));
  if (n <= 0) return [];
  return fds.filter((_, i) => (arr.readInt16LE(i * libc.POLLFD_SIZE + 6) & libc.POLLIN) !== 0);
}
