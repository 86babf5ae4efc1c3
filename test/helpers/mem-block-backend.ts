/**
 * An in-memory BlockBackend for device tests and benchmarks: the disk is a byte array,
 * answers come synchronously or (with `async: true`) as Promises, and faults can be injected
 * (`failNext`, `shortNext`) to exercise the IOERR paths.
 */
import { VIRTIO_BLK_ID_BYTES } from '../../src/devices/virtio/constants.js';
import type { BlockBackend } from '../../src/devices/virtio/block/device.js';

/** Options for MemBlockBackend. */
export interface MemBlockBackendOptions {
  /** Answer every call with a Promise (resolved on a later microtask). */
  async?: boolean;
  /** The GET_ID bytes (default "kindling-test-disk"). */
  id?: string;
}

/** A disk held in memory. */
export class MemBlockBackend implements BlockBackend {
  /** The disk contents. */
  readonly disk: Uint8Array;
  /** Calls to flush so far. */
  flushes = 0;
  /** Make the next read/write/flush throw (or reject). */
  failNext = false;
  /** The segment count of every read/write so far (one preadv/pwritev each in the file backend). */
  readonly segmentCounts: number[] = [];
  /** Make the next read/write transfer only this many bytes. */
  shortNext: number | undefined;
  private readonly async: boolean;
  private readonly id: Uint8Array;

  constructor(size: number, options: MemBlockBackendOptions = {}) {
    this.disk = new Uint8Array(size);
    this.async = options.async ?? false;
    this.id = new TextEncoder().encode((options.id ?? 'kindling-test-disk').slice(0, VIRTIO_BLK_ID_BYTES));
  }

  private answer<T>(f: () => T): T | Promise<T> {
    if (this.failNext) {
      this.failNext = false;
      const e = new Error('injected backend failure');
      if (this.async) return Promise.reject(e);
      throw e;
    }
    return this.async ? Promise.resolve().then(f) : f();
  }

  private count(want: number, offset: number): number {
    const n = Math.min(want, Math.max(0, this.disk.length - offset), this.shortNext ?? Infinity);
    this.shortNext = undefined;
    return n;
  }

  /** Copies disk bytes at `offset` into `bufs` in order. */
  readAt(bufs: readonly Uint8Array[], offset: number): number | Promise<number> {
    this.segmentCounts.push(bufs.length);
    return this.answer(() => scatter(this.disk, bufs, offset, this.count(total(bufs), offset), 'read'));
  }

  /** Copies `bufs` in order to the disk at `offset`. */
  writeAt(bufs: readonly Uint8Array[], offset: number): number | Promise<number> {
    this.segmentCounts.push(bufs.length);
    return this.answer(() => scatter(this.disk, bufs, offset, this.count(total(bufs), offset), 'write'));
  }

  /** Counts the flush. */
  flush(): void | Promise<void> {
    return this.answer(() => {
      this.flushes++;
    });
  }

  /** The id bytes. */
  getId(): Uint8Array {
    return this.id;
  }
}

/** Total length of `bufs`. */
export function total(bufs: readonly Uint8Array[]): number {
  return bufs.reduce((n, b) => n + b.length, 0);
}

/** Moves the first `n` bytes between `disk` at `offset` and `bufs` in order; returns n. */
export function scatter(disk: Uint8Array, bufs: readonly Uint8Array[], offset: number, n: number, dir: 'read' | 'write'): number {
  let at = 0;
  for (const b of bufs) {
    const k = Math.min(b.length, n - at);
    if (k <= 0) break;
    if (dir === 'read') b.set(disk.subarray(offset + at, offset + at + k));
    else disk.set(b.subarray(0, k), offset + at);
    at += k;
  }
  return n;
}
