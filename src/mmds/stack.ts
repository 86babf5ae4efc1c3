/**
 * The MMDS network stack of one network interface (Firecracker src/vmm/src/mmds/ns.rs
 * `MmdsNetworkStack`): the net device offers it every frame the guest transmits; it consumes
 * the ARP requests for the MMDS address and every IPv4 packet to that address, and produces
 * the frames the device must deliver to the guest (ARP replies, TCP segments carrying HTTP
 * answers, RSTs). Pure: no threads, no file descriptors, time through an injected clock.
 * docs/design.md "MMDS" describes how the net worker drives it.
 *
 * Which frames it takes (ns.rs `is_mmds_frame`, `detour_frame`): an ARP packet whose target
 * address is the MMDS's, and an IPv4 packet whose destination is the MMDS's. Both are
 * consumed even when unusable (a malformed or non-request ARP packet, a bad IPv4 header, a
 * protocol other than TCP, another port): they never reach the TAP. Every other frame is left
 * to the device. The guest's MAC, where answers go, is learned from ARP requests and TCP
 * packets, as Firecracker does.
 *
 * Nothing the guest sends can throw out of `detourFrame`: every defect is a counted reason
 * (`events`) and, where Firecracker has one, a metric.
 */
import { randomInt } from 'node:crypto';
import {
  ETH_ALEN, ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, IP_PROTO_TCP, IPV4_ALEN, IPV4_MIN_HEADER_LEN, MMDS_DEFAULT_IPV4, MMDS_MAC,
  MMDS_RCV_BUF_SIZE, MMDS_TCP_PORT, TCP_MIN_HEADER_LEN, TCP_OPT_MSS_LEN,
} from './constants.js';
import { MmdsData } from './data-tree.js';
import {
  ETH_ARP_TPA_OFFSET, ETH_SRC_OFFSET, ETH_TYPE_OFFSET, ipv4FromString, parseArpRequest, readU16, readU32, writeArpReply,
  writeEthernetHeader, type ArpRejection,
} from './ethernet.js';
import { encodeResponse, takeRequest } from './http.js';
import { IPV4_DEST_OFFSET, Ipv4Header, parseIpv4, type Ipv4Rejection } from './ipv4.js';
import { MmdsMetrics } from './metrics.js';
import { MmdsResponder, type MmdsVersion } from './responder.js';
import type { ConnectionApp } from './tcp-connection.js';
import { TcpListener, type ListenerEvent } from './tcp-listener.js';
import { TcpHeader, parseTcp, type TcpRejection } from './tcp-segment.js';
import { monotonicMs, type TokenAuthority } from './token.js';

/**
 * The smallest buffer `writeNextFrame` writes into: Ethernet, IPv4 and a TCP header with the
 * MSS option (a SYN-ACK). Data segments shrink to the room there is beyond that.
 */
export const MMDS_MIN_FRAME_LEN = ETH_HLEN + IPV4_MIN_HEADER_LEN + TCP_MIN_HEADER_LEN + TCP_OPT_MSS_LEN;
/** Bytes `isMmdsFrame` looks at: through an ARP packet's target address (beyond an IPv4 destination). */
export const MMDS_FRAME_PEEK_LEN = ETH_ARP_TPA_OFFSET + IPV4_ALEN;

/** Everything the stack counts by reason: drops, anomalies and refusals. */
export type MmdsEvent =
  | 'eth-too-short' | ArpRejection | Ipv4Rejection | 'ipv4-not-tcp' | TcpRejection | ListenerEvent | 'tx-buffer-too-small' | 'internal-error';

/** Every MmdsEvent at 0 (the compiler checks that none is missing). */
const NO_EVENTS: Readonly<Record<MmdsEvent, number>> = {
  'eth-too-short': 0, 'arp-truncated': 0, 'arp-not-ipv4-over-ethernet': 0, 'arp-not-request': 0, 'ipv4-truncated': 0,
  'ipv4-version': 0, 'ipv4-header-length': 0, 'ipv4-total-length': 0, 'ipv4-checksum': 0, 'ipv4-fragment': 0, 'ipv4-not-tcp': 0,
  'tcp-truncated': 0, 'tcp-header-length': 0, 'tcp-checksum': 0, 'tcp-bad-option': 0, 'tcp-wrong-port': 0, 'tcp-no-connection': 0,
  'tcp-syn-with-data': 0, 'tcp-connection-limit': 0, 'tcp-rst-queue-full': 0, 'tcp-rst-received': 0, 'tcp-invalid-rst': 0,
  'tcp-invalid-segment': 0, 'tcp-invalid-ack': 0, 'tcp-dup-ack': 0, 'tcp-window-shrunk': 0, 'tcp-beyond-window': 0,
  'tcp-unexpected-seq': 0, 'tcp-data-after-fin': 0, 'tcp-invalid-fin': 0, 'tcp-request-too-large': 0, 'tx-buffer-too-small': 0,
  'internal-error': 0,
};

/** The MMDS settings of PUT /mmds/config that the stack uses. */
export interface MmdsStackConfig {
  /** V1 (no token needed) or V2. */
  readonly version?: MmdsVersion;
  /** The MMDS IPv4 address, dotted quad (validated by the API: link-local). */
  readonly ipv4?: string;
  /** Always answer in IMDS format. */
  readonly imdsCompat?: boolean;
}

/** What an MmdsStack is built with. */
export interface MmdsStackOptions extends MmdsStackConfig {
  /** The token authority, sharing its key with the other interfaces' stacks. */
  readonly tokens: TokenAuthority;
  /** Where to count (default: a private MmdsMetrics). */
  readonly metrics?: MmdsMetrics;
  /** Milliseconds on a monotonic clock, for retransmissions and eviction (default: process.hrtime). */
  readonly now?: () => number;
  /** A random u32, for initial sequence numbers (default: node:crypto). */
  readonly random?: () => number;
}

/** The MMDS network stack of one interface. */
export class MmdsStack {
  /** Firecracker's mmds metrics, counted by this stack. */
  readonly metrics: MmdsMetrics;
  /** Counts by reason of everything dropped, refused or unusual (not a Firecracker metric: for logs and tests). */
  readonly events: Record<MmdsEvent, number> = { ...NO_EVENTS };
  private ip: number;
  private readonly now: () => number;
  private readonly responder: MmdsResponder;
  private readonly listener: TcpListener;
  /** Where answers go: the guest's MAC as last seen (the MMDS's own until then, as ns.rs starts). */
  private readonly remoteMac = Uint8Array.from(MMDS_MAC);
  /** The guest address an ARP reply is owed to, or -1. */
  private arpReplyTo = -1;
  private readonly ipHeader = new Ipv4Header();
  private readonly tcpHeader = new TcpHeader();

  constructor(options: MmdsStackOptions) {
    this.metrics = options.metrics ?? new MmdsMetrics();
    this.now = options.now ?? monotonicMs;
    this.ip = ipv4FromString(options.ipv4 ?? MMDS_DEFAULT_IPV4);
    this.responder = new MmdsResponder(options.tokens, this.metrics);
    const random = options.random ?? (() => randomInt(0x1_0000_0000));
    const app: ConnectionApp = {
      take: (buf, len) => {
        const r = takeRequest(buf, len, MMDS_RCV_BUF_SIZE);
        if (r.kind === 'incomplete' || r.kind === 'too-large') return r.kind;
        const answer = r.kind === 'error' ? MmdsResponder.parseErrorResponse(r.error) : this.responder.respond(r.request);
        return { consumed: r.consumed, response: encodeResponse(answer) };
      },
    };
    this.listener = new TcpListener(this.ip, MMDS_TCP_PORT, this.metrics, app, (e) => this.events[e]++, random);
    this.setConfig(options);
  }

  /**
   * Replaces the data the guest reads: the data store's serde_json text
   * (`serdeJsonStringify(store.value())`, "null" before the first PUT). Throws MmdsError when
   * the text is not JSON.
   */
  setData(json: string): void {
    this.responder.data = new MmdsData(json);
  }

  /** Applies MMDS settings; absent ones stay. Open connections stay too (ns.rs `set_ipv4_addr`). */
  setConfig(config: MmdsStackConfig): void {
    if (config.version !== undefined) this.responder.version = config.version;
    if (config.imdsCompat !== undefined) this.responder.imdsCompat = config.imdsCompat;
    if (config.ipv4 !== undefined) this.listener.localIp = this.ip = ipv4FromString(config.ipv4);
  }

  /**
   * Whether a frame is for the MMDS, from its first bytes (at least MMDS_FRAME_PEEK_LEN when
   * the frame has them), without counting or consuming anything: lets the device copy only
   * such frames out of guest memory for `detourFrame`.
   */
  isMmdsFrame(head: Uint8Array): boolean {
    if (head.length < ETH_HLEN) return false;
    const type = readU16(head, ETH_TYPE_OFFSET);
    if (type === ETHERTYPE_ARP) return head.length >= ETH_ARP_TPA_OFFSET + IPV4_ALEN && readU32(head, ETH_ARP_TPA_OFFSET) === this.ip;
    if (type === ETHERTYPE_IPV4) {
      const dest = ETH_HLEN + IPV4_DEST_OFFSET;
      return head.length >= dest + IPV4_ALEN && readU32(head, dest) === this.ip;
    }
    return false;
  }

  /**
   * Offers a frame the guest transmitted (Ethernet onwards, no virtio-net header). True: it
   * was for the MMDS and is consumed (it must not reach the TAP); false: it is the device's.
   */
  detourFrame(frame: Uint8Array): boolean {
    if (frame.length < ETH_HLEN) {
      this.metrics.inc('rx_bad_eth');
      this.events['eth-too-short']++;
      return false;
    }
    if (!this.isMmdsFrame(frame)) return false;
    this.metrics.inc('rx_accepted');
    try {
      if (readU16(frame, ETH_TYPE_OFFSET) === ETHERTYPE_ARP) this.detourArp(frame);
      else this.detourIpv4(frame);
    } catch {
      // A bug, not the guest's doing (every guest defect is a reason above); the device worker
      // must survive it. The count is what a test and the worker's log look at.
      this.metrics.inc('rx_accepted_err');
      this.events['internal-error']++;
    }
    return true;
  }

  /** Whether `writeNextFrame` has a frame to write (a due retransmission counts). */
  hasPendingFrames(): boolean {
    if (this.arpReplyTo >= 0 || this.listener.hasOutput()) return true;
    const deadline = this.listener.nextDeadline();
    return deadline >= 0 && deadline <= this.now();
  }

  /**
   * Writes the next frame for the guest into `buf` (Ethernet onwards, no virtio-net header)
   * and returns its length; 0 when there is none. ARP replies go first (ns.rs
   * `write_next_frame`). A buffer under MMDS_MIN_FRAME_LEN gets nothing (`tx_errors`).
   */
  writeNextFrame(buf: Uint8Array): number {
    if (buf.length < MMDS_MIN_FRAME_LEN) {
      if (!this.hasPendingFrames()) return 0;
      this.metrics.inc('tx_errors');
      this.events['tx-buffer-too-small']++;
      return 0;
    }
    let len: number;
    if (this.arpReplyTo >= 0) {
      writeEthernetHeader(buf, this.remoteMac, MMDS_MAC, ETHERTYPE_ARP);
      len = ETH_HLEN + writeArpReply(buf, ETH_HLEN, MMDS_MAC, this.ip, this.remoteMac, this.arpReplyTo);
      this.arpReplyTo = -1;
    } else {
      const now = this.now();
      this.listener.tick(now);
      const n = this.listener.write(buf, ETH_HLEN, buf.length - ETH_HLEN, now);
      if (n === 0) return 0;
      writeEthernetHeader(buf, this.remoteMac, MMDS_MAC, ETHERTYPE_IPV4);
      len = ETH_HLEN + n;
    }
    this.metrics.inc('tx_count');
    this.metrics.inc('tx_frames');
    this.metrics.inc('tx_bytes', len);
    return len;
  }

  /** Milliseconds until the stack next needs `tick()` (a retransmission timer), 0 when overdue, null when no timer runs. */
  nextTimeoutMs(): number | null {
    const deadline = this.listener.nextDeadline();
    return deadline < 0 ? null : Math.max(0, deadline - this.now());
  }

  /** Fires due timers; afterwards `hasPendingFrames()` tells whether there is something to write. */
  tick(): void {
    this.listener.tick(this.now());
  }

  /** Open TCP connections. */
  get connectionCount(): number {
    return this.listener.connectionCount;
  }

  private detourArp(frame: Uint8Array): void {
    const arp = parseArpRequest(frame);
    if (typeof arp === 'string') {
      this.events[arp]++;
      return;
    }
    this.remoteMac.set(arp.sha);
    this.arpReplyTo = arp.spa;
  }

  private detourIpv4(frame: Uint8Array): void {
    const ip = this.ipHeader;
    const bad = parseIpv4(frame, ETH_HLEN, ip);
    if (bad) {
      this.metrics.inc('rx_accepted_err');
      this.events[bad]++;
      return;
    }
    if (ip.protocol !== IP_PROTO_TCP) {
      // ns.rs: a non-TCP packet to the MMDS is "unusual".
      this.metrics.inc('rx_accepted_unusual');
      this.events['ipv4-not-tcp']++;
      return;
    }
    for (let i = 0; i < ETH_ALEN; i++) this.remoteMac[i] = frame[ETH_SRC_OFFSET + i]!;
    const seg = this.tcpHeader;
    const badTcp = parseTcp(frame, ip.payloadOffset, ip.payloadLen, ip.src, ip.dst, seg);
    if (badTcp) {
      this.metrics.inc('rx_accepted_err');
      this.events[badTcp]++;
      return;
    }
    this.listener.receive(ip.src, seg, frame, this.now());
  }
}
