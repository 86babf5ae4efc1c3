/**
 * The io_engine `Async` backend of a drive: its backing file driven through one io_uring
 * (src/kvm/io-uring.ts; why io_uring and not a thread pool is argued there). Lives in the
 * drive's device worker; the worker polls `completionFd` beside its queue eventfd and calls
 * BlockDevice.onIoCompletion() when it fires.
 *
 * Guest buffers reach the kernel as host addresses of guest RAM views (GuestMemory.slice has
 * already checked that each lies wholly inside guest RAM), so data never passes through JS.
 * Guest RAM stays mapped for the VMM's lifetime, so an operation still in flight after a
 * device reset writes only guest memory.
 */
import { IoUring } from '../../kvm/io-uring.js';
import { IovecArray, addressOf, hostAddress } from '../../kvm/libc.js';
import type { AsyncBlockBackend } from '../../devices/virtio/block/async-io.js';
import { BLOCK_QUEUE_SIZE } from '../../devices/virtio/block/device.js';
import { backingFileId } from '../../devices/virtio/block/file-backend.js';

export class UringBlockBackend implements AsyncBlockBackend {
  readonly engine = 'Async' as const;
  private readonly ring: IoUring;
  /** iovec arrays of vectored operations in flight, by tag (kept alive for the kernel). */
  private readonly iovecs = new Map<number, Buffer>();

  /** One ring with a slot per queue entry: the driver can never have more requests outstanding. */
  constructor(readonly fd: number, entries = BLOCK_QUEUE_SIZE) {
    this.ring = new IoUring(entries);
  }

  /** The eventfd the kernel signals on completions. */
  get completionFd(): number {
    return this.ring.completions.fd;
  }

  /** Clears the completion doorbell (before reaping, so no completion is missed). */
  drainDoorbell(): void {
    this.ring.completions.drain();
  }

  freeSlots(): number {
    return this.ring.sqFree();
  }

  queueRead(bufs: readonly Uint8Array[], offset: number, tag: number): boolean {
    if (bufs.length === 1) return this.ring.prepRead(this.fd, BigInt(hostAddress(bufs[0]!)), bufs[0]!.length, offset, tag);
    return this.queueVectored(bufs, tag, (iov, n) => this.ring.prepReadv(this.fd, iov, n, offset, tag));
  }

  queueWrite(bufs: readonly Uint8Array[], offset: number, tag: number): boolean {
    if (bufs.length === 1) return this.ring.prepWrite(this.fd, BigInt(hostAddress(bufs[0]!)), bufs[0]!.length, offset, tag);
    return this.queueVectored(bufs, tag, (iov, n) => this.ring.prepWritev(this.fd, iov, n, offset, tag));
  }

  /**
   * A request of several segments (VIRTIO_BLK_F_SEG_MAX): READV/WRITEV over an iovec array
   * held in `iovecs` until its completion is reaped, since the kernel may read the array at
   * any time before then (it copies it at submission only with IORING_FEAT_SUBMIT_STABLE).
   */
  private queueVectored(bufs: readonly Uint8Array[], tag: number, prep: (iov: bigint, n: number) => boolean): boolean {
    const iov = new IovecArray(bufs.length);
    bufs.forEach((b, i) => iov.set(i, b));
    if (!prep(addressOf(iov.buffer), bufs.length)) return false;
    this.iovecs.set(tag, iov.buffer);
    return true;
  }

  queueFlush(tag: number): boolean {
    return this.ring.prepFsync(this.fd, tag);
  }

  submit(): void {
    this.ring.submit();
  }

  unsubmitted(): number {
    return this.ring.unsubmitted;
  }

  reap(): readonly { userData: number; res: number }[] {
    const done = this.ring.reap();
    for (const c of done) this.iovecs.delete(c.userData);
    return done;
  }

  wait(min: number): void {
    this.ring.submit(); // anything still queued must be in the kernel before we sleep on it
    this.ring.waitFor(min);
  }

  getId(): Uint8Array {
    return backingFileId(this.fd);
  }

  /** Closes the ring (the caller settles in-flight requests first and owns the file fd). */
  close(): void {
    this.ring.close();
  }
}
