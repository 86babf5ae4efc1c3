/**
 * The snapshot state file (src/snapshot/state-file.ts): framing, CRC-64 (Jones), version rules
 * and the byte/u64 encoding, with damaged, truncated and foreign files refused.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crc64 } from '../../src/snapshot/crc64.js';
import {
  KINDLING_SNAPSHOT_MAGIC, SNAPSHOT_MAX_BYTES, SNAPSHOT_VERSION, decodeStateFile, encodeStateFile, readStateFileVersion,
} from '../../src/snapshot/state-file.js';
import { SnapshotError } from '../../src/errors.js';

const state = { vcpus: [{ regs: new Uint8Array([1, 2, 3, 255]), lapic: Buffer.from([9, 8, 7]), msrs: [{ index: 0x10, data: 0xffff_ffff_ffff_fff0n }] }], name: 'vm', n: 7, none: null };

function refused(file: Uint8Array, text: RegExp): void {
  try {
    decodeStateFile(file);
  } catch (e) {
    assert.instance(e, SnapshotError);
    assert.is((e as SnapshotError).code, 'SNAPSHOT_STATE_FORMAT');
    assert.match((e as Error).message, text);
    return;
  }
  assert.unreachable(`accepted a file that should fail with ${text}`);
}

test('CRC-64 Jones: check value and the zero-remainder property the loader relies on', () => {
  // The crc64 crate's (Jones, reflected, init 0, no xorout) check value for "123456789".
  assert.is(crc64(new TextEncoder().encode('123456789')), 0xe9c6d914c4b8d9can);
  const data = Buffer.from('kindling snapshot');
  const c = Buffer.alloc(8);
  c.writeBigUInt64LE(crc64(data));
  assert.is(crc64(Buffer.concat([data, c])), 0n);
});

test('round trip: bytes and u64 values come back exactly; header carries magic and version', () => {
  const file = encodeStateFile(state);
  const b = Buffer.from(file);
  assert.is(b.readBigUInt64LE(0), KINDLING_SNAPSHOT_MAGIC);
  assert.equal(readStateFileVersion(file), { ...SNAPSHOT_VERSION });
  const back = decodeStateFile<typeof state>(file);
  assert.equal(back.vcpus[0]!.regs, new Uint8Array([1, 2, 3, 255]));
  assert.equal(back.vcpus[0]!.lapic, new Uint8Array([9, 8, 7]), 'a Buffer is bytes too (not its toJSON form)');
  assert.is(back.vcpus[0]!.msrs[0]!.data, 0xffff_ffff_ffff_fff0n);
  assert.is(back.name, 'vm');
  assert.is(back.none, null);
});

test('every flipped byte is caught by the CRC', () => {
  const file = encodeStateFile(state);
  for (let i = 0; i < file.length; i += 7) {
    const bad = Uint8Array.from(file);
    bad[i] ^= 0x40;
    refused(bad, /CRC64 validation failed/);
  }
});

test('truncated, empty, oversized, foreign and newer files are refused', () => {
  const file = encodeStateFile(state);
  refused(file.subarray(0, file.length - 1), /CRC64 validation failed/);
  refused(new Uint8Array(0), /too short to contain CRC/);
  refused(new Uint8Array(SNAPSHOT_MAX_BYTES + 1), /exceeds limit of 10000000 bytes/);
  const foreign = Buffer.from(file);
  foreign.writeBigUInt64LE(0x0710_1984_8664_0000n, 0); // Firecracker's own x86_64 magic
  foreign.writeBigUInt64LE(crc64(foreign.subarray(0, foreign.length - 8)), foreign.length - 8);
  refused(foreign, /Magic value does not match arch/);
  refused(encodeStateFile(state, { major: SNAPSHOT_VERSION.major + 1, minor: 0, patch: 0 }), /Invalid data version: 2\.0\.0/);
  refused(encodeStateFile(state, { major: SNAPSHOT_VERSION.major, minor: SNAPSHOT_VERSION.minor + 1, patch: 0 }), /Invalid data version/);
  // An older patch of the same major.minor loads.
  assert.is(decodeStateFile<typeof state>(encodeStateFile(state, { ...SNAPSHOT_VERSION, patch: 9 })).n, 7);
});

test.run();
