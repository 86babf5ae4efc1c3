/**
 * The Unix-socket backend of the vsock device (Firecracker devices/virtio/vsock/unix/muxer.rs,
 * muxer_rxq.rs, muxer_killq.rs): routes guest packets to their connections by (local port,
 * peer port), opens connections for guest REQUESTs to `<uds_path>_<port>` and for host
 * clients' CONNECT lines (host-listener.ts), answers what it cannot route with RST, picks
 * which connection fills the next RX buffer, and resets connections whose timer ran out.
 *
 * Bounded state, whatever the guest or host clients do: at most MAX_CONNECTIONS connections,
 * RST_QUEUE_MAX queued RSTs (more are dropped and counted), MAX_PENDING_HOST_CONNECTIONS host
 * streams without a line. A connection's host fd is closed when the connection is removed:
 * on the guest's RST, or once the RST the device owes the guest has been delivered.
 *
 * Differences from Firecracker, none visible to a well-behaved guest: the RX schedule is an
 * ordered set of connections (no fixed-size queue to resynchronise, so `killq_resync` stays
 * 0), queued RSTs go before connection packets, a connection that yielded a packet and has
 * more to say moves to the back (round robin), and the kill timers are a set of the
 * connections that have one armed.
 */
import {
  LOCAL_PORT_END, LOCAL_PORT_FIRST, MAX_CONNECTIONS, RST_QUEUE_MAX, VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_TYPE_STREAM, VSOCK_HOST_CID,
} from './constants.js';
import { CONN_STATE, VsockConnection, type ConnContext } from './connection.js';
import { HostListener } from './host-listener.js';
import type { PollSink } from './host.js';
import type { VsockHeader, VsockRxBuffer, VsockTxPacket } from './packet.js';

/** A connection's key: the host-side port, then the guest-side port. */
const keyOf = (localPort: number, peerPort: number): string => `${localPort}:${peerPort}`;

/** An RST owed to the guest for a packet no connection took. */
interface QueuedRst {
  readonly localPort: number;
  readonly peerPort: number;
}

export class VsockMuxer {
  private readonly conns = new Map<string, VsockConnection>();
  private readonly byFd = new Map<number, VsockConnection>();
  /** Connections with a packet for the guest, in the order they get RX buffers. */
  private readonly rxq = new Set<VsockConnection>();
  private readonly rsts: QueuedRst[] = [];
  /** Connections with a reset timer armed. */
  private readonly expiring = new Set<VsockConnection>();
  /** Host-side ports allocated to host-initiated connections. */
  private readonly localPorts = new Set<number>();
  private lastLocalPort = LOCAL_PORT_FIRST - 1;
  private readonly listener: HostListener;

  constructor(
    private readonly ctx: ConnContext,
    /** uds_path: guest connections to port P go to `<udsPath>_P`. */
    private readonly udsPath: string,
    listenFd: number,
  ) {
    this.listener = new HostListener(ctx, listenFd, (fd, port) => this.hostConnect(fd, port), () => this.conns.size >= MAX_CONNECTIONS);
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.conns.size;
  }

  /** Host streams still sending their CONNECT line. */
  get pendingHostCount(): number {
    return this.listener.pendingCount;
  }

  /** Whether a packet for the guest is waiting (Firecracker `has_pending_rx`). */
  hasPendingRx(): boolean {
    return this.rsts.length > 0 || this.rxq.size > 0;
  }

  /**
   * Fills `hdr` (and `buf`'s data) with the next packet for the guest (Firecracker `recv_pkt`);
   * false when no connection had one after all. Each connection is asked at most once.
   */
  recvPkt(hdr: VsockHeader, buf: VsockRxBuffer): boolean {
    const rst = this.rsts.shift();
    if (rst) {
      hdr.srcCid = VSOCK_HOST_CID;
      hdr.dstCid = this.ctx.guestCid;
      hdr.srcPort = rst.localPort;
      hdr.dstPort = rst.peerPort;
      hdr.len = 0;
      hdr.type = VIRTIO_VSOCK_TYPE_STREAM;
      hdr.op = VIRTIO_VSOCK_OP_RST;
      hdr.flags = 0;
      hdr.bufAlloc = 0;
      hdr.fwdCnt = 0;
      return true;
    }
    // Take from the front; a connection that had nothing goes to the back. At most one try
    // each, without copying the set (one RX packet must not cost O(connections)).
    for (let tries = this.rxq.size; tries > 0; tries--) {
      const conn = this.rxq.values().next().value as VsockConnection;
      this.rxq.delete(conn);
      const produced = this.mutate(conn, () => conn.recvPkt(hdr, buf));
      if (!produced) {
        if (conn.hasPendingRx() && this.conns.get(keyOf(conn.localPort, conn.peerPort)) === conn) this.rxq.add(conn);
        continue;
      }
      if (hdr.op === VIRTIO_VSOCK_OP_RST) this.remove(conn);
      else if (conn.hasPendingRx()) this.rxq.add(conn); // to the back: round robin
      return true;
    }
    return false;
  }

  /** Takes a packet from the guest (Firecracker `send_pkt`); it is always consumed. */
  sendPkt(pkt: VsockTxPacket): void {
    const h = pkt.hdr;
    const m = this.ctx.metrics;
    if (h.type !== VIRTIO_VSOCK_TYPE_STREAM) {
      m.inc('tx_wrong_type');
      this.queueRst(h.dstPort, h.srcPort);
      return;
    }
    if (h.dstCid !== VSOCK_HOST_CID) {
      m.inc('tx_wrong_cid'); // Firecracker drops these (the host is the only peer)
      return;
    }
    const conn = this.conns.get(keyOf(h.dstPort, h.srcPort));
    if (!conn) {
      if (h.op === VIRTIO_VSOCK_OP_REQUEST) this.peerConnect(pkt);
      else {
        m.inc('tx_unknown_connection');
        this.queueRst(h.dstPort, h.srcPort);
      }
      return;
    }
    if (h.op === VIRTIO_VSOCK_OP_RST) {
      this.remove(conn);
      return;
    }
    this.mutate(conn, () => conn.sendPkt(pkt));
  }

  /** Adds every fd to poll, with its events: the listener side, then each connection that wants any. */
  collectPoll(add: PollSink): void {
    this.listener.collectPoll(add);
    for (const conn of this.conns.values()) {
      const ev = conn.pollEvents();
      if (ev !== 0) add(conn.fd, ev);
    }
  }

  /** poll() reported `fd` ready with `revents`. */
  onEvent(fd: number, revents: number): void {
    const conn = this.byFd.get(fd);
    if (conn) this.mutate(conn, () => conn.notify(revents));
    else if (this.listener.owns(fd)) this.listener.onEvent(fd);
    else this.ctx.metrics.inc('muxer_event_fails'); // an fd closed since the poll set was built
  }

  /** Ms until the next timer (a reset, a CONNECT line deadline), or undefined when none is armed. */
  nextDeadline(): number | undefined {
    let next = this.listener.nextDeadline();
    for (const c of this.expiring) if (c.expiry !== undefined && (next === undefined || c.expiry < next)) next = c.expiry;
    return next;
  }

  /** Resets connections whose timer ran out and drops overdue host streams (Firecracker `sweep_killq`). */
  sweep(): void {
    const now = this.ctx.now();
    for (const c of [...this.expiring]) {
      if (c.willExpire(now)) continue;
      this.expiring.delete(c);
      if (c.hasExpired(now)) this.kill(c);
    }
    this.listener.sweep();
  }

  /** Closes every host fd (device stop). The listening socket belongs to its owner. */
  close(): void {
    this.listener.close();
    for (const c of [...this.conns.values()]) this.remove(c);
  }

  /**
   * Runs `fn` on a connection and then does what its changes call for (Firecracker
   * `apply_conn_mutation`): the host's `OK <port>\n` once a host-initiated connection is
   * established, RX scheduling, the kill timer.
   */
  private mutate<T>(conn: VsockConnection, fn: () => T): T {
    const hadRx = conn.hasPendingRx();
    const before = conn.state;
    const r = fn();
    if (before === CONN_STATE.LOCAL_INIT && conn.state === CONN_STATE.ESTABLISHED) {
      const ack = new TextEncoder().encode(`OK ${conn.localPort}\n`);
      // A fresh socket takes a dozen bytes; if it does not, something is badly wrong.
      if (this.ctx.io.write(conn.fd, [ack]) !== ack.length) conn.kill();
    }
    if (!hadRx && conn.hasPendingRx()) this.rxq.add(conn);
    if (conn.expiry !== undefined) this.expiring.add(conn);
    return r;
  }

  private kill(conn: VsockConnection): void {
    this.ctx.metrics.inc('conns_killed');
    conn.kill();
    this.rxq.add(conn);
  }

  private queueRst(localPort: number, peerPort: number): void {
    if (this.rsts.length >= RST_QUEUE_MAX) {
      this.ctx.metrics.inc('rst_dropped');
      return;
    }
    this.rsts.push({ localPort, peerPort });
  }

  private add(conn: VsockConnection): boolean {
    this.sweep(); // make room from expired connections first, as Firecracker does
    if (this.conns.size >= MAX_CONNECTIONS) {
      this.ctx.metrics.inc('connection_limit_refusals');
      return false;
    }
    this.conns.set(keyOf(conn.localPort, conn.peerPort), conn);
    this.byFd.set(conn.fd, conn);
    if (conn.hasPendingRx()) this.rxq.add(conn);
    this.ctx.metrics.inc('conns_added');
    return true;
  }

  private remove(conn: VsockConnection): void {
    const key = keyOf(conn.localPort, conn.peerPort);
    if (this.conns.get(key) !== conn) return;
    this.conns.delete(key);
    this.byFd.delete(conn.fd);
    this.rxq.delete(conn);
    this.expiring.delete(conn);
    this.ctx.io.close(conn.fd);
    if (conn.hostInitiated) this.localPorts.delete(conn.localPort);
    this.ctx.metrics.inc('conns_removed');
  }

  /** A guest REQUEST for no existing connection (Firecracker `handle_peer_request_pkt`). */
  private peerConnect(pkt: VsockTxPacket): void {
    const h = pkt.hdr;
    const fd = this.ctx.io.connect(`${this.udsPath}_${h.dstPort}`);
    if (fd < 0) {
      this.ctx.metrics.inc('guest_connects_refused');
      this.queueRst(h.dstPort, h.srcPort);
      return;
    }
    if (!this.add(VsockConnection.peerInit(this.ctx, fd, h.dstPort, h.srcPort, h.bufAlloc))) {
      this.ctx.io.close(fd);
      this.queueRst(h.dstPort, h.srcPort);
    }
  }

  /** A host client's valid CONNECT line: a connection with a fresh local port, its REQUEST due. */
  private hostConnect(fd: number, peerPort: number): boolean {
    if (this.conns.size >= MAX_CONNECTIONS) {
      this.ctx.metrics.inc('connection_limit_refusals');
      return false;
    }
    const port = this.allocateLocalPort();
    const conn = VsockConnection.localInit(this.ctx, fd, port, peerPort);
    if (this.add(conn)) return true;
    this.localPorts.delete(port);
    return false;
  }

  /** The next free port after the last one, round robin in [2^30, 2^31) (Firecracker `allocate_local_port`). */
  private allocateLocalPort(): number {
    do {
      this.lastLocalPort = this.lastLocalPort + 1 >= LOCAL_PORT_END ? LOCAL_PORT_FIRST : this.lastLocalPort + 1;
    } while (this.localPorts.has(this.lastLocalPort));
    this.localPorts.add(this.lastLocalPort);
    return this.lastLocalPort;
  }
}
