/**
 * The piscina task that writes a snapshot memory file (run by src/snapshot/memory-file.ts on
 * its pool thread, never on the main thread: a GiB of pwrite and an fsync would stall the API
 * socket for seconds).
 *
 * Layout (Firecracker `GuestMemoryExtension::dump` / `dump_dirty`, src/vmm/src/vstate/memory.rs):
 * the file is as large as all RAM together; region i lies at the sum of the sizes of regions
 * 0..i-1 (guest-physical order, no gaps for the MMIO hole). Full writes every region (from a
 * booted VM's memfd only its data extents: the rest is zero and stays or becomes a hole); Diff
 * writes only the dirty 4 KiB pages, each run of adjacent dirty pages as one pwrite, and leaves
 * the rest untouched: holes in a new file (a sparse file that `snapshot-editor edit-memory
 * rebase` merges onto its base), the old contents in a file of the same size (Firecracker
 * merges a Diff into an existing same-size file).
 *
 * Sizing (`snapshot_memory_to_file`, src/vmm/src/persist.rs): a file whose size already
 * matches is not truncated, since it may be the very file a restored VM's RAM is mapped from
 * (MAP_PRIVATE: truncating would zero the pages the guest has not yet copied). A file of
 * another size is emptied first, then sized, so no stale page survives.
 *
 * Data is written from the host address of each region (the guest RAM mapping, valid in every
 * thread of the process), with pwrite through koffi: RAM is never copied through JavaScript.
 *
 * The result crosses back as a value (`{ ok: false, error }` with a WireError): an exception
 * thrown here would reach the main thread without its class or code.
 */
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync } from 'node:fs';
import { SnapshotMemoryError, toWire, type WireError } from '../errors.js';
import { KVM_DIRTY_LOG_PAGE_SIZE } from '../kvm/constants.js';
import * as libc from '../kvm/libc.js';
import { HostIoError } from '../util/io-error.js';

/** One RAM region as the task sees it: where it is mapped in this process, and its length. */
export interface MemoryFileRegion {
  readonly hostAddr: bigint;
  readonly size: number;
  /**
   * The file behind the mapping when it is the VM's memfd (a booted VM): a Full then writes
   * only the memfd's data extents. A page the guest never touched is a hole in the memfd and
   * reads as zero, so it can stay a hole in the memory file (Firecracker writes every byte;
   * a 2 GiB guest that used 40 MiB costs 40 MiB of writes here). Absent for RAM mapped from
   * a snapshot file or anonymous memory: everything is written.
   */
  readonly source?: { readonly fd: number; readonly offset: number };
}

/** What the pool thread is asked to write. */
export interface MemoryFileTask {
  readonly path: string;
  readonly regions: readonly MemoryFileRegion[];
  /** Per region, a dirty bitmap (KVM_GET_DIRTY_LOG layout): a Diff. Absent: a Full. */
  readonly dirty?: readonly Uint8Array[];
}

export type MemoryFileResult = { ok: true; bytesWritten: number } | { ok: false; error: WireError };

/** Largest count Linux moves in one read/write call (MAX_RW_COUNT, include/linux/fs.h). */
const MAX_RW_COUNT = 0x7fff_f000;
/** Mode of a new memory file before the umask, as Rust's OpenOptions creates it (0o666). */
const NEW_FILE_MODE = 0o666;
const BITS_PER_BYTE = 8;

/** The SnapshotMemoryError for step `what` on `path`, in Rust io::Error words. */
function failure(what: string, path: string, e: unknown): SnapshotMemoryError {
  const io = HostIoError.from(e);
  return new SnapshotMemoryError('SNAPSHOT_MEMORY_FILE', `Cannot ${what} the memory file ${path}: ${io?.message ?? String(e)}`, { cause: e });
}

/** pwrite(2) of `len` bytes at host address `addr` to file offset `off`, retrying short writes and EINTR. */
function pwriteAll(fd: number, path: string, addr: bigint, len: number, off: number): void {
  while (len > 0) {
    const n = Number(libc.pwriteAddr(fd, addr, Math.min(len, MAX_RW_COUNT), off));
    if (n < 0) {
      const e = libc.errno();
      if (e === libc.EINTR) continue;
      throw failure('write', path, HostIoError.os(e));
    }
    // Rust's write_all reports a write of 0 bytes as WriteZero.
    if (n === 0) throw failure('write', path, HostIoError.std('WriteZero', 'failed to write whole buffer'));
    addr += BigInt(n);
    off += n;
    len -= n;
  }
}

/** Writes each run of set bits of `bitmap` (pages of `region`) at `fileOffset` + page offset; returns the bytes written. */
function writeDirtyRuns(fd: number, path: string, region: MemoryFileRegion, bitmap: Uint8Array, fileOffset: number): number {
  const pages = Math.ceil(region.size / KVM_DIRTY_LOG_PAGE_SIZE);
  const isDirty = (p: number): boolean => (bitmap[p >>> 3]! & (1 << (p & 7))) !== 0;
  let written = 0;
  let p = 0;
  while (p < pages) {
    // Skip clean bytes whole: most of a Diff's bitmap is zero.
    if (bitmap[p >>> 3] === 0 && (p & 7) === 0) {
      p += BITS_PER_BYTE;
      continue;
    }
    if (!isDirty(p)) {
      p++;
      continue;
    }
    const start = p;
    while (p < pages && isDirty(p)) p++;
    const from = start * KVM_DIRTY_LOG_PAGE_SIZE;
    const len = Math.min(p * KVM_DIRTY_LOG_PAGE_SIZE, region.size) - from;
    pwriteAll(fd, path, region.hostAddr + BigInt(from), len, fileOffset + from);
    written += len;
  }
  return written;
}

/**
 * The data extents of [offset, offset + size) of `fd` (SEEK_DATA / SEEK_HOLE), relative to
 * `offset`; a file system without SEEK_DATA (EINVAL) gives the whole range.
 */
function dataExtents(fd: number, offset: number, size: number): [number, number][] {
  const end = offset + size;
  const out: [number, number][] = [];
  let at = offset;
  while (at < end) {
    const data = Number(libc.lseek(fd, at, libc.SEEK_DATA));
    if (data < 0) {
      const e = libc.errno();
      if (e === libc.ENXIO) break; // no data after `at`
      return [[0, size]];
    }
    if (data >= end) break;
    const hole = Math.min(Number(libc.lseek(fd, data, libc.SEEK_HOLE)), end);
    if (hole <= data) return [[0, size]];
    out.push([data - offset, hole - offset]);
    at = hole;
  }
  return out;
}

/**
 * A Full region from a memfd: its data extents are written; the holes between them are holes
 * in a file that was emptied (nothing to do) or punched in a same-size file that may hold an
 * older snapshot's bytes there (so the file reads exactly as RAM).
 */
function writeExtents(fd: number, path: string, r: MemoryFileRegion, src: { fd: number; offset: number }, fileOffset: number, emptied: boolean): number {
  let written = 0;
  let prev = 0;
  const punch = (from: number, to: number): void => {
    if (emptied || to <= from) return;
    if (libc.fallocate(fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, fileOffset + from, to - from) < 0) {
      // No hole punching here: write the zeros instead (the range is a hole in RAM: zeros).
      for (let at = from; at < to; at += ZERO_CHUNK) pwriteAll(fd, path, zeroChunk(), Math.min(ZERO_CHUNK, to - at), fileOffset + at);
    }
  };
  for (const [a, b] of dataExtents(src.fd, src.offset, r.size)) {
    punch(prev, a);
    pwriteAll(fd, path, r.hostAddr + BigInt(a), b - a, fileOffset + a);
    written += b - a;
    prev = b;
  }
  punch(prev, r.size);
  return written;
}

/** Bytes of zeros written per call where a hole cannot be punched. */
const ZERO_CHUNK = 1024 * 1024;
let zeros: { addr: bigint; keep: Uint8Array } | undefined;
/** The host address of ZERO_CHUNK zero bytes (kept for the thread's life). */
function zeroChunk(): bigint {
  if (!zeros) {
    const keep = new Uint8Array(ZERO_CHUNK);
    zeros = { addr: libc.addressOf(keep), keep };
  }
  return zeros.addr;
}

/** Opens and sizes the file, writes it, fsyncs it; throws SnapshotMemoryError. */
function writeFile(task: MemoryFileTask): number {
  const { path, regions, dirty } = task;
  const total = regions.reduce((n, r) => n + r.size, 0);
  let fd: number;
  try {
    // libuv opens every file O_CLOEXEC.
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, NEW_FILE_MODE);
  } catch (e) {
    throw failure('open', path, e);
  }
  try {
    let emptied = false;
    try {
      const size = fstatSync(fd).size;
      if (size !== total) {
        if (size !== 0) ftruncateSync(fd, 0);
        ftruncateSync(fd, total);
        emptied = true;
      }
    } catch (e) {
      throw failure('resize', path, e);
    }
    let written = 0;
    let fileOffset = 0;
    regions.forEach((r, i) => {
      const bitmap = dirty?.[i];
      if (dirty === undefined && r.source) {
        written += writeExtents(fd, path, r, r.source, fileOffset, emptied);
      } else if (dirty === undefined) {
        pwriteAll(fd, path, r.hostAddr, r.size, fileOffset);
        written += r.size;
      } else if (bitmap !== undefined) {
        written += writeDirtyRuns(fd, path, r, bitmap, fileOffset);
      }
      fileOffset += r.size;
    });
    try {
      fsyncSync(fd);
    } catch (e) {
      throw failure('sync', path, e);
    }
    return written;
  } finally {
    closeSync(fd);
  }
}

/** The task entry piscina calls. */
export default function writeMemoryFileTask(task: MemoryFileTask): MemoryFileResult {
  try {
    return { ok: true, bytesWritten: writeFile(task) };
  } catch (e) {
    return { ok: false, error: toWire(e) };
  }
}
