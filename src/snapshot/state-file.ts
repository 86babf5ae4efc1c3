/**
 * The snapshot state file: Kindling's own format (binary compatibility with Firecracker's
 * bitcode files is not a goal, docs/design.md "Snapshots"), with Firecracker's framing rules
 * (src/vmm/src/snapshot/mod.rs):
 *
 *   offset 0   magic           u64 LE  KINDLING_SNAPSHOT_MAGIC (x86_64)
 *          8   version         3 × u16 LE  major.minor.patch
 *         14   payload length  u32 LE
 *         18   payload         UTF-8 JSON of the MicrovmState (encoding below)
 *   end - 8    CRC-64 (Jones)  u64 LE of every byte before it
 *
 * Load refuses, before anything is built: a file over SNAPSHOT_MAX_BYTES (Firecracker's 10 MB
 * deserialization limit), a file too short for its framing, a bad CRC, another magic, a
 * version with another major or a newer minor, and a payload that is not the JSON it claims.
 *
 * JSON cannot hold bytes or u64 values exactly, so the payload encodes them as tagged objects:
 * a Uint8Array as {"$bytes": "<base64>"}, a bigint as {"$u64": "<decimal>"}. Plain objects,
 * arrays, strings, finite numbers, booleans and null pass through.
 */
import { SnapshotError } from '../errors.js';
import { crc64 } from './crc64.js';

/** Magic of an x86_64 Kindling snapshot ("KNDL" then the arch tag 8664, as Firecracker tags its own). */
export const KINDLING_SNAPSHOT_MAGIC = 0x4b4e_444c_8664_0001n;
/** Format version written; a loader takes the same major with a minor up to this one. */
export const SNAPSHOT_VERSION = { major: 1, minor: 0, patch: 0 } as const;
/** Largest state file a loader reads (Firecracker SNAPSHOT_DESERIALIZATION_BYTES_LIMIT). */
export const SNAPSHOT_MAX_BYTES = 10_000_000;
const HEADER_BYTES = 18;
const CRC_BYTES = 8;

export interface SnapshotVersion {
  major: number;
  minor: number;
  patch: number;
}

/** "major.minor.patch". */
export function versionText(v: SnapshotVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}

/**
 * JSON.stringify replacer. It looks at `holder[key]`, the value before `toJSON`: a Buffer
 * (what koffi-side getters return) would otherwise reach it already turned into
 * {type: 'Buffer', data: [...]}.
 */
function encodeValue(this: Record<string, unknown>, key: string, v: unknown): unknown {
  const orig = this[key];
  if (typeof orig === 'bigint') return { $u64: orig.toString() };
  if (orig instanceof Uint8Array) return { $bytes: Buffer.from(orig.buffer, orig.byteOffset, orig.byteLength).toString('base64') };
  return v;
}

function decodeValue(_key: string, v: unknown): unknown {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && typeof o.$u64 === 'string' && /^\d{1,20}$/.test(o.$u64)) return BigInt(o.$u64);
    if (keys.length === 1 && typeof o.$bytes === 'string') return new Uint8Array(Buffer.from(o.$bytes, 'base64'));
  }
  return v;
}

/** The whole state file for `state`. */
export function encodeStateFile(state: unknown, version: SnapshotVersion = SNAPSHOT_VERSION): Uint8Array {
  const payload = Buffer.from(JSON.stringify(state, encodeValue), 'utf8');
  const out = Buffer.alloc(HEADER_BYTES + payload.length + CRC_BYTES);
  out.writeBigUInt64LE(KINDLING_SNAPSHOT_MAGIC, 0);
  out.writeUInt16LE(version.major, 8);
  out.writeUInt16LE(version.minor, 10);
  out.writeUInt16LE(version.patch, 12);
  out.writeUInt32LE(payload.length, 14);
  payload.copy(out, HEADER_BYTES);
  out.writeBigUInt64LE(crc64(out.subarray(0, out.length - CRC_BYTES)), out.length - CRC_BYTES);
  return out;
}

/** The version recorded in a state file's header (`--describe-snapshot`); checks framing only. */
export function readStateFileVersion(file: Uint8Array): SnapshotVersion {
  const b = frame(file);
  return { major: b.readUInt16LE(8), minor: b.readUInt16LE(10), patch: b.readUInt16LE(12) };
}

function frame(file: Uint8Array): Buffer {
  const b = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (b.length > SNAPSHOT_MAX_BYTES) throw formatError(`Snapshot size exceeds limit of ${SNAPSHOT_MAX_BYTES} bytes`);
  if (b.length < CRC_BYTES) throw formatError('IO Error: File too short to contain CRC');
  if (b.length < HEADER_BYTES + CRC_BYTES) throw formatError('IO Error: failed to fill whole buffer');
  const magic = b.readBigUInt64LE(0);
  if (magic !== KINDLING_SNAPSHOT_MAGIC) throw formatError(`Magic value does not match arch: ${magic}`);
  return b;
}

function formatError(msg: string): SnapshotError {
  return new SnapshotError('SNAPSHOT_STATE_FORMAT', msg);
}

/**
 * Checks a state file and returns its decoded state. Order as Firecracker's `Snapshot::load`:
 * size limit, length, then the CRC over the whole file, then magic and version.
 */
export function decodeStateFile<T>(file: Uint8Array): T {
  const b = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (b.length > SNAPSHOT_MAX_BYTES) throw formatError(`Snapshot size exceeds limit of ${SNAPSHOT_MAX_BYTES} bytes`);
  if (b.length < CRC_BYTES) throw formatError('IO Error: File too short to contain CRC');
  if (crc64(b) !== 0n) throw formatError('CRC64 validation failed');
  frame(b);
  const v = readStateFileVersion(b);
  if (v.major !== SNAPSHOT_VERSION.major || v.minor > SNAPSHOT_VERSION.minor) throw formatError(`Invalid data version: ${versionText(v)}`);
  const len = b.readUInt32LE(14);
  if (HEADER_BYTES + len + CRC_BYTES !== b.length) throw formatError(`IO Error: payload length ${len} does not match the file`);
  try {
    return JSON.parse(b.subarray(HEADER_BYTES, HEADER_BYTES + len).toString('utf8'), decodeValue) as T;
  } catch (e) {
    throw formatError(`the state payload is not valid: ${(e as Error).message}`);
  }
}
