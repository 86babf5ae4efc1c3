/**
 * The host side's front door: the listening socket on `uds_path` and the accepted connections
 * that have not yet sent their `CONNECT <port>\n` line (Firecracker devices/virtio/vsock/unix/
 * muxer.rs, `EpollListener::HostSock` and `LocalStream`). A complete, valid line turns the
 * stream into a host-initiated connection (`onConnect`); anything else closes it.
 *
 * Host clients are as untrusted as the guest. Where Firecracker accepts every client and waits
 * for its line forever, this listener
 * - holds at most MAX_PENDING_HOST_CONNECTIONS streams without a line; while full it stops
 *   polling the listening socket, so further clients wait in the kernel's backlog (bounded by
 *   somaxconn) instead of costing fds;
 * - closes a stream whose line is not complete within HOST_CONNECT_TIMEOUT_MS;
 * - reads the line in pieces as it arrives (Firecracker's read of the first ten bytes fails
 *   on a client that sends fewer at first), consuming only the line's bytes: the client's
 *   data behind it stays queued for the connection;
 * - takes at most ACCEPTS_PER_WAKE clients per wake-up, and after accept fails for lack of
 *   fds or memory rests for ACCEPT_BACKOFF_MS rather than spin on a listener that stays
 *   readable;
 * - accepts and closes at once while MAX_CONNECTIONS are open, as Firecracker does.
 * Each outcome is counted (metrics.ts).
 */
import {
  ACCEPT_BACKOFF_MS, ACCEPTS_PER_WAKE, CONNECT_LINE_MAX, CONNECT_LINE_MIN, HOST_CONNECT_TIMEOUT_MS, MAX_PENDING_HOST_CONNECTIONS,
} from './constants.js';
import type { ConnContext } from './connection.js';
import { EAGAIN, EMFILE, ENFILE, ENOBUFS, ENOMEM, POLL_IN, type PollSink } from './host.js';

/*
 * The connect line (Firecracker docs/vsock.md, "Host-Initiated Connections"): a client connects
 * to `uds_path` and sends `CONNECT <port>\n`, then the stream is the connection. Parsed as
 * Firecracker's `read_local_stream_port` does (devices/virtio/vsock/unix/muxer.rs):
 *
 * - the line is at least CONNECT_LINE_MIN (10) bytes: a newline among the first ten is part of
 *   it, the first newline at or after the tenth byte ends it; with no newline the line is the
 *   first CONNECT_LINE_MAX (32) bytes;
 * - it must be UTF-8; split on whitespace, the first word is `connect` in any case and the
 *   second a u32 in Rust's `u32::from_str` syntax (decimal digits, an optional leading `+`);
 *   anything after the second word is ignored.
 *
 * Nothing after the line is read: bytes the client sent behind it are the connection's first
 * data. `lineEnd` finds where the line ends in what has arrived so far, so the reader can take
 * exactly the line off the socket (the rest stays queued for the connection).
 */
const NEWLINE = 0x0a;
/** Largest u32. */
const U32_MAX = 2 ** 32 - 1;
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * How many bytes of `buf` (the first bytes the client sent) form the connect line: the count,
 * or 0 when the line is not complete yet (`buf` shorter than the line can be).
 */
export function lineEnd(buf: Uint8Array): number {
  const n = Math.min(buf.length, CONNECT_LINE_MAX);
  for (let i = CONNECT_LINE_MIN - 1; i < n; i++) if (buf[i] === NEWLINE) return i + 1;
  return n === CONNECT_LINE_MAX ? CONNECT_LINE_MAX : 0;
}

/** The port a complete connect line asks for, or null when the line is not a valid command. */
export function parseConnectLine(line: Uint8Array): number | null {
  if (line.length < CONNECT_LINE_MIN || line.length > CONNECT_LINE_MAX) return null;
  let text: string;
  try {
    text = decoder.decode(line);
  } catch {
    return null; // not UTF-8
  }
  // Rust's split_whitespace: Unicode White_Space, as JS \s (which adds only U+FEFF).
  const words = text.split(/\s+/).filter((w) => w.length > 0);
  if (words.length < 2 || words[0]!.toLowerCase() !== 'connect') return null;
  const m = /^\+?([0-9]+)$/.exec(words[1]!);
  if (!m) return null;
  const port = Number(m[1]);
  return port <= U32_MAX ? port : null;
}

/** An accepted stream reading its connect line. */
interface PendingStream {
  readonly deadline: number;
  /** The line so far (bytes already taken off the socket). */
  readonly line: Uint8Array;
  len: number;
}

export class HostListener {
  private readonly pending = new Map<number, PendingStream>();
  /** The listener is not polled before this time (after accept ran out of resources). */
  private restUntil = 0;

  constructor(
    private readonly ctx: ConnContext,
    /** The listening socket on uds_path (bound by the actor's owner). */
    readonly listenFd: number,
    /** A valid line asked for `port`: make the connection; false when it could not be made (the fd is then closed here). */
    private readonly onConnect: (fd: number, port: number) => boolean,
    /** MAX_CONNECTIONS are open: new clients are accepted and closed at once. */
    private readonly full: () => boolean,
  ) {}

  /** Streams still sending their line. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Whether `fd` is the listener or one of its pending streams. */
  owns(fd: number): boolean {
    return fd === this.listenFd || this.pending.has(fd);
  }

  /** The fds to poll for input. */
  collectPoll(add: PollSink): void {
    if (this.pending.size < MAX_PENDING_HOST_CONNECTIONS && this.ctx.now() >= this.restUntil) add(this.listenFd, POLL_IN);
    for (const fd of this.pending.keys()) add(fd, POLL_IN);
  }

  /** poll() reported `fd` (one this listener owns) ready. */
  onEvent(fd: number): void {
    if (fd === this.listenFd) this.acceptSome();
    else this.readLine(fd);
  }

  /** The earliest time something here is due (a line deadline, the end of a rest), if any. */
  nextDeadline(): number | undefined {
    let next = this.restUntil > this.ctx.now() ? this.restUntil : undefined;
    for (const p of this.pending.values()) if (next === undefined || p.deadline < next) next = p.deadline;
    return next;
  }

  /** Closes the streams whose line is overdue. */
  sweep(): void {
    const now = this.ctx.now();
    for (const [fd, p] of this.pending) {
      if (p.deadline > now) continue;
      this.ctx.metrics.inc('host_connects_timed_out');
      this.drop(fd);
    }
  }

  /** Closes every pending stream (the listener itself belongs to whoever bound it). */
  close(): void {
    for (const fd of [...this.pending.keys()]) this.drop(fd);
  }

  private acceptSome(): void {
    const m = this.ctx.metrics;
    for (let i = 0; i < ACCEPTS_PER_WAKE && this.pending.size < MAX_PENDING_HOST_CONNECTIONS; i++) {
      const fd = this.ctx.io.accept(this.listenFd);
      if (fd === -EAGAIN) return;
      if (fd < 0) {
        m.inc('accept_fails');
        if (fd === -EMFILE || fd === -ENFILE || fd === -ENOBUFS || fd === -ENOMEM) {
          this.restUntil = this.ctx.now() + ACCEPT_BACKOFF_MS;
          return;
        }
        continue; // e.g. ECONNABORTED: that client gave up; take the next
      }
      m.inc('host_connects_accepted');
      if (this.full()) {
        m.inc('connection_limit_refusals');
        this.ctx.io.close(fd);
        continue;
      }
      this.pending.set(fd, { deadline: this.ctx.now() + HOST_CONNECT_TIMEOUT_MS, line: new Uint8Array(CONNECT_LINE_MAX), len: 0 });
    }
  }

  /** Takes what arrived of `fd`'s line; on a complete line, connects or closes. */
  private readLine(fd: number): void {
    const p = this.pending.get(fd);
    if (!p) return;
    const io = this.ctx.io;
    const n = io.peek(fd, p.line.subarray(p.len));
    if (n === -EAGAIN) return;
    if (n <= 0) return this.invalid(fd); // end of stream or an error before a line
    const total = p.len + n;
    const end = lineEnd(p.line.subarray(0, total));
    // Take off the socket only bytes of the line: all that came when it is not complete yet.
    const take = (end || total) - p.len;
    if (io.read(fd, [p.line.subarray(p.len, p.len + take)]) !== take) return this.invalid(fd);
    p.len += take;
    if (!end) return;
    const port = parseConnectLine(p.line.subarray(0, end));
    if (port === null) return this.invalid(fd);
    this.pending.delete(fd);
    if (!this.onConnect(fd, port)) io.close(fd);
  }

  private invalid(fd: number): void {
    this.ctx.metrics.inc('host_connects_invalid');
    this.drop(fd);
  }

  private drop(fd: number): void {
    this.pending.delete(fd);
    this.ctx.io.close(fd);
  }
}
