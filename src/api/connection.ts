/**
 * One API connection: micro_http's `ClientConnection` (micro_http src/server.rs) over a Node
 * socket. It feeds the request parser one emulated micro_http read at a time, keeps the
 * responses in request order (keep-alive always), and stops reading while the connection's
 * replies back up.
 *
 * Why the bounds: micro_http stops polling a connection for input as soon as it has output
 * pending (`ClientConnection::read` moves it to `AwaitingOutgoing` and `HttpServer::requests`
 * switches its epoll set to OUT only), so a Firecracker connection never holds more than one
 * 1024-byte read's worth of requests and their replies; a client that pipelines and never
 * reads just fills the kernel's socket buffers. Node reads eagerly and buffers every write, so
 * without bounds that client grows the process without limit (a pipelined `GET /vm/config`
 * loop reached ~1 GB RSS). Kindling reads on while both hold:
 *
 * - unsent reply bytes (`socket.writableLength`, what the kernel did not take) ≤
 *   `MAX_UNSENT_BYTES` = 64 KiB: above the largest ordinary reply (`GET /mmds` of a full
 *   default-size data store, 51200 bytes plus the head), so a pipelining client that does read
 *   is not stalled by one big reply, yet ten connections hold under 1 MiB of unsent replies;
 * - queued-but-unanswered requests < `MAX_QUEUED_REQUESTS` = 64: one micro_http read holds at
 *   most 56 requests (the shortest is `GET / HTTP/1.0\r\n\r\n`, 18 bytes), so this allows a
 *   read's worth of pipelining and more, while one connection cannot queue unbounded work
 *   ahead of the others in the server's single request FIFO. The check runs between reads, so
 *   a connection holds at most 64 + 56 requests.
 *
 * While over a bound the socket is paused (the kernel then pushes back on the client) and the
 * unparsed rest of the current chunk is held; a 'drain' or an answered request re-checks.
 */
import type { Socket } from 'node:net';
import { HttpRequest, HttpRequestParser, ParseEvent } from './http-parser.js';
import { continueResponse, parseErrorResponse } from './http-response.js';

/** Unsent reply bytes above which a connection is not read (see the module comment). */
export const MAX_UNSENT_BYTES = 64 * 1024;
/** Unanswered requests at which a connection is not read (see the module comment). */
export const MAX_QUEUED_REQUESTS = 64;

/** A reserved response position; `bytes` is filled when the response is ready. */
export interface ResponseSlot {
  bytes: Buffer | null;
}

/** Why and how far a connection is backed up when it stops being read. */
export interface PauseState {
  /** 'output': unsent replies above MAX_UNSENT_BYTES; 'requests': MAX_QUEUED_REQUESTS unanswered. */
  reason: 'output' | 'requests';
  unsentBytes: number;
  queuedRequests: number;
}

/** What the server learns from a connection. */
export interface ConnectionEvents {
  /** A complete request; its response goes into `slot`, then `conn.flush()`. */
  request(conn: ApiConnection, slot: ResponseSlot, req: HttpRequest): void;
  /** The connection is finished (answered everything after the peer closed, or closed). */
  done(conn: ApiConnection): void;
  /** The connection stopped being read, or still is but for another reason (tests). */
  paused?(state: PauseState): void;
}

/** One client connection of the API socket. */
export class ApiConnection {
  private readonly parser: HttpRequestParser;
  private readonly slots: ResponseSlot[] = [];
  /** Received chunks not parsed yet (only while over a bound), and the offset in the first. */
  private readonly inbox: Buffer[] = [];
  private inboxOff = 0;
  private peerEnded = false;
  private reading = true;
  /** Why the connection is not read, as last reported to `events.paused`. */
  private pausedFor: PauseState['reason'] | null = null;
  private ending = false;
  private finished = false;

  constructor(readonly socket: Socket, payloadMax: number, private readonly events: ConnectionEvents) {
    this.parser = new HttpRequestParser(payloadMax);
    socket.on('data', (chunk: Buffer) => {
      this.inbox.push(chunk);
      this.service();
    });
    socket.on('drain', () => this.service());
    socket.on('end', () => {
      // The peer half-closed: answer what was received, then close.
      this.peerEnded = true;
      this.service();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.finish());
  }

  /** Closes the connection now (server shutdown). */
  destroy(): void {
    this.socket.destroy();
  }

  /** Writes every ready response at the head of the queue, then reads on if under the bounds. */
  flush(): void {
    this.service();
  }

  private overBound(): boolean {
    return this.slots.length >= MAX_QUEUED_REQUESTS || this.socket.writableLength > MAX_UNSENT_BYTES;
  }

  private service(): void {
    if (this.finished) return;
    for (;;) {
      this.writeReady();
      if (this.inbox.length === 0 || this.overBound()) break;
      this.parseStep();
    }
    const stop = this.overBound();
    if (stop) {
      if (this.reading) this.socket.pause();
      this.reading = false;
      const reason = this.socket.writableLength > MAX_UNSENT_BYTES ? 'output' : 'requests';
      if (reason !== this.pausedFor) {
        this.pausedFor = reason;
        this.events.paused?.({ reason, unsentBytes: this.socket.writableLength, queuedRequests: this.slots.length });
      }
    } else if (!this.reading) {
      this.reading = true;
      this.pausedFor = null;
      this.socket.resume();
    }
    if (this.peerEnded && this.inbox.length === 0 && this.slots.length === 0) {
      if (!this.ending) {
        this.ending = true;
        this.socket.end(() => this.finish());
      }
      if (this.socket.writableLength === 0) this.finish();
    }
  }

  private writeReady(): void {
    while (this.slots.length && this.slots[0]!.bytes) {
      const s = this.slots.shift()!;
      if (!this.socket.destroyed) this.socket.write(s.bytes!);
    }
  }

  /** Parses one emulated read from the inbox and queues what it produced. */
  private parseStep(): void {
    const chunk = this.inbox[0]!;
    const out: ParseEvent[] = [];
    this.inboxOff = this.parser.step(chunk, this.inboxOff, out);
    if (this.inboxOff >= chunk.length) {
      this.inbox.shift();
      this.inboxOff = 0;
    }
    for (const ev of out) {
      if (ev.kind === 'continue') this.slots.push({ bytes: continueResponse(ev.version) });
      else if (ev.kind === 'error') this.slots.push({ bytes: parseErrorResponse(ev.message) });
      else {
        const slot: ResponseSlot = { bytes: null };
        this.slots.push(slot);
        this.events.request(this, slot, ev.request);
      }
    }
  }

  /**
   * The connection no longer counts against MAX_CONNECTIONS once the peer closed and every
   * reply is in the kernel (nothing unsent in Node), as micro_http drops a connection when
   * `ClientConnection::is_done()` (closed, no pending write, nothing in flight) — not only when
   * the socket's 'close' event comes, a loop iteration or more later.
   */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.inbox.length = 0;
    this.events.done(this);
  }
}
