/**
 * What the vsock model needs of the host, injected so the model stays pure (no koffi, no
 * threads: docs/design.md, Layers). The device actor passes src/kvm/unix-socket.ts's
 * `UnixSocketIo`, which does each call as one non-blocking syscall; tests pass the same class
 * over real sockets. File descriptors are plain numbers the model only hands back.
 *
 * Every call returns a count or fd, or -errno; none blocks or throws for a socket error.
 */
export interface VsockHostIo {
  /** Accepts a connection waiting on `listenFd`: its fd, or -errno (-EAGAIN: none). */
  accept(listenFd: number): number;
  /** Connects to the Unix socket at `path`: the fd, or -errno (refused, absent, backlog full). */
  connect(path: string): number;
  /** Reads into `bufs` (guest RAM views): bytes read, 0 at end of stream, or -errno (-EAGAIN: none queued). */
  read(fd: number, bufs: readonly Uint8Array[]): number;
  /** Writes from `bufs` (guest RAM views, or a connection's TX buffer): bytes written, or -errno. */
  write(fd: number, bufs: readonly Uint8Array[]): number;
  /** Copies queued bytes into `dst` without consuming them: the count, 0 at end of stream, or -errno. */
  peek(fd: number, dst: Uint8Array): number;
  close(fd: number): void;
}

/**
 * poll(2) event bits, with Linux's values (asm-generic/poll.h) so the actor passes them through
 * unchanged: the model says which fds it wants polled for what, and hears back what happened.
 */
export const POLL_IN = 0x1;
export const POLL_OUT = 0x4;
export const POLL_ERR = 0x8;
export const POLL_HUP = 0x10;
export const POLL_NVAL = 0x20;

/** Called once per fd the model wants polled, with POLL_IN and/or POLL_OUT. */
export type PollSink = (fd: number, events: number) => void;

/** Linux errno values the model tells apart (node:os would do, but stays out of the model's imports). */
export const EAGAIN = 11;
/** accept(2) failures that mean "out of resources": the listener backs off instead of retrying at once. */
export const EMFILE = 24;
export const ENFILE = 23;
export const ENOBUFS = 105;
export const ENOMEM = 12;
