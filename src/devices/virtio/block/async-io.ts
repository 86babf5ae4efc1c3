/**
 * io_engine `Async` for the block model: the backend contract and the table of requests in
 * flight. Pure (no koffi): the io_uring backend lives with the device actor
 * (src/actors/virtio/uring-backend.ts), tests use an in-memory fake.
 *
 * Flow (Firecracker's async engine, devices/virtio/block/virtio/io/async_io.rs, by behaviour):
 * the device pops a chain, validates it, queues the read/write/flush tagged with a slot of
 * this table, and after the queue is drained submits the batch at once. The worker later
 * reaps completions; each tag leads back to its request, whose status byte and used element
 * are written then. Completions may come in any order; virtio allows that (used ring entries
 * carry the head index).
 *
 * Invariant: a tag is live from `add` to `take`; `take` of a tag that is not live returns
 * undefined (a completion the table does not know is ignored, never trusted).
 */
import type { BlockRequest } from './request.js';

/** A BlockBackend that queues operations and completes them later (many in flight). */
export interface AsyncBlockBackend {
  readonly engine: 'Async';
  /** Operations that can be queued now without exceeding the engine's capacity. */
  freeSlots(): number;
  /** Queues a read into `bufs` in order (views of guest RAM) from byte `offset`. False when it cannot be queued. */
  queueRead(bufs: readonly Uint8Array[], offset: number, tag: number): boolean;
  /** Queues a write of `bufs` in order at byte `offset`. */
  queueWrite(bufs: readonly Uint8Array[], offset: number, tag: number): boolean;
  /** Queues an fsync. */
  queueFlush(tag: number): boolean;
  /** Hands queued operations to the kernel (one call per drained batch). */
  submit(): void;
  /**
   * Queued operations the kernel did not take at the last `submit` (it may refuse for lack of
   * resources). Nothing else would ever resubmit them while the driver waits for their
   * completions, so the device retries on a timer while this is non-zero.
   */
  unsubmitted(): number;
  /** Completions so far: tag and result (bytes moved, or -errno). */
  reap(): readonly { readonly userData: number; readonly res: number }[];
  /** Blocks until at least `min` operations have completed (to settle before a swap or stop). */
  wait(min: number): void;
  /** The device id bytes, as BlockBackend.getId. */
  getId(): Uint8Array;
}

/** One request in flight. */
export interface InFlight<A> {
  readonly req: BlockRequest;
  /** The activation it belongs to: a completion after a reset must not touch the new rings. */
  readonly active: A;
  /** Start time in µs (read_agg / write_agg). */
  readonly startUs: number;
}

/** Fixed-size slot table; tags are slot indices. */
export class InFlightTable<A> {
  private readonly slots: (InFlight<A> | undefined)[];
  private readonly free: number[] = [];
  private live = 0;

  constructor(readonly capacity: number) {
    this.slots = new Array<InFlight<A> | undefined>(capacity).fill(undefined);
    for (let i = capacity - 1; i >= 0; i--) this.free.push(i);
  }

  /** Requests in flight. */
  get size(): number {
    return this.live;
  }

  /** Stores `entry` and returns its tag, or undefined when the table is full. */
  add(entry: InFlight<A>): number | undefined {
    const tag = this.free.pop();
    if (tag === undefined) return undefined;
    this.slots[tag] = entry;
    this.live++;
    return tag;
  }

  /** Removes and returns the entry of `tag`; undefined for an unknown or dead tag. */
  take(tag: number): InFlight<A> | undefined {
    if (!Number.isInteger(tag) || tag < 0 || tag >= this.capacity) return undefined;
    const e = this.slots[tag];
    if (!e) return undefined;
    this.slots[tag] = undefined;
    this.free.push(tag);
    this.live--;
    return e;
  }
}

/** True for a backend of the Async engine. */
export function isAsyncBackend(b: object): b is AsyncBlockBackend {
  return (b as Partial<AsyncBlockBackend>).engine === 'Async';
}
