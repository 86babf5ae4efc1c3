/**
 * Snapshot memory files, the memory half of PUT /snapshot/create (Firecracker
 * `snapshot_memory_to_file`, src/vmm/src/persist.rs; docs/snapshotting/snapshot-support.md).
 * Layout and sizing rules: memory-file-task.ts, which does the I/O.
 *
 * The writes run on a piscina pool of one thread, created on first use and reused: writing a
 * GiB of RAM and fsyncing it takes seconds, and the main thread serves the API socket and the
 * serial pumps meanwhile (docs/design.md, "Snapshot memory files"). The pool's thread is in
 * this process, so the guest RAM host addresses it writes from are valid there; only the
 * addresses, sizes and dirty bitmaps (a few KiB per GiB) cross. `closeMemoryWriter` ends it
 * (an idle pool thread does not keep the process alive: piscina unrefs it).
 */
import { Piscina } from 'piscina';
import { fromWire, SnapshotMemoryError, type WireError } from '../errors.js';
import type { HostGuestMemory } from '../memory/host-memory.js';
import { collectDirtyPages, residentPages, resetDirtyPages, type DirtyLogSource } from './dirty.js';
import type { MemoryFileRegion, MemoryFileResult, MemoryFileTask } from './memory-file-task.js';

/** The task module, beside this one after tsc (dist/src/snapshot/memory-file-task.js). */
const TASK_FILE = new URL('./memory-file-task.js', import.meta.url).href;
/** An idle pool thread lives this long before piscina ends it (koffi loads again after). */
const IDLE_TIMEOUT_MS = 60_000;

let pool: Piscina | undefined;

/** The writer pool, made on first use. One thread: snapshots are written one at a time. */
function writer(): Piscina {
  pool ??= new Piscina({ filename: TASK_FILE, minThreads: 0, maxThreads: 1, idleTimeout: IDLE_TIMEOUT_MS });
  return pool;
}

/** The error a task reported, as its class where it is ours. */
function rebuild(w: WireError): Error {
  if (w.code === 'SNAPSHOT_MEMORY_FILE' || w.code === 'SNAPSHOT_REBASE') return new SnapshotMemoryError(w.code, w.message);
  return fromWire(w);
}

/**
 * Writes guest RAM to `path` off the main thread: every region (Full) or, with `dirty` (one
 * bitmap per region in KVM_GET_DIRTY_LOG layout), only the dirty pages (Diff). Resolves once
 * the file is fsynced; rejects with SnapshotMemoryError (SNAPSHOT_MEMORY_FILE) naming the path
 * and the OS error.
 */
export async function writeMemoryFile(
  path: string,
  regions: readonly MemoryFileRegion[],
  dirty?: readonly Uint8Array[],
): Promise<{ bytesWritten: number }> {
  if (dirty !== undefined && dirty.length !== regions.length) {
    throw new SnapshotMemoryError('SNAPSHOT_MEMORY_FILE', `Cannot write the memory file ${path}: ${dirty.length} dirty bitmaps for ${regions.length} regions`);
  }
  const task: MemoryFileTask = {
    path,
    regions: regions.map((r): MemoryFileRegion => ({ hostAddr: r.hostAddr, size: r.size, ...(r.source ? { source: r.source } : {}) })),
    ...(dirty ? { dirty } : {}),
  };
  const r = (await writer().run(task)) as MemoryFileResult;
  if (!r.ok) throw rebuild(r.error);
  return { bytesWritten: r.bytesWritten };
}

/** Snapshot types of PUT /snapshot/create (`snapshot_type`). */
export type SnapshotType = 'Full' | 'Diff';

/**
 * The memory file of a snapshot in the order dirty.ts explains: Full resets both dirty logs
 * and then writes all RAM (the next Diff is relative to it); Diff takes the dirty pages and
 * writes those. `vm` is the VM fd (null: device bitmap only, e.g. without KVM).
 */
export async function snapshotMemory(path: string, type: SnapshotType, vm: DirtyLogSource | null, mem: HostGuestMemory): Promise<{ bytesWritten: number }> {
  // Without track_dirty_pages the slots log nothing (KVM_GET_DIRTY_LOG would fail ENOENT) and
  // there is no device bitmap: a Diff then takes the resident pages, as Firecracker does.
  const logs = mem.tracksDirty ? vm : null;
  if (type === 'Full') {
    if (mem.tracksDirty) resetDirtyPages(logs, mem);
    // A booted VM's RAM is the memfd: only its data extents are written (memory-file-task.ts).
    const regions = mem.hostRegions.map((r) => ({ hostAddr: r.hostAddr, size: r.size, ...(mem.memfd >= 0 ? { source: { fd: mem.memfd, offset: r.fdOffset } } : {}) }));
    return writeMemoryFile(path, regions);
  }
  return writeMemoryFile(path, mem.hostRegions, mem.tracksDirty ? collectDirtyPages(logs, mem) : residentPages(mem));
}

/** Ends the writer pool (its thread); the next write makes a new one. */
export async function closeMemoryWriter(): Promise<void> {
  const p = pool;
  pool = undefined;
  await p?.destroy();
}
