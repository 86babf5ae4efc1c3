/**
 * Parsing a virtio-blk request chain (virtio 1.1 §5.2.6, Firecracker
 * devices/virtio/block/virtio/request.rs; firecracker src/vmm/src/devices/virtio/block/):
 *
 *   header  (device-readable, >= 16 bytes: type le32, reserved le32, sector le64)
 *   data    (optional, exactly one: device-writable for IN and GET_ID, readable for OUT)
 *   status  (device-writable, >= 1 byte)
 *
 * IN, OUT and GET_ID need the data descriptor; FLUSH and unknown types may omit it (Firecracker
 * only lets FLUSH omit it; the spec answers any unknown type with UNSUPP, so Kindling does too
 * whatever the chain length). Each malformation gives its own BlockRequestError; the device
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
  /** Data buffer address (0 without a data descriptor). */
  readonly dataAddr: number;
  /** Data buffer length (0 without a data descriptor). */
  readonly dataLen: number;
  /** Address of the status byte. */
  readonly statusAddr: number;
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

/** Descriptors a request chain may hold: header, data, status. */
const MAX_CHAIN_DESCRIPTORS = 3;
/** Descriptors of a request without data: header, status. */
const MIN_CHAIN_DESCRIPTORS = 2;

/**
 * Parses `chain` into a request, checking it against a disk of `capacitySectors` sectors.
 * Returns a BlockRequestError for the first defect found, in this order: header, chain shape,
 * data direction, data length / sector range, status descriptor.
 */
export function parseBlockRequest(mem: GuestMemory, chain: DescriptorChain, capacitySectors: bigint): BlockRequest | BlockRequestError {
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
  const needsData = kind === BLOCK_REQUEST_KIND.IN || kind === BLOCK_REQUEST_KIND.OUT || kind === BLOCK_REQUEST_KIND.GET_ID;
  if (descs.length < MIN_CHAIN_DESCRIPTORS || (needsData && descs.length < MAX_CHAIN_DESCRIPTORS)) {
    return new BlockRequestError('VIRTIO_BLK_REQ_CHAIN_TOO_SHORT', `chain ${chain.head}: ${descs.length} descriptors for a ${kind} request`);
  }
  if (descs.length > MAX_CHAIN_DESCRIPTORS) {
    return new BlockRequestError('VIRTIO_BLK_REQ_CHAIN_TOO_LONG', `chain ${chain.head}: ${descs.length} descriptors`);
  }
  const data: ChainDescriptor | undefined = descs.length === MAX_CHAIN_DESCRIPTORS ? descs[1] : undefined;
  const status = descs[descs.length - 1]!;
  let offset = 0;

  if (data && (kind === BLOCK_REQUEST_KIND.IN || kind === BLOCK_REQUEST_KIND.GET_ID) && !data.writable) {
    return new BlockRequestError('VIRTIO_BLK_REQ_DATA_READ_ONLY', `chain ${chain.head}: ${kind} data buffer is device-read-only`);
  }
  if (data && kind === BLOCK_REQUEST_KIND.OUT && data.writable) {
    return new BlockRequestError('VIRTIO_BLK_REQ_DATA_WRITE_ONLY', `chain ${chain.head}: out data buffer is device-write-only`);
  }
  if (data && (kind === BLOCK_REQUEST_KIND.IN || kind === BLOCK_REQUEST_KIND.OUT)) {
    if (data.len === 0) return new BlockRequestError('VIRTIO_BLK_REQ_DATA_EMPTY', `chain ${chain.head}: empty ${kind} data buffer`);
    if (data.len % VIRTIO_BLK_SECTOR_SIZE !== 0) {
      return new BlockRequestError('VIRTIO_BLK_REQ_DATA_LENGTH', `chain ${chain.head}: ${kind} length ${data.len} is not a multiple of ${VIRTIO_BLK_SECTOR_SIZE}`);
    }
    const top = sector + BigInt(data.len >>> VIRTIO_BLK_SECTOR_SHIFT);
    if (top > capacitySectors) {
      return new BlockRequestError('VIRTIO_BLK_REQ_SECTOR_RANGE', `chain ${chain.head}: sectors ${sector}..${top} past capacity ${capacitySectors}`);
    }
    // top <= capacity, and capacity × 512 is a safe integer (disk sizes are JS numbers).
    offset = Number(sector << BigInt(VIRTIO_BLK_SECTOR_SHIFT));
  }
  if (data && kind === BLOCK_REQUEST_KIND.GET_ID && data.len < VIRTIO_BLK_ID_BYTES) {
    return new BlockRequestError('VIRTIO_BLK_REQ_ID_TOO_SHORT', `chain ${chain.head}: get-id buffer of ${data.len} bytes`);
  }
  if (!status.writable) return new BlockRequestError('VIRTIO_BLK_REQ_STATUS_READ_ONLY', `chain ${chain.head}: status is device-read-only`);
  if (status.len < 1) return new BlockRequestError('VIRTIO_BLK_REQ_STATUS_TOO_SHORT', `chain ${chain.head}: status of 0 bytes`);

  return {
    kind,
    type,
    head: chain.head,
    sector,
    offset,
    dataAddr: data?.addr ?? 0,
    dataLen: data?.len ?? 0,
    statusAddr: status.addr,
  };
}
