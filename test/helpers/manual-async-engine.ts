/**
 * A driver-controlled fake of the Async engine for device-model tests: operations queue up,
 * `submit()` moves them in flight, and the test completes them one by one, in any order and
 * with any result, against an in-memory disk. The real engine (io_uring) is tested in
 * test/unit/io-uring.test.ts against real files.
 */
import type { AsyncBlockBackend } from '../../src/devices/virtio/block/async-io.js';
import { scatter, total } from './mem-block-backend.js';

/** One queued or in-flight operation. */
export interface FakeOp {
  readonly kind: 'read' | 'write' | 'flush';
  readonly bufs: readonly Uint8Array[];
  readonly offset: number;
  readonly tag: number;
}

export class ManualAsyncEngine implements AsyncBlockBackend {
  readonly engine = 'Async' as const;
  /** Queued since the last submit. */
  queued: FakeOp[] = [];
  /** Submitted and not completed. */
  inFlight: FakeOp[] = [];
  /** Completions not yet reaped. */
  done: { userData: number; res: number }[] = [];
  submits = 0;
  /** Make the next queue* call refuse. */
  refuseNext = false;
  /** Submits that take nothing (the kernel's EAGAIN), counted down per submit. */
  refuseSubmits = 0;

  constructor(readonly disk: Uint8Array, readonly slots = 8) {}

  freeSlots(): number {
    return this.slots - this.queued.length - this.inFlight.length;
  }

  queueRead(bufs: readonly Uint8Array[], offset: number, tag: number): boolean {
    return this.queue({ kind: 'read', bufs, offset, tag });
  }

  queueWrite(bufs: readonly Uint8Array[], offset: number, tag: number): boolean {
    return this.queue({ kind: 'write', bufs, offset, tag });
  }

  queueFlush(tag: number): boolean {
    return this.queue({ kind: 'flush', bufs: [], offset: 0, tag });
  }

  submit(): void {
    this.submits++;
    if (this.refuseSubmits > 0) {
      this.refuseSubmits--;
      return;
    }
    this.inFlight.push(...this.queued);
    this.queued = [];
  }

  unsubmitted(): number {
    return this.queued.length;
  }

  /**
   * Completes in-flight operation number `i` (0 = oldest): moves the data and records `res`
   * (default: the full length, 0 for a flush; a negative value is an errno and moves nothing).
   */
  complete(i = 0, res?: number): FakeOp {
    const [op] = this.inFlight.splice(i, 1);
    if (!op) throw new Error(`no in-flight operation #${i}`);
    const n = res ?? total(op.bufs);
    if (n > 0 && op.kind !== 'flush') scatter(this.disk, op.bufs, op.offset, Math.min(n, total(op.bufs)), op.kind);
    this.done.push({ userData: op.tag, res: n });
    return op;
  }

  /** Injects a completion for a tag that was never queued (a confused engine). */
  bogus(userData: number): void {
    this.done.push({ userData, res: 0 });
  }

  reap(): readonly { userData: number; res: number }[] {
    const d = this.done;
    this.done = [];
    return d;
  }

  wait(min: number): void {
    this.submit();
    while (this.done.length < min && this.inFlight.length) this.complete(0);
  }

  getId(): Uint8Array {
    return new TextEncoder().encode('manual-async');
  }

  private queue(op: FakeOp): boolean {
    if (this.refuseNext) {
      this.refuseNext = false;
      return false;
    }
    if (this.freeSlots() <= 0) return false;
    this.queued.push(op);
    return true;
  }
}
