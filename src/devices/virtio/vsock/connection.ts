/**
 * One vsock connection: a guest AF_VSOCK stream on one side, a host Unix stream on the other
 * (Firecracker devices/virtio/vsock/csm/connection.rs). It turns guest packets into host
 * writes and state changes (`sendPkt`), host readiness into packets for the guest (`notify`,
 * then `recvPkt`), and says which host events it wants polled (`pollEvents`).
 *
 *   host-initiated:  LOCAL_INIT ──(REQUEST sent, guest RESPONSE)──▶ ESTABLISHED
 *   guest-initiated: PEER_INIT  ──(RESPONSE sent)─────────────────▶ ESTABLISHED
 *   ESTABLISHED ──host EOF──▶ LOCAL_CLOSED (SHUTDOWN sent; reset after CONN_SHUTDOWN_TIMEOUT_MS)
 *   ESTABLISHED ──guest SHUTDOWN──▶ PEER_CLOSED(rcv, snd); both set → RST once the TX buffer drained
 *   any ──kill()──▶ KILLED (an RST is due; the muxer drops the connection once it is sent)
 *
 * Flow control (virtio 1.1 §5.10.6.3). Every packet the device sends carries `buf_alloc`
 * (CONN_TX_BUF_SIZE) and `fwd_cnt` (bytes written to the host socket so far); every packet
 * from the guest carries the guest's. The device sends guest data only within the guest's
 * credit, `peer_buf_alloc - (rx_cnt - peer_fwd_cnt)` (u32 arithmetic), and asks for credit
 * (CREDIT_REQUEST) when it has none; it sends a CREDIT_UPDATE when the guest's view of its
 * free space falls under CONN_CREDIT_UPDATE_THRESHOLD. A guest that sends beyond its credit
 * overflows the TX buffer and is reset.
 *
 * Kindling changes to Firecracker's machine, each for a hostile or stuck peer:
 * - the host socket is not polled for input while a data indication is still undelivered (a
 *   guest that posts no RX buffers would otherwise wake the worker forever, Firecracker's
 *   "queue deadlock" TODO in device.rs);
 * - a read that filled the whole buffer leaves the data indication set, so a fast stream is
 *   read packet after packet without a poll() round trip in between;
 * - reads are capped at MAX_PKT_BUF_SIZE (Firecracker would read more into a large RX buffer
 *   and then fail to commit the header);
 * - a SHUTDOWN that completes (both flags) while the TX buffer holds data always arms the
 *   shutdown timer, so a host that never reads cannot hold the connection forever.
 */
import {
  CONN_CREDIT_UPDATE_THRESHOLD, CONN_REQUEST_TIMEOUT_MS, CONN_SHUTDOWN_TIMEOUT_MS, CONN_TX_BUF_SIZE, MAX_PKT_BUF_SIZE,
  VIRTIO_VSOCK_OP_CREDIT_REQUEST, VIRTIO_VSOCK_OP_CREDIT_UPDATE, VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST, VIRTIO_VSOCK_OP_RW, VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_SHUTDOWN_RCV, VIRTIO_VSOCK_SHUTDOWN_SEND,
  VIRTIO_VSOCK_TYPE_STREAM, VSOCK_HOST_CID,
} from './constants.js';
import { EAGAIN, POLL_ERR, POLL_HUP, POLL_IN, POLL_NVAL, POLL_OUT, type VsockHostIo } from './host.js';
import type { VsockMetrics } from './metrics.js';
import type { VsockHeader, VsockRxBuffer, VsockTxPacket } from './packet.js';
import { TxBuf } from './tx-buf.js';

/** Connection states (Firecracker `ConnState`; PEER_CLOSED's two flags are fields). */
export const CONN_STATE = {
  LOCAL_INIT: 'local-init',
  PEER_INIT: 'peer-init',
  ESTABLISHED: 'established',
  LOCAL_CLOSED: 'local-closed',
  PEER_CLOSED: 'peer-closed',
  KILLED: 'killed',
} as const;
export type ConnState = (typeof CONN_STATE)[keyof typeof CONN_STATE];

/** Packets a connection owes the guest (Firecracker `PendingRx`), as bits. */
const PENDING_REQUEST = 1 << 0;
const PENDING_RESPONSE = 1 << 1;
const PENDING_RST = 1 << 2;
const PENDING_RW = 1 << 3;
const PENDING_CREDIT_UPDATE = 1 << 4;

/** What every connection of a device shares. */
export interface ConnContext {
  readonly io: VsockHostIo;
  readonly metrics: VsockMetrics;
  /** Milliseconds, monotonic. */
  readonly now: () => number;
  readonly guestCid: number;
}

/** u32 wrapping subtraction. */
const sub32 = (a: number, b: number): number => (a - b) >>> 0;

export class VsockConnection {
  state: ConnState;
  /** PEER_CLOSED: the guest will receive no more / send no more. */
  peerRecvOff = false;
  peerSendOff = false;
  /** When the connection is due to be reset (ms on the context clock), if a timer is armed. */
  expiry: number | undefined;
  /** Bytes written to the host socket, directly or from the TX buffer (u32). */
  fwdCnt = 0;
  /** The guest's receive buffer size and consumed count, from its latest packet. */
  peerBufAlloc: number;
  peerFwdCnt = 0;
  /** Data bytes sent to the guest (u32). */
  rxCnt = 0;
  /** `fwdCnt` as the guest last heard it. */
  lastFwdCntToPeer = 0;
  readonly txBuf = new TxBuf();
  /** Made for a host client's CONNECT line (its local port was allocated by the muxer). */
  readonly hostInitiated: boolean;
  private pending: number;

  private constructor(
    private readonly ctx: ConnContext,
    /** The host socket. */
    readonly fd: number,
    readonly localPort: number,
    readonly peerPort: number,
    state: ConnState,
    peerBufAlloc: number,
    pending: number,
  ) {
    this.state = state;
    this.hostInitiated = state === CONN_STATE.LOCAL_INIT;
    this.peerBufAlloc = peerBufAlloc;
    this.pending = pending;
  }

  /** A guest-initiated connection whose host socket is connected: RESPONSE is due. */
  static peerInit(ctx: ConnContext, fd: number, localPort: number, peerPort: number, peerBufAlloc: number): VsockConnection {
    return new VsockConnection(ctx, fd, localPort, peerPort, CONN_STATE.PEER_INIT, peerBufAlloc, PENDING_RESPONSE);
  }

  /** A host-initiated connection (after its CONNECT line): REQUEST is due. */
  static localInit(ctx: ConnContext, fd: number, localPort: number, peerPort: number): VsockConnection {
    return new VsockConnection(ctx, fd, localPort, peerPort, CONN_STATE.LOCAL_INIT, 0, PENDING_REQUEST);
  }

  /** The connection owes the guest a packet. */
  hasPendingRx(): boolean {
    return this.pending !== 0;
  }

  /** A reset timer is armed for later than now. */
  willExpire(now: number): boolean {
    return this.expiry !== undefined && this.expiry > now;
  }

  /** The reset timer has run out. */
  hasExpired(now: number): boolean {
    return this.expiry !== undefined && this.expiry <= now;
  }

  /** Schedules a reset: the next packet for the guest is an RST (Firecracker `kill`). */
  kill(): void {
    this.state = CONN_STATE.KILLED;
    this.pending |= PENDING_RST;
  }

  /** Bytes the guest can still take (Firecracker `peer_avail_credit`). */
  peerAvailCredit(): number {
    return sub32(this.peerBufAlloc, sub32(this.rxCnt, this.peerFwdCnt));
  }

  /** The guest's view of our free TX space is stale enough to send an update. */
  private peerNeedsCreditUpdate(): boolean {
    return sub32(CONN_TX_BUF_SIZE, sub32(this.fwdCnt, this.lastFwdCntToPeer)) < CONN_CREDIT_UPDATE_THRESHOLD;
  }

  /** Whether the state lets host data flow to the guest. */
  private canSendToPeer(): boolean {
    return this.state === CONN_STATE.ESTABLISHED || (this.state === CONN_STATE.PEER_CLOSED && !this.peerRecvOff);
  }

  /**
   * POLL_IN and/or POLL_OUT wanted on the host socket now; 0 keeps it out of the poll set. A
   * killed connection wants nothing: its socket may be broken for good (an error or hang-up
   * poll always reports), and only the RST it owes the guest is left to do. Firecracker keeps
   * polling its TX buffer there, which spins while the guest posts no RX buffer.
   */
  pollEvents(): number {
    if (this.state === CONN_STATE.KILLED) return 0;
    let ev = this.txBuf.isEmpty ? 0 : POLL_OUT;
    const closed = this.state === CONN_STATE.LOCAL_CLOSED || (this.state === CONN_STATE.PEER_CLOSED && this.peerRecvOff);
    if (!closed && (this.pending & PENDING_RW) === 0 && this.peerAvailCredit() !== 0) ev |= POLL_IN;
    return ev;
  }

  /** The host socket is ready (`revents` from poll for the events `pollEvents` asked). */
  notify(revents: number): void {
    const asked = this.pollEvents();
    if (revents & POLL_NVAL) {
      this.ctx.metrics.inc('conn_event_fails');
      this.kill();
      return;
    }
    // An error or hang-up shows in the read or write it prompts, which handle it.
    const trouble = (revents & (POLL_ERR | POLL_HUP)) !== 0;
    if ((revents & POLL_IN) || (trouble && asked & POLL_IN)) this.pending |= PENDING_RW;
    if ((revents & POLL_OUT) || (trouble && asked & POLL_OUT)) this.flushTxBuf();
  }

  private flushTxBuf(): void {
    const m = this.ctx.metrics;
    if (this.txBuf.isEmpty) {
      m.inc('conn_event_fails');
      return;
    }
    const n = this.txBuf.flush(this.ctx.io, this.fd);
    if (n < 0) {
      m.inc('tx_flush_fails');
      // EAGAIN after POLLOUT "should never happen, but it does" (Firecracker): try again later.
      if (n !== -EAGAIN) this.kill();
      return;
    }
    this.fwdCnt = (this.fwdCnt + n) >>> 0;
    m.inc('tx_bytes_count', n);
    if (this.state === CONN_STATE.PEER_CLOSED && this.peerRecvOff && this.peerSendOff && this.txBuf.isEmpty) {
      this.pending |= PENDING_RST;
    } else if (this.peerNeedsCreditUpdate()) this.pending |= PENDING_CREDIT_UPDATE;
  }

  /** Fills the fields every packet to the guest shares (Firecracker `init_pkt_hdr`). */
  private initHeader(h: VsockHeader): void {
    h.srcCid = VSOCK_HOST_CID;
    h.dstCid = this.ctx.guestCid;
    h.srcPort = this.localPort;
    h.dstPort = this.peerPort;
    h.len = 0;
    h.type = VIRTIO_VSOCK_TYPE_STREAM;
    h.op = 0;
    h.flags = 0;
    h.bufAlloc = CONN_TX_BUF_SIZE;
    h.fwdCnt = this.fwdCnt;
  }

  /**
   * Produces the next packet for the guest into `hdr` and `buf`'s data area (Firecracker
   * `recv_pkt`), most urgent first: RST, RESPONSE, REQUEST, data, credit update. False when
   * there was nothing to send after all (the socket had no data).
   */
  recvPkt(hdr: VsockHeader, buf: VsockRxBuffer): boolean {
    const m = this.ctx.metrics;
    this.initHeader(hdr);
    if (this.take(PENDING_RST)) {
      hdr.op = VIRTIO_VSOCK_OP_RST;
    } else if (this.take(PENDING_RESPONSE)) {
      this.state = CONN_STATE.ESTABLISHED;
      hdr.op = VIRTIO_VSOCK_OP_RESPONSE;
    } else if (this.take(PENDING_REQUEST)) {
      this.expiry = this.ctx.now() + CONN_REQUEST_TIMEOUT_MS;
      hdr.op = VIRTIO_VSOCK_OP_REQUEST;
    } else if (this.take(PENDING_RW) && this.recvData(hdr, buf)) {
      // hdr filled by recvData
    } else if (this.take(PENDING_CREDIT_UPDATE)) {
      hdr.op = VIRTIO_VSOCK_OP_CREDIT_UPDATE;
      this.lastFwdCntToPeer = this.fwdCnt;
    } else {
      return false;
    }
    m.inc('rx_packets_count');
    return true;
  }

  /** A data indication: read from the host socket into the guest buffer. False: nothing to send. */
  private recvData(hdr: VsockHeader, buf: VsockRxBuffer): boolean {
    if (!this.canSendToPeer()) {
      // Data for a guest that may not take it: the connection is beyond saving.
      hdr.op = VIRTIO_VSOCK_OP_RST;
      return true;
    }
    const credit = this.peerAvailCredit();
    if (credit === 0) {
      this.lastFwdCntToPeer = this.fwdCnt;
      hdr.op = VIRTIO_VSOCK_OP_CREDIT_REQUEST;
      return true;
    }
    const max = Math.min(buf.capacity, credit, MAX_PKT_BUF_SIZE);
    if (max === 0) {
      this.pending |= PENDING_RW; // a header-only RX buffer: wait for a bigger one
      return false;
    }
    const n = this.ctx.io.read(this.fd, buf.data(max));
    if (n === -EAGAIN) return false; // spurious readiness (Firecracker logs it)
    if (n < 0) {
      this.ctx.metrics.inc('rx_read_fails');
      hdr.op = VIRTIO_VSOCK_OP_RST;
      this.lastFwdCntToPeer = this.fwdCnt;
      return true;
    }
    if (n === 0) {
      // The host closed its end: neither side may send any more.
      this.state = CONN_STATE.LOCAL_CLOSED;
      this.expiry = this.ctx.now() + CONN_SHUTDOWN_TIMEOUT_MS;
      hdr.op = VIRTIO_VSOCK_OP_SHUTDOWN;
      hdr.flags = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;
    } else {
      hdr.op = VIRTIO_VSOCK_OP_RW;
      hdr.len = n;
      this.ctx.metrics.inc('rx_bytes_count', n);
      // A full read likely left more behind: read on without waiting for poll.
      if (n === max && credit > n) this.pending |= PENDING_RW;
    }
    this.rxCnt = (this.rxCnt + hdr.len) >>> 0;
    this.lastFwdCntToPeer = this.fwdCnt;
    return true;
  }

  /**
   * Takes a packet from the guest (Firecracker `send_pkt`): credit fields first, then what
   * its op means in the current state; anything the state does not allow is dropped.
   */
  sendPkt(pkt: VsockTxPacket): void {
    const m = this.ctx.metrics;
    const h = pkt.hdr;
    this.peerBufAlloc = h.bufAlloc;
    this.peerFwdCnt = h.fwdCnt;
    m.inc('tx_packets_count');
    const s = this.state;
    const established = s === CONN_STATE.ESTABLISHED;
    const peerClosed = s === CONN_STATE.PEER_CLOSED;
    switch (h.op) {
      case VIRTIO_VSOCK_OP_RW:
        if (!(established || (peerClosed && !this.peerSendOff))) break;
        if (h.len === 0) return; // an empty data packet: nothing to forward
        if (!this.sendBytes(pkt)) {
          this.kill();
          return;
        }
        if (this.peerNeedsCreditUpdate()) this.pending |= PENDING_CREDIT_UPDATE;
        return;
      case VIRTIO_VSOCK_OP_RESPONSE:
        if (s !== CONN_STATE.LOCAL_INIT) break;
        this.expiry = undefined;
        this.state = CONN_STATE.ESTABLISHED;
        return;
      case VIRTIO_VSOCK_OP_SHUTDOWN:
        if (!established && !peerClosed) break;
        this.state = CONN_STATE.PEER_CLOSED;
        this.peerRecvOff ||= (h.flags & VIRTIO_VSOCK_SHUTDOWN_RCV) !== 0;
        this.peerSendOff ||= (h.flags & VIRTIO_VSOCK_SHUTDOWN_SEND) !== 0;
        if (this.peerRecvOff && this.peerSendOff) {
          if (this.txBuf.isEmpty) this.pending |= PENDING_RST;
          else this.expiry ??= this.ctx.now() + CONN_SHUTDOWN_TIMEOUT_MS;
        }
        return;
      case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        // The credit fields above were the point.
        if (established || s === CONN_STATE.PEER_INIT || (peerClosed && !this.peerRecvOff)) return;
        break;
      case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        if (!(established || s === CONN_STATE.PEER_INIT || (peerClosed && !this.peerSendOff))) break;
        this.pending |= PENDING_CREDIT_UPDATE;
        return;
      default:
        break;
    }
    m.inc('tx_unexpected_ops');
  }

  /**
   * Forwards a data packet to the host socket: straight from guest memory, and what the socket
   * does not take into the TX buffer. False when the connection cannot go on (a write error,
   * or the guest overran its credit).
   */
  private sendBytes(pkt: VsockTxPacket): boolean {
    const m = this.ctx.metrics;
    const data = pkt.data();
    if (!this.txBuf.isEmpty) {
      // Already waiting for POLLOUT: keep the order, buffer everything.
      if (this.txBuf.push(data)) return true;
      m.inc('credit_violations');
      return false;
    }
    let n = this.ctx.io.write(this.fd, data);
    if (n === -EAGAIN) n = 0;
    else if (n < 0) {
      m.inc('tx_write_fails');
      return false;
    }
    this.fwdCnt = (this.fwdCnt + n) >>> 0;
    m.inc('tx_bytes_count', n);
    if (n < pkt.hdr.len && !this.txBuf.push(sliceFrom(data, n))) {
      m.inc('credit_violations');
      return false;
    }
    return true;
  }

  /** Clears and reports a pending bit. */
  private take(bit: number): boolean {
    const had = (this.pending & bit) !== 0;
    this.pending &= ~bit;
    return had;
  }
}

/** The views of `bufs` after their first `skip` bytes. */
function sliceFrom(bufs: readonly Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let s = skip;
  for (const b of bufs) {
    if (s >= b.length) {
      s -= b.length;
      continue;
    }
    out.push(s ? b.subarray(s) : b);
    s = 0;
  }
  return out;
}
