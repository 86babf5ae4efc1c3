/**
 * The balloon's page-frame arithmetic and its statistics buffer, pure (virtio 1.1 §5.5;
 * Firecracker src/vmm/src/devices/virtio/balloon/util.rs `compact_page_frame_numbers` and
 * device.rs `BalloonStats`; firecracker-facts §4.8), used by the device model (device.ts).
 *
 * - Inflate/deflate buffers hold little-endian u32 page frame numbers of 4 KiB pages
 *   (VIRTIO_BALLOON_PFN_SHIFT); Firecracker reads at most MAX_PAGES_IN_DESC of them per
 *   descriptor and discards memory per range of consecutive frames, so a guest's scattered
 *   list costs one discard (fallocate PUNCH_HOLE on the memfd) per run, not per page.
 * - The stats buffer is packed `{u16 tag, u64 val}` entries (10 bytes, little-endian).
 * Everything here reads guest-written bytes: a malformed buffer is reported as a value, never
 * thrown.
 */

/** Frames are 4 KiB: guest address = pfn << VIRTIO_BALLOON_PFN_SHIFT (virtio 1.1 §5.5.6). */
export const VIRTIO_BALLOON_PFN_SHIFT = 12;
/** Bytes of one page frame number in an inflate/deflate buffer. */
export const BALLOON_PFN_SIZE = 4;
/** Frames Firecracker takes from one descriptor (balloon/mod.rs MAX_PAGES_IN_DESC). */
export const MAX_PAGES_IN_DESC = 256;
/** Bytes of one statistics entry: le16 tag + le64 value (§5.5.6.3). */
export const BALLOON_STAT_SIZE = 10;
/** Offset of the value within an entry. */
const STAT_VAL_OFFSET = 2;

/** A run of consecutive page frames. */
export interface PfnRange {
  /** First frame number. */
  start: number;
  /** Number of frames (≥ 1). */
  count: number;
}

/** Why a PFN buffer was refused. */
export type PfnBufferError = 'length-not-multiple-of-pfn';

/**
 * The frame numbers in `buf` (at most MAX_PAGES_IN_DESC; the rest of a longer buffer is
 * ignored, as Firecracker does), or an error when its length is not a whole number of frames.
 */
export function readPfns(buf: Uint8Array): Uint32Array | PfnBufferError {
  if (buf.length % BALLOON_PFN_SIZE !== 0) return 'length-not-multiple-of-pfn';
  const n = Math.min(buf.length / BALLOON_PFN_SIZE, MAX_PAGES_IN_DESC);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = v.getUint32(i * BALLOON_PFN_SIZE, true);
  return out;
}

/**
 * Sorts the frames and merges consecutive ones into ranges (Firecracker
 * `compact_page_frame_numbers`). A frame listed twice is taken once: discarding a page twice
 * is harmless, but counting it twice would overstate what the guest gave back.
 */
export function compactPfns(pfns: Uint32Array): PfnRange[] {
  const sorted = Uint32Array.from(pfns).sort();
  const ranges: PfnRange[] = [];
  let cur: PfnRange | undefined;
  for (const p of sorted) {
    if (cur && p === cur.start + cur.count - 1) continue; // duplicate
    if (cur && p === cur.start + cur.count) {
      cur.count++;
      continue;
    }
    cur = { start: p, count: 1 };
    ranges.push(cur);
  }
  return ranges;
}

/** The guest-physical byte range of `r`. */
export function rangeBytes(r: PfnRange): { gpa: number; len: number } {
  return { gpa: r.start * 2 ** VIRTIO_BALLOON_PFN_SHIFT, len: r.count * 2 ** VIRTIO_BALLOON_PFN_SHIFT };
}

/** Statistic tags in tag order (§5.5.6.3; Linux include/uapi/linux/virtio_balloon.h), as Firecracker names them in GET /balloon/statistics. */
export const BALLOON_STAT_NAMES = [
  'swap_in', 'swap_out', 'major_faults', 'minor_faults', 'free_memory', 'total_memory', 'available_memory', 'disk_caches',
  'hugetlb_allocations', 'hugetlb_failures', 'oom_kill', 'alloc_stall', 'async_scan', 'direct_scan', 'async_reclaim', 'direct_reclaim',
] as const;

/** One of BALLOON_STAT_NAMES. */
export type BalloonStatName = (typeof BALLOON_STAT_NAMES)[number];

/** What a stats buffer held: the known tags' values, and what was not understood. */
export interface ParsedBalloonStats {
  /** Values by name; a tag the guest did not send is absent (Firecracker omits it too). */
  values: Partial<Record<BalloonStatName, bigint>>;
  /** Entries with a tag this device does not know (skipped). */
  unknownTags: number;
  /** Bytes after the last whole entry (ignored). */
  trailingBytes: number;
}

/** Parses a guest's statistics buffer; a later entry for the same tag wins. */
export function parseBalloonStats(buf: Uint8Array): ParsedBalloonStats {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const values: ParsedBalloonStats['values'] = {};
  const whole = Math.floor(buf.length / BALLOON_STAT_SIZE);
  let unknownTags = 0;
  for (let i = 0; i < whole; i++) {
    const at = i * BALLOON_STAT_SIZE;
    const name = BALLOON_STAT_NAMES[v.getUint16(at, true)];
    if (name === undefined) {
      unknownTags++;
      continue;
    }
    values[name] = v.getBigUint64(at + STAT_VAL_OFFSET, true);
  }
  return { values, unknownTags, trailingBytes: buf.length - whole * BALLOON_STAT_SIZE };
}

/**
 * The first `max` bytes of the concatenation of `views` (a stats buffer split over several
 * descriptors); one view is returned as it is (cut to `max`), without a copy.
 */
export function joinViews(views: readonly Uint8Array[], max: number): Uint8Array {
  if (views.length === 1) return views[0]!.subarray(0, max);
  const out = new Uint8Array(Math.min(views.reduce((n, v) => n + v.length, 0), max));
  let at = 0;
  for (const v of views) {
    if (at === out.length) break;
    const part = v.subarray(0, out.length - at);
    out.set(part, at);
    at += part.length;
  }
  return out;
}
