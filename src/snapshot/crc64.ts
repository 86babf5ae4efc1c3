/**
 * CRC-64 with the Jones coefficients, as the `crc64` crate Firecracker's snapshot format uses
 * (src/vmm/src/snapshot/mod.rs: `crc64(0, bytes)`): reflected, initial value 0, no final XOR.
 * Because nothing is XORed at the end, `crc64(data ‖ crcLE(data)) === 0`, which is how a
 * loader checks a file whose last 8 bytes are the checksum of the rest.
 */

/** The Jones polynomial in reflected (LSB-first) form. */
const CRC64_JONES_REFLECTED = 0x95ac9329ac4bc9b5n;
const BYTE_MASK = 0xffn;
const U64_MASK = (1n << 64n) - 1n;

const TABLE: readonly bigint[] = (() => {
  const t: bigint[] = [];
  for (let i = 0; i < 256; i++) {
    let c = BigInt(i);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ CRC64_JONES_REFLECTED : c >> 1n;
    t.push(c);
  }
  return t;
})();

/** The CRC of `bytes`, continuing from `crc` (0 to start). */
export function crc64(bytes: Uint8Array, crc = 0n): bigint {
  let c = crc & U64_MASK;
  for (let i = 0; i < bytes.length; i++) c = TABLE[Number((c ^ BigInt(bytes[i]!)) & BYTE_MASK)]! ^ (c >> 8n);
  return c;
}
