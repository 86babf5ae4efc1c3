/**
 * Ethernet II headers and ARP packets for IPv4 over Ethernet (RFC 826), read and written in
 * place on a frame's bytes (Firecracker src/vmm/src/dumbo/pdu/ethernet.rs, pdu/arp.rs).
 *
 * Readers never trust a length: every function checks that the bytes it reads exist and
 * returns a reason instead of throwing, because the frames come from the guest. 802.1Q tags
 * are not understood (a tagged frame is simply not an MMDS frame), as in Firecracker.
 */
import { MmdsError } from '../errors.js';
import {
  ARP_ETH_IPV4_LEN, ARP_HTYPE_ETHERNET, ARP_OPER_REPLY, ARP_OPER_REQUEST, ETH_ALEN, ETH_HLEN, ETHERTYPE_IPV4, IPV4_ALEN,
} from './constants.js';

/** Offset of the destination address in an Ethernet header. */
export const ETH_DEST_OFFSET = 0;
/** Offset of the source address. */
export const ETH_SRC_OFFSET = ETH_ALEN;
/** Offset of the EtherType. */
export const ETH_TYPE_OFFSET = 2 * ETH_ALEN;

/** ARP field offsets from the start of the ARP packet (RFC 826, IPv4 over Ethernet). */
const ARP_HTYPE_OFFSET = 0;
const ARP_PTYPE_OFFSET = 2;
const ARP_HLEN_OFFSET = 4;
const ARP_PLEN_OFFSET = 5;
const ARP_OPER_OFFSET = 6;
const ARP_SHA_OFFSET = 8;
const ARP_SPA_OFFSET = ARP_SHA_OFFSET + ETH_ALEN;
const ARP_THA_OFFSET = ARP_SPA_OFFSET + IPV4_ALEN;
const ARP_TPA_OFFSET = ARP_THA_OFFSET + ETH_ALEN;

/** Offset, in an Ethernet frame, of an ARP packet's target protocol address. */
export const ETH_ARP_TPA_OFFSET = ETH_HLEN + ARP_TPA_OFFSET;

/** Why an ARP packet was not taken as a request the MMDS answers. */
export type ArpRejection = 'arp-truncated' | 'arp-not-ipv4-over-ethernet' | 'arp-not-request';

/** Big-endian u16 at `off` (the caller checked the bounds). */
export function readU16(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!;
}

/** Big-endian u32 at `off`, as an unsigned number (the caller checked the bounds). */
export function readU32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

/** Writes a big-endian u16. */
export function writeU16(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 8) & 0xff;
  b[off + 1] = v & 0xff;
}

/** Writes a big-endian u32. */
export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 24) & 0xff;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

/**
 * Dotted-quad text to a u32 (four decimal octets, no leading zeros, as Rust's
 * `Ipv4Addr::from_str`). Throws MmdsError: the address comes from validated configuration.
 */
export function ipv4FromString(s: string): number {
  const parts = s.split('.');
  if (parts.length !== IPV4_ALEN || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) {
    throw new MmdsError('MMDS_CONFIG', `invalid MMDS IPv4 address: ${JSON.stringify(s)}`);
  }
  return parts.reduce((acc, p) => ((acc << 8) | Number(p)) >>> 0, 0);
}

/** A u32 IPv4 address as dotted-quad text. */
export function ipv4ToString(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}`;
}

/** The EtherType of a frame, or -1 when it is shorter than an Ethernet header. */
export function etherType(frame: Uint8Array): number {
  return frame.length < ETH_HLEN ? -1 : readU16(frame, ETH_TYPE_OFFSET);
}

/** Writes an Ethernet header at the start of `buf` (which holds at least ETH_HLEN bytes). */
export function writeEthernetHeader(buf: Uint8Array, dest: ArrayLike<number>, src: ArrayLike<number>, type: number): void {
  for (let i = 0; i < ETH_ALEN; i++) {
    buf[ETH_DEST_OFFSET + i] = dest[i]!;
    buf[ETH_SRC_OFFSET + i] = src[i]!;
  }
  writeU16(buf, ETH_TYPE_OFFSET, type);
}

/** The fields of an ARP request the MMDS answers. */
export interface ArpRequest {
  /** Sender hardware address (the guest's MAC), copied out of the frame. */
  readonly sha: Uint8Array;
  /** Sender protocol address (the guest's IPv4). */
  readonly spa: number;
  /** Target protocol address (the address being resolved). */
  readonly tpa: number;
}

/**
 * Reads the ARP packet after the Ethernet header of `frame` as an IPv4-over-Ethernet request.
 * Trailing bytes (Ethernet padding to 60 bytes) are ignored; Firecracker's
 * `request_from_bytes` wants the exact length, which would leave a padded request unanswered.
 */
export function parseArpRequest(frame: Uint8Array): ArpRequest | ArpRejection {
  if (frame.length < ETH_HLEN + ARP_ETH_IPV4_LEN) return 'arp-truncated';
  const a = ETH_HLEN;
  if (
    readU16(frame, a + ARP_HTYPE_OFFSET) !== ARP_HTYPE_ETHERNET ||
    readU16(frame, a + ARP_PTYPE_OFFSET) !== ETHERTYPE_IPV4 ||
    frame[a + ARP_HLEN_OFFSET] !== ETH_ALEN ||
    frame[a + ARP_PLEN_OFFSET] !== IPV4_ALEN
  ) {
    return 'arp-not-ipv4-over-ethernet';
  }
  if (readU16(frame, a + ARP_OPER_OFFSET) !== ARP_OPER_REQUEST) return 'arp-not-request';
  return {
    sha: frame.slice(a + ARP_SHA_OFFSET, a + ARP_SHA_OFFSET + ETH_ALEN),
    spa: readU32(frame, a + ARP_SPA_OFFSET),
    tpa: readU32(frame, a + ARP_TPA_OFFSET),
  };
}

/**
 * Writes an ARP packet (IPv4 over Ethernet) at `off`: `oper` is ARP_OPER_REQUEST or
 * ARP_OPER_REPLY. Returns its length; the caller checked that `buf` holds it.
 */
export function writeArp(
  buf: Uint8Array, off: number, oper: number, sha: ArrayLike<number>, spa: number, tha: ArrayLike<number>, tpa: number,
): number {
  writeU16(buf, off + ARP_HTYPE_OFFSET, ARP_HTYPE_ETHERNET);
  writeU16(buf, off + ARP_PTYPE_OFFSET, ETHERTYPE_IPV4);
  buf[off + ARP_HLEN_OFFSET] = ETH_ALEN;
  buf[off + ARP_PLEN_OFFSET] = IPV4_ALEN;
  writeU16(buf, off + ARP_OPER_OFFSET, oper);
  for (let i = 0; i < ETH_ALEN; i++) {
    buf[off + ARP_SHA_OFFSET + i] = sha[i]!;
    buf[off + ARP_THA_OFFSET + i] = tha[i]!;
  }
  writeU32(buf, off + ARP_SPA_OFFSET, spa);
  writeU32(buf, off + ARP_TPA_OFFSET, tpa);
  return ARP_ETH_IPV4_LEN;
}

/** Writes an ARP reply. */
export function writeArpReply(buf: Uint8Array, off: number, sha: ArrayLike<number>, spa: number, tha: ArrayLike<number>, tpa: number): number {
  return writeArp(buf, off, ARP_OPER_REPLY, sha, spa, tha, tpa);
}
