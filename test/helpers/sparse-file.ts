/**
 * Sparse-file helpers for the snapshot memory file tests: a file's data extents as lseek
 * SEEK_DATA / SEEK_HOLE report them (what `snapshot-editor edit-memory rebase` copies), and
 * page-filled guest RAM.
 */
import { closeSync, openSync, fstatSync } from 'node:fs';
import * as libc from '../../src/kvm/libc.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';

export const PAGE = 4096;

/** The data extents [start, end) of the file at `path`. */
export function dataExtents(path: string): [number, number][] {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const out: [number, number][] = [];
    let cursor = 0;
    while (cursor < size) {
      const start = Number(libc.lseek(fd, cursor, libc.SEEK_DATA));
      if (start < 0) break; // ENXIO: no more data
      const end = Number(libc.lseek(fd, start, libc.SEEK_HOLE));
      out.push([start, end]);
      cursor = end;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Fills every page of guest RAM with a byte derived from its gpa and `seed` (never 0, so a page can never read as a hole). */
export function fillPages(mem: GuestMemory, seed: number): void {
  for (const r of mem.regions) {
    for (let off = 0; off < r.size; off += PAGE) r.bytes.fill(((r.gpa + off) / PAGE + seed) % 255 + 1, off, off + PAGE);
  }
}

/** Guest RAM as a memory file lays it out: the regions concatenated in gpa order. */
export function ramImage(mem: GuestMemory): Buffer {
  return Buffer.concat(mem.regions.map((r) => Buffer.from(r.bytes)));
}
