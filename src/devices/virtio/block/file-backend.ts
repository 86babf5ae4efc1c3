/**
 * The file-backed BlockBackend of the `Sync` io_engine: positional reads and writes on the
 * drive's file descriptor, on the device worker's own thread (so blocking is fine: it only
 * delays this drive). Guest buffers are views of guest RAM; data moves without extra copies,
 * all of a request's segments in one preadv/pwritev (at most BLOCK_SEG_MAX < IOV_MAX of them).
 *
 * io_engine `Async` is src/actors/virtio/uring-backend.ts (io_uring needs koffi, so it lives
 * with the actor); both share `backingFileId`.
 */
import { readvSync, writevSync, fsyncSync, fstatSync, readFileSync } from 'node:fs';
import type { BlockBackend } from './device.js';
import { VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_SECTOR_SIZE } from '../constants.js';

export class FileBlockBackend implements BlockBackend {
  constructor(readonly fd: number) {}

  /** Size of the backing file (or block device) in bytes. */
  size(): number {
    return backingFileSize(this.fd);
  }

  /** preadv until the segments are full or the file ends (the rest stays as the guest left it, like a short read). */
  readAt(bufs: readonly Uint8Array[], offset: number): number {
    let left = bufs;
    let done = 0;
    while (left.length > 0) {
      const n = readvSync(this.fd, left, offset + done);
      if (n === 0) break;
      done += n;
      left = advance(left, n);
    }
    return done;
  }

  /** pwritev until every segment is written. */
  writeAt(bufs: readonly Uint8Array[], offset: number): number {
    let left = bufs;
    let done = 0;
    while (left.length > 0) {
      const n = writevSync(this.fd, left, offset + done);
      if (n === 0) break; // cannot happen for a non-empty write; a short count reports IOERR
      done += n;
      left = advance(left, n);
    }
    return done;
  }

  flush(): void {
    fsyncSync(this.fd);
  }

  getId(): Uint8Array {
    return backingFileId(this.fd);
  }
}

/** The segments left after the first `n` bytes of `bufs` moved (a short preadv/pwritev). */
export function advance(bufs: readonly Uint8Array[], n: number): readonly Uint8Array[] {
  let i = 0;
  let rest = n;
  while (i < bufs.length && rest >= bufs[i]!.length) rest -= bufs[i++]!.length;
  if (i >= bufs.length) return [];
  return rest > 0 ? [bufs[i]!.subarray(rest), ...bufs.slice(i + 1)] : bufs.slice(i);
}

/** Firecracker's device id: the string `{st_dev}{st_rdev}{st_ino}` of the backing file, truncated. */
export function backingFileId(fd: number): Uint8Array {
  const st = fstatSync(fd);
  return Buffer.from(`${st.dev}${st.rdev}${st.ino}`).subarray(0, VIRTIO_BLK_ID_BYTES);
}

/**
 * Size in bytes of a drive's backing file, as Firecracker measures it: by seeking to its end
 * (devices/virtio/block/virtio/device.rs, DiskProperties::file_size), which works for regular
 * files and block devices alike. st_size is that size for a regular file but 0 for a block
 * device (an LVM volume, a dm or loop device), whose size comes from sysfs instead.
 */
export function backingFileSize(fd: number): number {
  const st = fstatSync(fd, { bigint: true });
  if (!st.isBlockDevice()) return Number(st.size);
  // The sysfs `size` attribute counts 512-byte sectors whatever the logical block size
  // (Documentation/ABI/stable/sysfs-block).
  return Number(readFileSync(blockDeviceSizePath(st.rdev), 'utf8').trim()) * VIRTIO_BLK_SECTOR_SIZE;
}

/** The sysfs file with the size of the block device `rdev` (st_rdev, split as glibc's major()/minor()). */
export function blockDeviceSizePath(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & 0xffff_ff00n);
  return `/sys/dev/block/${major}:${minor}/size`;
}
