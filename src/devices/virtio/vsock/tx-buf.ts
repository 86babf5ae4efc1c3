/**
 * A connection's TX buffer (Firecracker devices/virtio/vsock/csm/txbuf.rs): guest data the
 * host socket could not take yet. The device must consume a TX chain when it sees it (the
 * driver owns the ring), so bytes a full socket refuses are copied here and flushed when poll
 * reports the socket writable. This is the one copy on the guest → host path, and only under
 * back-pressure. The capacity equals the `buf_alloc` the device advertises (CONN_TX_BUF_SIZE),
 * so only a guest that ignores its credit can overflow it; `push` then refuses the whole write.
 *
 * A ring over one lazily allocated array: head and tail are free-running counters, as in
 * Firecracker, so `head - tail` is the fill level.
 */
import { CONN_TX_BUF_SIZE } from './constants.js';
import type { VsockHostIo } from './host.js';

export class TxBuf {
  private data: Uint8Array | undefined;
  private head = 0;
  private tail = 0;

  constructor(readonly capacity = CONN_TX_BUF_SIZE) {}

  /** Bytes waiting. */
  get length(): number {
    return this.head - this.tail;
  }

  get isEmpty(): boolean {
    return this.head === this.tail;
  }

  /** Appends all of `bufs`, or nothing when they do not fit (returns false: the guest overran its credit). */
  push(bufs: readonly Uint8Array[]): boolean {
    let total = 0;
    for (const b of bufs) total += b.length;
    if (this.length + total > this.capacity) return false;
    const data = (this.data ??= new Uint8Array(this.capacity));
    for (const b of bufs) {
      const at = this.head % this.capacity;
      const first = Math.min(b.length, this.capacity - at);
      data.set(b.subarray(0, first), at);
      if (first < b.length) data.set(b.subarray(first), 0);
      this.head += b.length;
    }
    return true;
  }

  /**
   * Writes as much as the socket takes (one writev of the ring's one or two segments): the
   * bytes written, or -errno when the write failed with nothing written.
   */
  flush(io: VsockHostIo, fd: number): number {
    if (this.isEmpty || !this.data) return 0;
    const at = this.tail % this.capacity;
    const first = Math.min(this.length, this.capacity - at);
    const segs = [this.data.subarray(at, at + first)];
    if (first < this.length) segs.push(this.data.subarray(0, this.length - first));
    const n = io.write(fd, segs);
    if (n > 0) this.tail += n;
    if (this.isEmpty) {
      // Keep the counters small; the array stays for the next burst.
      this.head = 0;
      this.tail = 0;
    }
    return n;
  }
}
