/**
 * The virtio-net device model (virtio 1.1 §5.1; Firecracker src/vmm/src/devices/virtio/net/
 * device.rs, v1.16). Pure: guest memory and the interrupt channel arrive at activation, frames
 * move through an injected NetBackend (the actor's TAP), time through the rate limiters' clock.
 *
 * - Queues RX (0) and TX (1) of NET_QUEUE_SIZE entries; features and config space in
 *   config.ts. Every frame on either queue starts with a 12-byte virtio_net_hdr_v1.
 * - TX (`onTxQueueNotify`): each chain must be device-read-only (else `tx_fails`) and at most
 *   MAX_BUFFER_SIZE bytes (else `tx_malformed_frames`); both are completed with length 0. A
 *   frame costs 1 op + its length in the TX limiter; a refused frame goes back to the ring
 *   (`undoPop`) until the limiter's timer. A frame shorter than the header is dropped
 *   (`tx_malformed_frames`); a source MAC other than the guest MAC only counts
 *   `tx_spoofed_mac_count`. One backend write per frame (its buffers as guest-RAM views);
 *   a failed write counts `tap_write_fails` and drops the frame. Every chain is used with
 *   length 0.
 * - RX: the device holds the chains the driver posts (rx-buffers.ts; each device-writable and
 *   at least the minimum size, else `rx_fails` and used with length 0) and reads the TAP only
 *   while it holds MAX_BUFFER_SIZE bytes of them: one backend read per frame, into the chains
 *   (several with MRG_RXBUF, one without), `num_buffers` written, one used element per chain.
 *   The RX limiter is charged after the read, when the size is known (1 op + length); a
 *   refused frame stays in guest memory unpublished until the limiter allows it, and no more
 *   frames are read meanwhile. `wantsTapInput()` tells the actor when to poll the TAP, so a
 *   driver that stops posting buffers (or a throttled device) never makes the worker spin.
 * - Hostile driver: queue defects are values from `Queue.pop()`; a defective chain is used
 *   with length 0 and counted, never thrown. A broken queue (bogus avail.idx) stops the device
 *   and asks for a reset (NEEDS_RESET + config interrupt) where Firecracker panics.
 * - Used-buffer interrupts follow the driver's suppression (EVENT_IDX, §2.6.7.2).
 * - Reset is not supported (Firecracker v1.16 Net has no `reset`): `reset()` drops the
 *   activation and returns false, so the transport latches FAILED.
 *
 * Threads: one NetDevice lives in the net device's worker; vCPU threads build only the
 * description (`netDescription`) over the same config state and metrics buffers.
 */
import { constants as osConstants } from 'node:os';
import { VirtioActivateError, VirtqueueError } from '../../../errors.js';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { RateLimiter, TOKEN_TYPE, type RateLimiterConfig } from '../../rate-limiter/rate-limiter.js';
import {
  VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_HDR_SIZE,
  hasFeature,
} from '../constants.js';
import {
  activateQueues, signalUsed, type VirtioActivation, type VirtioDevice, type VirtioDeviceDescription, type VirtioInterrupt,
} from '../device.js';
import { chainViews, iovLength, iovRead, iovWrite } from '../iovec.js';
import { MMDS_FRAME_PEEK_LEN, MMDS_MIN_FRAME_LEN } from '../../../mmds/stack.js';
import type { Queue } from '../queue.js';
import { encodeNetConfig, knownGuestMac, netDescription, netTapOffloadFlags, type NetDeviceParams } from './config.js';
import {
  ETH_ALEN, ETH_HLEN, ETH_SOURCE_OFFSET, MAX_BUFFER_SIZE, NET_NUM_QUEUES, NET_RX_INDEX, NET_RX_MIN_SMALL_BUFFER, NET_TX_INDEX,
} from './constants.js';
import { NetMetrics } from './metrics.js';
import { RxBuffers, type RxUsed } from './rx-buffers.js';

/** Linux errno values a backend returns negated (node:os carries the host's table). */
const EAGAIN = osConstants.errno.EAGAIN;
const EIO = osConstants.errno.EIO;

/**
 * The TAP as the device needs it; the actor implements it with readv/writev on the TAP fd over
 * the views' host addresses (each view is a bounds-checked slice of guest RAM), so frames never
 * copy through JS arrays.
 */
export interface NetBackend {
  /** Reads one frame (vnet header first) into `bufs`; bytes read, or -errno (-EAGAIN: none waiting). */
  read(bufs: readonly Uint8Array[]): number;
  /** Writes one frame (vnet header first) from `bufs`; bytes written, or -errno. */
  write(bufs: readonly Uint8Array[]): number;
}

/**
 * The MMDS as the device needs it (src/mmds/stack.ts `MmdsStack`): TX frames addressed to it
 * are taken off the TAP path, its answers are written into RX buffers ahead of TAP frames.
 * Frames here start at the Ethernet header (no virtio-net header).
 */
export interface NetMmds {
  /** From the frame's first MMDS_FRAME_PEEK_LEN bytes, without side effects. */
  isMmdsFrame(head: Uint8Array): boolean;
  /** True: the frame was the MMDS's and is consumed. */
  detourFrame(frame: Uint8Array): boolean;
  hasPendingFrames(): boolean;
  /** Writes the next answer frame into `buf`; its length, 0 when none. */
  writeNextFrame(buf: Uint8Array): number;
  /** Milliseconds until `tick()` is due, null when no timer runs. */
  nextTimeoutMs(): number | null;
  tick(): void;
}

/** Injected collaborators; all optional. */
export interface NetDeviceOptions {
  /** The receive limiter (default: unlimited). */
  readonly rxRateLimiter?: RateLimiter;
  /** The transmit limiter (default: unlimited). */
  readonly txRateLimiter?: RateLimiter;
  /** Where to count (default: a private NetMetrics). */
  readonly metrics?: NetMetrics;
  /** Config state shared with the vCPU-side description (NET_CONFIG_STATE_SIZE bytes; default: private). */
  readonly configBytes?: Uint8Array;
  /** Clock for tap_write_agg, µs (default: performance.now). */
  readonly nowUs?: () => number;
  /** The MMDS on this interface (PUT /mmds/config listed it), or none. */
  readonly mmds?: NetMmds;
}

/** New rate limiter buckets (PATCH /network-interfaces); absent or null: unchanged. */
export interface NetRateLimiterUpdate {
  readonly rx?: RateLimiterConfig | null;
  readonly tx?: RateLimiterConfig | null;
}

interface Active {
  readonly mem: GuestMemory;
  readonly interrupt: VirtioInterrupt;
  readonly rx: Queue;
  readonly tx: Queue;
  readonly ackedFeatures: bigint;
  /** VIRTIO_NET_F_MRG_RXBUF acked: a frame may span several RX chains. */
  readonly mergeable: boolean;
  /** Smallest RX chain accepted (Firecracker `minimum_rx_buffer_size`). */
  readonly minRxChain: number;
  /** A queue broke (NEEDS_RESET raised): nothing is processed any more. */
  broken: boolean;
}

/** A received frame the RX limiter refused: read into guest memory, not yet published. */
interface DeferredFrame {
  readonly used: RxUsed[];
  readonly bytes: number;
}

/** The virtio-net header of a frame the device builds itself: no offload, checksums complete. */
const ZERO_NET_HDR = new Uint8Array(VIRTIO_NET_HDR_SIZE);

/** Takes 1 op and `bytes` bytes, or nothing (Firecracker `Net::rate_limiter_consume_op`). */
function consumeFrame(limiter: RateLimiter, bytes: number): boolean {
  if (!limiter.consume(1, TOKEN_TYPE.OPS)) return false;
  if (limiter.consume(bytes, TOKEN_TYPE.BYTES)) return true;
  limiter.manualReplenish(1, TOKEN_TYPE.OPS);
  return false;
}

/**
 * Milliseconds until throttled work in one direction may proceed. While work is pending the
 * answer is at least 1, even when the block has just expired, so the actor's timer always
 * comes back for it.
 */
function retryMs(limiter: RateLimiter, pending: boolean): number {
  const ms = limiter.retryAfterMs();
  return pending ? Math.max(ms, 1) : ms;
}

/** A virtio-net device. */
export class NetDevice implements VirtioDevice {
  /** The transport-facing description (same as `netDescription` over the shared config state). */
  readonly description: VirtioDeviceDescription;
  /** The interface's metrics. */
  readonly metrics: NetMetrics;
  /** The receive limiter. */
  readonly rxRateLimiter: RateLimiter;
  /** The transmit limiter. */
  readonly txRateLimiter: RateLimiter;
  private readonly configBytes: Uint8Array;
  private readonly nowUs: () => number;
  private readonly rxBuffers = new RxBuffers();
  private readonly sourceMac = new Uint8Array(ETH_ALEN);
  private readonly mmds: NetMmds | undefined;
  /** The first bytes of a TX frame, for `NetMmds.isMmdsFrame`. */
  private readonly mmdsPeek = new Uint8Array(MMDS_FRAME_PEEK_LEN);
  /** One frame copied out of guest memory for the MMDS, or an MMDS answer on its way in (allocated with the MMDS). */
  private readonly mmdsFrame: Uint8Array;
  private active: Active | undefined;
  private deferred: DeferredFrame | undefined;
  /** The last TX drain stopped on the limiter: a frame waits in the ring. */
  private txThrottled = false;

  constructor(params: NetDeviceParams, private readonly backend: NetBackend, options: NetDeviceOptions = {}) {
    this.metrics = options.metrics ?? new NetMetrics();
    this.rxRateLimiter = options.rxRateLimiter ?? new RateLimiter();
    this.txRateLimiter = options.txRateLimiter ?? new RateLimiter();
    this.nowUs = options.nowUs ?? (() => performance.now() * 1000);
    this.configBytes = encodeNetConfig(params, options.configBytes);
    this.mmds = options.mmds;
    this.mmdsFrame = new Uint8Array(this.mmds ? MAX_BUFFER_SIZE - VIRTIO_NET_HDR_SIZE : 0);
    this.description = netDescription(params, this.configBytes, this.metrics);
  }

  /** True between a successful `activate` and `reset`. */
  get isActive(): boolean {
    return this.active !== undefined;
  }

  /**
   * Takes guest memory, the interrupt channel and the driver's two queues. On failure counts
   * `activate_fails`, asks for a reset and returns the error. The actor then sets the TAP's
   * offloads (`tapOffloadFlags()`, TUNSETOFFLOAD) and calls `processQueues()` once.
   */
  activate(mem: GuestMemory, interrupt: VirtioInterrupt, activation: VirtioActivation): VirtioActivateError | undefined {
    const queues = activateQueues(mem, interrupt, activation, NET_NUM_QUEUES, 'virtio-net');
    if (queues instanceof VirtioActivateError) {
      this.metrics.inc('activate_fails');
      return queues;
    }
    const acked = activation.ackedFeatures;
    const mergeable = hasFeature(acked, VIRTIO_NET_F_MRG_RXBUF);
    const gso = [VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO].some((f) => hasFeature(acked, f));
    this.active = {
      mem,
      interrupt,
      rx: queues[NET_RX_INDEX]!,
      tx: queues[NET_TX_INDEX]!,
      ackedFeatures: acked,
      mergeable,
      // Without merging, one chain takes a whole frame: 64 KiB with GSO, else a 1500-MTU frame.
      minRxChain: mergeable ? VIRTIO_NET_HDR_SIZE : gso ? MAX_BUFFER_SIZE : NET_RX_MIN_SMALL_BUFFER,
      broken: false,
    };
    return undefined;
  }

  activeQueues(): readonly Queue[] {
    const a = this.active;
    return a ? [a.rx, a.tx] : [];
  }

  /**
   * Snapshot (Firecracker net persist.rs, `prepare_save`): RX chains popped and held for the
   * next frame go back to the avail ring (their pops are undone, so a restored device pops
   * them again), and a frame the RX limiter held back is published now rather than lost.
   * Chains are popped in ring order and taken from the front, so the held ones are the last
   * popped. A chain the device completed with length 0 between two held ones (a malformed
   * chain) would be popped a second time after restore: only a hostile driver's own queue
   * suffers from that.
   */
  prepareSave(): void {
    const a = this.active;
    if (!a) return;
    const d = this.deferred;
    if (d) {
      for (const u of d.used) a.rx.addUsed(u.head, u.len);
      this.deferred = undefined;
      signalUsed(a.rx, a.interrupt);
    }
    for (let i = 0; i < this.rxBuffers.length; i++) a.rx.undoPop();
    this.rxBuffers.clear();
  }

  /** Drops the activation and every held chain. Returns false: Firecracker's Net cannot be reset. */
  reset(): boolean {
    this.active = undefined;
    this.rxBuffers.clear();
    this.deferred = undefined;
    this.txThrottled = false;
    return false;
  }

  /** TUNSETOFFLOAD flags for the acked features (0 before activation). */
  tapOffloadFlags(): number {
    return this.active ? netTapOffloadFlags(this.active.ackedFeatures) : 0;
  }

  /** A queue's ioeventfd fired. */
  onQueueNotify(queue: number): void {
    if (queue === NET_RX_INDEX) this.onRxQueueNotify();
    else if (queue === NET_TX_INDEX) this.onTxQueueNotify();
    else this.metrics.inc('event_fails');
  }

  /** The driver posted receive buffers (Firecracker `process_rx_queue_event`). */
  onRxQueueNotify(): void {
    this.metrics.inc('rx_queue_event_count');
    const a = this.usable();
    if (!a) return;
    this.parseRx(a);
    if (a.broken) return;
    if (this.rxRateLimiter.isBlocked()) {
      this.metrics.inc('rx_rate_limiter_throttled');
      signalUsed(a.rx, a.interrupt); // for the chains parseRx refused
    } else this.resumeRx(a);
  }

  /**
   * The driver queued frames to send (Firecracker `process_tx_queue_event`). After sending,
   * the device reads the TAP once more when it can take a frame: a TAP write runs the host's
   * stack in the writer's context, so the answers to what was sent (TCP ACKs) are often queued
   * already, and reading them now lets the actor raise one interrupt for both queues instead
   * of waking again for the TAP and raising a second (net-worker.ts flushes one per turn).
   */
  onTxQueueNotify(): void {
    this.metrics.inc('tx_queue_event_count');
    const a = this.usable();
    if (!a) return;
    if (this.txRateLimiter.isBlocked()) {
      this.metrics.inc('tx_rate_limiter_throttled');
      this.txThrottled = true;
      return;
    }
    // wantsTapInput() is false once a queue broke (usable()), so a TX failure reads nothing.
    if (this.processTx(a) && this.wantsTapInput()) this.resumeRx(a);
  }

  /** The TAP polled readable (Firecracker `process_tap_rx_event`). */
  onTapReadable(): void {
    this.metrics.inc('rx_tap_event_count');
    const a = this.usable();
    if (!a) return;
    if (this.rxRateLimiter.isBlocked()) {
      this.metrics.inc('rx_rate_limiter_throttled');
      return;
    }
    this.resumeRx(a);
  }

  /**
   * The actor's rate-limiter timer fired (Firecracker's two limiter events on one timer): a
   * direction whose block ended, or whose throttled work may now proceed (the block may
   * already have been found expired by a query), counts its event and resumes.
   */
  onRateLimiterTimer(): void {
    const rxDue = this.rxRateLimiter.timerFired() || (this.deferred !== undefined && !this.rxRateLimiter.isBlocked());
    const txDue = this.txRateLimiter.timerFired() || (this.txThrottled && !this.txRateLimiter.isBlocked());
    if (rxDue) this.metrics.inc('rx_event_rate_limiter_count');
    if (txDue) this.metrics.inc('tx_rate_limiter_event_count');
    const a = this.usable();
    if (a && rxDue) this.resumeRx(a);
    if (a && txDue && !a.broken) this.processTx(a);
  }

  /** Milliseconds until `onRateLimiterTimer()` is due (the nearer direction); 0 when neither is throttled. */
  retryAfterMs(): number {
    const rx = retryMs(this.rxRateLimiter, this.deferred !== undefined);
    const tx = retryMs(this.txRateLimiter, this.txThrottled);
    return rx === 0 ? tx : tx === 0 ? rx : Math.min(rx, tx);
  }

  /** Milliseconds until `onMmdsTimer()` is due (a retransmission), or null. */
  mmdsTimeoutMs(): number | null {
    return this.mmds?.nextTimeoutMs() ?? null;
  }

  /** The MMDS's timer is due: fire it and deliver what it has for the guest. */
  onMmdsTimer(): void {
    if (!this.mmds) return;
    this.mmds.tick();
    const a = this.usable();
    if (a && this.writeMmdsFrames(a)) signalUsed(a.rx, a.interrupt);
  }

  /**
   * Whether the actor should poll the TAP for input now: activated, holding MAX_BUFFER_SIZE
   * bytes of receive buffers, no refused frame waiting, RX limiter not blocked. Recompute after
   * every call into the device.
   */
  wantsTapInput(): boolean {
    const a = this.usable();
    if (!a || this.deferred || this.rxBuffers.capacity < MAX_BUFFER_SIZE) return false;
    return !this.rxRateLimiter.isBlocked();
  }

  /** Both directions once, e.g. after activation (Firecracker `process_virtio_queues`). */
  processQueues(): void {
    const a = this.usable();
    if (!a) return;
    this.resumeRx(a);
    if (!a.broken) this.processTx(a);
  }

  /** PATCH /network-interfaces: new buckets per direction (absent or null buckets unchanged). */
  updateRateLimiters(update: NetRateLimiterUpdate): void {
    if (update.rx) this.rxRateLimiter.update(update.rx);
    if (update.tx) this.txRateLimiter.update(update.tx);
  }

  private usable(): Active | undefined {
    const a = this.active;
    return a && !a.broken ? a : undefined;
  }

  /** A queue broke: stop and ask the driver for a reset (Firecracker panics on InvalidAvailIdx). */
  private fail(a: Active): void {
    if (a.broken) return;
    a.broken = true;
    this.metrics.inc('event_fails');
    a.interrupt.needsReset();
  }

  /**
   * Pops every posted RX chain into the held buffers (Firecracker `parse_rx_descriptors`). A
   * defective or too small chain is used with length 0 (`rx_fails`); a chain that would pass
   * the held-descriptor limit goes back to the ring.
   */
  private parseRx(a: Active): void {
    const q = a.rx;
    for (;;) {
      const chain = q.popOrEnableNotification();
      if (chain === null) return;
      if (chain instanceof VirtqueueError) {
        if (q.broken) return this.fail(a);
        this.metrics.inc('rx_fails');
        if (chain.head !== undefined) q.addUsed(chain.head, 0);
        continue;
      }
      const bufs = chainViews(a.mem, chain, true);
      if (!bufs || chain.totalLen < a.minRxChain) {
        this.metrics.inc('rx_fails');
        q.addUsed(chain.head, 0);
        continue;
      }
      if (!this.rxBuffers.push({ head: chain.head, bufs, len: chain.totalLen })) {
        q.undoPop();
        return;
      }
    }
  }

  /** Publishes a refused frame if the limiter now allows it, then reads on (Firecracker `resume_rx`). */
  private resumeRx(a: Active): void {
    this.writeMmdsFrames(a);
    if (a.broken) return;
    const d = this.deferred;
    if (d && !consumeFrame(this.rxRateLimiter, d.bytes)) {
      this.metrics.inc('rx_rate_limiter_throttled');
    } else {
      this.deferred = undefined;
      if (d) for (const u of d.used) a.rx.addUsed(u.head, u.len);
      this.processRx(a);
    }
    signalUsed(a.rx, a.interrupt);
  }

  /** Reads frames until the TAP is empty, buffers run short or the limiter refuses (Firecracker `process_rx`). */
  private processRx(a: Active): void {
    for (;;) {
      if (this.rxBuffers.capacity < MAX_BUFFER_SIZE) {
        this.parseRx(a);
        if (a.broken) return;
        if (this.rxBuffers.capacity < MAX_BUFFER_SIZE) {
          this.metrics.inc('no_rx_avail_buffer');
          break;
        }
      }
      const n = this.readTap(this.rxBuffers.readViews(a.mergeable));
      if (n === -EAGAIN) break;
      if (n < 0) {
        this.metrics.inc('tap_read_fails');
        this.metrics.inc('event_fails');
        break;
      }
      const used = this.rxBuffers.take(n);
      this.metrics.inc('rx_count');
      this.metrics.inc('rx_bytes_count', n);
      this.metrics.inc('rx_packets_count');
      if (!consumeFrame(this.rxRateLimiter, n)) {
        this.metrics.inc('rx_rate_limiter_throttled');
        this.deferred = { used, bytes: n };
        break;
      }
      for (const u of used) a.rx.addUsed(u.head, u.len);
    }
  }

  /** One backend read: bytes (at most what `views` hold) or -errno; a throw is -EIO. */
  private readTap(views: Uint8Array[]): number {
    let n: number;
    try {
      n = this.backend.read(views);
    } catch {
      return -EIO;
    }
    if (!Number.isInteger(n)) return -EIO;
    return n < 0 ? n : Math.min(n, iovLength(views));
  }

  /** Sends every queued frame the limiter allows (Firecracker `process_tx`); true when it sent any. */
  private processTx(a: Active): boolean {
    const q = a.tx;
    let sentAny = false;
    this.txThrottled = false;
    for (;;) {
      const chain = q.popOrEnableNotification();
      if (chain === null) break;
      this.metrics.inc('tx_remaining_reqs_count', q.len());
      if (chain instanceof VirtqueueError) {
        if (q.broken) {
          this.fail(a);
          break;
        }
        this.metrics.inc('tx_fails');
        if (chain.head !== undefined) q.addUsed(chain.head, 0);
        continue;
      }
      const bufs = chainViews(a.mem, chain, false);
      if (!bufs || chain.totalLen > MAX_BUFFER_SIZE) {
        this.metrics.inc(bufs ? 'tx_malformed_frames' : 'tx_fails');
        q.addUsed(chain.head, 0);
        continue;
      }
      if (!consumeFrame(this.txRateLimiter, chain.totalLen)) {
        q.undoPop();
        this.metrics.inc('tx_rate_limiter_throttled');
        this.txThrottled = true;
        break;
      }
      if (this.detourToMmds(bufs, chain.totalLen)) {
        // MMDS frames are not charged to the TX limiter (net/device.rs `write_to_mmds_or_tap`).
        this.txRateLimiter.manualReplenish(1, TOKEN_TYPE.OPS);
        this.txRateLimiter.manualReplenish(chain.totalLen, TOKEN_TYPE.BYTES);
      } else this.transmit(bufs, chain.totalLen);
      q.addUsed(chain.head, 0);
      sentAny = true;
    }
    if (!sentAny) this.metrics.inc('no_tx_avail_buffer');
    signalUsed(q, a.interrupt);
    // The MMDS usually has its answer now (Firecracker processes RX after a detour).
    if (this.mmds?.hasPendingFrames() && !a.broken && this.writeMmdsFrames(a)) signalUsed(a.rx, a.interrupt);
    return sentAny;
  }

  /**
   * Writes pending MMDS frames into the held RX chains, ahead of any TAP frame and outside the
   * RX limiter (Firecracker `read_from_mmds_or_tap`): a zeroed virtio-net header (the stack's
   * checksums are complete), `num_buffers` set by `take`. Stops when the chains held cannot
   * take a minimal frame. True when any frame was written.
   */
  private writeMmdsFrames(a: Active): boolean {
    const m = this.mmds;
    if (!m) return false;
    let wrote = false;
    while (m.hasPendingFrames()) {
      if (this.rxBuffers.length === 0) {
        this.parseRx(a);
        if (a.broken || this.rxBuffers.length === 0) break;
      }
      const views = this.rxBuffers.readViews(a.mergeable);
      const room = Math.min(iovLength(views), MAX_BUFFER_SIZE) - VIRTIO_NET_HDR_SIZE;
      if (room < MMDS_MIN_FRAME_LEN) break;
      const frame = this.mmdsFrame.subarray(0, room);
      const n = m.writeNextFrame(frame);
      if (n <= 0) break;
      iovWrite(views, 0, ZERO_NET_HDR);
      iovWrite(views, VIRTIO_NET_HDR_SIZE, frame.subarray(0, n));
      for (const u of this.rxBuffers.take(VIRTIO_NET_HDR_SIZE + n)) a.rx.addUsed(u.head, u.len);
      this.metrics.inc('rx_count');
      this.metrics.inc('rx_bytes_count', VIRTIO_NET_HDR_SIZE + n);
      this.metrics.inc('rx_packets_count');
      wrote = true;
    }
    return wrote;
  }

  /**
   * Offers a TX frame to the MMDS (Firecracker `write_to_mmds_or_tap`): only frames whose
   * first bytes address it are copied out of guest memory. True when it took the frame.
   */
  private detourToMmds(bufs: Uint8Array[], len: number): boolean {
    const m = this.mmds;
    if (!m || len < VIRTIO_NET_HDR_SIZE) return false;
    const head = this.mmdsPeek.subarray(0, iovRead(bufs, VIRTIO_NET_HDR_SIZE, this.mmdsPeek));
    if (!m.isMmdsFrame(head)) return false;
    const frame = this.mmdsFrame.subarray(0, len - VIRTIO_NET_HDR_SIZE);
    iovRead(bufs, VIRTIO_NET_HDR_SIZE, frame);
    return m.detourFrame(frame);
  }

  /** Firecracker `write_to_mmds_or_tap` without MMDS: header check, spoof count, one TAP write. */
  private transmit(bufs: Uint8Array[], len: number): void {
    if (len < VIRTIO_NET_HDR_SIZE) {
      this.metrics.inc('tx_malformed_frames');
      return;
    }
    const mac = knownGuestMac(this.configBytes);
    if (mac && len >= VIRTIO_NET_HDR_SIZE + ETH_HLEN) {
      iovRead(bufs, VIRTIO_NET_HDR_SIZE + ETH_SOURCE_OFFSET, this.sourceMac);
      if (this.sourceMac.some((b, i) => b !== mac[i])) this.metrics.inc('tx_spoofed_mac_count');
    }
    const start = this.nowUs();
    let n: number;
    try {
      n = this.backend.write(bufs);
    } catch {
      n = -EIO;
    }
    this.metrics.recordLatency('tap_write_agg', this.nowUs() - start);
    if (Number.isInteger(n) && n >= 0) {
      this.metrics.inc('tx_bytes_count', len);
      this.metrics.inc('tx_packets_count');
      this.metrics.inc('tx_count');
    } else this.metrics.inc('tap_write_fails');
  }
}
