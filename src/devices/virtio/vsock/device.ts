/**
 * The virtio-vsock device model (virtio 1.1 §5.10; Firecracker src/vmm/src/devices/virtio/
 * vsock/device.rs and event_handler.rs, v1.16). Pure: guest memory and the interrupt channel
 * arrive at activation; the host side is the muxer (muxer.ts) over an injected VsockHostIo, so
 * tests drive it with the driver-side queue fake and real Unix sockets.
 *
 * - TX (queue 1, `onTxQueueNotify`): each chain is parsed as a packet (packet.ts; a broken one
 *   is counted and used with length 0) and handed to the muxer, which always consumes it; the
 *   chain is used with length 0. Packets the muxer owes in reply go out at once on RX.
 * - RX (queue 0, `processRx`): while the muxer has a packet for the guest, each posted chain
 *   gets one: the host socket reads straight into the chain's data area, then the 44-byte
 *   header is written, and the chain is used with the header plus data length. A chain that
 *   cannot take a packet is counted and used with length 0. When the muxer has nothing after
 *   all, the chain goes back to the ring (`undoPop`).
 * - Event queue (2): Firecracker only writes a TRANSPORT_RESET event to it when it saves a
 *   snapshot; Kindling has no snapshots, so its buffers stay with the device. A notify on it
 *   just retries RX, as Firecracker's does once the guest acknowledged an event.
 * - Host events (`onHostEvent`, the listener, CONNECT lines, connection sockets) and timers
 *   (`onTimer`: request and shutdown timeouts, CONNECT line deadlines) go to the muxer; the
 *   actor then calls `processRx`. `collectPoll` says which host fds to poll, for what: none
 *   before activation, as Firecracker registers the backend only then.
 * - A broken queue (a bogus avail.idx) stops the device and asks for a reset (NEEDS_RESET and
 *   a config interrupt) where Firecracker panics. Reset is not supported (Firecracker's Vsock
 *   has no `reset`): the transport latches FAILED and the connections stay until the VM stops.
 */
import { VirtioActivateError, VirtqueueError, VsockPacketError } from '../../../errors.js';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { activateQueues, signalUsed, type VirtioActivation, type VirtioDevice, type VirtioDeviceDescription, type VirtioInterrupt } from '../device.js';
import type { Queue } from '../queue.js';
import { vsockDescription } from './config.js';
import {
  VIRTIO_VSOCK_EVENT_SIZE, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, VSOCK_EV_INDEX, VSOCK_NUM_QUEUES, VSOCK_PKT_HDR_SIZE, VSOCK_RX_INDEX, VSOCK_TX_INDEX,
} from './constants.js';
import type { PollSink, VsockHostIo } from './host.js';
import { VsockMetrics, type VsockCounter } from './metrics.js';
import { VsockMuxer } from './muxer.js';
import { emptyHeader, parseRxBuffer, parseTxPacket } from './packet.js';

/** The device's configuration (PUT /vsock) and its bound listening socket. */
export interface VsockDeviceParams {
  /** guest_cid (u32). */
  readonly guestCid: number;
  /** uds_path: the listener's path, and the prefix of `<uds_path>_<port>` for guest connections. */
  readonly udsPath: string;
  /** The socket listening on uds_path (bound and owned by the caller; never closed here). */
  readonly listenFd: number;
}

/** Injected collaborators; all optional. */
export interface VsockDeviceOptions {
  /** Where to count (default: a private VsockMetrics). */
  readonly metrics?: VsockMetrics;
  /** Clock for the connection timers, ms (default: performance.now). */
  readonly nowMs?: () => number;
}

interface Active {
  readonly mem: GuestMemory;
  readonly interrupt: VirtioInterrupt;
  readonly rx: Queue;
  readonly tx: Queue;
  /** The event queue: only TRANSPORT_RESET is ever written to it (after a snapshot restore). */
  ev: Queue;
  /** A queue broke (NEEDS_RESET raised): nothing is processed any more. */
  broken: boolean;
}

export class VsockDevice implements VirtioDevice {
  readonly description: VirtioDeviceDescription;
  readonly metrics: VsockMetrics;
  private readonly muxer: VsockMuxer;
  private readonly now: () => number;
  private readonly hdr = emptyHeader();
  private readonly scratch = new Uint8Array(VSOCK_PKT_HDR_SIZE);
  private active: Active | undefined;

  constructor(params: VsockDeviceParams, io: VsockHostIo, options: VsockDeviceOptions = {}) {
    this.metrics = options.metrics ?? new VsockMetrics();
    this.now = options.nowMs ?? (() => performance.now());
    this.description = vsockDescription(params.guestCid, this.metrics);
    this.muxer = new VsockMuxer({ io, metrics: this.metrics, now: this.now, guestCid: params.guestCid }, params.udsPath, params.listenFd);
  }

  /** True between a successful `activate` and `reset`. */
  get isActive(): boolean {
    return this.active !== undefined;
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.muxer.connectionCount;
  }

  /** Host clients that have not sent their CONNECT line yet. */
  get pendingHostCount(): number {
    return this.muxer.pendingHostCount;
  }

  /** Takes guest memory, the interrupt channel and the three queues; on failure counts `activate_fails`. */
  activate(mem: GuestMemory, interrupt: VirtioInterrupt, activation: VirtioActivation): VirtioActivateError | undefined {
    const queues = activateQueues(mem, interrupt, activation, VSOCK_NUM_QUEUES, 'virtio-vsock');
    if (queues instanceof VirtioActivateError) {
      this.metrics.inc('activate_fails');
      return queues;
    }
    this.active = { mem, interrupt, rx: queues[VSOCK_RX_INDEX]!, tx: queues[VSOCK_TX_INDEX]!, ev: queues[VSOCK_EV_INDEX]!, broken: false };
    return undefined;
  }

  activeQueues(): readonly Queue[] {
    const a = this.active;
    return a ? [a.rx, a.tx, a.ev] : [];
  }

  /**
   * After a snapshot restore: tells the guest driver that every connection is gone (the host
   * ends of them stayed with the process that took the snapshot), with one
   * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue (virtio 1.1 §5.10.6.7; Firecracker
   * vsock persist.rs `send_transport_reset_event`). False when the driver posted no event
   * buffer (counted as an event queue fail) or the device is not active.
   */
  sendTransportReset(): boolean {
    const a = this.usable();
    if (!a) return false;
    const chain = a.ev.pop();
    if (chain === null || chain instanceof VirtqueueError) {
      this.metrics.inc('ev_queue_event_fails');
      return false;
    }
    const first = chain.descriptors[0];
    const out = first && first.writable && first.len >= VIRTIO_VSOCK_EVENT_SIZE ? a.mem.slice(first.addr, VIRTIO_VSOCK_EVENT_SIZE) : undefined;
    if (!(out instanceof Uint8Array)) {
      this.metrics.inc('ev_queue_event_fails');
      a.ev.addUsed(chain.head, 0);
      signalUsed(a.ev, a.interrupt);
      return false;
    }
    new DataView(out.buffer, out.byteOffset, VIRTIO_VSOCK_EVENT_SIZE).setUint32(0, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, true);
    a.ev.addUsed(chain.head, VIRTIO_VSOCK_EVENT_SIZE);
    signalUsed(a.ev, a.interrupt);
    return true;
  }

  /** Drops the activation. Returns false: Firecracker's vsock cannot be reset. */
  reset(): boolean {
    this.active = undefined;
    return false;
  }

  onQueueNotify(queue: number): void {
    if (queue === VSOCK_RX_INDEX) this.onRxQueueNotify();
    else if (queue === VSOCK_TX_INDEX) this.onTxQueueNotify();
    else if (queue === VSOCK_EV_INDEX) this.onEvQueueNotify();
  }

  /** The driver posted RX buffers (Firecracker `handle_rxq_event`). */
  onRxQueueNotify(): void {
    if (!this.usable() || !this.muxer.hasPendingRx()) return;
    this.metrics.inc('rx_queue_event_count');
    this.processRx();
  }

  /** The driver queued packets (Firecracker `handle_txq_event`): send them, then deliver what they prompted. */
  onTxQueueNotify(): void {
    const a = this.usable();
    if (!a) return;
    this.metrics.inc('tx_queue_event_count');
    this.processTx(a);
    this.processRx();
  }

  /** The driver notified the event queue (Firecracker `handle_evq_event`). */
  onEvQueueNotify(): void {
    this.processRx();
  }

  /** Both data queues once (after activation, or when kicked on resume). */
  processQueues(): void {
    const a = this.usable();
    if (!a) return;
    this.processTx(a);
    this.processRx();
  }

  /** Adds the host fds to poll and the events wanted; none while inactive. */
  collectPoll(add: PollSink): void {
    if (this.usable()) this.muxer.collectPoll(add);
  }

  /** poll() reported a host fd ready; call `processRx` once after the last of a wake-up. */
  onHostEvent(fd: number, revents: number): void {
    if (this.usable()) this.muxer.onEvent(fd, revents);
  }

  /** Ms until `onTimer` is due; 0 when no timer is armed. */
  timeoutMs(): number {
    const at = this.usable() ? this.muxer.nextDeadline() : undefined;
    return at === undefined ? 0 : Math.max(1, Math.ceil(at - this.now()));
  }

  /** A timer is due: reset expired connections, drop overdue host clients, deliver the RSTs. */
  onTimer(): void {
    if (!this.usable()) return;
    this.muxer.sweep();
    this.processRx();
  }

  /** Fills posted RX buffers with the packets the muxer has for the guest (Firecracker `process_rx`). */
  processRx(): void {
    const a = this.usable();
    if (!a) return;
    const q = a.rx;
    while (this.muxer.hasPendingRx()) {
      const chain = q.popOrEnableNotification();
      if (chain === null) break;
      if (chain instanceof VirtqueueError) {
        if (q.broken) return this.fail(a, 'rx_queue_event_fails');
        this.metrics.inc('rx_bad_buffers');
        if (chain.head !== undefined) q.addUsed(chain.head, 0);
        continue;
      }
      const buf = parseRxBuffer(a.mem, chain);
      if (buf instanceof VsockPacketError) {
        this.metrics.inc('rx_bad_buffers');
        q.addUsed(chain.head, 0);
        continue;
      }
      if (!this.muxer.recvPkt(this.hdr, buf)) {
        q.undoPop();
        break;
      }
      buf.commitHeader(this.hdr, this.scratch);
      q.addUsed(chain.head, VSOCK_PKT_HDR_SIZE + this.hdr.len);
    }
    signalUsed(q, a.interrupt);
  }

  /** Closes every host connection (the worker is stopping); the listener is the caller's. */
  close(): void {
    this.muxer.close();
  }

  /** Hands every TX chain to the muxer (Firecracker `process_tx`). */
  private processTx(a: Active): void {
    const q = a.tx;
    for (;;) {
      const chain = q.popOrEnableNotification();
      if (chain === null) break;
      if (chain instanceof VirtqueueError) {
        if (q.broken) return this.fail(a, 'tx_queue_event_fails');
        this.metrics.inc('tx_malformed_packets');
        if (chain.head !== undefined) q.addUsed(chain.head, 0);
        continue;
      }
      const pkt = parseTxPacket(a.mem, chain, this.scratch);
      if (pkt instanceof VsockPacketError) this.metrics.inc('tx_malformed_packets');
      else this.muxer.sendPkt(pkt); // consumed: the data is on the socket or in the TX buffer now
      q.addUsed(chain.head, 0);
    }
    signalUsed(q, a.interrupt);
  }

  private usable(): Active | undefined {
    const a = this.active;
    return a && !a.broken ? a : undefined;
  }

  /** A queue broke: stop and ask the driver for a reset (Firecracker panics on InvalidAvailIdx). */
  private fail(a: Active, counter: VsockCounter): void {
    if (a.broken) return;
    a.broken = true;
    this.metrics.inc(counter);
    a.interrupt.needsReset();
  }
}
