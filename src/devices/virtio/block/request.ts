/**
 * Parsing a virtio-blk request chain (virtio 1.1 §5.2.6, Firecracker
 * devices/virtio/block/virtio/request.rs; firecracker src/vmm/src/devices/virtio/block/):
 *
 *   header  (device-readable, >= 16 bytes: type le32, reserved le32, sector le64)
 *   data    (IN/OUT: one or more segments, device-writable for IN, readable for OUT;
 *            GET_ID: exactly one, device-writable; FLUSH and others: at most one)
 *   status  (device-writable, >= 1 byte)
 *
 * IN, OUT and GET_ID need data; FLUSH and unknown types may omit it (Firecracker only lets
 * FLUSH omit it; the spec answers any unknown type with UNSUPP, so Kindling does too whatever
 * the chain length). Several IN/OUT segments exist because the device offers
 * VIRTIO_BLK_F_SEG_MAX (Firecracker takes exactly one data descriptor): a request beyond
 * seg_max / size_max parses but carries `refused`, and the device answers it with IOERR. Each malformation gives its own BlockRequestError; the device
 * completes such chains with used length 0 and no status byte (`execute_fails`).
 *
 * The queue already proved every buffer lies inside guest RAM, so parsing reads guest memory
 * without further range failures; the parser still never throws.
 */
import { BlockRequestError } from '../../../errors.js';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import {
  VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_OUTHDR_SECTOR, VIRTIO_BLK_OUTHDR_SIZE, VIRTIO_BLK_OUTHDR_TYPE,
  VIRTIO_BLK_SECTOR_SHIFT, VIRTIO_BLK_SECTOR_SIZE, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from '../constants.js';
import type { ChainDescriptor, DescriptorChain } from '../queue.js';

/** What a request asks for. */
export const BLOCK_REQUEST_KIND = {
  /** VIRTIO_BLK_T_IN: read sectors into the data buffer. */
  IN: 'in',
  /** VIRTIO_BLK_T_OUT: write the data buffer to sectors. */
  OUT: 'out',
  /** VIRTIO_BLK_T_FLUSH. */
  FLUSH: 'flush',
  /** VIRTIO_BLK_T_GET_ID. */
  GET_ID: 'get-id',
  /** Any other type: answered with VIRTIO_BLK_S_UNSUPP. */
  UNSUPPORTED: 'unsupported',
} as const;

/** One of BLOCK_REQUEST_KIND's values. */
export type BlockRequestKind = (typeof BLOCK_REQUEST_KIND)[keyof typeof BLOCK_REQUEST_KIND];

/** A well-formed request. */
export interface BlockRequest {
  /** Decoded type. */
  readonly kind: BlockRequestKind;
  /** The raw `type` field (for logs about unsupported types). */
  readonly type: number;
  /** Chain head, to complete the request with. */
  readonly head: number;
  /** First sector (IN/OUT), in 512-byte units. */
  readonly sector: bigint;
  /** Byte offset on the disk (sector × 512) for IN/OUT, else 0. */
  readonly offset: number;
  /** The data descriptors in chain order (empty without data). */
  readonly segments: readonly BlockSegment[];
  /** Address of the first data descriptor (0 without data): GET_ID's buffer. */
  readonly dataAddr: number;
  /** Total data length over all segments (0 without data). */
  readonly dataLen: number;
  /** Address of the status byte. */
  readonly statusAddr: number;
  /** Set when the request exceeds seg_max or size_max: it is answered with IOERR, not run. */
  readonly refused?: BlockRequestError;
}

function kindOf(type: number): BlockRequestKind {
  switch (type) {
    case VIRTIO_BLK_T_IN:
      return BLOCK_REQUEST_KIND.IN;
    case VIRTIO_BLK_T_OUT:
      return BLOCK_REQUEST_KIND.OUT;
    case VIRTIO_BLK_T_FLUSH:
      return BLOCK_REQUEST_KIND.FLUSH;
    case VIRTIO_BLK_T_GET_ID:
      return BLOCK_REQUEST_KIND.GET_ID;
    default:
      return BLOCK_REQUEST_KIND.UNSUPPORTED;
  }
}

/** Descriptors of a request without data: header, status. */
const MIN_CHAIN_DESCRIPTORS = 2;
/** Data descriptors a FLUSH, GET_ID or unsupported request may carry. */
const MAX_SMALL_DATA_DESCRIPTORS = 1;

/**
 * The largest request the device takes, as offered in the config space (VIRTIO_BLK_F_SEG_MAX,
 * VIRTIO_BLK_F_SIZE_MAX). An IN/OUT beyond them is well formed but refused: it is answered
 * with VIRTIO_BLK_S_IOERR (a driver that honours the offer never sends one).
 */
export interface BlockRequestLimits {
  /** Most data descriptors (segments) of one IN/OUT request. */
  readonly segMax: number;
  /** Most bytes of one data descriptor. */
  readonly sizeMax: number;
}

/** One data descriptor of a request. */
export interface BlockSegment {
  readonly addr: number;
  readonly len: number;
}

/**
 * Parses `chain` into a request, checking it against a disk of `capacitySectors` sectors.
 * Returns a BlockRequestError for the first defect found, in this order: header, chain shape,
 * data direction, data length / sector range, status descriptor. A chain that passes all of
 * them but exceeds `limits` comes back as a request with `refused` set.
 */
export function parseBlockRequest(
  mem: GuestMemory, chain: DescriptorChain, capacitySectors: bigint, limits: BlockRequestLimits = UNLIMITED,
): BlockRequest | BlockRequestError {
  const descs = chain.descriptors;
  const header = descs[0]!;
  if (header.writable) return new BlockRequestError('VIRTIO_BLK_REQ_HEADER_WRITE_ONLY', `chain ${chain.head}: the header is device-writable`);
  if (header.len < VIRTIO_BLK_OUTHDR_SIZE) {
    return new BlockRequestError('VIRTIO_BLK_REQ_HEADER_TOO_SHORT', `chain ${chain.head}: header of ${header.len} bytes`);
  }
  const type = mem.readU32(header.addr + VIRTIO_BLK_OUTHDR_TYPE);
  const sector = mem.readU64(header.addr + VIRTIO_BLK_OUTHDR_SECTOR);
  if (typeof type !== 'number' || typeof sector !== 'bigint') {
    // Unreachable after the queue's RAM check; kept so a hostile header can never throw.
    return new BlockRequestError('VIRTIO_BLK_REQ_HEADER_TOO_SHORT', `chain ${chain.head}: header outside guest RAM`);
  }
  const kind = kindOf(type);
  const isTransfer = kind === BLOCK_REQUEST_KIND.IN || kind === BLOCK_REQUEST_KIND.OUT;
  const needsData = isTransfer || kind === BLOCK_REQUEST_KIND.GET_ID;
  if (descs.length < MIN_CHAIN_DESCRIPTORS || (needsData && descs.length < MIN_CHAIN_DESCRIPTORS + 1)) {
    return new BlockRequestError('VIRTIO_BLK_REQ_CHAIN_TOO_SHORT', `chain ${chain.head}: ${descs.length} descriptors for a ${kind} request`);
  }
  // Everything between the header and the status is data (§5.2.6: `u8 data[]` may span descriptors).
  const data: readonly ChainDescriptor[] = descs.slice(1, -1);
  if (!isTransfer && data.length > MAX_SMALL_DATA_DESCRIPTORS) {
    return new BlockRequestError('VIRTIO_BLK_REQ_CHAIN_TOO_LONG', `chain ${chain.head}: ${data.length} data descriptors for a ${kind} request`);
  }
  const status = descs[descs.length - 1]!;
  let offset = 0;
  let dataLen = 0;
  let largest = 0;
  const wantWritable = kind === BLOCK_REQUEST_KIND.IN || kind === BLOCK_REQUEST_KIND.GET_ID;
  for (const d of data) {
    if (wantWritable && !d.writable) {
      return new BlockRequestError('VIRTIO_BLK_REQ_DATA_READ_ONLY', `chain ${chain.head}: ${kind} data buffer is device-read-only`);
    }
    if (kind === BLOCK_REQUEST_KIND.OUT && d.writable) {
      return new BlockRequestError('VIRTIO_BLK_REQ_DATA_WRITE_ONLY', `chain ${chain.head}: out data buffer is device-write-only`);
    }
    if (isTransfer && d.len === 0) return new BlockRequestError('VIRTIO_BLK_REQ_DATA_EMPTY', `chain ${chain.head}: empty ${kind} data buffer`);
    dataLen += d.len; // the queue bounds a chain's total at VIRTQ_CHAIN_MAX_BYTES: a safe integer
    largest = Math.max(largest, d.len);
  }
  if (isTransfer) {
    if (dataLen % VIRTIO_BLK_SECTOR_SIZE !== 0) {
      return new BlockRequestError('VIRTIO_BLK_REQ_DATA_LENGTH', `chain ${chain.head}: ${kind} length ${dataLen} is not a multiple of ${VIRTIO_BLK_SECTOR_SIZE}`);
    }
    const top = sector + BigInt(dataLen / VIRTIO_BLK_SECTOR_SIZE);
    if (top > capacitySectors) {
      return new BlockRequestError('VIRTIO_BLK_REQ_SECTOR_RANGE', `chain ${chain.head}: sectors ${sector}..${top} past capacity ${capacitySectors}`);
    }
    // top <= capacity, and capacity × 512 is a safe integer (disk sizes are JS numbers).
    offset = Number(sector << BigInt(VIRTIO_BLK_SECTOR_SHIFT));
  }
  if (kind === BLOCK_REQUEST_KIND.GET_ID && data[0] && data[0].len < VIRTIO_BLK_ID_BYTES) {
    return new BlockRequestError('VIRTIO_BLK_REQ_ID_TOO_SHORT', `chain ${chain.head}: get-id buffer of ${data[0].len} bytes`);
  }
  if (!status.writable) return new BlockRequestError('VIRTIO_BLK_REQ_STATUS_READ_ONLY', `chain ${chain.head}: status is device-read-only`);
  if (status.len < 1) return new BlockRequestError('VIRTIO_BLK_REQ_STATUS_TOO_SHORT', `chain ${chain.head}: status of 0 bytes`);

  let refused: BlockRequestError | undefined;
  if (isTransfer && data.length > limits.segMax) {
    refused = new BlockRequestError('VIRTIO_BLK_REQ_TOO_MANY_SEGMENTS', `chain ${chain.head}: ${data.length} data descriptors, seg_max ${limits.segMax}`);
  } else if (isTransfer && largest > limits.sizeMax) {
    refused = new BlockRequestError('VIRTIO_BLK_REQ_SEGMENT_TOO_LARGE', `chain ${chain.head}: a data descriptor of ${largest} bytes, size_max ${limits.sizeMax}`);
  }
  return {
    kind,
    type,
    head: chain.head,
    sector,
    offset,
    segments: data.map((d) => ({ addr: d.addr, len: d.len })),
    dataAddr: data[0]?.addr ?? 0,
    dataLen,
    statusAddr: status.addr,
    refused,
  };
}

/** No limit beyond the queue's own (pure parsing tests). */
const UNLIMITED: BlockRequestLimits = { segMax: Number.MAX_SAFE_INTEGER, sizeMax: Number.MAX_SAFE_INTEGER };
