/**
 * `snapshot-editor edit-memory rebase`: merges a Diff memory file onto its base, so the base
 * becomes the Full memory file of the later state (Firecracker
 * src/snapshot-editor/src/edit_memory.rs; docs/snapshotting/snapshot-support.md). A Diff file
 * holds data only at the pages that were dirty and holes elsewhere (memory-file-task.ts), so
 * its data extents, found with lseek SEEK_DATA / SEEK_HOLE (lseek(2)), are exactly what to
 * copy, each to the same offset of the base. A zero page that was written is data, not a hole,
 * so it is copied too. On a file system without SEEK_DATA support the whole diff reads as one
 * extent, which copies more but gives the same result only if the diff is complete; every
 * Linux file system Kindling runs on (ext4, xfs, btrfs, tmpfs) supports it.
 *
 * One difference from Firecracker: a diff larger than its base is refused. Firecracker extends
 * the base instead, but the memory file of one VM has one size (all of its RAM), so a larger
 * diff comes from another VM or another machine configuration, and merging it would produce a
 * file that matches neither.
 *
 * Synchronous: it runs in the snapshot-editor process, which has nothing else to serve.
 */
import { closeSync, constants, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { SnapshotMemoryError } from '../errors.js';
import * as libc from '../kvm/libc.js';
import { HostIoError } from '../util/io-error.js';

/** lseek SEEK_DATA's answer when no data lies at or after the offset. */
const ENXIO = HostIoError.os('ENXIO').errno;

/** Bytes copied per read/write pair. */
export const REBASE_CHUNK_BYTES = 1024 * 1024;

/** A SnapshotMemoryError in the words of Firecracker's EditMemoryError, with the path. */
function failure(what: string, path: string, e: unknown): SnapshotMemoryError {
  const io = HostIoError.from(e);
  return new SnapshotMemoryError('SNAPSHOT_REBASE', `${what} ${path}: ${io?.message ?? String(e)}`, { cause: e });
}

/** lseek(fd, off, whence): the new offset, or null for ENXIO (no data at or after `off`). */
function seek(fd: number, off: number, whence: number, what: string, path: string): number | null {
  const r = Number(libc.lseek(fd, off, whence));
  if (r >= 0) return r;
  const e = libc.errno();
  if (e === ENXIO) return null;
  throw failure(what, path, HostIoError.os(e));
}

/** Copies [from, to) of `src` to the same offsets of `dst` through `buf`. */
function copyRange(src: number, dst: number, from: number, to: number, buf: Buffer, paths: { base: string; diff: string }): void {
  let pos = from;
  while (pos < to) {
    let got: number;
    try {
      got = readSync(src, buf, 0, Math.min(buf.length, to - pos), pos);
    } catch (e) {
      throw failure('Failed to read the diff file', paths.diff, e);
    }
    // The diff shrank under us: what is gone cannot be copied.
    if (got === 0) throw failure('Failed to read the diff file', paths.diff, HostIoError.std('UnexpectedEof', 'failed to fill whole buffer'));
    let put = 0;
    while (put < got) {
      try {
        put += writeSync(dst, buf, put, got - put, pos + put);
      } catch (e) {
        throw failure('Failed to write the memory file', paths.base, e);
      }
    }
    pos += got;
  }
}

/**
 * Copies every data extent of the diff at `diffPath` into the base memory file at `basePath`
 * (same offsets), then fsyncs the base. Throws SnapshotMemoryError (SNAPSHOT_REBASE) naming the
 * file and the OS error, or when the diff is larger than the base.
 */
export function rebaseMemoryFile(basePath: string, diffPath: string): { bytesCopied: number } {
  let base: number;
  try {
    base = openSync(basePath, constants.O_WRONLY);
  } catch (e) {
    throw failure('Could not open memory file', basePath, e);
  }
  try {
    let diff: number;
    try {
      diff = openSync(diffPath, constants.O_RDONLY);
    } catch (e) {
      throw failure('Could not open diff file', diffPath, e);
    }
    try {
      const baseSize = fstatSync(base).size;
      const diffSize = fstatSync(diff).size;
      if (diffSize > baseSize) {
        throw new SnapshotMemoryError('SNAPSHOT_REBASE', `The diff file ${diffPath} (${diffSize} bytes) is larger than the memory file ${basePath} (${baseSize} bytes): it is not a diff of that snapshot`);
      }
      const paths = { base: basePath, diff: diffPath };
      const buf = Buffer.allocUnsafe(REBASE_CHUNK_BYTES);
      let copied = 0;
      let cursor = 0;
      for (;;) {
        const start = seek(diff, cursor, libc.SEEK_DATA, 'Failed to seek data in diff file', diffPath);
        if (start === null || start >= diffSize) break;
        // SEEK_HOLE finds the implicit hole at end of file when no other follows.
        const end = Math.min(seek(diff, start, libc.SEEK_HOLE, 'Failed to seek hole in diff file', diffPath) ?? diffSize, diffSize);
        copyRange(diff, base, start, end, buf, paths);
        copied += end - start;
        cursor = end;
      }
      try {
        fsyncSync(base);
      } catch (e) {
        throw failure('Failed to sync the memory file', basePath, e);
      }
      return { bytesCopied: copied };
    } finally {
      closeSync(diff);
    }
  } finally {
    closeSync(base);
  }
}
