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

  /** Copies disk bytes at `offset` into `buf`. */
  readAt(buf: Uint8Array, offset: number): number | Promise<number> {
    return this.answer(() => {
      const n = this.count(buf.length, offset);
      buf.set(this.disk.subarray(offset, offset + n));
      return n;
    });
  }

  /** Copies `buf` to the disk at `offset`. */
  writeAt(buf: Uint8Array, offset: number): number | Promise<number> {
    return this.answer(() => {
      const n = this.count(buf.length, offset);
      this.disk.set(buf.subarray(0, n), offset);
      return n;
    });
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
