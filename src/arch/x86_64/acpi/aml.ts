/**
 * A small ACPI Machine Language (AML) encoder: the subset a DSDT of named device objects needs,
 * and the few method terms (If, LEqual, Notify, Return) of the VMClock's _STA and the Generic
 * Event Device's _EVT. References are to the ACPI 6.5 specification: §20.2 "AML Grammar
 * Definition" (encodings), §20.3 "AML Byte Stream Byte Values" (opcodes), §6.4 "Resource
 * Data Types for ACPI" (the _CRS buffer descriptors).
 *
 * Every function returns the complete encoding of one term as a fresh Uint8Array, so terms
 * compose by concatenation: `device('_SB_.V000', [name('_HID', string('LNRO0005')), ...])`.
 * Invariants: a PkgLength counts its own bytes plus everything after it up to the end of the
 * package (§20.2.4); NameSegs are exactly four characters of [A-Z0-9_] not starting with a
 * digit (§20.2.2); a ResourceTemplate ends with an End Tag whose checksum makes the whole
 * descriptor list sum to 0 mod 256 (§6.4.2.9).
 */
import { AcpiError } from '../../../errors.js';

/** An encoded AML term (or any byte sequence inside one). */
export type AmlBytes = Uint8Array;

// --- Opcodes and prefixes (§20.3) ---
export const ZeroOp = 0x00;
export const OneOp = 0x01;
export const NameOp = 0x08;
export const BytePrefix = 0x0a;
export const WordPrefix = 0x0b;
export const DWordPrefix = 0x0c;
export const StringPrefix = 0x0d;
export const QWordPrefix = 0x0e;
export const ScopeOp = 0x10;
export const BufferOp = 0x11;
export const PackageOp = 0x12;
export const DualNamePrefix = 0x2e;
export const MultiNamePrefix = 0x2f;
export const ExtOpPrefix = 0x5b;
export const DeviceOp = 0x82; // after ExtOpPrefix
export const MethodOp = 0x14;
export const IfOp = 0xa0;
export const LEqualOp = 0x93;
export const NotifyOp = 0x86;
export const ReturnOp = 0xa4;
export const Arg0Op = 0x68;
/** Arg0Op..Arg6Op. */
export const MAX_METHOD_ARGS = 7;
export const RootChar = 0x5c; // '\'
export const ParentPrefixChar = 0x5e; // '^'
export const NullName = 0x00;
export const NullChar = 0x00;

/** Concatenates byte sequences. */
export function concat(parts: readonly (AmlBytes | readonly number[])[]): AmlBytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

// --- PkgLength (§20.2.4) ---
/** Largest value each PkgLength form can hold: 6 bits in one byte, then 4 + 8·n bits. */
const PKG_LENGTH_MAX = [0x3f, 0xfff, 0xf_ffff, 0xfff_ffff] as const;
const PKG_LEAD_COUNT_SHIFT = 6; // PkgLeadByte bits 7:6 = count of ByteData that follow
const PKG_LEAD_NIBBLE_MASK = 0x0f; // multi-byte form: bits 3:0 = low nibble of the length

/**
 * Encodes the PkgLength of a package whose contents after the PkgLength are `contentLength`
 * bytes; the encoded value includes the PkgLength's own bytes. Chooses the shortest form.
 */
export function pkgLength(contentLength: number): AmlBytes {
  for (let n = 1; n <= PKG_LENGTH_MAX.length; n++) {
    const total = contentLength + n;
    if (total > PKG_LENGTH_MAX[n - 1]!) continue;
    if (n === 1) return Uint8Array.of(total);
    const out = new Uint8Array(n);
    out[0] = ((n - 1) << PKG_LEAD_COUNT_SHIFT) | (total & PKG_LEAD_NIBBLE_MASK);
    for (let i = 1; i < n; i++) out[i] = (total >>> (4 + 8 * (i - 1))) & 0xff;
    return out;
  }
  throw new AcpiError(`AML package of ${contentLength} bytes exceeds the PkgLength maximum`);
}

// --- Names (§20.2.2) ---
const NAME_SEG_LENGTH = 4;
const NAME_PAD = '_';

/** Encodes one NameSeg; names shorter than four characters are padded with '_'. */
export function nameSeg(seg: string): AmlBytes {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(seg)) throw new AcpiError(`invalid AML NameSeg ${JSON.stringify(seg)}`);
  return Uint8Array.from(seg.padEnd(NAME_SEG_LENGTH, NAME_PAD), (c) => c.charCodeAt(0));
}

/**
 * Encodes a NameString: optional '\' (root) or '^'… (parent) prefix, then dot-separated
 * NameSegs as one NameSeg, DualNamePath, MultiNamePath or NullName.
 */
export function namePath(path: string): AmlBytes {
  let rest = path;
  const prefix: number[] = [];
  if (rest.startsWith('\\')) { prefix.push(RootChar); rest = rest.slice(1); }
  else while (rest.startsWith('^')) { prefix.push(ParentPrefixChar); rest = rest.slice(1); }
  const segs = rest === '' ? [] : rest.split('.').map(nameSeg);
  if (segs.length === 0) return concat([prefix, [NullName]]);
  if (segs.length === 1) return concat([prefix, segs[0]!]);
  if (segs.length === 2) return concat([prefix, [DualNamePrefix], ...segs]);
  if (segs.length > 0xff) throw new AcpiError(`AML name path ${path} has too many segments`);
  return concat([prefix, [MultiNamePrefix, segs.length], ...segs]);
}

// --- Data objects (§20.2.3) ---
/**
 * Encodes an integer constant in its shortest form: ZeroOp, OneOp, or a Byte/Word/DWord/QWord
 * prefix with little-endian data. Accepts 0 ≤ v < 2^64.
 */
export function integer(value: number | bigint): AmlBytes {
  const v = BigInt(value);
  if (v < 0n || v >= 1n << 64n) throw new AcpiError(`AML integer ${v} outside 0..2^64-1`);
  if (v === 0n) return Uint8Array.of(ZeroOp);
  if (v === 1n) return Uint8Array.of(OneOp);
  if (v <= 0xffn) return leBytes(BytePrefix, v, 1);
  if (v <= 0xffffn) return leBytes(WordPrefix, v, 2);
  if (v <= 0xffff_ffffn) return leBytes(DWordPrefix, v, 4);
  return leBytes(QWordPrefix, v, 8);
}

/** `op` followed by `size` little-endian bytes of `v`. */
function leBytes(op: number, v: bigint, size: number): AmlBytes {
  const out = new Uint8Array(1 + size);
  out[0] = op;
  for (let i = 0; i < size; i++) out[1 + i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return out;
}

/** A ByteConst whatever the value (acpi_tables encodes `u8` so), e.g. the GED's GSI comparisons. */
export function byteConst(value: number): AmlBytes {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new AcpiError(`AML byte ${value} outside 0..255`);
  return leBytes(BytePrefix, BigInt(value), 1);
}

/** A DWordConst whatever the value (acpi_tables encodes `u32` so), e.g. VMGenID's ADDR halves. */
export function dwordConst(value: number): AmlBytes {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new AcpiError(`AML dword ${value} outside 0..2^32-1`);
  return leBytes(DWordPrefix, BigInt(value), 4);
}

/** Encodes a String constant: StringPrefix, ASCII characters 0x01–0x7f, NullChar. */
export function string(s: string): AmlBytes {
  if (!/^[\x01-\x7f]*$/.test(s)) throw new AcpiError(`AML string ${JSON.stringify(s)} is not NUL-free ASCII`);
  return concat([[StringPrefix], Uint8Array.from(s, (c) => c.charCodeAt(0)), [NullChar]]);
}

/**
 * Compresses a seven-character EISA/PNP id such as "PNP0501" (ASL EisaId(), ACPI §19.6.35):
 * three letters as 5-bit values ('A' = 1) then four hex digits, stored big-endian in a DWord.
 */
export function eisaIdValue(id: string): number {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new AcpiError(`invalid EISA id ${JSON.stringify(id)}`);
  const letter = (i: number): number => id.charCodeAt(i) - 0x40;
  const packed = ((letter(0) << 26) | (letter(1) << 21) | (letter(2) << 16) | parseInt(id.slice(3), 16)) >>> 0;
  // Byte-swap: the id is stored most significant byte first.
  return (((packed & 0xff) << 24) | ((packed & 0xff00) << 8) | ((packed >>> 8) & 0xff00) | (packed >>> 24)) >>> 0;
}

/** Encodes EisaId("XXXnnnn") as the DWord integer ASL produces for it. */
export function eisaId(id: string): AmlBytes {
  return leBytes(DWordPrefix, BigInt(eisaIdValue(id)), 4);
}

/** DefBuffer := BufferOp PkgLength BufferSize ByteList, with BufferSize = data length. */
export function buffer(data: AmlBytes): AmlBytes {
  const body = concat([integer(data.length), data]);
  return concat([[BufferOp], pkgLength(body.length), body]);
}

/** DefPackage := PackageOp PkgLength NumElements PackageElementList (at most 255 elements). */
export function packageOf(elements: readonly AmlBytes[]): AmlBytes {
  if (elements.length > 0xff) throw new AcpiError(`AML package of ${elements.length} elements exceeds 255`);
  const body = concat([[elements.length], ...elements]);
  return concat([[PackageOp], pkgLength(body.length), body]);
}

// --- Named objects and scopes (§20.2.5) ---
/** DefName := NameOp NameString DataRefObject. */
export function name(path: string, value: AmlBytes): AmlBytes {
  return concat([[NameOp], namePath(path), value]);
}

/** DefScope := ScopeOp PkgLength NameString TermList. */
export function scope(path: string, terms: readonly AmlBytes[]): AmlBytes {
  const body = concat([namePath(path), ...terms]);
  return concat([[ScopeOp], pkgLength(body.length), body]);
}

/** DefDevice := ExtOpPrefix DeviceOp PkgLength NameString TermList. */
export function device(path: string, terms: readonly AmlBytes[]): AmlBytes {
  const body = concat([namePath(path), ...terms]);
  return concat([[ExtOpPrefix, DeviceOp], pkgLength(body.length), body]);
}

// --- Methods and the statements they use (§20.2.5.2, §20.2.5.3) ---
/** DefMethod := MethodOp PkgLength NameString MethodFlags TermList (flags: ArgCount | SerializeFlag << 3). */
export function method(path: string, argCount: number, serialized: boolean, terms: readonly AmlBytes[]): AmlBytes {
  if (!Number.isInteger(argCount) || argCount < 0 || argCount >= MAX_METHOD_ARGS) throw new AcpiError(`AML method argument count ${argCount}`);
  const body = concat([namePath(path), [argCount | (serialized ? 1 << 3 : 0)], ...terms]);
  return concat([[MethodOp], pkgLength(body.length), body]);
}

/** DefIfElse without Else := IfOp PkgLength Predicate TermList. */
export function ifThen(predicate: AmlBytes, terms: readonly AmlBytes[]): AmlBytes {
  const body = concat([predicate, ...terms]);
  return concat([[IfOp], pkgLength(body.length), body]);
}

/** DefLEqual := LEqualOp Operand Operand. */
export function lEqual(a: AmlBytes, b: AmlBytes): AmlBytes {
  return concat([[LEqualOp], a, b]);
}

/** ArgN (Arg0Op + n). */
export function arg(n: number): AmlBytes {
  if (!Number.isInteger(n) || n < 0 || n >= MAX_METHOD_ARGS) throw new AcpiError(`AML Arg${n}`);
  return Uint8Array.of(Arg0Op + n);
}

/** DefNotify := NotifyOp NotifyObject NotifyValue. */
export function notify(objectPath: string, value: AmlBytes): AmlBytes {
  return concat([[NotifyOp], namePath(objectPath), value]);
}

/** DefReturn := ReturnOp ArgObject. */
export function returnValue(value: AmlBytes): AmlBytes {
  return concat([[ReturnOp], value]);
}

// --- Resource descriptors (§6.4) ---
/** Small item tag: bit 7 = 0, bits 6:3 item name, bits 2:0 length (§6.4.2). */
const smallTag = (itemName: number, length: number): number => (itemName << 3) | length;
/** Large item tag: bit 7 = 1, bits 6:0 item name; a 16-bit length follows (§6.4.3). */
const LARGE_ITEM = 0x80;
export const SMALL_IO_PORT = 0x08;
export const SMALL_END_TAG = 0x0f;
export const LARGE_MEMORY32_FIXED = 0x06;
export const LARGE_EXTENDED_INTERRUPT = 0x09;
export const LARGE_QWORD_ADDRESS_SPACE = 0x0a;
/** Address space descriptors: resource type (§6.4.3.5.1), general flags MinFixed | MaxFixed. */
export const ADDRESS_SPACE_MEMORY = 0;
export const ADDRESS_MIN_FIXED = 1 << 2;
export const ADDRESS_MAX_FIXED = 1 << 3;
/** Memory type-specific flags: bit 0 read/write, bits 2:1 cacheability (1 = cacheable). */
export const ADDRESS_MEM_CACHEABLE = 1 << 1;
/** IO descriptor information bit 0: the device decodes 16 address bits (§6.4.2.5). */
export const IO_DECODE16 = 1;
/** Memory32Fixed information bit 0: read/write (§6.4.3.4). */
export const MEM_READ_WRITE = 1;
/** Extended Interrupt flags (§6.4.3.6, byte 3). */
export const INT_CONSUMER = 1 << 0;
export const INT_EDGE = 1 << 1;
export const INT_ACTIVE_LOW = 1 << 2;
export const INT_SHARED = 1 << 3;
export const INT_WAKE_CAPABLE = 1 << 4;

/** Throws AcpiError unless `v` is an unsigned integer of `bits` bits. */
function checkUint(v: number, bits: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) throw new AcpiError(`${what} ${v} is not a u${bits}`);
}

/** I/O port descriptor (§6.4.2.5, 8 bytes): IO(Decode16, min, max, alignment, length). */
export function ioPort(min: number, max: number, alignment: number, length: number): AmlBytes {
  checkUint(min, 16, 'IO minimum'); checkUint(max, 16, 'IO maximum');
  checkUint(alignment, 8, 'IO alignment'); checkUint(length, 8, 'IO length');
  return Uint8Array.of(
    smallTag(SMALL_IO_PORT, 7), IO_DECODE16, min & 0xff, min >>> 8, max & 0xff, max >>> 8, alignment, length,
  );
}

/** 32-bit fixed memory range descriptor (§6.4.3.4, 12 bytes): Memory32Fixed(ReadWrite, base, length). */
export function memory32Fixed(base: number, length: number, readWrite = true): AmlBytes {
  checkUint(base, 32, 'Memory32Fixed base'); checkUint(length, 32, 'Memory32Fixed length');
  const out = new Uint8Array(12);
  const v = new DataView(out.buffer);
  out[0] = LARGE_ITEM | LARGE_MEMORY32_FIXED;
  v.setUint16(1, 9, true); // bytes after the 3-byte header
  out[3] = readWrite ? MEM_READ_WRITE : 0;
  v.setUint32(4, base, true);
  v.setUint32(8, length, true);
  return out;
}

/** Flags of an Extended Interrupt descriptor; defaults: consumer, level, active-high, exclusive. */
export interface InterruptFlags {
  edge?: boolean;
  activeLow?: boolean;
  shared?: boolean;
  wakeCapable?: boolean;
}

/** Extended Interrupt descriptor (§6.4.3.6, 9 bytes) with one interrupt number, no resource source. */
export function interrupt(gsi: number, flags: InterruptFlags = {}): AmlBytes {
  checkUint(gsi, 32, 'interrupt number');
  const out = new Uint8Array(9);
  const v = new DataView(out.buffer);
  out[0] = LARGE_ITEM | LARGE_EXTENDED_INTERRUPT;
  v.setUint16(1, 6, true); // flags + table length + one DWord
  out[3] = INT_CONSUMER | (flags.edge ? INT_EDGE : 0) | (flags.activeLow ? INT_ACTIVE_LOW : 0) |
    (flags.shared ? INT_SHARED : 0) | (flags.wakeCapable ? INT_WAKE_CAPABLE : 0);
  out[4] = 1; // interrupt table length
  v.setUint32(5, gsi, true);
  return out;
}

/**
 * QWord Address Space descriptor for memory (§6.4.3.5.1, 46 bytes): QWordMemory(ResourceConsumer,
 * PosDecode, MinFixed, MaxFixed, Cacheable|NonCacheable, ReadWrite|ReadOnly, granularity 0,
 * min, max, translation 0, length max − min + 1), as acpi_tables' `AddressSpace::new_memory`.
 */
export function qwordMemory(min: bigint, max: bigint, opts: { cacheable: boolean; readWrite: boolean }): AmlBytes {
  if (min < 0n || max < min || max >= 1n << 64n) throw new AcpiError(`QWordMemory range 0x${min.toString(16)}..0x${max.toString(16)}`);
  const out = new Uint8Array(46);
  const v = new DataView(out.buffer);
  out[0] = LARGE_ITEM | LARGE_QWORD_ADDRESS_SPACE;
  v.setUint16(1, 43, true); // bytes after the 3-byte header
  out[3] = ADDRESS_SPACE_MEMORY;
  out[4] = ADDRESS_MIN_FIXED | ADDRESS_MAX_FIXED;
  out[5] = (opts.cacheable ? ADDRESS_MEM_CACHEABLE : 0) | (opts.readWrite ? MEM_READ_WRITE : 0);
  v.setBigUint64(6, 0n, true); // granularity
  v.setBigUint64(14, min, true);
  v.setBigUint64(22, max, true);
  v.setBigUint64(30, 0n, true); // translation offset
  v.setBigUint64(38, max - min + 1n, true);
  return out;
}

/** Word Address Space descriptor (§6.4.3.5.3, 16 bytes); `type` 1 = I/O, 2 = bus numbers. */
export const LARGE_WORD_ADDRESS_SPACE = 0x08;
export const ADDRESS_SPACE_IO = 1;
export const ADDRESS_SPACE_BUS = 2;
/** I/O type-specific flags: ranges 3 = both ISA and non-ISA (acpi_tables' `new_io`). */
export const ADDRESS_IO_ENTIRE_RANGE = 3;

function wordAddressSpace(type: number, typeFlags: number, min: number, max: number): AmlBytes {
  checkUint(min, 16, 'WordSpace minimum'); checkUint(max, 16, 'WordSpace maximum');
  if (max < min) throw new AcpiError(`WordSpace range 0x${min.toString(16)}..0x${max.toString(16)}`);
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  out[0] = LARGE_ITEM | LARGE_WORD_ADDRESS_SPACE;
  v.setUint16(1, 13, true);
  out[3] = type;
  out[4] = ADDRESS_MIN_FIXED | ADDRESS_MAX_FIXED;
  out[5] = typeFlags;
  v.setUint16(6, 0, true); // granularity
  v.setUint16(8, min, true);
  v.setUint16(10, max, true);
  v.setUint16(12, 0, true); // translation offset
  v.setUint16(14, max - min + 1, true);
  return out;
}

/** WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, length). */
export function wordBusNumber(min: number, max: number): AmlBytes {
  return wordAddressSpace(ADDRESS_SPACE_BUS, 0, min, max);
}

/** WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, length). */
export function wordIo(min: number, max: number): AmlBytes {
  return wordAddressSpace(ADDRESS_SPACE_IO, ADDRESS_IO_ENTIRE_RANGE, min, max);
}

/**
 * ResourceTemplate(){…}: a Buffer holding the descriptors then an End Tag (§6.4.2.9) whose
 * checksum byte makes the descriptor bytes sum to 0 mod 256.
 */
export function resourceTemplate(descriptors: readonly AmlBytes[]): AmlBytes {
  const list = concat([...descriptors, [smallTag(SMALL_END_TAG, 1), 0]]);
  let sum = 0;
  for (const b of list) sum = (sum + b) & 0xff;
  list[list.length - 1] = (0x100 - sum) & 0xff;
  return buffer(list);
}
