/**
 * The MMDS's TCP listener on one IPv4 address and port (Firecracker src/vmm/src/dumbo/tcp/
 * handler.rs `TcpIPv4Handler`): steers segments to their connections, opens connections on
 * SYNs, answers segments that belong nowhere with RSTs, and picks the next segment to send.
 *
 * - Connections are keyed by the peer's address and port (the local ones are fixed).
 * - At most MMDS_MAX_CONNECTIONS: a SYN beyond that evicts the connection that has received
 *   nothing for the longest time, if that is over MMDS_EVICTION_MS (it gets a RST), else the
 *   SYN itself gets a RST (handler.rs `receive_packet`, `find_evictable_connection`).
 * - RSTs for segments without a connection go through a queue of MMDS_MAX_PENDING_RESETS;
 *   when it is full more are not sent. A segment to another port gets a RST as well (a closed
 *   port; Firecracker only counts it) and is counted as `rx_accepted_err`.
 * - Output: queued RSTs first, then the connections with something to send, round-robin.
 *   `tick` fires due retransmission timers; `nextDeadline` says when the next one is due.
 * - Metrics as handler.rs's events feed them in mmds/ns.rs: rx_count for every segment
 *   handled, connections_created/destroyed, rx_accepted_unusual for a connection's anomaly.
 */
import {
  MMDS_EVICTION_MS, MMDS_MAX_CONNECTIONS, MMDS_MAX_PENDING_RESETS, IP_PROTO_TCP, IPV4_MIN_HEADER_LEN, TCP_ACK, TCP_FIN, TCP_RST, TCP_RST_WINDOW, TCP_SYN,
} from './constants.js';
import { writeIpv4Header } from './ipv4.js';
import type { MmdsMetrics } from './metrics.js';
import { TcpConnection, rstFor, type ConnectionApp, type TcpAnomaly } from './tcp-connection.js';
import { writeTcpSegment, type TcpHeader } from './tcp-segment.js';

/** Events the listener reports beside the metrics (MmdsStack counts them by reason). */
export type ListenerEvent = TcpAnomaly | 'tcp-wrong-port' | 'tcp-no-connection' | 'tcp-syn-with-data' | 'tcp-connection-limit' | 'tcp-rst-queue-full';

interface PendingRst {
  /** The port the refused segment was sent to (a closed port answers from itself). */
  readonly localPort: number;
  readonly ip: number;
  readonly port: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
}

/** The key of a peer (address, port): a number below 2^48. */
function peerKey(ip: number, port: number): number {
  return ip * 0x10000 + port;
}

/** The TCP side of an MMDS stack. */
export class TcpListener {
  private readonly conns = new Map<number, TcpConnection>();
  /** Connections with a segment ready to write, in the order they will be served. */
  private readonly ready = new Set<TcpConnection>();
  private readonly rsts: PendingRst[] = [];

  constructor(
    /** The MMDS IPv4 address (changes with the MMDS config; connections stay). */
    public localIp: number,
    readonly localPort: number,
    private readonly metrics: MmdsMetrics,
    private readonly app: ConnectionApp,
    private readonly note: (e: ListenerEvent) => void,
    private readonly isn: () => number,
  ) {}

  /** Connections open now. */
  get connectionCount(): number {
    return this.conns.size;
  }

  /** Handles a parsed segment from `srcIp`; its payload is in `frame`. */
  receive(srcIp: number, seg: TcpHeader, frame: Uint8Array, now: number): void {
    if (seg.destPort !== this.localPort) {
      this.metrics.inc('rx_accepted_err');
      this.note('tcp-wrong-port');
      this.refuse(srcIp, seg);
      return;
    }
    this.metrics.inc('rx_count');
    const key = peerKey(srcIp, seg.srcPort);
    const conn = this.conns.get(key);
    if (conn) {
      const anomaly = conn.receive(seg, frame, now, this.app);
      if (anomaly) {
        this.metrics.inc('rx_accepted_unusual');
        this.note(anomaly);
      }
      this.refresh(key, conn);
      return;
    }
    if (!TcpConnection.isOpeningSyn(seg)) {
      if ((seg.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_SYN) {
        // A SYN with data: Firecracker's passive open refuses it (FailedNewConnection) and says nothing.
        this.note('tcp-syn-with-data');
        return;
      }
      this.note('tcp-no-connection');
      this.refuse(srcIp, seg);
      return;
    }
    if (this.conns.size >= MMDS_MAX_CONNECTIONS && !this.evict(now)) {
      this.note('tcp-connection-limit');
      this.refuse(srcIp, seg);
      return;
    }
    const created = TcpConnection.open(srcIp, seg, this.isn(), now);
    this.conns.set(key, created);
    this.metrics.inc('connections_created');
    this.refresh(key, created);
  }

  /** Whether a segment can be written now. */
  hasOutput(): boolean {
    return this.rsts.length > 0 || this.ready.size > 0;
  }

  /**
   * Writes the next IPv4 packet (header and segment) at buf[off, off + room); returns its
   * length, or 0 when nothing is ready or it does not fit.
   */
  write(buf: Uint8Array, off: number, room: number, now: number): number {
    const tcpOff = off + IPV4_MIN_HEADER_LEN;
    const tcpRoom = room - IPV4_MIN_HEADER_LEN;
    const rst = this.rsts.pop();
    if (rst) {
      const len = writeTcpSegment(buf, tcpOff, rst.localPort, rst.port, rst.seq, rst.ack, rst.flags, TCP_RST_WINDOW, 0, this.localIp, rst.ip, null, 0, 0);
      return writeIpv4Header(buf, off, IP_PROTO_TCP, this.localIp, rst.ip, len) + len;
    }
    // refresh() moves a connection to the back of `ready`: stop after one round.
    let round = this.ready.size;
    for (const conn of this.ready) {
      if (round-- === 0) break;
      const len = conn.write(buf, tcpOff, tcpRoom, this.localIp, this.localPort, now);
      this.refresh(peerKey(conn.remoteIp, conn.remotePort), conn);
      if (len > 0) return writeIpv4Header(buf, off, IP_PROTO_TCP, this.localIp, conn.remoteIp, len) + len;
    }
    return 0;
  }

  /** Fires the retransmission timers due at `now`. */
  tick(now: number): void {
    for (const [key, conn] of this.conns) {
      if (conn.rtoDeadline >= 0 && conn.rtoDeadline <= now) {
        conn.onTimer();
        this.refresh(key, conn);
      }
    }
  }

  /** The earliest retransmission deadline, or -1 when no timer runs. */
  nextDeadline(): number {
    let next = -1;
    for (const conn of this.conns.values()) if (conn.rtoDeadline >= 0 && (next < 0 || conn.rtoDeadline < next)) next = conn.rtoDeadline;
    return next;
  }

  /** Puts a connection where its state says: gone when done, else ready or not (moved to the back when ready). */
  private refresh(key: number, conn: TcpConnection): void {
    this.ready.delete(conn);
    if (conn.done) {
      if (this.conns.delete(key)) this.metrics.inc('connections_destroyed');
    } else if (conn.hasOutput()) this.ready.add(conn);
  }

  /** Evicts the stalest connection idle past MMDS_EVICTION_MS; false when none is. */
  private evict(now: number): boolean {
    let stalest: [number, TcpConnection] | null = null;
    for (const entry of this.conns) if (!stalest || entry[1].lastReceiveMs < stalest[1].lastReceiveMs) stalest = entry;
    if (!stalest || now - stalest[1].lastReceiveMs <= MMDS_EVICTION_MS) return false;
    const [key, conn] = stalest;
    const r = conn.takeRst();
    this.enqueueRst(this.localPort, conn.remoteIp, conn.remotePort, r.seq, r.ack, r.flags);
    this.ready.delete(conn);
    this.conns.delete(key);
    this.metrics.inc('connections_destroyed');
    return true;
  }

  /** Answers a segment that no connection takes with a RST (never a RST with a RST). */
  private refuse(ip: number, seg: TcpHeader): void {
    if (seg.flags & TCP_RST) return;
    const r = rstFor(seg);
    this.enqueueRst(seg.destPort, ip, seg.srcPort, r.seq, r.ack, r.flags);
  }

  private enqueueRst(localPort: number, ip: number, port: number, seq: number, ack: number, flags: number): void {
    if (this.rsts.length >= MMDS_MAX_PENDING_RESETS) {
      this.note('tcp-rst-queue-full');
      return;
    }
    this.rsts.push({ localPort, ip, port, seq, ack, flags });
  }
}
