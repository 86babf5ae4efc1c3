/**
 * Raw-socket helpers for the API resource and abuse tests: the process's open fd count, and
 * clients that wait on events (reply bytes, 'close'), never on timers.
 */
import { readdirSync } from 'node:fs';
import { Socket, connect } from 'node:net';
import { RawResponse, splitResponses } from './api-harness.js';

/** Entries of /proc/self/fd: every fd this process holds (sockets of both ends included). */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * A client connection that collects every byte it receives, so a test can wait for the n-th
 * complete response (or for 'close') instead of sleeping.
 */
export class RawClient {
  readonly socket: Socket;
  private received: Buffer[] = [];
  private waiters: (() => void)[] = [];
  closed = false;
  error: string | undefined;

  constructor(path: string) {
    this.socket = connect(path);
    this.socket.on('data', (d: Buffer) => {
      this.received.push(d);
      this.wake();
    });
    this.socket.on('error', (e: NodeJS.ErrnoException) => (this.error = e.code ?? e.message));
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Everything received so far. */
  get bytes(): Buffer {
    if (this.received.length > 1) this.received = [Buffer.concat(this.received)];
    return this.received[0] ?? Buffer.alloc(0);
  }

  /** The complete responses received so far. */
  responses(): RawResponse[] {
    return splitResponses(this.bytes);
  }

  /** Resolves once `n` complete responses are held (see `take`), or the connection closed. */
  async waitResponses(n: number): Promise<RawResponse[]> {
    for (;;) {
      const rs = this.responses();
      if (rs.length >= n || this.closed) return rs;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Resolves once the connection closed. */
  async waitClose(): Promise<void> {
    while (!this.closed) await new Promise<void>((r) => this.waiters.push(r));
  }

  /** Writes and resolves when the bytes are handed to the kernel. */
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => this.socket.write(data, () => resolve()));
  }

  /** Removes and returns the complete responses held (keeps memory flat on long runs). */
  take(): RawResponse[] {
    const rs = this.responses();
    const used = rs.reduce((n, r) => n + r.raw.length, 0);
    this.received = [this.bytes.subarray(used)];
    return rs;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
