/**
 * The vhost-user protocol's messages, frontend side (QEMU docs/interop/vhost-user.rst, "Message
 * format", "Message types"; the same protocol Firecracker's vhost-user block frontend speaks,
 * firecracker src/vmm/src/devices/virtio/vhost_user.rs). Pure: bytes in, bytes out, no fds.
 *
 * A message is a 12-byte header — request (u32), flags (u32), payload size (u32), all
 * little-endian — then `size` payload bytes. File descriptors travel beside the message as
 * SCM_RIGHTS ancillary data; that is the socket's job (src/kvm/fd-passing.ts).
 *
 * Replies come from a process Kindling does not trust to be a vhost-user backend at all (any
 * socket path can be configured), so `ReplyFramer` checks every header before trusting its
 * size: version, the reply flag, the request it answers, and a size bound.
 */
import { VhostUserError } from '../../../errors.js';

/** Request codes (vhost-user.rst "Front-end message types"), only those Kindling sends. */
export const VHOST_USER_REQUEST = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  SET_MEM_TABLE: 5,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  SET_VRING_ENABLE: 18,
} as const;

/** Header flags: bits 0..1 the version, bit 2 "this is a reply", bit 3 "reply with an ack". */
export const VHOST_USER_VERSION = 0x1;
export const VHOST_USER_VERSION_MASK = 0x3;
export const VHOST_USER_REPLY_MASK = 0x1 << 2;
export const VHOST_USER_NEED_REPLY_MASK = 0x1 << 3;

/** Header size: request, flags, size. */
export const VHOST_USER_HEADER_SIZE = 12;
/**
 * Largest reply payload accepted. Every reply Kindling asks for is a u64 or a vring state
 * (8 bytes); the bound only keeps a peer that is not a backend from making us buffer gigabytes.
 */
export const VHOST_USER_MAX_REPLY_PAYLOAD = 4096;

/** GET_FEATURES bit: the backend speaks the protocol-features extension (rings start disabled). */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;
/** Protocol feature: every request flagged NEED_REPLY gets a u64 ack (0 = success). */
export const VHOST_USER_PROTOCOL_F_REPLY_ACK = 3;

/** VHOST_MEMORY_BASELINE_NREGIONS: regions one SET_MEM_TABLE may carry (one fd each). */
export const VHOST_USER_MAX_MEM_REGIONS = 8;
/** SET_VRING_KICK/CALL payload: bits 0..7 the vring index, bit 8 "no fd attached". */
export const VHOST_USER_VRING_IDX_MASK = 0xff;
export const VHOST_USER_VRING_NOFD_MASK = 0x1 << 8;

const U32 = 4;
const U64 = 8;
/** Memory region entry: guest_phys_addr, memory_size, userspace_addr, mmap_offset (4 × u64). */
const MEM_REGION_SIZE = 4 * U64;
/** Memory table header: nregions (u32) + padding (u32). */
const MEM_TABLE_HEADER = 2 * U32;
/** Vring address payload: index, flags (u32 each), desc, used, avail, log (u64 each). */
const VRING_ADDR_SIZE = 2 * U32 + 4 * U64;
/** Vring state payload: index, num (u32 each). */
const VRING_STATE_SIZE = 2 * U32;

export type VhostUserRequest = (typeof VHOST_USER_REQUEST)[keyof typeof VHOST_USER_REQUEST];

/** One region of guest RAM as the backend maps it (from an fd sent alongside). */
export interface VhostUserMemRegion {
  /** Guest physical address of the region. */
  guestAddr: bigint;
  size: bigint;
  /** Where the frontend has it mapped: vring addresses are given in this address space. */
  userAddr: bigint;
  /** Offset of the region in the fd sent for it. */
  mmapOffset: bigint;
}

/** A vring's placement in the frontend's address space (SET_VRING_ADDR). */
export interface VhostUserVringAddr {
  index: number;
  desc: bigint;
  used: bigint;
  avail: bigint;
}

/** A decoded message header. */
export interface VhostUserHeader {
  request: number;
  flags: number;
  size: number;
}

/** The name of a request code, for messages. */
export function requestName(request: number): string {
  for (const [name, code] of Object.entries(VHOST_USER_REQUEST)) if (code === request) return `VHOST_USER_${name}`;
  return `request ${request}`;
}

/** A whole request: header (version 1, NEED_REPLY when asked) and payload. */
export function encodeRequest(request: VhostUserRequest, payload: Uint8Array = new Uint8Array(0), needReply = false): Uint8Array {
  const out = new Uint8Array(VHOST_USER_HEADER_SIZE + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, request, true);
  v.setUint32(U32, VHOST_USER_VERSION | (needReply ? VHOST_USER_NEED_REPLY_MASK : 0), true);
  v.setUint32(2 * U32, payload.length, true);
  out.set(payload, VHOST_USER_HEADER_SIZE);
  return out;
}

/** A u64 payload (features, protocol features, REPLY_ACK). */
export function u64Payload(value: bigint): Uint8Array {
  const out = new Uint8Array(U64);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
  return out;
}

/** A vring state payload (SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ENABLE, GET_VRING_BASE). */
export function vringStatePayload(index: number, num: number): Uint8Array {
  const out = new Uint8Array(VRING_STATE_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, index, true);
  v.setUint32(U32, num, true);
  return out;
}

/** A SET_VRING_ADDR payload (flags 0: no used-ring logging). Note the field order: desc, used, avail, log. */
export function vringAddrPayload(a: VhostUserVringAddr): Uint8Array {
  const out = new Uint8Array(VRING_ADDR_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, a.index, true);
  v.setUint32(U32, 0, true);
  v.setBigUint64(2 * U32, a.desc, true);
  v.setBigUint64(2 * U32 + U64, a.used, true);
  v.setBigUint64(2 * U32 + 2 * U64, a.avail, true);
  v.setBigUint64(2 * U32 + 3 * U64, 0n, true);
  return out;
}

/** A SET_VRING_KICK / SET_VRING_CALL payload: the index, with an fd attached to the message. */
export function vringFdPayload(index: number): Uint8Array {
  return u64Payload(BigInt(index & VHOST_USER_VRING_IDX_MASK));
}

/** A SET_MEM_TABLE payload for `regions` (one fd each goes beside it, in the same order). */
export function memTablePayload(regions: readonly VhostUserMemRegion[]): Uint8Array {
  if (regions.length === 0 || regions.length > VHOST_USER_MAX_MEM_REGIONS) {
    throw new VhostUserError('VHOST_USER_BACKEND', `a vhost-user memory table holds 1..${VHOST_USER_MAX_MEM_REGIONS} regions, not ${regions.length}`);
  }
  const out = new Uint8Array(MEM_TABLE_HEADER + MEM_REGION_SIZE * regions.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, regions.length, true);
  regions.forEach((r, i) => {
    const at = MEM_TABLE_HEADER + MEM_REGION_SIZE * i;
    v.setBigUint64(at, r.guestAddr, true);
    v.setBigUint64(at + U64, r.size, true);
    v.setBigUint64(at + 2 * U64, r.userAddr, true);
    v.setBigUint64(at + 3 * U64, r.mmapOffset, true);
  });
  return out;
}

/** Decodes a u64 reply payload; a payload of another size is a protocol error. */
export function decodeU64(payload: Uint8Array, request: number): bigint {
  if (payload.length !== U64) {
    throw new VhostUserError('VHOST_USER_PROTOCOL', `${requestName(request)} reply has a ${payload.length}-byte payload, expected ${U64}`);
  }
  return new DataView(payload.buffer, payload.byteOffset, U64).getBigUint64(0, true);
}

/** Decodes a vring state reply payload (GET_VRING_BASE). */
export function decodeVringState(payload: Uint8Array, request: number): { index: number; num: number } {
  if (payload.length !== VRING_STATE_SIZE) {
    throw new VhostUserError('VHOST_USER_PROTOCOL', `${requestName(request)} reply has a ${payload.length}-byte payload, expected ${VRING_STATE_SIZE}`);
  }
  const v = new DataView(payload.buffer, payload.byteOffset, VRING_STATE_SIZE);
  return { index: v.getUint32(0, true), num: v.getUint32(U32, true) };
}

/** Decodes a header; throws VHOST_USER_PROTOCOL when it cannot be a reply to `request`. */
export function decodeReplyHeader(bytes: Uint8Array, request: number): VhostUserHeader {
  if (bytes.length < VHOST_USER_HEADER_SIZE) throw new VhostUserError('VHOST_USER_PROTOCOL', `a vhost-user header is ${VHOST_USER_HEADER_SIZE} bytes, got ${bytes.length}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, VHOST_USER_HEADER_SIZE);
  const h = { request: v.getUint32(0, true), flags: v.getUint32(U32, true), size: v.getUint32(2 * U32, true) };
  const what = `reply to ${requestName(request)}`;
  if ((h.flags & VHOST_USER_VERSION_MASK) !== VHOST_USER_VERSION) {
    throw new VhostUserError('VHOST_USER_PROTOCOL', `${what}: version ${h.flags & VHOST_USER_VERSION_MASK}, expected ${VHOST_USER_VERSION} (is this a vhost-user socket?)`);
  }
  if (!(h.flags & VHOST_USER_REPLY_MASK)) throw new VhostUserError('VHOST_USER_PROTOCOL', `${what}: the reply flag is not set`);
  if (h.request !== request) throw new VhostUserError('VHOST_USER_PROTOCOL', `${what}: the backend answered ${requestName(h.request)}`);
  if (h.size > VHOST_USER_MAX_REPLY_PAYLOAD) {
    throw new VhostUserError('VHOST_USER_PROTOCOL', `${what}: payload of ${h.size} bytes is larger than ${VHOST_USER_MAX_REPLY_PAYLOAD}`);
  }
  return h;
}

/**
 * Collects a reply from stream chunks: `push` what the socket gave, `take` returns the payload
 * once header and payload are complete (bytes after it, which a backend must not send
 * unasked, stay buffered and fail the next reply's header check). The header is checked as
 * soon as it is complete, so a bad peer fails before we wait for a size it made up.
 */
export class ReplyFramer {
  private buf = new Uint8Array(0);

  push(chunk: Uint8Array): void {
    const next = new Uint8Array(this.buf.length + chunk.length);
    next.set(this.buf);
    next.set(chunk, this.buf.length);
    this.buf = next;
  }

  /** Bytes held that no reply has taken. */
  get pending(): number {
    return this.buf.length;
  }

  /** The payload of a complete reply to `request`, or null while bytes are missing; throws on a bad header. */
  take(request: number): Uint8Array | null {
    if (this.buf.length < VHOST_USER_HEADER_SIZE) return null;
    const h = decodeReplyHeader(this.buf, request);
    const end = VHOST_USER_HEADER_SIZE + h.size;
    if (this.buf.length < end) return null;
    const payload = this.buf.slice(VHOST_USER_HEADER_SIZE, end);
    this.buf = this.buf.slice(end);
    return payload;
  }
}

/** A REPLY_ACK payload must be 0; anything else is the backend refusing `request`. */
export function checkAck(payload: Uint8Array, request: number): void {
  const status = decodeU64(payload, request);
  if (status !== 0n) throw new VhostUserError('VHOST_USER_PROTOCOL', `the backend refused ${requestName(request)} (status ${status})`);
}

/** Bit `bit` of a 64-bit feature word. */
export function bit64(bit: number): bigint {
  return 1n << BigInt(bit);
}
