/**
 * One TCP connection of the MMDS listener: passive open only, in-order data only, one HTTP
 * request answered at a time (Firecracker src/vmm/src/dumbo/tcp/connection.rs and
 * endpoint.rs, which this follows in behaviour, not in structure).
 *
 *   SYN ──▶ [SYN received] ──SYN-ACK──▶ ──ACK of ISS+1──▶ [established]
 *   [established] ──request bytes──▶ response queued ──all ACKed──▶ next request
 *   [established] ──peer FIN, no response pending──▶ our FIN ──its ACK──▶ done
 *   any state ──RST in window──▶ done;  bad SYN/ACK, full buffer, RTO limit ──▶ our RST ──▶ done
 *
 * - The receive buffer (MMDS_RCV_BUF_SIZE) is the receive window: data beyond it, out of
 *   order or after the peer's FIN is dropped and re-ACKed. A retransmission that overlaps
 *   new data is trimmed. A request that fills the buffer unfinished resets the connection.
 * - Sending: the response from the first unsent byte, within the peer's window and MSS. A
 *   retransmission timeout (MMDS_RTO_MS, fixed) goes back to the first unacknowledged byte
 *   (or the SYN-ACK, or the FIN) and resends; MMDS_RTO_COUNT_MAX timeouts in a row reset the
 *   connection. A duplicate ACK resends one segment from the first unacknowledged byte, as
 *   Firecracker retransmits on the first duplicate ACK.
 * - Closing follows the guest: the MMDS keeps a connection open (HTTP keep-alive) until the
 *   guest's FIN, then sends its own once no response is pending, and is done when that FIN
 *   is ACKed (Firecracker forgets the connection as soon as it has sent its FIN, so the
 *   guest's last ACK draws a gratuitous RST; dumbo/tcp/connection.rs `is_done` notes it).
 * - Time is the caller's, in milliseconds; the connection never reads a clock.
 */
import {
  MMDS_RCV_BUF_SIZE, MMDS_RTO_COUNT_MAX, MMDS_RTO_MS, TCP_ACK, TCP_FIN, TCP_MAX_WINDOW, TCP_MIN_HEADER_LEN, TCP_MSS_DEFAULT,
  TCP_OPT_MSS_LEN, TCP_RST, TCP_SYN,
} from './constants.js';
import { writeTcpSegment, type TcpHeader } from './tcp-segment.js';

/** Something unusual a segment did (Firecracker RecvStatusFlags), counted as `rx_accepted_unusual`. */
export type TcpAnomaly =
  | 'tcp-rst-received' | 'tcp-invalid-rst' | 'tcp-invalid-segment' | 'tcp-invalid-ack' | 'tcp-dup-ack' | 'tcp-window-shrunk'
  | 'tcp-beyond-window' | 'tcp-unexpected-seq' | 'tcp-data-after-fin' | 'tcp-invalid-fin' | 'tcp-request-too-large';

/** The application on top: takes one request from the front of the receive buffer. */
export interface ConnectionApp {
  /** Bytes consumed and the response to send, or why no request can be taken yet. */
  take(buf: Uint8Array, len: number): { readonly consumed: number; readonly response: Uint8Array } | 'incomplete' | 'too-large';
}

/** Serial-number arithmetic (RFC 1982) over the TCP window: `a` after `b`. */
export function seqLt(a: number, b: number): boolean {
  const d = (b - a) >>> 0;
  return d !== 0 && d < TCP_MAX_WINDOW;
}

/** `a` at or before `b`. */
export function seqLe(a: number, b: number): boolean {
  return a === b || seqLt(a, b);
}

/**
 * The RST answering a segment nobody can take (RFC 9293 §3.10.7.1): with its ACK number as
 * sequence number when it carries an ACK, else an ACK of everything it occupied. Firecracker's
 * RstConfig::new leaves the SYN and FIN out of that ACK, so a SYN refused that way is not
 * acknowledged and a Linux client ignores the RST; counting them makes it "connection refused".
 */
export function rstFor(seg: TcpHeader): { seq: number; ack: number; flags: number } {
  if (seg.flags & TCP_ACK) return { seq: seg.ack, ack: 0, flags: TCP_RST };
  const occupied = seg.payloadLen + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
  return { seq: 0, ack: (seg.seq + occupied) >>> 0, flags: TCP_RST | TCP_ACK };
}

/** A passive-open TCP connection carrying HTTP requests to the MMDS. */
export class TcpConnection {
  /** Time of the last segment received (eviction picks the stalest). */
  lastReceiveMs: number;
  /** Finished: reset either way, or both FINs exchanged and ours ACKed. */
  done = false;
  /** When the retransmission timer fires, or -1 when it is not running. */
  rtoDeadline = -1;

  private readonly mss: number;
  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  private sndMax: number;
  /** Right edge of the peer's receive window. */
  private sndWndEdge: number;
  private rcvNxt: number;
  private readonly rcvBuf = new Uint8Array(MMDS_RCV_BUF_SIZE);
  private rcvLen = 0;
  /** The response being sent, starting at sequence number `respSeq`; null once all of it is ACKed. */
  private response: Uint8Array | null = null;
  private respSeq = 0;
  private established = false;
  private synAckPending = true;
  private peerFin = false;
  /** Sequence number of our FIN once we close, else -1. */
  private finSeq = -1;
  private pendingAck = false;
  private resendOne = false;
  private rtoCount = 0;
  /** RST to send (flags 0: none); once it is written the connection is done. */
  private rstSeq = 0;
  private rstAck = 0;
  private rstFlags = 0;

  private constructor(readonly remoteIp: number, readonly remotePort: number, syn: TcpHeader, iss: number, now: number) {
    this.mss = syn.mss || TCP_MSS_DEFAULT;
    this.iss = iss >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.sndWndEdge = (this.iss + 1 + syn.window) >>> 0;
    this.rcvNxt = (syn.seq + 1) >>> 0;
    this.lastReceiveMs = now;
  }

  /** Whether a segment may open a connection: SYN without ACK, RST or FIN (ECN bits tolerated), and no data. */
  static isOpeningSyn(seg: TcpHeader): boolean {
    return (seg.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_SYN && seg.payloadLen === 0;
  }

  /** A connection for an opening SYN (`isOpeningSyn`), with initial send sequence `iss`. */
  static open(remoteIp: number, syn: TcpHeader, iss: number, now: number): TcpConnection {
    return new TcpConnection(remoteIp, syn.srcPort, syn, iss, now);
  }

  /** Whether a segment may be written now (timers aside: see `onTimer`). */
  hasOutput(): boolean {
    if (this.done) return false;
    if (this.rstFlags !== 0) return true;
    if (!this.established) return this.synAckPending;
    return this.pendingAck || this.resendOne || this.canSendData() || (this.finSeq >= 0 && this.sndNxt === this.finSeq);
  }

  /** Resets the connection: a RST is sent next, then it is done (Firecracker `Connection::reset`). */
  reset(): void {
    if (this.rstFlags !== 0 || this.done) return;
    if (this.established) this.setRst(this.sndNxt, 0, TCP_RST);
    else this.setRst(0, this.rcvNxt, TCP_RST | TCP_ACK);
  }

  /** The RST an evicted connection gets (its reset, taken out of the connection). */
  takeRst(): { seq: number; ack: number; flags: number } {
    this.reset();
    return { seq: this.rstSeq, ack: this.rstAck, flags: this.rstFlags };
  }

  /** Handles a segment of this connection whose payload is frame[seg.payloadOffset, +payloadLen). */
  receive(seg: TcpHeader, frame: Uint8Array, now: number, app: ConnectionApp): TcpAnomaly | null {
    if (this.done || this.rstFlags !== 0) return null; // resetting: nothing more is read (endpoint.rs stop_receiving)
    this.lastReceiveMs = now;
    const f = seg.flags;
    if (f & TCP_RST) {
      // Accepted only with an in-window sequence number (RFC 5961 §3 spirit, Firecracker's rule).
      const wnd = Math.max(1, MMDS_RCV_BUF_SIZE - this.rcvLen);
      if (seqLe(this.rcvNxt, seg.seq) && seqLt(seg.seq, (this.rcvNxt + wnd) >>> 0)) {
        this.done = true;
        return 'tcp-rst-received';
      }
      return 'tcp-invalid-rst';
    }
    let anomaly: TcpAnomaly | null = null;
    if (!this.established) {
      if (f & TCP_SYN) {
        if (TcpConnection.isOpeningSyn(seg) && ((seg.seq + 1) >>> 0) === this.rcvNxt) {
          this.synAckPending = true; // a retransmitted SYN: our SYN-ACK may be lost
          return null;
        }
        return this.resetFor(seg, 'tcp-invalid-segment');
      }
      if (!(f & TCP_ACK)) return null;
      // The ACK of our SYN-ACK (even while a retransmitted SYN asks for another one).
      if (this.sndMax === this.iss || seg.ack !== this.sndMax) return this.resetFor(seg, 'tcp-invalid-ack');
      this.established = true;
      this.synAckPending = false;
      this.sndUna = seg.ack;
      this.sndWndEdge = (seg.ack + seg.window) >>> 0;
      this.rtoDeadline = -1;
      this.rtoCount = 0;
    } else {
      if (f & TCP_SYN) return this.resetFor(seg, 'tcp-invalid-segment');
      if (f & TCP_ACK) anomaly = this.onAck(seg, now);
    }
    anomaly = this.onData(seg, frame) ?? anomaly;
    return this.serve(app) ?? anomaly;
  }

  /** The retransmission timer fired (`now` ≥ rtoDeadline): go back and resend, or give up. */
  onTimer(): void {
    this.rtoDeadline = -1;
    if (this.done || this.rstFlags !== 0) return;
    if (++this.rtoCount >= MMDS_RTO_COUNT_MAX) return this.reset();
    if (!this.established) this.synAckPending = true;
    else this.sndNxt = this.sndUna;
  }

  /**
   * Writes the next segment at buf[off, off + room) between `localIp:localPort` and the peer;
   * returns its length, or 0 when there is nothing to send or `room` cannot hold it.
   */
  write(buf: Uint8Array, off: number, room: number, localIp: number, localPort: number, now: number): number {
    if (this.done || room < TCP_MIN_HEADER_LEN + TCP_OPT_MSS_LEN) return 0;
    if (this.rstFlags !== 0) {
      this.done = true;
      return writeTcpSegment(buf, off, localPort, this.remotePort, this.rstSeq, this.rstAck, this.rstFlags, 0, 0, localIp, this.remoteIp, null, 0, 0);
    }
    if (!this.established) {
      if (!this.synAckPending) return 0;
      this.synAckPending = false;
      this.sndNxt = this.sndMax = (this.iss + 1) >>> 0;
      this.startTimer(now);
      return this.emit(buf, off, localIp, localPort, this.iss, TCP_SYN | TCP_ACK, this.mss, 0, 0);
    }
    const from = this.resendOne && this.sndUna !== this.sndMax ? this.sndUna : this.sndNxt;
    this.resendOne = false;
    if (this.response) {
      const respEnd = (this.respSeq + this.response.length) >>> 0;
      const inWindow = seqLt(from, this.sndWndEdge) ? (this.sndWndEdge - from) >>> 0 : 0;
      const len = seqLt(from, respEnd) ? Math.min((respEnd - from) >>> 0, inWindow, this.mss, room - TCP_MIN_HEADER_LEN) : 0;
      if (len > 0) {
        const n = this.emit(buf, off, localIp, localPort, from, TCP_ACK, 0, (from - this.respSeq) >>> 0, len);
        this.advance(from, len, now);
        return n;
      }
    }
    if (this.finSeq >= 0 && from === this.finSeq) {
      const n = this.emit(buf, off, localIp, localPort, this.finSeq, TCP_FIN | TCP_ACK, 0, 0, 0);
      this.advance(this.finSeq, 1, now);
      return n;
    }
    if (this.pendingAck) return this.emit(buf, off, localIp, localPort, this.sndNxt, TCP_ACK, 0, 0, 0);
    return 0;
  }

  /**
   * One segment carrying the current ACK and window (the free part of the buffer), so no
   * separate ACK is pending after it.
   */
  private emit(
    buf: Uint8Array, off: number, localIp: number, localPort: number, seq: number, flags: number, mss: number, payloadStart: number, payloadLen: number,
  ): number {
    this.pendingAck = false;
    return writeTcpSegment(buf, off, localPort, this.remotePort, seq, this.rcvNxt, flags, MMDS_RCV_BUF_SIZE - this.rcvLen, mss, localIp,
      this.remoteIp, this.response, payloadStart, payloadLen);
  }

  private canSendData(): boolean {
    if (!this.response) return false;
    const respEnd = (this.respSeq + this.response.length) >>> 0;
    return seqLt(this.sndNxt, respEnd) && seqLt(this.sndNxt, this.sndWndEdge);
  }

  /** Bookkeeping after sending `len` sequence numbers from `from`; a retransmission restarts the timer. */
  private advance(from: number, len: number, now: number): void {
    const retransmission = seqLt(from, this.sndNxt);
    const end = (from + len) >>> 0;
    if (seqLt(this.sndNxt, end)) this.sndNxt = end;
    if (seqLt(this.sndMax, end)) this.sndMax = end;
    if (this.rtoDeadline < 0 || retransmission) this.startTimer(now);
  }

  private startTimer(now: number): void {
    this.rtoDeadline = now + MMDS_RTO_MS;
  }

  private setRst(seq: number, ack: number, flags: number): void {
    this.rstSeq = seq >>> 0;
    this.rstAck = ack >>> 0;
    this.rstFlags = flags;
  }

  private resetFor(seg: TcpHeader, why: TcpAnomaly): TcpAnomaly {
    const r = rstFor(seg);
    this.setRst(r.seq, r.ack, r.flags);
    return why;
  }

  /** An ACK while established: progress, duplicate, window update, or out of range. */
  private onAck(seg: TcpHeader, now: number): TcpAnomaly | null {
    const ack = seg.ack;
    if (!seqLe(this.sndUna, ack) || !seqLe(ack, this.sndMax)) return 'tcp-invalid-ack';
    let anomaly: TcpAnomaly | null = null;
    const edge = (ack + seg.window) >>> 0;
    if (ack === this.sndUna) {
      const dup = this.sndUna !== this.sndMax && seg.payloadLen === 0 && !(seg.flags & TCP_FIN) && edge === this.sndWndEdge;
      if (dup) {
        this.resendOne = true;
        anomaly = 'tcp-dup-ack';
      }
    } else {
      this.sndUna = ack;
      this.rtoCount = 0;
      if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
      if (this.response && seqLe((this.respSeq + this.response.length) >>> 0, ack)) {
        this.respSeq = (this.respSeq + this.response.length) >>> 0;
        this.response = null;
      }
      this.rtoDeadline = this.sndUna === this.sndMax ? -1 : now + MMDS_RTO_MS;
      if (this.finSeq >= 0 && ack === ((this.finSeq + 1) >>> 0)) this.done = true;
    }
    if (seqLt(this.sndWndEdge, edge)) this.sndWndEdge = edge;
    else if (edge !== this.sndWndEdge) anomaly ??= 'tcp-window-shrunk';
    return anomaly;
  }

  /** Payload and FIN of an accepted segment. */
  private onData(seg: TcpHeader, frame: Uint8Array): TcpAnomaly | null {
    if (!this.established) return null;
    const len = seg.payloadLen;
    const fin = (seg.flags & TCP_FIN) !== 0;
    if (len > 0) {
      this.pendingAck = true; // whatever happens to the data, the peer learns where we are
      if (this.peerFin) return 'tcp-data-after-fin';
      if (seqLt(this.rcvNxt, seg.seq)) return 'tcp-unexpected-seq'; // a gap: in-order data only
      const skip = (this.rcvNxt - seg.seq) >>> 0; // bytes already received (a retransmission)
      if (skip < len) {
        const n = len - skip;
        if (n > MMDS_RCV_BUF_SIZE - this.rcvLen) return 'tcp-beyond-window';
        const start = seg.payloadOffset + skip;
        this.rcvBuf.set(frame.subarray(start, start + n), this.rcvLen);
        this.rcvLen += n;
        this.rcvNxt = (this.rcvNxt + n) >>> 0;
      } else if (!fin) return 'tcp-unexpected-seq';
    }
    if (!fin) return null;
    this.pendingAck = true;
    if (this.peerFin) return null; // a repeated FIN: re-ACKed
    if (((seg.seq + len) >>> 0) !== this.rcvNxt) return 'tcp-invalid-fin';
    this.peerFin = true;
    this.rcvNxt = (this.rcvNxt + 1) >>> 0;
    return null;
  }

  /** Answers buffered requests while no response is pending; closes after the peer's FIN. */
  private serve(app: ConnectionApp): TcpAnomaly | null {
    while (this.established && this.response === null && this.rstFlags === 0 && this.rcvLen > 0) {
      const r = app.take(this.rcvBuf, this.rcvLen);
      if (r === 'incomplete') break;
      if (r === 'too-large') {
        this.reset();
        return 'tcp-request-too-large';
      }
      if (this.rcvLen === MMDS_RCV_BUF_SIZE) this.pendingAck = true; // the window reopens
      this.rcvBuf.copyWithin(0, r.consumed, this.rcvLen);
      this.rcvLen -= r.consumed;
      if (r.response.length > 0) {
        this.response = r.response;
        this.respSeq = this.sndNxt;
      }
    }
    if (this.peerFin && this.response === null && this.finSeq < 0 && this.rstFlags === 0) this.finSeq = this.sndNxt;
    return null;
  }
}
