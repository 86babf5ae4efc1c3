/**
 * The balloon's face to the transport (virtio 1.1 §5.5; Firecracker
 * src/vmm/src/devices/virtio/balloon/device.rs `ConfigSpace`, firecracker-facts §4.8): device id
 * 5, its feature bits and queue layout, and the 12-byte configuration space
 *
 *   offset 0  num_pages               le32  the host's target, 4 KiB pages (driver reads)
 *          4  actual                  le32  pages the driver holds in the balloon (driver writes)
 *          8  free_page_hint_cmd_id   le32  (free page hinting: the host's command id)
 *
 * The bytes live in a SharedArrayBuffer: the vCPU threads serve the driver's reads and its
 * writes of `actual`, the device worker writes `num_pages`, main reads both for
 * GET /balloon/statistics. Each field is one aligned 32-bit word written with Atomics
 * (x86_64 is little-endian, as the fields are); a driver that reads num_pages while it
 * changes sees the config interrupt that follows and reads it again.
 */
import { VIRTIO_ID_BALLOON, featureBit } from '../constants.js';
import { ByteConfigSpace, type VirtioDeviceDescription } from '../device.js';

/** Feature bits (§5.5.3). */
export const VIRTIO_BALLOON_F_MUST_TELL_HOST = 0;
export const VIRTIO_BALLOON_F_STATS_VQ = 1;
export const VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 2;
export const VIRTIO_BALLOON_F_FREE_PAGE_HINT = 3;
export const VIRTIO_BALLOON_F_PAGE_REPORTING = 5;

/**
 * Queue indices (§5.5.2): inflate, deflate, then stats (STATS_VQ), free page hints
 * (FREE_PAGE_HINT) and reporting (PAGE_REPORTING), each only when offered; a transport numbers
 * only the queues that exist (Linux virtio_find_vqs skips absent ones), so the later ones
 * move up when an earlier one is absent.
 */
export const BALLOON_INFLATE_QUEUE = 0;
export const BALLOON_DEFLATE_QUEUE = 1;
export const BALLOON_STATS_QUEUE = 2;
/** Entries per queue (Firecracker BALLOON_QUEUE_SIZE). */
export const BALLOON_QUEUE_SIZE = 256;

/** Config space size and field offsets (§5.5.4). */
export const BALLOON_CONFIG_SIZE = 12;
export const BALLOON_CONFIG_NUM_PAGES = 0;
export const BALLOON_CONFIG_ACTUAL = 4;
export const BALLOON_CONFIG_FREE_PAGE_HINT_CMD_ID = 8;
const WORD = 4;

/** 4 KiB pages per MiB (Firecracker `mib_to_pages`: MiB << (20 - VIRTIO_BALLOON_PFN_SHIFT)). */
export const PAGES_PER_MIB = 256;
/** The device id Firecracker's API and thread names use (`BALLOON_DEV_ID`). */
export const BALLOON_DEV_ID = 'balloon';

/** What the device offers, fixed at PUT /balloon. */
export interface BalloonParams {
  /** deflate_on_oom: the guest may take pages back from the balloon when it runs out. */
  deflateOnOom: boolean;
  /** stats_polling_interval_s > 0: a statistics queue exists. */
  statsEnabled: boolean;
  /** free_page_reporting: the guest reports free pages, which the host releases. */
  reporting?: boolean;
  /** free_page_hinting: the host asks the guest for hints of free pages. */
  hinting?: boolean;
}

/** Number of queues for `p`: inflate, deflate, then stats and reporting when enabled. */
export function balloonQueueCount(p: BalloonParams): number {
  return 2 + (p.statsEnabled ? 1 : 0) + (p.hinting ? 1 : 0) + (p.reporting ? 1 : 0);
}

/** Index of the free page hinting queue, or -1 without one. */
export function balloonHintingQueue(p: BalloonParams): number {
  return p.hinting ? 2 + (p.statsEnabled ? 1 : 0) : -1;
}

/** Index of the free page reporting queue, or -1 without one. */
export function balloonReportingQueue(p: BalloonParams): number {
  return p.reporting ? balloonQueueCount(p) - 1 : -1;
}

/** Offered features (Firecracker `avail_features`: VERSION_1 is added by the transport). */
export function balloonFeatures(p: BalloonParams): bigint {
  let f = 0n;
  if (p.statsEnabled) f |= featureBit(VIRTIO_BALLOON_F_STATS_VQ);
  if (p.deflateOnOom) f |= featureBit(VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
  if (p.hinting) f |= featureBit(VIRTIO_BALLOON_F_FREE_PAGE_HINT);
  if (p.reporting) f |= featureBit(VIRTIO_BALLOON_F_PAGE_REPORTING);
  return f;
}

/** The config words over a shared (or, in tests, plain) buffer. */
export class BalloonConfig {
  private readonly words: Uint32Array;
  constructor(readonly buffer: SharedArrayBuffer | ArrayBuffer) {
    this.words = new Uint32Array(buffer, 0, BALLOON_CONFIG_SIZE / WORD);
  }

  /** A config buffer with the initial target. */
  static create(numPages: number, shared = true): BalloonConfig {
    const c = new BalloonConfig(shared ? new SharedArrayBuffer(BALLOON_CONFIG_SIZE) : new ArrayBuffer(BALLOON_CONFIG_SIZE));
    c.numPages = numPages;
    return c;
  }

  get bytes(): Uint8Array {
    return new Uint8Array(this.buffer, 0, BALLOON_CONFIG_SIZE);
  }

  get numPages(): number {
    return this.load(BALLOON_CONFIG_NUM_PAGES);
  }
  set numPages(v: number) {
    this.store(BALLOON_CONFIG_NUM_PAGES, v);
  }
  get actual(): number {
    return this.load(BALLOON_CONFIG_ACTUAL);
  }
  get hintCmdId(): number {
    return this.load(BALLOON_CONFIG_FREE_PAGE_HINT_CMD_ID);
  }
  set hintCmdId(v: number) {
    this.store(BALLOON_CONFIG_FREE_PAGE_HINT_CMD_ID, v);
  }

  /**
   * A driver write. Only `actual` is the driver's to write (§5.5.4: num_pages is read-only for
   * the driver); a write elsewhere, or one that does not cover the whole aligned word, is
   * ignored and reported false. Linux writes `actual` as one le32 (virtio_cwrite_le).
   */
  driverWrite(offset: number, data: Uint8Array): boolean {
    if (offset !== BALLOON_CONFIG_ACTUAL || data.length !== WORD) return false;
    this.store(BALLOON_CONFIG_ACTUAL, new DataView(data.buffer, data.byteOffset, WORD).getUint32(0, true));
    return true;
  }

  /** Snapshot: the 12 bytes. */
  save(): number[] {
    return [...this.bytes];
  }

  /** Snapshot restore: takes back the saved bytes (a shorter array is refused). */
  restore(bytes: readonly number[]): void {
    if (bytes.length !== BALLOON_CONFIG_SIZE) throw new RangeError(`balloon config of ${bytes.length} bytes, expected ${BALLOON_CONFIG_SIZE}`);
    const v = new DataView(Uint8Array.from(bytes).buffer);
    for (let off = 0; off < BALLOON_CONFIG_SIZE; off += WORD) this.store(off, v.getUint32(off, true));
  }

  private load(offset: number): number {
    return this.buffer instanceof SharedArrayBuffer ? Atomics.load(this.words, offset / WORD) : this.words[offset / WORD]!;
  }
  private store(offset: number, v: number): void {
    if (this.buffer instanceof SharedArrayBuffer) Atomics.store(this.words, offset / WORD, v >>> 0);
    else this.words[offset / WORD] = v >>> 0;
  }
}

/**
 * The transport-facing description. Reads copy the shared bytes; the driver's writes reach
 * `actual` only (`onBadWrite` hears of the others).
 */
export function balloonDescription(p: BalloonParams, config: BalloonConfig, onBadWrite: () => void = () => {}): VirtioDeviceDescription {
  const queues = Array.from({ length: balloonQueueCount(p) }, () => BALLOON_QUEUE_SIZE);
  return {
    deviceId: VIRTIO_ID_BALLOON, features: balloonFeatures(p), queueMaxSizes: queues,
    config: new ByteConfigSpace(config.bytes, (offset, data) => { if (!config.driverWrite(offset, data)) onBadWrite(); }),
  };
}
