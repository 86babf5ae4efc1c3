/**
 * Scatter-gather over a descriptor chain's buffers as views of guest RAM (Firecracker
 * devices/virtio/iovec.rs `IoVecBuffer` / `IoVecBufferMut`). A device hands these views to a
 * host backend (readv/writev on their host addresses) so data never copies through JS arrays,
 * and reads or patches a few header bytes in place with `iovRead` / `iovWrite`.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { DescriptorChain } from './queue.js';

/**
 * Views of every buffer of `chain`, or undefined when a descriptor has the wrong direction
 * (`writable`: device-writable buffers wanted, as on a receive queue; otherwise read-only, as
 * on a transmit queue) or lies outside guest RAM. `Queue.pop()` already checked the buffers
 * against RAM; the view lookup checks again rather than trust that.
 */
export function chainViews(mem: GuestMemory, chain: DescriptorChain, writable: boolean): Uint8Array[] | undefined {
  const views: Uint8Array[] = [];
  for (const d of chain.descriptors) {
    if (d.writable !== writable) return undefined;
    const v = mem.slice(d.addr, d.len);
    if (!(v instanceof Uint8Array)) return undefined;
    views.push(v);
  }
  return views;
}

/** Total bytes of `bufs`. */
export function iovLength(bufs: readonly Uint8Array[]): number {
  let n = 0;
  for (const b of bufs) n += b.length;
  return n;
}

/** Copies between `data` and the bytes at `offset` of the concatenation of `bufs`; the count copied. */
function iovCopy(bufs: readonly Uint8Array[], offset: number, data: Uint8Array, intoBufs: boolean): number {
  let skip = offset;
  let done = 0;
  for (const b of bufs) {
    if (done === data.length) break;
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    const n = Math.min(b.length - skip, data.length - done);
    if (intoBufs) b.set(data.subarray(done, done + n), skip);
    else data.set(b.subarray(skip, skip + n), done);
    done += n;
    skip = 0;
  }
  return done;
}

/**
 * Copies into `dst` the bytes at `offset` of the concatenation of `bufs`; returns the count
 * copied (short when the buffers end first).
 */
export function iovRead(bufs: readonly Uint8Array[], offset: number, dst: Uint8Array): number {
  return iovCopy(bufs, offset, dst, false);
}

/**
 * Copies `src` to `offset` of the concatenation of `bufs`; returns the count written (short
 * when the buffers end first).
 */
export function iovWrite(bufs: readonly Uint8Array[], offset: number, src: Uint8Array): number {
  return iovCopy(bufs, offset, src, true);
}
