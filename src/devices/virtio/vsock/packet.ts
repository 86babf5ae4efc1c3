/**
 * vsock packets as descriptor chains (virtio 1.1 §5.10.6; Firecracker devices/virtio/vsock/
 * packet.rs). One chain is one packet: the 44-byte header first, then the data, in any split
 * across descriptors. The device never copies a packet: it keeps views of the chain's guest
 * buffers, decodes the header from them, and hands the data views to the host socket
 * (writev for TX, readv for RX).
 *
 * Hostile input: every rule is checked here and broken chains come back as a VsockPacketError
 * value naming the rule (one code per defect), which the device completes with used length 0:
 *
 *   TX (driver → device): every descriptor device-read-only ..... VIRTIO_VSOCK_PKT_UNREADABLE_DESC
 *                         at least a header ......................... VIRTIO_VSOCK_PKT_HEADER_TOO_SHORT
 *                         `len` at most MAX_PKT_BUF_SIZE ............ VIRTIO_VSOCK_PKT_LEN_TOO_BIG
 *                         `len` bytes present after the header ...... VIRTIO_VSOCK_PKT_CHAIN_TOO_SHORT
 *   RX (device → driver): every descriptor device-writable ........ VIRTIO_VSOCK_PKT_UNWRITABLE_DESC
 *                         room for at least a header ................ VIRTIO_VSOCK_PKT_HEADER_TOO_SHORT
 */
import { VsockPacketError } from '../../../errors.js';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { iovRead, iovWrite } from '../iovec.js';
import type { DescriptorChain } from '../queue.js';
import {
  MAX_PKT_BUF_SIZE, VSOCK_HDR_BUF_ALLOC, VSOCK_HDR_DST_CID, VSOCK_HDR_DST_PORT, VSOCK_HDR_FLAGS, VSOCK_HDR_FWD_CNT, VSOCK_HDR_LEN,
  VSOCK_HDR_OP, VSOCK_HDR_SRC_CID, VSOCK_HDR_SRC_PORT, VSOCK_HDR_TYPE, VSOCK_PKT_HDR_SIZE,
} from './constants.js';

/** 2^32, to join and split the u64 CID fields without bigint. */
const U32_MODULUS = 2 ** 32;

/**
 * A packet header, decoded. CIDs are numbers: exact below 2^53, and a larger (hostile) value
 * can never equal the host CID or a u32 guest CID it is compared with.
 */
export interface VsockHeader {
  srcCid: number;
  dstCid: number;
  srcPort: number;
  dstPort: number;
  /** Data bytes after the header. */
  len: number;
  type: number;
  op: number;
  flags: number;
  /** The sender's receive buffer size for this connection. */
  bufAlloc: number;
  /** Bytes the sender has consumed from its receive buffer (free-running u32). */
  fwdCnt: number;
}

/** An all-zero header. */
export function emptyHeader(): VsockHeader {
  return { srcCid: 0, dstCid: 0, srcPort: 0, dstPort: 0, len: 0, type: 0, op: 0, flags: 0, bufAlloc: 0, fwdCnt: 0 };
}

/** Decodes VSOCK_PKT_HDR_SIZE bytes (little-endian, packed). */
export function decodeHeader(bytes: Uint8Array, out: VsockHeader = emptyHeader()): VsockHeader {
  const v = new DataView(bytes.buffer, bytes.byteOffset, VSOCK_PKT_HDR_SIZE);
  out.srcCid = v.getUint32(VSOCK_HDR_SRC_CID, true) + v.getUint32(VSOCK_HDR_SRC_CID + 4, true) * U32_MODULUS;
  out.dstCid = v.getUint32(VSOCK_HDR_DST_CID, true) + v.getUint32(VSOCK_HDR_DST_CID + 4, true) * U32_MODULUS;
  out.srcPort = v.getUint32(VSOCK_HDR_SRC_PORT, true);
  out.dstPort = v.getUint32(VSOCK_HDR_DST_PORT, true);
  out.len = v.getUint32(VSOCK_HDR_LEN, true);
  out.type = v.getUint16(VSOCK_HDR_TYPE, true);
  out.op = v.getUint16(VSOCK_HDR_OP, true);
  out.flags = v.getUint32(VSOCK_HDR_FLAGS, true);
  out.bufAlloc = v.getUint32(VSOCK_HDR_BUF_ALLOC, true);
  out.fwdCnt = v.getUint32(VSOCK_HDR_FWD_CNT, true);
  return out;
}

/** Encodes `h` into VSOCK_PKT_HDR_SIZE bytes. */
export function encodeHeader(h: VsockHeader, bytes: Uint8Array): void {
  const v = new DataView(bytes.buffer, bytes.byteOffset, VSOCK_PKT_HDR_SIZE);
  v.setUint32(VSOCK_HDR_SRC_CID, h.srcCid % U32_MODULUS, true);
  v.setUint32(VSOCK_HDR_SRC_CID + 4, Math.floor(h.srcCid / U32_MODULUS), true);
  v.setUint32(VSOCK_HDR_DST_CID, h.dstCid % U32_MODULUS, true);
  v.setUint32(VSOCK_HDR_DST_CID + 4, Math.floor(h.dstCid / U32_MODULUS), true);
  v.setUint32(VSOCK_HDR_SRC_PORT, h.srcPort >>> 0, true);
  v.setUint32(VSOCK_HDR_DST_PORT, h.dstPort >>> 0, true);
  v.setUint32(VSOCK_HDR_LEN, h.len >>> 0, true);
  v.setUint16(VSOCK_HDR_TYPE, h.type, true);
  v.setUint16(VSOCK_HDR_OP, h.op, true);
  v.setUint32(VSOCK_HDR_FLAGS, h.flags >>> 0, true);
  v.setUint32(VSOCK_HDR_BUF_ALLOC, h.bufAlloc >>> 0, true);
  v.setUint32(VSOCK_HDR_FWD_CNT, h.fwdCnt >>> 0, true);
}

/**
 * Views of the bytes [offset, offset + len) of the concatenation of `bufs` (fewer when the
 * buffers end first). The views share the buffers' memory.
 */
export function iovSlice(bufs: readonly Uint8Array[], offset: number, len: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = offset;
  let left = len;
  for (const b of bufs) {
    if (left === 0) break;
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    const n = Math.min(b.length - skip, left);
    out.push(b.subarray(skip, skip + n));
    left -= n;
    skip = 0;
  }
  return out;
}

/** Views of a chain's buffers, all in the direction asked for; a code naming the defect otherwise. */
function views(mem: GuestMemory, chain: DescriptorChain, writable: boolean): Uint8Array[] | VsockPacketError {
  const out: Uint8Array[] = [];
  for (const d of chain.descriptors) {
    if (d.writable !== writable) {
      return writable
        ? new VsockPacketError('VIRTIO_VSOCK_PKT_UNWRITABLE_DESC', `RX chain ${chain.head}: descriptor ${d.index} is device-read-only`)
        : new VsockPacketError('VIRTIO_VSOCK_PKT_UNREADABLE_DESC', `TX chain ${chain.head}: descriptor ${d.index} is device-writable`);
    }
    // Queue.pop() checked the buffer against RAM already; a failure here is treated alike.
    const v = mem.slice(d.addr, d.len);
    if (!(v instanceof Uint8Array)) {
      return new VsockPacketError(writable ? 'VIRTIO_VSOCK_PKT_UNWRITABLE_DESC' : 'VIRTIO_VSOCK_PKT_UNREADABLE_DESC', v.message);
    }
    out.push(v);
  }
  return out;
}

/** A packet the driver sent (TX queue): its decoded header and the views of its buffers. */
export class VsockTxPacket {
  constructor(
    /** The chain head, for the used ring. */
    readonly head: number,
    readonly hdr: VsockHeader,
    /** Every buffer of the chain, header included. */
    readonly bufs: readonly Uint8Array[],
  ) {}

  /** Views of the `hdr.len` data bytes that follow the header. */
  data(): Uint8Array[] {
    return iovSlice(this.bufs, VSOCK_PKT_HDR_SIZE, this.hdr.len);
  }
}

/** Parses a TX chain (Firecracker `VsockPacketTx::parse`); `scratch` holds the header while it is decoded. */
export function parseTxPacket(mem: GuestMemory, chain: DescriptorChain, scratch: Uint8Array): VsockTxPacket | VsockPacketError {
  const bufs = views(mem, chain, false);
  if (bufs instanceof VsockPacketError) return bufs;
  if (chain.totalLen < VSOCK_PKT_HDR_SIZE) {
    return new VsockPacketError('VIRTIO_VSOCK_PKT_HEADER_TOO_SHORT', `TX chain ${chain.head}: ${chain.totalLen} bytes, the header needs ${VSOCK_PKT_HDR_SIZE}`);
  }
  iovRead(bufs, 0, scratch.subarray(0, VSOCK_PKT_HDR_SIZE));
  const hdr = decodeHeader(scratch);
  if (hdr.len > MAX_PKT_BUF_SIZE) {
    return new VsockPacketError('VIRTIO_VSOCK_PKT_LEN_TOO_BIG', `TX chain ${chain.head}: len ${hdr.len} > ${MAX_PKT_BUF_SIZE}`);
  }
  if (hdr.len > chain.totalLen - VSOCK_PKT_HDR_SIZE) {
    return new VsockPacketError('VIRTIO_VSOCK_PKT_CHAIN_TOO_SHORT', `TX chain ${chain.head}: len ${hdr.len} but ${chain.totalLen - VSOCK_PKT_HDR_SIZE} data bytes`);
  }
  return new VsockTxPacket(chain.head, hdr, bufs);
}

/** A receive buffer the driver posted (RX queue), to be filled with one packet. */
export class VsockRxBuffer {
  constructor(
    /** The chain head, for the used ring. */
    readonly head: number,
    /** Every buffer of the chain; the header goes first. */
    readonly bufs: readonly Uint8Array[],
    /** Data bytes the chain holds after the header (Firecracker `buf_size`). */
    readonly capacity: number,
  ) {}

  /** Views of up to `len` data bytes after the header, for the host socket to read into. */
  data(len: number): Uint8Array[] {
    return iovSlice(this.bufs, VSOCK_PKT_HDR_SIZE, Math.min(len, this.capacity));
  }

  /** Writes the header (Firecracker `commit_hdr`); `scratch` holds its encoding. */
  commitHeader(hdr: VsockHeader, scratch: Uint8Array): void {
    encodeHeader(hdr, scratch);
    iovWrite(this.bufs, 0, scratch.subarray(0, VSOCK_PKT_HDR_SIZE));
  }
}

/** Parses an RX chain (Firecracker `VsockPacketRx::parse`). */
export function parseRxBuffer(mem: GuestMemory, chain: DescriptorChain): VsockRxBuffer | VsockPacketError {
  const bufs = views(mem, chain, true);
  if (bufs instanceof VsockPacketError) return bufs;
  if (chain.totalLen < VSOCK_PKT_HDR_SIZE) {
    return new VsockPacketError('VIRTIO_VSOCK_PKT_HEADER_TOO_SHORT', `RX chain ${chain.head}: ${chain.totalLen} bytes, the header needs ${VSOCK_PKT_HDR_SIZE}`);
  }
  return new VsockRxBuffer(chain.head, bufs, chain.totalLen - VSOCK_PKT_HDR_SIZE);
}
