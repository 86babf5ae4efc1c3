/**
 * The receive chains a net device holds between popping them from the RX queue and filling
 * them with a frame (Firecracker src/vmm/src/devices/virtio/net/device.rs `RxBuffers`).
 *
 * The device pops every chain the driver posts (validated: device-writable, inside RAM, at
 * least the minimum length) and keeps them here in ring order, so the capacity check before a
 * TAP read ("at least MAX_BUFFER_SIZE bytes held") costs nothing and a frame never waits for
 * chains to be re-read. A frame fills the leading chains: all of them with
 * VIRTIO_NET_F_MRG_RXBUF, the first one without (virtio 1.1 §5.1.6.3.1, §5.1.6.4).
 */
import { VIRTIO_NET_HDR_NUM_BUFFERS } from '../constants.js';
import { iovWrite } from '../iovec.js';
import { MAX_BUFFER_SIZE, NET_QUEUE_SIZE } from './constants.js';

/** A validated receive chain: its head and the views of its device-writable buffers. */
export interface RxChain {
  readonly head: number;
  readonly bufs: readonly Uint8Array[];
  /** Sum of the buffer lengths. */
  readonly len: number;
}

/** A used-ring element to publish: chain head and the bytes written into it. */
export interface RxUsed {
  readonly head: number;
  readonly len: number;
}

/**
 * Descriptors held at most: Firecracker's RX iovec deque holds NET_QUEUE_SIZE entries
 * (IoVecBufferMut<NET_QUEUE_MAX_SIZE>); a chain that does not fit goes back to the ring.
 */
export const RX_MAX_HELD_DESCRIPTORS = NET_QUEUE_SIZE;

/**
 * Taken chains are dropped from the front by advancing `first`, not by splicing: a TAP frame is
 * read on every wake-up, and moving the whole array down per frame showed in the net actor's
 * profile. The array is compacted once the dead front outweighs the live part.
 */
const COMPACT_MIN = 64;

/** The held receive chains, oldest first. */
export class RxBuffers {
  /** chains[first..] are held; chains[..first) were taken. */
  private readonly chains: RxChain[] = [];
  private first = 0;
  private bytes = 0;
  private descriptors = 0;
  private readonly numBuffers = new Uint8Array(Uint16Array.BYTES_PER_ELEMENT);
  private readonly numBuffersView = new DataView(this.numBuffers.buffer);
  /** readViews' result, reused (see there). */
  private readonly views: Uint8Array[] = [];

  /** Bytes of guest buffer space held. */
  get capacity(): number {
    return this.bytes;
  }

  /** Chains held. */
  get length(): number {
    return this.chains.length - this.first;
  }

  /** Holds `chain`; false (nothing held) when its descriptors would pass RX_MAX_HELD_DESCRIPTORS. */
  push(chain: RxChain): boolean {
    if (this.descriptors + chain.bufs.length > RX_MAX_HELD_DESCRIPTORS) return false;
    this.chains.push(chain);
    this.bytes += chain.len;
    this.descriptors += chain.bufs.length;
    return true;
  }

  /**
   * The buffers one TAP read may fill: with `mergeable`, the leading chains up to
   * MAX_BUFFER_SIZE bytes (no frame is longer, so later chains would stay untouched);
   * otherwise the first chain alone. Empty when nothing is held. The array is reused: it is
   * valid until the next call, for the read it is made for.
   */
  readViews(mergeable: boolean): Uint8Array[] {
    const views = this.views;
    views.length = 0;
    let total = 0;
    const chains = this.chains;
    for (let i = this.first; i < chains.length; i++) {
      const c = chains[i]!;
      for (const b of c.bufs) views.push(b);
      total += c.len;
      if (!mergeable || total >= MAX_BUFFER_SIZE) break;
    }
    return views;
  }

  /**
   * A frame of `len` bytes was read into `readViews()`: spreads it over the leading chains
   * (each filled before the next; at least one chain, even for 0 bytes), writes their count
   * into the frame header's `num_buffers` (1 without MRG_RXBUF, as §5.1.6.4 requires), drops
   * them and returns their used elements. `len` must not exceed what `readViews` offered.
   */
  take(len: number): RxUsed[] {
    const used: RxUsed[] = [];
    const chains = this.chains;
    let left = len;
    for (let i = this.first; i < chains.length; i++) {
      const c = chains[i]!;
      const n = Math.min(left, c.len);
      used.push({ head: c.head, len: n });
      this.bytes -= c.len;
      this.descriptors -= c.bufs.length;
      left -= n;
      if (left === 0) break;
    }
    if (used.length === 0) return used;
    this.numBuffersView.setUint16(0, used.length, true);
    iovWrite(chains[this.first]!.bufs, VIRTIO_NET_HDR_NUM_BUFFERS, this.numBuffers);
    this.first += used.length;
    if (this.first === chains.length) {
      chains.length = 0;
      this.first = 0;
    } else if (this.first >= COMPACT_MIN && this.first * 2 >= chains.length) {
      chains.splice(0, this.first);
      this.first = 0;
    }
    return used;
  }

  /** Forgets every chain (device reset). */
  clear(): void {
    this.chains.length = 0;
    this.first = 0;
    this.bytes = 0;
    this.descriptors = 0;
  }
}
