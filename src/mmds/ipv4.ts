/**
 * IPv4 headers (RFC 791) and the Internet checksum (RFC 1071), in place on a frame's bytes
 * (Firecracker src/vmm/src/dumbo/pdu/ipv4.rs, pdu/mod.rs `compute_checksum`).
 *
 * Parsing is stricter than Firecracker's in two ways, both invisible to a well-behaved guest:
 * the header checksum is verified (Firecracker skips it "in case the device model relies on
 * offloading"; a guest's IPv4 header checksum is never offloaded, only TCP/UDP ones are), and
 * fragments are refused, since the stack reassembles nothing. It is looser in one: bytes after
 * `total length` (Ethernet padding) are ignored instead of failing the exact-length check, as
 * RFC 1122 §3.3.2 asks of a host.
 */
import { IPV4_MIN_HEADER_LEN, IPV4_VERSION, MMDS_IPV4_TTL } from './constants.js';
import { readU16, readU32, writeU16, writeU32 } from './ethernet.js';

/** IPv4 header field offsets (RFC 791 §3.1). */
const VERSION_IHL_OFFSET = 0;
const TOS_OFFSET = 1;
const TOTAL_LEN_OFFSET = 2;
const ID_OFFSET = 4;
const FLAGS_FRAGMENT_OFFSET = 6;
const TTL_OFFSET = 8;
const PROTOCOL_OFFSET = 9;
const CHECKSUM_OFFSET = 10;
const SRC_OFFSET = 12;
/** Offset of the destination address. */
export const IPV4_DEST_OFFSET = 16;

/** The IHL bits of the version/IHL byte: the header length in 32-bit words. */
const IPV4_IHL_MASK = 0x0f;
/** The More Fragments flag in the flags/fragment-offset word. */
const IPV4_FLAG_MF = 0x2000;
/** The fragment offset bits of that word. */
const IPV4_FRAGMENT_OFFSET_MASK = 0x1fff;
/** Both "not a fragment" conditions at once: MF clear and offset 0. */
const IPV4_FRAGMENT_MASK = IPV4_FLAG_MF | IPV4_FRAGMENT_OFFSET_MASK;

/** Why a packet was not taken as IPv4 the stack can read. */
export type Ipv4Rejection = 'ipv4-truncated' | 'ipv4-version' | 'ipv4-header-length' | 'ipv4-total-length' | 'ipv4-checksum' | 'ipv4-fragment';

/** Adds the big-endian 16-bit words of b[start, end) to `sum`; an odd last byte is padded with zero. */
export function checksumAdd(sum: number, b: Uint8Array, start: number, end: number): number {
  let i = start;
  for (; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < end) sum += b[i]! << 8;
  return sum;
}

/** What data with a right checksum sums to, checksum field included: ones' complement zero. */
export const CHECKSUM_ALL_ONES = 0xffff;

/** Folds a sum of 16-bit words into 16 bits with end-around carry (ones' complement sum). */
export function checksumFold(sum: number): number {
  // Division, not >>>: a sum over a 64 KiB frame can pass 2^31.
  while (sum > CHECKSUM_ALL_ONES) sum = (sum & CHECKSUM_ALL_ONES) + Math.floor(sum / 0x10000);
  return sum;
}

/** The Internet checksum of b[start, end) plus `sum`: the ones' complement of the folded sum. */
export function internetChecksum(b: Uint8Array, start: number, end: number, sum = 0): number {
  return ~checksumFold(checksumAdd(sum, b, start, end)) & CHECKSUM_ALL_ONES;
}

/** An IPv4 header as read by `parseIpv4`, reused from frame to frame. */
export class Ipv4Header {
  /** Header bytes (IHL × 4), options included. */
  headerLen = 0;
  /** The total length field: header and payload. */
  totalLen = 0;
  /** The protocol field. */
  protocol = 0;
  /** Source address. */
  src = 0;
  /** Destination address. */
  dst = 0;
  /** Offset of the payload in the frame. */
  payloadOffset = 0;
  /** Payload bytes (total length minus header length). */
  payloadLen = 0;
}

/**
 * Reads the IPv4 header at `off` in `frame` into `out`. Returns null when the packet is
 * usable, else why not; `out` is then partly filled and must not be used.
 */
export function parseIpv4(frame: Uint8Array, off: number, out: Ipv4Header): Ipv4Rejection | null {
  const avail = frame.length - off;
  if (off < 0 || avail < IPV4_MIN_HEADER_LEN) return 'ipv4-truncated';
  const vihl = frame[off + VERSION_IHL_OFFSET]!;
  if (vihl >> 4 !== IPV4_VERSION) return 'ipv4-version';
  const headerLen = (vihl & IPV4_IHL_MASK) * 4;
  if (headerLen < IPV4_MIN_HEADER_LEN) return 'ipv4-header-length';
  const totalLen = readU16(frame, off + TOTAL_LEN_OFFSET);
  if (totalLen < headerLen) return 'ipv4-total-length';
  if (totalLen > avail) return 'ipv4-truncated';
  if (internetChecksum(frame, off, off + headerLen) !== 0) return 'ipv4-checksum';
  if ((readU16(frame, off + FLAGS_FRAGMENT_OFFSET) & IPV4_FRAGMENT_MASK) !== 0) return 'ipv4-fragment';
  out.headerLen = headerLen;
  out.totalLen = totalLen;
  out.protocol = frame[off + PROTOCOL_OFFSET]!;
  out.src = readU32(frame, off + SRC_OFFSET);
  out.dst = readU32(frame, off + IPV4_DEST_OFFSET);
  out.payloadOffset = off + headerLen;
  out.payloadLen = totalLen - headerLen;
  return null;
}

/**
 * Writes a 20-byte IPv4 header at `off` for a payload of `payloadLen` bytes, checksum
 * included. As Firecracker's `IPv4Packet::write_header`: no options, TOS 0, identification 0,
 * no flags, TTL MMDS_IPV4_TTL. Returns the header length; the caller checked the room.
 */
export function writeIpv4Header(buf: Uint8Array, off: number, protocol: number, src: number, dst: number, payloadLen: number): number {
  buf[off + VERSION_IHL_OFFSET] = (IPV4_VERSION << 4) | (IPV4_MIN_HEADER_LEN / 4);
  buf[off + TOS_OFFSET] = 0;
  writeU16(buf, off + TOTAL_LEN_OFFSET, IPV4_MIN_HEADER_LEN + payloadLen);
  writeU16(buf, off + ID_OFFSET, 0);
  writeU16(buf, off + FLAGS_FRAGMENT_OFFSET, 0);
  buf[off + TTL_OFFSET] = MMDS_IPV4_TTL;
  buf[off + PROTOCOL_OFFSET] = protocol;
  writeU16(buf, off + CHECKSUM_OFFSET, 0);
  writeU32(buf, off + SRC_OFFSET, src);
  writeU32(buf, off + IPV4_DEST_OFFSET, dst);
  writeU16(buf, off + CHECKSUM_OFFSET, internetChecksum(buf, off, off + IPV4_MIN_HEADER_LEN));
  return IPV4_MIN_HEADER_LEN;
}
