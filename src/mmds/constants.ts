/**
 * The numbers of the MMDS network stack: wire-format constants of the protocols it speaks
 * (Ethernet II, ARP for IPv4 over Ethernet, IPv4, TCP) and Firecracker's limits and timers
 * (src/vmm/src/mmds/ns.rs, dumbo/tcp/endpoint.rs, dumbo/tcp/mod.rs). Offsets of each header's
 * fields live with its codec (ethernet.ts, ipv4.ts, tcp-segment.ts).
 */
import { ETH_ALEN, ETH_HLEN } from '../devices/virtio/net/constants.js';

export { ETH_ALEN, ETH_HLEN };

/** EtherType of an IPv4 packet (IEEE 802 numbers; Firecracker dumbo/pdu/ethernet.rs). */
export const ETHERTYPE_IPV4 = 0x0800;
/** EtherType of an ARP packet. */
export const ETHERTYPE_ARP = 0x0806;

/** ARP hardware type Ethernet (RFC 826 `ar$hrd`). */
export const ARP_HTYPE_ETHERNET = 1;
/** ARP operation: request (RFC 826 `ares_op$REQUEST`). */
export const ARP_OPER_REQUEST = 1;
/** ARP operation: reply. */
export const ARP_OPER_REPLY = 2;
/** Bytes of an ARP packet for IPv4 over Ethernet (8 fixed + 2 × (6 + 4)). */
export const ARP_ETH_IPV4_LEN = 28;
/** Bytes of an IPv4 address. */
export const IPV4_ALEN = 4;

/** IPv4 version field value. */
export const IPV4_VERSION = 4;
/** Bytes of an IPv4 header without options (IHL 5). */
export const IPV4_MIN_HEADER_LEN = 20;
/** IP protocol number of TCP (IANA). */
export const IP_PROTO_TCP = 6;
/**
 * TTL of the packets the MMDS sends (Firecracker dumbo/pdu/ipv4.rs DEFAULT_TTL): 1, since
 * they never leave the link between the guest and the VMM.
 */
export const MMDS_IPV4_TTL = 1;

/** Bytes of a TCP header without options (data offset 5). */
export const TCP_MIN_HEADER_LEN = 20;
/** Largest TCP header (data offset 15). */
export const TCP_MAX_HEADER_LEN = 60;
/** TCP flag bits (RFC 9293 §3.1), the byte after the data offset. */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;
/** TCP option kinds (RFC 9293 §3.2). */
export const TCP_OPT_EOL = 0;
export const TCP_OPT_NOP = 1;
export const TCP_OPT_MSS = 2;
/** Length of the MSS option (kind, length, 16-bit value). */
export const TCP_OPT_MSS_LEN = 4;
/** Smallest MSS option the stack accepts (Firecracker dumbo/pdu/tcp.rs MSS_MIN, a sanity bound). */
export const TCP_MSS_MIN = 100;
/** MSS assumed when a SYN carries no MSS option (RFC 9293 §3.7.1; Firecracker MSS_DEFAULT). */
export const TCP_MSS_DEFAULT = 536;
/**
 * The largest window sequence numbers are compared against (Firecracker dumbo/tcp/mod.rs
 * MAX_WINDOW_SIZE, 2^30 − 2^14: the largest window with window scaling).
 */
export const TCP_MAX_WINDOW = 1_073_725_440;
/**
 * Window of the RSTs the listener sends for segments it cannot place (Firecracker
 * dumbo/tcp/handler.rs `write_next_packet`: an arbitrary value, a RST carries no data).
 */
export const TCP_RST_WINDOW = 10_000;

/** The MMDS's own Ethernet address (Firecracker mmds/ns.rs DEFAULT_MAC_ADDR, 06:01:23:45:67:01). */
export const MMDS_MAC: readonly number[] = Object.freeze([0x06, 0x01, 0x23, 0x45, 0x67, 0x01]);
/** The default MMDS IPv4 address (mmds/ns.rs DEFAULT_IPV4_ADDR). */
export const MMDS_DEFAULT_IPV4 = '169.254.169.254';
/** The port the MMDS HTTP server listens on (mmds/ns.rs DEFAULT_TCP_PORT). */
export const MMDS_TCP_PORT = 80;
/** Concurrent TCP connections per stack (mmds/ns.rs DEFAULT_MAX_CONNECTIONS). */
export const MMDS_MAX_CONNECTIONS = 30;
/** RSTs waiting to be sent; more are dropped (mmds/ns.rs DEFAULT_MAX_PENDING_RESETS). */
export const MMDS_MAX_PENDING_RESETS = 100;
/**
 * Bytes of one connection's receive buffer (Firecracker dumbo/tcp/endpoint.rs
 * RCV_BUF_MAX_SIZE): also its receive window, so one HTTP request (headers and body) may
 * take at most this many bytes; a request that fills it unfinished resets the connection.
 */
export const MMDS_RCV_BUF_SIZE = 2500;

/**
 * Retransmission timeout. Firecracker counts it in TSC cycles (endpoint.rs
 * CONNECTION_RTO_PERIOD = 1.2e9, "~300 ms" on the 4 GHz CPU its comment assumes); Kindling's
 * clock is milliseconds, so the stack uses that figure. The period is fixed (no backoff), as
 * Firecracker's.
 */
export const MMDS_RTO_MS = 300;
/**
 * Consecutive retransmission timeouts after which a connection resets itself
 * (endpoint.rs CONNECTION_RTO_COUNT_MAX).
 */
export const MMDS_RTO_COUNT_MAX = 15;
/**
 * How long a connection must have received nothing before a new connection may evict it when
 * the table is full (endpoint.rs EVICTION_THRESHOLD = 4e10 cycles, "~10 seconds" on 4 GHz).
 */
export const MMDS_EVICTION_MS = 10_000;
