/**
 * TCP segments (RFC 9293 §3.1), read and written in place, with the pseudo-header checksum
 * (Firecracker src/vmm/src/dumbo/pdu/tcp.rs). Only the MSS option is understood, and only on
 * a SYN; other options are skipped by their length.
 *
 * Checksums: a segment is accepted when its checksum is complete and right, or when it holds
 * only the pseudo-header sum. The latter is what a guest that offloads checksums writes
 * (VIRTIO_NET_F_CSUM: the driver sets VIRTIO_NET_HDR_F_NEEDS_CSUM and leaves the sum over the
 * pseudo-header for the device to finish), and the virtio-net header is gone by the time the
 * stack sees the frame. Firecracker skips the check altogether (dumbo/tcp/handler.rs,
 * "Issue #520"); a frame matching neither form is corrupt and dropped.
 */
import {
  IP_PROTO_TCP, TCP_MAX_HEADER_LEN, TCP_MIN_HEADER_LEN, TCP_MSS_MIN, TCP_OPT_EOL, TCP_OPT_MSS, TCP_OPT_MSS_LEN, TCP_OPT_NOP,
  TCP_SYN,
} from './constants.js';
import { readU16, readU32, writeU16, writeU32 } from './ethernet.js';
import { CHECKSUM_ALL_ONES, checksumAdd, checksumFold } from './ipv4.js';

/** TCP header field offsets (RFC 9293 §3.1). */
const SRC_PORT_OFFSET = 0;
const DEST_PORT_OFFSET = 2;
const SEQ_OFFSET = 4;
const ACK_OFFSET = 8;
const DATA_OFFSET_OFFSET = 12;
const FLAGS_OFFSET = 13;
const WINDOW_OFFSET = 14;
/** Offset of the checksum field. */
export const TCP_CHECKSUM_OFFSET = 16;
const URGENT_OFFSET = 18;

/** Why a segment was not taken as TCP the stack can read. */
export type TcpRejection = 'tcp-truncated' | 'tcp-header-length' | 'tcp-checksum' | 'tcp-bad-option';

/** A TCP header as read by `parseTcp`, reused from segment to segment. */
export class TcpHeader {
  srcPort = 0;
  destPort = 0;
  seq = 0;
  ack = 0;
  /** The flag byte (TCP_FIN … TCP_CWR). */
  flags = 0;
  window = 0;
  /** Header bytes, options included. */
  headerLen = 0;
  /** The MSS option's value, or 0 when the segment carries none. */
  mss = 0;
  /** Offset of the payload in the frame. */
  payloadOffset = 0;
  /** Payload bytes. */
  payloadLen = 0;
}

/** The ones' complement sum of the TCP pseudo-header (RFC 9293 §3.1) for a segment of `len` bytes. */
export function tcpPseudoHeaderSum(src: number, dst: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + IP_PROTO_TCP + len;
}

/** The checksum field value for the segment at b[off, off + len) between `src` and `dst` (its checksum field must be 0). */
export function tcpChecksum(b: Uint8Array, off: number, len: number, src: number, dst: number): number {
  return ~checksumFold(checksumAdd(tcpPseudoHeaderSum(src, dst, len), b, off, off + len)) & CHECKSUM_ALL_ONES;
}

/**
 * Reads the MSS option from the options in b[start, end): its value, 0 when absent, or -1 when
 * the options are malformed or the MSS is below TCP_MSS_MIN (Firecracker
 * `parse_mss_option_unchecked`, which also refuses a zero option length).
 */
function parseMssOption(b: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end) {
    const kind = b[i]!;
    if (kind === TCP_OPT_EOL) break;
    if (kind === TCP_OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return -1;
    const len = b[i + 1]!;
    if (len < 2 || i + len > end) return -1;
    if (kind === TCP_OPT_MSS) {
      if (len !== TCP_OPT_MSS_LEN) return -1;
      const mss = readU16(b, i + 2);
      return mss < TCP_MSS_MIN ? -1 : mss;
    }
    i += len;
  }
  return 0;
}

/**
 * Reads the TCP segment in frame[off, off + len) into `out`, checking the checksum against the
 * pseudo-header of `src` → `dst`. Returns null when usable, else why not (`out` then partly
 * filled and not to be used).
 */
export function parseTcp(frame: Uint8Array, off: number, len: number, src: number, dst: number, out: TcpHeader): TcpRejection | null {
  if (off < 0 || len < TCP_MIN_HEADER_LEN || off + len > frame.length) return 'tcp-truncated';
  const headerLen = (frame[off + DATA_OFFSET_OFFSET]! >> 4) * 4;
  if (headerLen < TCP_MIN_HEADER_LEN || headerLen > TCP_MAX_HEADER_LEN || headerLen > len) return 'tcp-header-length';
  const sum = checksumFold(checksumAdd(tcpPseudoHeaderSum(src, dst, len), frame, off, off + len));
  if (sum !== CHECKSUM_ALL_ONES) {
    const pseudo = checksumFold(tcpPseudoHeaderSum(src, dst, len));
    if (readU16(frame, off + TCP_CHECKSUM_OFFSET) !== pseudo) return 'tcp-checksum';
  }
  out.srcPort = readU16(frame, off + SRC_PORT_OFFSET);
  out.destPort = readU16(frame, off + DEST_PORT_OFFSET);
  out.seq = readU32(frame, off + SEQ_OFFSET);
  out.ack = readU32(frame, off + ACK_OFFSET);
  out.flags = frame[off + FLAGS_OFFSET]!;
  out.window = readU16(frame, off + WINDOW_OFFSET);
  out.headerLen = headerLen;
  out.payloadOffset = off + headerLen;
  out.payloadLen = len - headerLen;
  // Options matter only on a SYN (the MSS); elsewhere they are skipped unread, as Firecracker does.
  const syn = (out.flags & TCP_SYN) !== 0;
  const mss = syn && headerLen > TCP_MIN_HEADER_LEN ? parseMssOption(frame, off + TCP_MIN_HEADER_LEN, off + headerLen) : 0;
  if (mss < 0) return 'tcp-bad-option';
  out.mss = mss;
  return null;
}

/**
 * Writes a TCP header at `off` (ports, sequence numbers, flags, window, the MSS option when
 * `mss` > 0) and `payloadLen` bytes of `payload` from `payloadStart` after it, then the
 * checksum for `src` → `dst`. Returns the segment length; the caller checked the room.
 */
export function writeTcpSegment(
  buf: Uint8Array, off: number, srcPort: number, destPort: number, seq: number, ack: number, flags: number, window: number,
  mss: number, src: number, dst: number, payload: Uint8Array | null, payloadStart: number, payloadLen: number,
): number {
  const headerLen = TCP_MIN_HEADER_LEN + (mss > 0 ? TCP_OPT_MSS_LEN : 0);
  writeU16(buf, off + SRC_PORT_OFFSET, srcPort);
  writeU16(buf, off + DEST_PORT_OFFSET, destPort);
  writeU32(buf, off + SEQ_OFFSET, seq);
  writeU32(buf, off + ACK_OFFSET, ack);
  buf[off + DATA_OFFSET_OFFSET] = (headerLen / 4) << 4;
  buf[off + FLAGS_OFFSET] = flags;
  writeU16(buf, off + WINDOW_OFFSET, window);
  writeU16(buf, off + TCP_CHECKSUM_OFFSET, 0);
  writeU16(buf, off + URGENT_OFFSET, 0);
  if (mss > 0) {
    buf[off + TCP_MIN_HEADER_LEN] = TCP_OPT_MSS;
    buf[off + TCP_MIN_HEADER_LEN + 1] = TCP_OPT_MSS_LEN;
    writeU16(buf, off + TCP_MIN_HEADER_LEN + 2, mss);
  }
  if (payload && payloadLen > 0) buf.set(payload.subarray(payloadStart, payloadStart + payloadLen), off + headerLen);
  const len = headerLen + payloadLen;
  writeU16(buf, off + TCP_CHECKSUM_OFFSET, tcpChecksum(buf, off, len, src, dst));
  return len;
}
