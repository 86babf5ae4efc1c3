/**
 * vsock packet parsing (src/devices/virtio/vsock/packet.ts), one defect per assertion, and the
 * host's CONNECT line (host-listener.ts) as Firecracker's `read_local_stream_port` reads it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VsockPacketError } from '../../src/errors.js';
import { arrayGuestMemory, must } from '../../src/memory/guest-memory.js';
import { Queue, type DescriptorChain } from '../../src/devices/virtio/queue.js';
import { VSOCK_PKT_HDR_SIZE } from '../../src/devices/virtio/vsock/constants.js';
import { decodeHeader, emptyHeader, encodeHeader, iovSlice, parseRxBuffer, parseTxPacket } from '../../src/devices/virtio/vsock/packet.js';
import { lineEnd, parseConnectLine } from '../../src/devices/virtio/vsock/host-listener.js';
import { MockQueue, type MockBuffer } from '../helpers/mock-queue.js';

const mem = arrayGuestMemory([{ gpa: 0, size: 1 << 20 }]);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Pops the chain made of `bufs` from a fresh queue. */
function chainOf(bufs: MockBuffer[]): DescriptorChain {
  const mq = new MockQueue(mem, 16, 0);
  mq.addChain(bufs);
  const q = Queue.create(mem, mq.config, { eventIdx: false }) as Queue;
  return q.pop() as DescriptorChain;
}

/** Writes a header with `len` at 0x1000 and returns it. */
function writeHeader(len: number): void {
  const h = { ...emptyHeader(), srcCid: 3, dstCid: 2, srcPort: 1, dstPort: 2, len, type: 1, op: 5 };
  const b = new Uint8Array(VSOCK_PKT_HDR_SIZE);
  encodeHeader(h, b);
  must(mem.write(0x1000, b));
}

const code = (x: unknown): string => (x instanceof VsockPacketError ? x.code : 'ok');

test('header: 44 packed little-endian bytes; u64 CIDs; round trip', () => {
  const h = { srcCid: 2 ** 40 + 3, dstCid: 2, srcPort: 0xdeadbeef, dstPort: 7, len: 9, type: 1, op: 5, flags: 3, bufAlloc: 65536, fwdCnt: 0xffffffff };
  const b = new Uint8Array(VSOCK_PKT_HDR_SIZE);
  encodeHeader(h, b);
  assert.equal([...b.subarray(0, 8)], [3, 0, 0, 0, 0, 1, 0, 0]);
  assert.equal([...b.subarray(16, 20)], [0xef, 0xbe, 0xad, 0xde]);
  assert.equal([...b.subarray(28, 32)], [1, 0, 5, 0], 'type then op, u16 each');
  assert.equal(decodeHeader(b), h);
});

test('TX parse: one defect at a time', () => {
  writeHeader(8);
  const good: MockBuffer[] = [{ addr: 0x1000, len: VSOCK_PKT_HDR_SIZE }, { addr: 0x2000, len: 8 }];
  const pkt = parseTxPacket(mem, chainOf(good), new Uint8Array(VSOCK_PKT_HDR_SIZE));
  assert.is(code(pkt), 'ok');
  assert.is((pkt as { hdr: { len: number } }).hdr.len, 8);
  const scratch = new Uint8Array(VSOCK_PKT_HDR_SIZE);
  assert.is(code(parseTxPacket(mem, chainOf([good[0]!, { ...good[1]!, write: true }]), scratch)), 'VIRTIO_VSOCK_PKT_UNREADABLE_DESC');
  assert.is(code(parseTxPacket(mem, chainOf([{ addr: 0x1000, len: 43 }]), scratch)), 'VIRTIO_VSOCK_PKT_HEADER_TOO_SHORT');
  writeHeader(64 * 1024 + 1);
  assert.is(code(parseTxPacket(mem, chainOf([good[0]!, { addr: 0x2000, len: 70_000 }]), scratch)), 'VIRTIO_VSOCK_PKT_LEN_TOO_BIG');
  writeHeader(9);
  assert.is(code(parseTxPacket(mem, chainOf(good), scratch)), 'VIRTIO_VSOCK_PKT_CHAIN_TOO_SHORT');
  // The header may span descriptors.
  writeHeader(8);
  const split = parseTxPacket(mem, chainOf([{ addr: 0x1000, len: 20 }, { addr: 0x1014, len: 24 }, { addr: 0x2000, len: 8 }]), scratch);
  assert.is(code(split), 'ok');
});

test('RX parse: writable, and at least a header; data views start after it', () => {
  assert.is(code(parseRxBuffer(mem, chainOf([{ addr: 0x3000, len: 44, write: true }, { addr: 0x4000, len: 10 }]))), 'VIRTIO_VSOCK_PKT_UNWRITABLE_DESC');
  assert.is(code(parseRxBuffer(mem, chainOf([{ addr: 0x3000, len: 43, write: true }]))), 'VIRTIO_VSOCK_PKT_HEADER_TOO_SHORT');
  const rx = parseRxBuffer(mem, chainOf([{ addr: 0x3000, len: 50, write: true }, { addr: 0x4000, len: 10, write: true }]));
  assert.is(code(rx), 'ok');
  const r = rx as Exclude<typeof rx, VsockPacketError>;
  assert.is(r.capacity, 16);
  assert.equal(r.data(100).map((v) => v.length), [6, 10]);
  assert.equal(r.data(8).map((v) => v.length), [6, 2]);
  assert.equal(iovSlice([new Uint8Array(4), new Uint8Array(4)], 3, 3).map((v) => v.length), [1, 2]);
});

test('CONNECT line: where it ends (≥ 10 bytes, first newline after that, else 32 bytes)', () => {
  assert.is(lineEnd(enc('CONNECT 5\n')), 10);
  assert.is(lineEnd(enc('CONNECT 5')), 0, 'incomplete');
  assert.is(lineEnd(enc('CONNECT 52\nhello')), 11, 'data behind the line is not part of it');
  assert.is(lineEnd(enc('\n\nCONNECT 5\n')), 12, 'a newline in the first ten bytes does not end it');
  assert.is(lineEnd(enc('x'.repeat(31))), 0);
  assert.is(lineEnd(enc('x'.repeat(40))), 32);
});

test('CONNECT line: accepted and refused forms', () => {
  const ok: [string, number][] = [
    ['CONNECT 5000\n', 5000], ['connect 0\n', 0], ['CoNnEcT 52\n', 52], ['CONNECT\t+7\n', 7], ['  CONNECT   9  extra\n', 9],
    ['\n\nCONNECT 5\n', 5], ['CONNECT 4294967295\n', 4294967295], [`CONNECT 52${' '.repeat(22)}`, 52],
  ];
  for (const [line, port] of ok) assert.is(parseConnectLine(enc(line)), port, JSON.stringify(line));
  const bad = ['CONNECT\n\n\n', 'CONNEC 5000\n', 'CONNECT -1\n', 'CONNECT 0x10\n', 'CONNECT 4294967296\n', 'CONNECT 5a\n', 'LISTEN 5000\n', 'c 5\n'];
  for (const line of bad) assert.is(parseConnectLine(enc(line)), null, JSON.stringify(line));
  assert.is(parseConnectLine(Uint8Array.from([0x43, 0x4f, 0xff, 0x20, 0x31, 0x20, 0x20, 0x20, 0x20, 0x0a])), null, 'not UTF-8');
  assert.is(parseConnectLine(enc('x'.repeat(33))), null, 'longer than a line can be');
});

test.run();
