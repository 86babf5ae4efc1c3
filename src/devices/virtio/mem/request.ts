/**
 * virtio-mem requests and responses (virtio 1.2 §5.15.6; Linux include/uapi/linux/virtio_mem.h;
 * Firecracker src/vmm/src/devices/virtio/mem/request.rs). Pure byte codecs: the guest's
 * request bytes are hostile, so parsing never throws and every field is range-checked by the
 * device (device.ts), not here.
 *
 *   struct virtio_mem_req  { le16 type; le16 padding[3]; union { le64 addr; le16 nb_blocks; le16 padding[3]; } }  24 bytes
 *   struct virtio_mem_resp { le16 type; le16 padding[3]; union { le16 state; } }                                   10 bytes
 */

/** Request types (§5.15.6). */
export const VIRTIO_MEM_REQ_PLUG = 0;
export const VIRTIO_MEM_REQ_UNPLUG = 1;
export const VIRTIO_MEM_REQ_UNPLUG_ALL = 2;
export const VIRTIO_MEM_REQ_STATE = 3;
/** Response types (§5.15.6). */
export const VIRTIO_MEM_RESP_ACK = 0;
export const VIRTIO_MEM_RESP_NACK = 1;
export const VIRTIO_MEM_RESP_BUSY = 2;
export const VIRTIO_MEM_RESP_ERROR = 3;
/** STATE response values (§5.15.6.4). */
export const VIRTIO_MEM_STATE_PLUGGED = 0;
export const VIRTIO_MEM_STATE_UNPLUGGED = 1;
export const VIRTIO_MEM_STATE_MIXED = 2;

/** sizeof(struct virtio_mem_req). */
export const VIRTIO_MEM_REQ_SIZE = 24;
/** sizeof(struct virtio_mem_resp). */
export const VIRTIO_MEM_RESP_SIZE = 10;
/** Offsets inside struct virtio_mem_req. */
const REQ_TYPE = 0;
const REQ_ADDR = 8;
const REQ_NB_BLOCKS = 16;
/** Offsets inside struct virtio_mem_resp. */
const RESP_TYPE = 0;
const RESP_STATE = 8;

/** A guest range of `nbBlocks` blocks from `addr` (not yet checked against the device). */
export interface RequestedRange {
  readonly addr: number;
  readonly nbBlocks: number;
}

/** A decoded request (Firecracker `Request`). */
export type MemRequest =
  | { readonly kind: 'plug'; readonly range: RequestedRange }
  | { readonly kind: 'unplug'; readonly range: RequestedRange }
  | { readonly kind: 'unplug-all' }
  | { readonly kind: 'state'; readonly range: RequestedRange }
  | { readonly kind: 'unsupported'; readonly type: number };

/**
 * Decodes a request from its VIRTIO_MEM_REQ_SIZE bytes (the caller checked the length). An
 * address that no JS number holds exactly (≥ 2^53) becomes `Number.MAX_SAFE_INTEGER + 1`,
 * which no device range contains, so it is refused like any other bad address.
 */
export function parseMemRequest(bytes: Uint8Array): MemRequest {
  const v = new DataView(bytes.buffer, bytes.byteOffset, VIRTIO_MEM_REQ_SIZE);
  const type = v.getUint16(REQ_TYPE, true);
  const raw = v.getBigUint64(REQ_ADDR, true);
  const addr = raw > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER + 1 : Number(raw);
  const range = { addr, nbBlocks: v.getUint16(REQ_NB_BLOCKS, true) };
  switch (type) {
    case VIRTIO_MEM_REQ_PLUG:
      return { kind: 'plug', range };
    case VIRTIO_MEM_REQ_UNPLUG:
      return { kind: 'unplug', range };
    case VIRTIO_MEM_REQ_UNPLUG_ALL:
      return { kind: 'unplug-all' };
    case VIRTIO_MEM_REQ_STATE:
      return { kind: 'state', range };
    default:
      return { kind: 'unsupported', type };
  }
}

/** A response (Firecracker `Response`): its type, and the state for an acknowledged STATE request. */
export interface MemResponse {
  readonly type: number;
  readonly state?: number;
}

/** Encodes a response into VIRTIO_MEM_RESP_SIZE bytes (padding zeroed). */
export function encodeMemResponse(r: MemResponse): Uint8Array {
  const out = new Uint8Array(VIRTIO_MEM_RESP_SIZE);
  const v = new DataView(out.buffer);
  v.setUint16(RESP_TYPE, r.type, true);
  if (r.state !== undefined) v.setUint16(RESP_STATE, r.state, true);
  return out;
}

/** Encodes a request (the driver's side: unit tests and tools). */
export function encodeMemRequest(type: number, range: RequestedRange = { addr: 0, nbBlocks: 0 }): Uint8Array {
  const out = new Uint8Array(VIRTIO_MEM_REQ_SIZE);
  const v = new DataView(out.buffer);
  v.setUint16(REQ_TYPE, type, true);
  v.setBigUint64(REQ_ADDR, BigInt(range.addr), true);
  v.setUint16(REQ_NB_BLOCKS, range.nbBlocks, true);
  return out;
}
