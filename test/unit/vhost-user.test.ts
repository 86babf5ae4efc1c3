/**
 * The vhost-user frontend without a backend process: message encoding (byte layouts as
 * vhost-user.rst gives them), reply decoding and its refusals (a peer that is not a backend, a
 * wrong version, no reply flag, a reply to another request, an oversized or short payload, a
 * refused ack), and the frontend's request sequence against a scripted channel (handshake with
 * and without protocol features, the DRIVER_OK sequence with its fds, a backend that hangs up).
 * Over real sockets: a listener that answers HTTP and one that never answers.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VhostUserError } from '../../src/errors.js';
import {
  ReplyFramer, VHOST_USER_F_PROTOCOL_FEATURES, VHOST_USER_HEADER_SIZE, VHOST_USER_MAX_MEM_REGIONS, VHOST_USER_MAX_REPLY_PAYLOAD,
  VHOST_USER_NEED_REPLY_MASK, VHOST_USER_PROTOCOL_F_REPLY_ACK, VHOST_USER_REPLY_MASK, VHOST_USER_REQUEST, VHOST_USER_VERSION,
  bit64, checkAck, decodeU64, decodeVringState, encodeRequest, memTablePayload, u64Payload, vringAddrPayload, vringFdPayload, vringStatePayload,
} from '../../src/devices/virtio/fs/vhost-user.js';
import { VhostUserFrontend, type VhostUserChannel } from '../../src/devices/virtio/fs/frontend.js';
import { VhostUserSocket } from '../../src/kvm/vhost-user-socket.js';
import { VIRTIO_F_VERSION_1, featureBit } from '../../src/devices/virtio/constants.js';

const R = VHOST_USER_REQUEST;
const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** A reply as a backend writes it: header with version 1 and the reply flag, then the payload. */
function reply(request: number, payload: Uint8Array, flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, size = payload.length): Uint8Array {
  const out = new Uint8Array(VHOST_USER_HEADER_SIZE + payload.length);
  dv(out).setUint32(0, request, true);
  dv(out).setUint32(4, flags, true);
  dv(out).setUint32(8, size, true);
  out.set(payload, VHOST_USER_HEADER_SIZE);
  return out;
}

function throwsCode(f: () => unknown, code: string, text: RegExp): void {
  try {
    f();
  } catch (e) {
    assert.instance(e, VhostUserError);
    assert.is((e as VhostUserError).code, code);
    assert.match((e as Error).message, text);
    return;
  }
  assert.unreachable('no error thrown');
}

test('request header: request, version 1 flags (+ NEED_REPLY), payload size, little-endian', () => {
  const m = encodeRequest(R.SET_FEATURES, u64Payload(0x1_0000_0002n), true);
  assert.is(m.length, VHOST_USER_HEADER_SIZE + 8);
  assert.is(dv(m).getUint32(0, true), 2);
  assert.is(dv(m).getUint32(4, true), VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK);
  assert.is(dv(m).getUint32(8, true), 8);
  assert.is(dv(m).getBigUint64(12, true), 0x1_0000_0002n);
  const owner = encodeRequest(R.SET_OWNER);
  assert.equal([...owner], [3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
});

test('payloads: vring state, vring address (desc, used, avail, log order), kick/call index, memory table', () => {
  assert.equal([...vringStatePayload(1, 256)], [1, 0, 0, 0, 0, 1, 0, 0]);
  const a = vringAddrPayload({ index: 1, desc: 0x1000n, used: 0x3000n, avail: 0x2000n });
  assert.is(a.length, 40);
  assert.is(dv(a).getUint32(0, true), 1);
  assert.is(dv(a).getUint32(4, true), 0);
  assert.is(dv(a).getBigUint64(8, true), 0x1000n);
  assert.is(dv(a).getBigUint64(16, true), 0x3000n);
  assert.is(dv(a).getBigUint64(24, true), 0x2000n);
  assert.is(dv(a).getBigUint64(32, true), 0n);
  assert.is(dv(vringFdPayload(3)).getBigUint64(0, true), 3n);
  const t = memTablePayload([
    { guestAddr: 0n, size: 0xc000_0000n, userAddr: 0x7f00_0000_0000n, mmapOffset: 0n },
    { guestAddr: 0x1_0000_0000n, size: 0x4000_0000n, userAddr: 0x7f10_0000_0000n, mmapOffset: 0xc000_0000n },
  ]);
  assert.is(t.length, 8 + 2 * 32);
  assert.is(dv(t).getUint32(0, true), 2);
  assert.is(dv(t).getBigUint64(8 + 32, true), 0x1_0000_0000n);
  assert.is(dv(t).getBigUint64(8 + 32 + 16, true), 0x7f10_0000_0000n);
  assert.is(dv(t).getBigUint64(8 + 32 + 24, true), 0xc000_0000n);
  throwsCode(() => memTablePayload([]), 'VHOST_USER_BACKEND', /1\.\.8 regions/);
  const many = Array.from({ length: VHOST_USER_MAX_MEM_REGIONS + 1 }, () => ({ guestAddr: 0n, size: 1n, userAddr: 0n, mmapOffset: 0n }));
  throwsCode(() => memTablePayload(many), 'VHOST_USER_BACKEND', /not 9/);
});

test('framer: a reply split across chunks, and two replies in one chunk', () => {
  const f = new ReplyFramer();
  const whole = reply(R.GET_FEATURES, u64Payload(0xabn));
  f.push(whole.subarray(0, 5));
  assert.is(f.take(R.GET_FEATURES), null);
  f.push(whole.subarray(5, 14));
  assert.is(f.take(R.GET_FEATURES), null, 'payload incomplete');
  f.push(whole.subarray(14));
  assert.is(decodeU64(f.take(R.GET_FEATURES)!, R.GET_FEATURES), 0xabn);
  const two = new Uint8Array([...reply(R.SET_MEM_TABLE, u64Payload(0n)), ...reply(R.SET_VRING_NUM, u64Payload(0n))]);
  f.push(two);
  assert.ok(f.take(R.SET_MEM_TABLE));
  assert.ok(f.take(R.SET_VRING_NUM));
  assert.is(f.pending, 0);
});

test('framer refuses malformed replies before trusting their size', () => {
  const take = (bytes: Uint8Array, req: number = R.GET_FEATURES) => () => { const f = new ReplyFramer(); f.push(bytes); return f.take(req); };
  // A peer speaking HTTP: "HTTP" read as request 0x50545448, flags "/1.1" → version bits wrong.
  throwsCode(take(new TextEncoder().encode('HTTP/1.1 400 Bad Request\r\n\r\n')), 'VHOST_USER_PROTOCOL', /version .*vhost-user socket/);
  throwsCode(take(reply(R.GET_FEATURES, u64Payload(1n), 0x2 | VHOST_USER_REPLY_MASK)), 'VHOST_USER_PROTOCOL', /version 2/);
  throwsCode(take(reply(R.GET_FEATURES, u64Payload(1n), VHOST_USER_VERSION)), 'VHOST_USER_PROTOCOL', /reply flag is not set/);
  throwsCode(take(reply(R.GET_PROTOCOL_FEATURES, u64Payload(1n))), 'VHOST_USER_PROTOCOL', /answered VHOST_USER_GET_PROTOCOL_FEATURES/);
  throwsCode(take(reply(R.GET_FEATURES, new Uint8Array(0), undefined, 0xffff_fff0)), 'VHOST_USER_PROTOCOL', /larger than 4096/);
  // A size within the bound but a payload that is not a u64.
  throwsCode(() => decodeU64(new Uint8Array(4), R.GET_FEATURES), 'VHOST_USER_PROTOCOL', /4-byte payload, expected 8/);
  throwsCode(() => decodeVringState(new Uint8Array(12), R.GET_VRING_BASE), 'VHOST_USER_PROTOCOL', /12-byte payload/);
  throwsCode(() => checkAck(u64Payload(1n), R.SET_MEM_TABLE), 'VHOST_USER_PROTOCOL', /refused VHOST_USER_SET_MEM_TABLE \(status 1\)/);
  assert.equal(decodeVringState(vringStatePayload(1, 7), R.GET_VRING_BASE), { index: 1, num: 7 });
  assert.ok(VHOST_USER_MAX_REPLY_PAYLOAD >= 8);
});

/**
 * A backend scripted in-process: records each message and its fds, answers GET_* from
 * `answers`, acks NEED_REPLY messages with `ack(request)`, or hangs up after `hangUpAfter` messages.
 */
function scripted(o: { features: bigint; protocol?: bigint; ack?: (req: number) => bigint; hangUpAfter?: number }) {
  const sent: { request: number; flags: number; payload: Uint8Array; fds: number[] }[] = [];
  const out: Uint8Array[] = [];
  const channel: VhostUserChannel = {
    send(m, fds) {
      const request = dv(m).getUint32(0, true);
      const flags = dv(m).getUint32(4, true);
      sent.push({ request, flags, payload: m.slice(VHOST_USER_HEADER_SIZE), fds: [...fds] });
      if (o.hangUpAfter !== undefined && sent.length >= o.hangUpAfter) return;
      if (request === R.GET_FEATURES) out.push(reply(request, u64Payload(o.features)));
      if (request === R.GET_PROTOCOL_FEATURES) out.push(reply(request, u64Payload(o.protocol ?? 0n)));
      if (flags & VHOST_USER_NEED_REPLY_MASK) out.push(reply(request, u64Payload(o.ack?.(request) ?? 0n)));
    },
    recv() {
      return out.shift() ?? new Uint8Array(0);
    },
  };
  return { channel, sent };
}

const V1 = featureBit(VIRTIO_F_VERSION_1);
const PF = bit64(VHOST_USER_F_PROTOCOL_FEATURES);
const ACK = bit64(VHOST_USER_PROTOCOL_F_REPLY_ACK);
const REGION = { guestAddr: 0n, size: 0x800_0000n, userAddr: 0x7f00_0000_0000n, mmapOffset: 0n };
const vring = (index: number) => ({ index, size: 128, desc: 0x7f00_0000_1000n, avail: 0x7f00_0000_2000n, used: 0x7f00_0000_3000n, kickFd: 40 + index, callFd: 50 + index });

test('handshake with protocol features: takes REPLY_ACK only, then DRIVER_OK acks every SET_* and enables rings', () => {
  const s = scripted({ features: V1 | PF, protocol: ACK | bit64(0) | bit64(5) });
  const f = new VhostUserFrontend(s.channel, 100);
  assert.equal(f.handshake(), { features: V1 | PF, protocolFeatures: ACK });
  assert.equal(s.sent.map((m) => m.request), [R.SET_OWNER, R.GET_FEATURES, R.GET_PROTOCOL_FEATURES, R.SET_PROTOCOL_FEATURES]);
  assert.is(decodeU64(s.sent[3]!.payload, 0), ACK);
  s.sent.length = 0;
  f.start(V1, [REGION], [7], [vring(0), vring(1)]);
  const perRing = [R.SET_VRING_NUM, R.SET_VRING_ADDR, R.SET_VRING_BASE, R.SET_VRING_CALL, R.SET_VRING_KICK, R.SET_VRING_ENABLE];
  assert.equal(s.sent.map((m) => m.request), [R.SET_FEATURES, R.SET_MEM_TABLE, ...perRing, ...perRing]);
  assert.ok(s.sent.every((m) => m.flags & VHOST_USER_NEED_REPLY_MASK), 'every SET_* asks for an ack');
  assert.is(decodeU64(s.sent[0]!.payload, 0), V1 | PF, 'SET_FEATURES carries the protocol-features bit');
  assert.equal(s.sent[1]!.fds, [7], 'the memfd travels with SET_MEM_TABLE');
  const kick1 = s.sent.filter((m) => m.request === R.SET_VRING_KICK)[1]!;
  assert.equal(kick1.fds, [41]);
  assert.is(decodeU64(kick1.payload, 0), 1n);
  assert.equal(s.sent.filter((m) => m.request === R.SET_VRING_CALL).map((m) => m.fds[0]), [50, 51]);
  assert.equal(decodeVringState(s.sent.find((m) => m.request === R.SET_VRING_BASE)!.payload, 0), { index: 0, num: 0 });
  assert.equal(decodeVringState(s.sent.find((m) => m.request === R.SET_VRING_ENABLE)!.payload, 0), { index: 0, num: 1 });
});

test('a backend without protocol features: no GET_PROTOCOL_FEATURES, no acks, no SET_VRING_ENABLE', () => {
  const s = scripted({ features: V1 });
  const f = new VhostUserFrontend(s.channel, 100);
  assert.equal(f.handshake(), { features: V1, protocolFeatures: 0n });
  assert.equal(s.sent.map((m) => m.request), [R.SET_OWNER, R.GET_FEATURES]);
  s.sent.length = 0;
  f.start(V1, [REGION], [7], [vring(0)]);
  assert.equal(s.sent.map((m) => m.request), [R.SET_FEATURES, R.SET_MEM_TABLE, R.SET_VRING_NUM, R.SET_VRING_ADDR, R.SET_VRING_BASE, R.SET_VRING_CALL, R.SET_VRING_KICK]);
  assert.ok(s.sent.every((m) => !(m.flags & VHOST_USER_NEED_REPLY_MASK)));
});

test('a refused SET_MEM_TABLE and a backend that hangs up are errors naming the request', () => {
  const refusing = scripted({ features: V1 | PF, protocol: ACK, ack: (r) => (r === R.SET_MEM_TABLE ? 1n : 0n) });
  const f = new VhostUserFrontend(refusing.channel, 100);
  f.handshake();
  throwsCode(() => f.start(V1, [REGION], [7], [vring(0)]), 'VHOST_USER_PROTOCOL', /refused VHOST_USER_SET_MEM_TABLE/);
  const quitting = scripted({ features: V1, hangUpAfter: 2 });
  throwsCode(() => new VhostUserFrontend(quitting.channel, 100).handshake(), 'VHOST_USER_BACKEND', /closed the connection before replying to VHOST_USER_GET_FEATURES/);
  throwsCode(() => new VhostUserFrontend(scripted({ features: V1 }).channel, 100).start(V1, [REGION], [7], []), 'VHOST_USER_BACKEND', /before the handshake/);
});

test('real sockets: a server that is not vhost-user, one that never answers, and no server at all', async () => {
  // The handshake blocks this thread in poll(), so each peer runs in a child process.
  const peer = (script: string, path: string) => spawn(process.execPath, ['-e', `require('net').createServer(${script}).listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const dir = mkdtempSync(join(tmpdir(), 'kindling-vu-'));
  const started = async (p: ReturnType<typeof peer>) => new Promise<void>((r) => p.stdout!.once('data', () => r()));
  const http = peer(`(c) => c.on('data', () => c.write('HTTP/1.1 400 Bad Request\\r\\n\\r\\n'))`, join(dir, 'http.sock'));
  const silent = peer(`(c) => {}`, join(dir, 'silent.sock'));
  try {
    await Promise.all([started(http), started(silent)]);
    const a = VhostUserSocket.connect(join(dir, 'http.sock'));
    throwsCode(() => new VhostUserFrontend(a, 2000).handshake(), 'VHOST_USER_PROTOCOL', /is this a vhost-user socket/);
    a.close();
    const b = VhostUserSocket.connect(join(dir, 'silent.sock'));
    throwsCode(() => new VhostUserFrontend(b, 200).handshake(), 'VHOST_USER_BACKEND', /did not answer within 200 ms/);
    b.close();
    throwsCode(() => VhostUserSocket.connect(join(dir, 'nobody.sock')), 'VHOST_USER_BACKEND', /cannot connect to the vhost-user socket .*ENOENT/);
  } finally {
    http.kill();
    silent.kill();
  }
});

test.run();
