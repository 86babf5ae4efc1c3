/**
 * The traditional memory balloon (virtio 1.1 §5.5; Firecracker
 * src/vmm/src/devices/virtio/balloon/device.rs, v1.16; docs/design.md "Balloon"), pure over an
 * injected discard function so tests see which guest pages the host was told to release.
 *
 * - Queues: inflate (0), deflate (1), then stats (stats_polling_interval_s > 0), free page
 *   hints (free_page_hinting, hinting.ts) and free page reporting (free_page_reporting), each
 *   when configured, with the features STATS_VQ, DEFLATE_ON_OOM, FREE_PAGE_HINT, PAGE_REPORTING.
 * - Free page reporting (Firecracker `process_free_page_reporting_queue`): each buffer of a
 *   reported chain is a run of free guest pages, released like an inflated run.
 * - Inflate: each device-readable buffer is a list of le32 PFNs (at most MAX_PAGES_IN_DESC
 *   per buffer, pages.ts); frames are sorted and merged into runs and each run's guest RAM is
 *   handed to `discard` once (the worker releases the host pages). A PFN outside guest RAM is
 *   counted `bad_pfns` and skipped; the rest of its list is still served. Deflate is only
 *   acknowledged: a released page comes back zero-filled on its next touch.
 * - Stats (§5.5.6.3): the driver posts one buffer of `{le16 tag, le64 val}` entries; the device
 *   parses it and keeps it. `requestStats()` (the polling timer) gives it back used, with
 *   length 0, and the driver answers with a fresh buffer. A second buffer while one is held
 *   (a non-compliant driver) makes the device return the older one, as Firecracker does.
 * - The target (`num_pages`) is set by `setTarget`, followed by a config interrupt; the
 *   driver writes `actual` itself (config.ts).
 * Nothing the guest writes makes the model throw: bad chains are used with length 0 and
 * counted `event_fails` (and Kindling's `bad_chains`).
 */
import { BalloonError, VirtioActivateError, VirtqueueError } from '../../../errors.js';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { activateQueues, signalUsed, VIRTIO_INTERRUPT, type VirtioActivation, type VirtioDevice, type VirtioInterrupt } from '../device.js';
import { chainViews } from '../iovec.js';
import type { DescriptorChain, Queue } from '../queue.js';
import {
  BALLOON_DEFLATE_QUEUE, BALLOON_INFLATE_QUEUE, BALLOON_STATS_QUEUE, PAGES_PER_MIB, balloonDescription, balloonHintingQueue, balloonQueueCount,
  balloonReportingQueue,
  type BalloonConfig, type BalloonParams,
} from './config.js';
import { BalloonMetrics } from './metrics.js';
import { FreePageHinting, type HintingStatusReply } from './hinting.js';
import {
  BALLOON_STAT_NAMES, VIRTIO_BALLOON_PFN_SHIFT, compactPfns, joinViews, parseBalloonStats, rangeBytes, readPfns, type BalloonStatName,
} from './pages.js';

/** Releases the host memory behind a page-aligned view of guest RAM; false when the host refused. */
export type DiscardPages = (view: Uint8Array) => boolean;

/** GET /balloon/statistics (config/balloon.ts `BalloonStats`) as the device knows it. */
export interface BalloonStatsReply {
  target_pages: number;
  actual_pages: number;
  target_mib: number;
  actual_mib: number;
  /** The guest's last statistics by Firecracker's names (absent: never reported). */
  stats: Partial<Record<BalloonStatName, number>>;
}

/** Firecracker's BalloonError texts (balloon/mod.rs); HintingNotEnabled is Kindling's wording. */
export const BALLOON_DEVICE_ERRORS = {
  DeviceNotActive: 'Device not activated yet.',
  StatisticsDisabled: 'Received stats query when stats are disabled.',
  StatisticsStateChange: 'Statistics cannot be enabled/disabled after activation.',
  TooManyPagesRequested: 'Amount of pages requested is too large.',
  HintingNotEnabled: 'Free page hinting is not enabled on the balloon device.',
} as const;

export interface BalloonDeviceOptions extends BalloonParams {
  /** stats_polling_interval_s (statsEnabled when > 0; default 1 when enabled). */
  statsIntervalS?: number;
  config: BalloonConfig;
  discard: DiscardPages;
  metrics?: BalloonMetrics;
}

interface Active {
  interrupt: VirtioInterrupt;
  mem: GuestMemory;
  queues: Queue[];
  broken: boolean;
}

const PAGE = 2 ** VIRTIO_BALLOON_PFN_SHIFT;
/** Most bytes of a stats buffer parsed (Linux sends ≤ 16 entries, 160 bytes); the rest is ignored. */
export const BALLOON_STATS_MAX_BYTES = 4096;

export class BalloonDevice implements VirtioDevice {
  readonly description;
  readonly metrics: BalloonMetrics;
  readonly config: BalloonConfig;
  private readonly params: BalloonParams;
  private readonly discard: DiscardPages;
  private active: Active | undefined;
  /** Head of the stats buffer the device holds (Firecracker `stats_desc_index`). */
  private statsHead: number | null = null;
  private latest: Partial<Record<BalloonStatName, number>> = {};
  private intervalS: number;
  private readonly hinting: FreePageHinting | undefined;

  constructor(o: BalloonDeviceOptions) {
    this.params = { deflateOnOom: o.deflateOnOom, statsEnabled: o.statsEnabled, reporting: o.reporting ?? false, hinting: o.hinting ?? false };
    this.config = o.config;
    this.discard = o.discard;
    this.metrics = o.metrics ?? new BalloonMetrics();
    this.description = balloonDescription(this.params, o.config);
    this.intervalS = o.statsEnabled ? (o.statsIntervalS ?? 1) : 0;
    this.hinting = this.params.hinting ? new FreePageHinting(o.config, this.metrics) : undefined;
  }

  /** The statistics polling interval in seconds (0: no statistics). */
  get statsIntervalS(): number {
    return this.intervalS;
  }

  /**
   * PATCH /balloon/statistics (Firecracker `update_stats_polling_interval`): the stats queue
   * exists or not from activation, so 0 ↔ non-zero is refused; a new interval asks the guest
   * for statistics at once.
   */
  setStatsInterval(seconds: number): void {
    if (seconds === this.intervalS) return;
    if (seconds === 0 || this.intervalS === 0) throw new BalloonError('BALLOON_STATS_STATE_CHANGE', BALLOON_DEVICE_ERRORS.StatisticsStateChange);
    this.requestStats();
    this.intervalS = seconds;
  }

  get isActive(): boolean {
    return this.active !== undefined;
  }

  get statsEnabled(): boolean {
    return this.params.statsEnabled;
  }

  activate(mem: GuestMemory, interrupt: VirtioInterrupt, activation: VirtioActivation): VirtioActivateError | undefined {
    const queues = activateQueues(mem, interrupt, activation, balloonQueueCount(this.params), 'virtio-balloon');
    if (queues instanceof VirtioActivateError) {
      this.metrics.inc('activate_fails');
      return queues;
    }
    this.active = { interrupt, mem, queues, broken: false };
    return undefined;
  }

  activeQueues(): readonly Queue[] {
    return this.active?.queues ?? [];
  }

  /** Drops the activation; false: Firecracker's balloon cannot be reset. */
  reset(): boolean {
    this.active = undefined;
    this.statsHead = null;
    return false;
  }

  onQueueNotify(queue: number): void {
    if (queue === BALLOON_INFLATE_QUEUE) this.processInflate();
    else if (queue === BALLOON_DEFLATE_QUEUE) this.processDeflate();
    else if (queue === balloonReportingQueue(this.params)) this.processReporting();
    else if (queue === balloonHintingQueue(this.params)) this.processHinting();
    else if (queue === BALLOON_STATS_QUEUE && this.params.statsEnabled) this.processStats();
  }

  /** PATCH /balloon: a new target in MiB, then a config interrupt (Firecracker `update_size`). */
  setTarget(amountMib: number): void {
    const a = this.active;
    if (!a) throw new BalloonError('BALLOON_NOT_ACTIVE', BALLOON_DEVICE_ERRORS.DeviceNotActive);
    if (amountMib * PAGES_PER_MIB * PAGE > a.mem.size) throw new BalloonError('BALLOON_TOO_MANY_PAGES', BALLOON_DEVICE_ERRORS.TooManyPagesRequested);
    this.config.numPages = amountMib * PAGES_PER_MIB;
    a.interrupt.trigger(VIRTIO_INTERRUPT.CONFIG);
  }

  /** PATCH /balloon/hinting/start (Firecracker `start_hinting`): a new run, config interrupt. */
  startHinting(acknowledgeOnStop: boolean): void {
    this.hintCommand((h) => h.start(acknowledgeOnStop));
  }

  /** PATCH /balloon/hinting/stop (Firecracker `stop_hinting`): DONE, the guest may reuse the pages. */
  stopHinting(): void {
    this.hintCommand((h) => h.stop());
  }

  /** GET /balloon/hinting/status. */
  hintingStatus(): HintingStatusReply {
    return this.requireHinting().status();
  }

  private hintCommand(f: (h: FreePageHinting) => void): void {
    const h = this.requireHinting();
    if (!this.active) throw new BalloonError('BALLOON_NOT_ACTIVE', BALLOON_DEVICE_ERRORS.DeviceNotActive);
    f(h);
    this.active.interrupt.trigger(VIRTIO_INTERRUPT.CONFIG);
  }

  private requireHinting(): FreePageHinting {
    if (!this.hinting) throw new BalloonError('BALLOON_HINTING_DISABLED', BALLOON_DEVICE_ERRORS.HintingNotEnabled);
    return this.hinting;
  }

  /** The hinting queue: command ids and hinted blocks (hinting.ts); every chain used with 0. */
  processHinting(): void {
    const a = this.usable();
    const h = this.hinting;
    const qi = balloonHintingQueue(this.params);
    if (!a || !h || qi < 0) return;
    let configChanged = false;
    this.drain(a, a.queues[qi]!, (chain) => {
      configChanged = h.serve(a.mem, chain, this.discard) || configChanged;
      return true;
    }, () => this.metrics.inc('free_page_hint_fails'));
    if (configChanged) a.interrupt.trigger(VIRTIO_INTERRUPT.CONFIG);
  }

  /** The stats timer is due: hand the held buffer back so the driver refills it (`trigger_stats_update`). */
  requestStats(): void {
    const a = this.usable();
    if (!a || !this.params.statsEnabled || this.statsHead === null) return;
    const q = a.queues[BALLOON_STATS_QUEUE]!;
    const head = this.statsHead;
    this.statsHead = null;
    if (q.addUsed(head, 0) !== undefined) {
      this.metrics.inc('event_fails');
      return;
    }
    signalUsed(q, a.interrupt);
  }

  /** GET /balloon/statistics. */
  stats(): BalloonStatsReply {
    if (!this.params.statsEnabled) throw new BalloonError('BALLOON_STATS_DISABLED', BALLOON_DEVICE_ERRORS.StatisticsDisabled);
    const target = this.config.numPages;
    const actual = this.config.actual;
    return {
      target_pages: target, actual_pages: actual, target_mib: Math.floor(target / PAGES_PER_MIB), actual_mib: Math.floor(actual / PAGES_PER_MIB),
      stats: { ...this.latest },
    };
  }

  /** Snapshot: the held stats buffer's head (restored with `restoreStatsHead`). */
  savedStatsHead(): number | null {
    return this.statsHead;
  }

  /** Snapshot restore: the device holds this stats buffer again. */
  restoreStatsHead(head: number | null): void {
    this.statsHead = head;
  }

  /** Inflate: release each run of listed frames (Firecracker `process_inflate`). */
  processInflate(): void {
    const a = this.usable();
    if (!a) return;
    this.metrics.inc('inflate_count');
    this.drain(a, a.queues[BALLOON_INFLATE_QUEUE]!, (chain) => {
      const views = chainViews(a.mem, chain, false);
      if (!views) return false;
      const lists: Uint32Array[] = [];
      for (const v of views) {
        const pfns = readPfns(v);
        if (typeof pfns === 'string') return false;
        lists.push(pfns);
      }
      const all = new Uint32Array(lists.reduce((n, l) => n + l.length, 0));
      lists.reduce((at, l) => (all.set(l, at), at + l.length), 0);
      for (const r of compactPfns(all)) this.release(a.mem, r.start, r.count);
      return true;
    });
  }

  /** Deflate: the guest takes pages back; nothing to do on the host (Firecracker `process_deflate_queue`). */
  processDeflate(): void {
    const a = this.usable();
    if (!a) return;
    this.metrics.inc('deflate_count');
    this.drain(a, a.queues[BALLOON_DEFLATE_QUEUE]!, (chain) => chainViews(a.mem, chain, false) !== undefined);
  }

  /**
   * Free page reporting: release every reported run. Counted per event
   * (`free_page_report_count`), bytes released (`free_page_report_freed`) and runs that could
   * not be (`free_page_report_fails`: outside RAM, not page-aligned, or refused by the host).
   */
  processReporting(): void {
    const a = this.usable();
    const qi = balloonReportingQueue(this.params);
    if (!a || qi < 0) return;
    this.metrics.inc('free_page_report_count');
    let freed = 0;
    this.drain(a, a.queues[qi]!, (chain) => {
      for (const d of chain.descriptors) {
        const view = d.addr % PAGE === 0 && d.len % PAGE === 0 ? a.mem.slice(d.addr, d.len) : undefined;
        if (view instanceof Uint8Array && this.discard(view)) freed += d.len;
        else this.metrics.inc('free_page_report_fails');
      }
      return true;
    }, () => this.metrics.inc('free_page_report_fails'));
    if (freed > 0) this.metrics.inc('free_page_report_freed', freed);
  }

  /** Stats: parse and keep the driver's buffer (Firecracker `process_stats_queue`). */
  processStats(): void {
    const a = this.usable();
    if (!a) return;
    const q = a.queues[BALLOON_STATS_QUEUE]!;
    this.metrics.inc('stats_updates_count');
    let used = false;
    for (;;) {
      const chain = q.pop();
      if (chain === null) break;
      if (chain instanceof VirtqueueError) {
        if (q.broken) return this.fail(a);
        this.metrics.inc('stats_update_fails');
        if (chain.head !== undefined) used = q.addUsed(chain.head, 0) === undefined || used;
        continue;
      }
      if (this.statsHead !== null) {
        // A driver following §5.5.6.3 never posts a second buffer; give the older one back.
        used = q.addUsed(this.statsHead, 0) === undefined || used;
        this.statsHead = null;
      }
      const views = chainViews(a.mem, chain, false);
      if (!views) {
        this.metrics.inc('stats_update_fails');
        this.metrics.inc('bad_chains');
        used = q.addUsed(chain.head, 0) === undefined || used;
        continue;
      }
      const parsed = parseBalloonStats(joinViews(views, BALLOON_STATS_MAX_BYTES));
      if (parsed.unknownTags > 0 || parsed.trailingBytes > 0) this.metrics.inc('stats_update_fails');
      for (const name of BALLOON_STAT_NAMES) {
        const v = parsed.values[name];
        if (v !== undefined) this.latest[name] = Number(v);
      }
      this.statsHead = chain.head;
    }
    if (used) signalUsed(q, a.interrupt);
  }

  /** Uses every posted chain of `q` after `serve` (false: a bad chain, counted); one interrupt at the end. */
  private drain(a: Active, q: Queue, serve: (chain: DescriptorChain) => boolean, bad = (): void => this.badChain()): void {
    let used = false;
    for (;;) {
      const chain = q.pop();
      if (chain === null) break;
      if (chain instanceof VirtqueueError) {
        if (q.broken) return this.fail(a);
        bad();
        if (chain.head !== undefined) used = this.complete(q, chain.head) || used;
        continue;
      }
      if (!serve(chain)) bad();
      used = this.complete(q, chain.head) || used;
    }
    if (used) signalUsed(q, a.interrupt);
  }

  /**
   * Releases `count` frames from `start`. A run inside one RAM region is one discard; a run
   * that is not (it crosses a region boundary or leaves RAM) is served frame by frame, and
   * frames outside RAM are counted `bad_pfns`.
   */
  private release(mem: GuestMemory, start: number, count: number): void {
    const { gpa, len } = rangeBytes({ start, count });
    const whole = mem.slice(gpa, len);
    if (whole instanceof Uint8Array) {
      this.discardView(whole, count);
      return;
    }
    for (let i = 0; i < count; i++) {
      const page = mem.slice((start + i) * PAGE, PAGE);
      if (page instanceof Uint8Array) this.discardView(page, 1);
      else this.metrics.inc('bad_pfns');
    }
  }

  private discardView(view: Uint8Array, pages: number): void {
    if (this.discard(view)) this.metrics.inc('pages_discarded', pages);
    else this.metrics.inc('discard_fails');
  }

  private complete(q: Queue, head: number): boolean {
    if (q.addUsed(head, 0) === undefined) return true;
    this.metrics.inc('event_fails');
    return false;
  }

  private badChain(): void {
    this.metrics.inc('bad_chains');
    this.metrics.inc('event_fails');
  }

  private usable(): Active | undefined {
    const a = this.active;
    return a && !a.broken ? a : undefined;
  }

  /** A ring is broken (avail.idx ran ahead): stop and ask the driver for a reset. */
  private fail(a: Active): void {
    a.broken = true;
    this.metrics.inc('event_fails');
    a.interrupt.needsReset();
  }
}
