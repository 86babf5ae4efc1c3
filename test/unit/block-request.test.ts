/**
 * virtio-blk request parsing, one defect at a time (like Firecracker's test_parse_generic): a
 * good chain is built, one field is broken, the specific error is expected, the field repaired.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arrayGuestMemory, must } from '../../src/memory/guest-memory.js';
import { Queue, type DescriptorChain } from '../../src/devices/virtio/queue.js';
import { BLOCK_REQUEST_KIND, parseBlockRequest, type BlockRequest, type BlockRequestLimits } from '../../src/devices/virtio/block/request.js';
import {
  VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_OUTHDR_SECTOR, VIRTIO_BLK_OUTHDR_SIZE, VIRTIO_BLK_OUTHDR_TYPE, VIRTIO_BLK_SECTOR_SIZE,
  VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
} from '../../src/devices/virtio/constants.js';
import { BlockRequestError } from '../../src/errors.js';
import { GuestArena, MockQueue, type MockBuffer } from '../helpers/mock-queue.js';

const RAM = 256 * 1024;
const CAPACITY = 1024n; // sectors

/** A header, data and status chain in fresh memory; `edit` breaks one thing before parsing. */
function parse(
  type: number,
  sector: bigint,
  data: Partial<MockBuffer> | null,
  edit: (mq: MockQueue, idx: number[], bufs: MockBuffer[]) => void = () => {},
  extra: MockBuffer[] = [],
  limits?: BlockRequestLimits,
): BlockRequest | BlockRequestError {
  const mem = arrayGuestMemory([{ gpa: 0, size: RAM }]);
  const mq = new MockQueue(mem, 16, 0);
  const arena = new GuestArena(mq.end, RAM);
  const hdr = arena.alloc(VIRTIO_BLK_OUTHDR_SIZE);
  must(mem.writeU32(hdr + VIRTIO_BLK_OUTHDR_TYPE, type));
  must(mem.writeU64(hdr + VIRTIO_BLK_OUTHDR_SECTOR, sector));
  const bufs: MockBuffer[] = [{ addr: hdr, len: VIRTIO_BLK_OUTHDR_SIZE }];
  if (data) {
    const len = data.len ?? VIRTIO_BLK_SECTOR_SIZE;
    bufs.push({ addr: data.addr ?? arena.alloc(Math.max(len, 1)), len, write: data.write ?? false });
  }
  bufs.push({ addr: arena.alloc(1), len: 1, write: true }, ...extra);
  const idx = mq.addChain(bufs);
  edit(mq, idx, bufs);
  const q = Queue.create(mem, mq.config, { eventIdx: false }) as Queue;
  const chain = q.pop();
  assert.ok(chain && !(chain instanceof Error), 'the queue accepts the chain');
  return parseBlockRequest(mem, chain as DescriptorChain, CAPACITY, limits);
}

function expectCode(r: BlockRequest | BlockRequestError, code: string): void {
  assert.instance(r, BlockRequestError);
  assert.is((r as BlockRequestError).code, code);
}

function expectRequest(r: BlockRequest | BlockRequestError): BlockRequest {
  assert.not.instance(r, BlockRequestError, r instanceof BlockRequestError ? r.code : '');
  return r as BlockRequest;
}

test('well-formed IN, OUT, FLUSH and GET_ID requests parse', () => {
  const rin = expectRequest(parse(VIRTIO_BLK_T_IN, 3n, { len: 1024, write: true }));
  assert.is(rin.kind, BLOCK_REQUEST_KIND.IN);
  assert.is(rin.offset, 3 * VIRTIO_BLK_SECTOR_SIZE);
  assert.is(rin.dataLen, 1024);
  assert.is(expectRequest(parse(VIRTIO_BLK_T_OUT, 0n, { len: 512 })).kind, BLOCK_REQUEST_KIND.OUT);
  assert.is(expectRequest(parse(VIRTIO_BLK_T_FLUSH, 0n, null)).kind, BLOCK_REQUEST_KIND.FLUSH);
  assert.is(expectRequest(parse(VIRTIO_BLK_T_FLUSH, 0n, { len: 512 })).kind, BLOCK_REQUEST_KIND.FLUSH, 'flush may carry data');
  assert.is(expectRequest(parse(VIRTIO_BLK_T_GET_ID, 0n, { len: VIRTIO_BLK_ID_BYTES, write: true })).kind, BLOCK_REQUEST_KIND.GET_ID);
});

test('an unknown type parses as UNSUPPORTED, with or without data', () => {
  const r = expectRequest(parse(42, 0n, { len: 512 }));
  assert.is(r.kind, BLOCK_REQUEST_KIND.UNSUPPORTED);
  assert.is(r.type, 42);
  assert.is(expectRequest(parse(42, 0n, null)).kind, BLOCK_REQUEST_KIND.UNSUPPORTED);
});

test('header: write-only → VIRTIO_BLK_REQ_HEADER_WRITE_ONLY', () => {
  expectCode(
    parse(VIRTIO_BLK_T_IN, 0n, { write: true }, (mq, idx) => mq.patchDescriptor(idx[0]!, { flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE })),
    'VIRTIO_BLK_REQ_HEADER_WRITE_ONLY',
  );
});

test('header: shorter than 16 bytes → VIRTIO_BLK_REQ_HEADER_TOO_SHORT', () => {
  expectCode(parse(VIRTIO_BLK_T_IN, 0n, { write: true }, (mq, idx) => mq.patchDescriptor(idx[0]!, { len: 15 })), 'VIRTIO_BLK_REQ_HEADER_TOO_SHORT');
});

test('chain shape: missing data or status, or extra descriptors', () => {
  expectCode(parse(VIRTIO_BLK_T_IN, 0n, null), 'VIRTIO_BLK_REQ_CHAIN_TOO_SHORT');
  expectCode(parse(VIRTIO_BLK_T_GET_ID, 0n, null), 'VIRTIO_BLK_REQ_CHAIN_TOO_SHORT');
  expectCode(parse(VIRTIO_BLK_T_FLUSH, 0n, null, (mq, idx) => mq.patchDescriptor(idx[0]!, { flags: 0 })), 'VIRTIO_BLK_REQ_CHAIN_TOO_SHORT');
  expectCode(parse(VIRTIO_BLK_T_FLUSH, 0n, { len: 512 }, () => {}, [{ addr: 0x30000, len: 1, write: true }]), 'VIRTIO_BLK_REQ_CHAIN_TOO_LONG');
  expectCode(parse(VIRTIO_BLK_T_GET_ID, 0n, { len: VIRTIO_BLK_ID_BYTES, write: true }, () => {}, [{ addr: 0x30000, len: 1, write: true }]), 'VIRTIO_BLK_REQ_CHAIN_TOO_LONG');
  // An OUT's descriptors between header and status are all data: a writable one among them is refused.
  expectCode(parse(VIRTIO_BLK_T_OUT, 0n, { len: 512 }, () => {}, [{ addr: 0x30000, len: 1, write: true }]), 'VIRTIO_BLK_REQ_DATA_WRITE_ONLY');
});

test('segments: every descriptor between header and status is data; the total must be whole sectors', () => {
  // [hdr, data 512, status-turned-data 1, extra status 1]: IN data of 513 bytes.
  expectCode(parse(VIRTIO_BLK_T_IN, 0n, { len: 512, write: true }, () => {}, [{ addr: 0x30000, len: 1, write: true }]), 'VIRTIO_BLK_REQ_DATA_LENGTH');
  const r = expectRequest(parse(VIRTIO_BLK_T_IN, 2n, { len: 256, write: true }, (mq, idx) => mq.patchDescriptor(idx[2]!, { len: 256 }), [{ addr: 0x30000, len: 1, write: true }]));
  assert.is(r.segments.length, 2);
  assert.is(r.dataLen, 512);
  assert.is(r.offset, 2 * VIRTIO_BLK_SECTOR_SIZE);
  assert.is(r.statusAddr, 0x30000);
  assert.is(r.refused, undefined);
});

test('limits: more segments than seg_max, or one longer than size_max, parse with `refused` set', () => {
  const two = (limits: BlockRequestLimits) =>
    parse(VIRTIO_BLK_T_OUT, 0n, { len: 1024 }, (mq, idx) => mq.patchDescriptor(idx[2]!, { len: 512, flags: VIRTQ_DESC_F_NEXT }), [{ addr: 0x30000, len: 1, write: true }], limits);
  assert.is(expectRequest(two({ segMax: 2, sizeMax: 1024 })).refused, undefined, 'at the limits');
  assert.is(expectRequest(two({ segMax: 1, sizeMax: 1024 })).refused?.code, 'VIRTIO_BLK_REQ_TOO_MANY_SEGMENTS');
  assert.is(expectRequest(two({ segMax: 2, sizeMax: 512 })).refused?.code, 'VIRTIO_BLK_REQ_SEGMENT_TOO_LARGE');
  // A malformed chain is still malformed whatever the limits say.
  expectCode(parse(VIRTIO_BLK_T_OUT, 0n, { len: 1000 }, () => {}, [], { segMax: 0, sizeMax: 0 }), 'VIRTIO_BLK_REQ_DATA_LENGTH');
});

test('data direction: IN and GET_ID need device-writable data, OUT device-readable', () => {
  expectCode(parse(VIRTIO_BLK_T_IN, 0n, { write: false }), 'VIRTIO_BLK_REQ_DATA_READ_ONLY');
  expectCode(parse(VIRTIO_BLK_T_GET_ID, 0n, { len: VIRTIO_BLK_ID_BYTES, write: false }), 'VIRTIO_BLK_REQ_DATA_READ_ONLY');
  expectCode(parse(VIRTIO_BLK_T_OUT, 0n, { write: true }), 'VIRTIO_BLK_REQ_DATA_WRITE_ONLY');
});

test('data length: zero, or not a multiple of 512', () => {
  expectCode(parse(VIRTIO_BLK_T_IN, 0n, { len: 0, write: true }), 'VIRTIO_BLK_REQ_DATA_EMPTY');
  expectCode(parse(VIRTIO_BLK_T_OUT, 0n, { len: 0 }), 'VIRTIO_BLK_REQ_DATA_EMPTY');
  expectCode(parse(VIRTIO_BLK_T_IN, 0n, { len: 513, write: true }), 'VIRTIO_BLK_REQ_DATA_LENGTH');
  expectCode(parse(VIRTIO_BLK_T_OUT, 0n, { len: 1000 }), 'VIRTIO_BLK_REQ_DATA_LENGTH');
});

test('sector range: the last sector must be inside the disk', () => {
  expectRequest(parse(VIRTIO_BLK_T_IN, CAPACITY - 1n, { len: 512, write: true }));
  expectCode(parse(VIRTIO_BLK_T_IN, CAPACITY, { len: 512, write: true }), 'VIRTIO_BLK_REQ_SECTOR_RANGE');
  expectCode(parse(VIRTIO_BLK_T_OUT, CAPACITY - 1n, { len: 1024 }), 'VIRTIO_BLK_REQ_SECTOR_RANGE');
  expectCode(parse(VIRTIO_BLK_T_OUT, (1n << 64n) - 1n, { len: 512 }), 'VIRTIO_BLK_REQ_SECTOR_RANGE'); // no u64 wrap-around
});

test('GET_ID needs at least 20 bytes of data', () => {
  expectCode(parse(VIRTIO_BLK_T_GET_ID, 0n, { len: VIRTIO_BLK_ID_BYTES - 1, write: true }), 'VIRTIO_BLK_REQ_ID_TOO_SHORT');
});

test('status: read-only, or zero length', () => {
  expectCode(parse(VIRTIO_BLK_T_IN, 0n, { write: true }, (mq, idx) => mq.patchDescriptor(idx[2]!, { flags: 0 })), 'VIRTIO_BLK_REQ_STATUS_READ_ONLY');
  expectCode(parse(VIRTIO_BLK_T_IN, 0n, { write: true }, (mq, idx) => mq.patchDescriptor(idx[2]!, { len: 0 })), 'VIRTIO_BLK_REQ_STATUS_TOO_SHORT');
});

test('defects are reported in order: data direction before length, length before status', () => {
  const both = (mq: MockQueue, idx: number[]) => mq.patchDescriptor(idx[2]!, { flags: 0 });
  expectCode(parse(VIRTIO_BLK_T_IN, 0n, { len: 513, write: false }, both), 'VIRTIO_BLK_REQ_DATA_READ_ONLY');
  expectCode(parse(VIRTIO_BLK_T_IN, 0n, { len: 513, write: true }, both), 'VIRTIO_BLK_REQ_DATA_LENGTH');
});

test.run();
