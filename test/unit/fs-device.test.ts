/**
 * The virtio-fs device model and its configuration, without KVM: the description a transport
 * shows (device id, config space tag + num_request_queues, features filtered to what Kindling
 * can serve itself), the EIO fallback after the backend died (continues from the backend's
 * used.idx, answers with fuse_out_header {16, -EIO, unique}, FORGET chains without a reply
 * buffer, hostile chains), PUT /fs validation, and — with Debian's virtiofsd, a real process —
 * the handshake against the backend Kindling starts and the errors when it cannot start.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_RING_INDIRECT_DESC, VIRTIO_F_VERSION_1, VIRTIO_ID_FS, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, featureBit,
} from '../../src/devices/virtio/constants.js';
import { MmioTransport } from '../../src/devices/virtio/mmio.js';
import { MmioInterrupt, MmioState } from '../../src/devices/virtio/mmio-state.js';
import {
  EIO, FUSE_IN_HEADER_SIZE, FUSE_OUT_HEADER_SIZE, FsDevice, VIRTIO_FS_CONFIG_SIZE, VIRTIO_FS_NUM_QUEUES, fsConfigBytes, fsDescription,
} from '../../src/devices/virtio/fs/device.js';
import { VhostUserFrontend } from '../../src/devices/virtio/fs/frontend.js';
import { VHOST_USER_F_PROTOCOL_FEATURES, VHOST_USER_PROTOCOL_F_REPLY_ACK, bit64 } from '../../src/devices/virtio/fs/vhost-user.js';
import { startVirtiofsd, findVirtiofsd } from '../../src/actors/virtio/virtiofsd.js';
import { FS_ERRORS, insertFs, parseFs, type FsDeviceConfig } from '../../src/config/fs.js';
import { ConfigError } from '../../src/config/errors.js';
import { VhostUserError } from '../../src/errors.js';
import { arrayGuestMemory, must } from '../../src/memory/guest-memory.js';
import { fsRates } from '../../bench/scenarios/fs.js';
import { GuestArena, MockQueue, mmioDeviceFeatures, mmioDriverInit, mmioDriverOk, mmioRead32 } from '../helpers/mock-queue.js';

const RAM = 1 << 20;
const V1 = featureBit(VIRTIO_F_VERSION_1);

test('description: id 26, tag and one request queue in config, two queues, features VERSION_1 + what Kindling can serve', () => {
  const backend = V1 | featureBit(VIRTIO_F_RING_EVENT_IDX) | featureBit(VIRTIO_F_RING_INDIRECT_DESC) | bit64(VHOST_USER_F_PROTOCOL_FEATURES) | bit64(27);
  const d = fsDescription('work', backend);
  assert.is(d.deviceId, VIRTIO_ID_FS);
  assert.is(d.features, V1 | featureBit(VIRTIO_F_RING_EVENT_IDX), 'INDIRECT_DESC (the after-death fallback is built without it), vhost-user and unknown bits are not offered');
  assert.is(d.queueMaxSizes.length, VIRTIO_FS_NUM_QUEUES);
  const cfg = new Uint8Array(VIRTIO_FS_CONFIG_SIZE);
  d.config.read(0, cfg);
  assert.equal([...cfg.subarray(0, 5)], [...new TextEncoder().encode('work'), 0]);
  assert.is(new DataView(cfg.buffer).getUint32(36, true), 1);
  const full = fsConfigBytes('x'.repeat(36));
  assert.is(full[35], 'x'.charCodeAt(0), 'a 36-byte tag fills the field without a NUL');
  d.config.write(0, new Uint8Array([0x41]));
  d.config.read(0, cfg);
  assert.is(cfg[0], 'w'.charCodeAt(0), 'driver writes to the config are dropped');
});

/** A transport + device over array memory, driven to DRIVER_OK with two queues of 16. */
function rig(backendFeatures = V1) {
  const mem = arrayGuestMemory([{ gpa: 0, size: RAM }]);
  const dev = new FsDevice('work', backendFeatures);
  const state = MmioState.create(VIRTIO_FS_NUM_QUEUES);
  const irqs: number[] = [];
  const interrupt = new MmioInterrupt(state, (bit) => irqs.push(bit));
  const transport = new MmioTransport(state, dev.description, {
    onActivate: (a) => { dev.activate(mem, interrupt, a); },
    onNotify: (q) => dev.onQueueNotify(q),
    interrupt: (bit) => irqs.push(bit),
    onReset: () => dev.reset(),
  }, mem);
  const hiprio = new MockQueue(mem, 16, 0);
  const req = new MockQueue(mem, 16, Math.ceil(hiprio.end / 4096) * 4096);
  const arena = new GuestArena(req.end, RAM);
  mmioDriverInit(transport, mmioDeviceFeatures(transport), [hiprio, req]);
  mmioDriverOk(transport);
  return { mem, dev, transport, hiprio, req, arena, irqs, state };
}

/** Posts a FUSE request (a 40-byte in header with `unique`, then a `outLen`-byte reply buffer); returns the reply address. */
function fuseRequest(r: ReturnType<typeof rig>, q: MockQueue, unique: bigint, outLen = 64): number {
  const inAddr = r.arena.alloc(FUSE_IN_HEADER_SIZE);
  const hdr = new Uint8Array(FUSE_IN_HEADER_SIZE);
  new DataView(hdr.buffer).setUint32(0, FUSE_IN_HEADER_SIZE, true);
  new DataView(hdr.buffer).setBigUint64(8, unique, true);
  must(r.mem.slice(inAddr, FUSE_IN_HEADER_SIZE)).set(hdr);
  const outAddr = r.arena.alloc(Math.max(outLen, 1));
  q.addChain(outLen > 0 ? [{ addr: inAddr, len: FUSE_IN_HEADER_SIZE }, { addr: outAddr, len: outLen, write: true }] : [{ addr: inAddr, len: FUSE_IN_HEADER_SIZE }]);
  return outAddr;
}

function outHeader(r: ReturnType<typeof rig>, addr: number): { len: number; error: number; unique: bigint } {
  const v = new DataView(must(r.mem.slice(addr, FUSE_OUT_HEADER_SIZE)).slice().buffer);
  return { len: v.getUint32(0, true), error: v.getInt32(4, true), unique: v.getBigUint64(8, true) };
}

test('transport: device id 26 and the tag at the config offset', () => {
  const r = rig();
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_FS);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG) & 0xff, 'w'.charCodeAt(0));
  assert.ok(r.dev.isActive);
});

test('before takeOver the device leaves the rings to the backend', () => {
  const r = rig();
  fuseRequest(r, r.req, 1n);
  r.dev.onQueueNotify(1);
  assert.is(r.req.usedIdx(), 0);
  assert.not.ok(r.dev.tookOver);
});

test('after the backend died: the backend\'s completions stand, everything pending and later gets EIO', () => {
  const r = rig();
  // The backend completed the first request (used.idx 1) and had popped the second.
  const first = fuseRequest(r, r.req, 11n);
  const second = fuseRequest(r, r.req, 12n);
  const usedIdxAddr = r.req.config.usedRing + 2;
  must(r.mem.slice(r.req.config.usedRing + 4, 8)).set([0, 0, 0, 0, 16, 0, 0, 0]); // used[0] = {id 0, len 16}
  must(r.mem.slice(usedIdxAddr, 2)).set([1, 0]);
  fuseRequest(r, r.hiprio, 13n, 0); // FORGET: no reply buffer
  r.irqs.length = 0;
  assert.ok(r.dev.takeOver());
  assert.is(r.req.usedIdx(), 2, 'only the request the backend left is answered');
  assert.equal(outHeader(r, second), { len: FUSE_OUT_HEADER_SIZE, error: -EIO, unique: 12n });
  assert.is(outHeader(r, first).len, 0, 'the completed request is not touched again');
  assert.equal(r.req.usedEntry(1), { id: 2, len: FUSE_OUT_HEADER_SIZE });
  assert.is(r.hiprio.usedIdx(), 1);
  assert.equal(r.hiprio.usedEntry(0).len, 0);
  assert.ok(r.irqs.length > 0, 'the guest is interrupted');
  const later = fuseRequest(r, r.req, 99n);
  r.dev.onQueueNotify(1);
  assert.equal(outHeader(r, later), { len: FUSE_OUT_HEADER_SIZE, error: -EIO, unique: 99n });
  assert.is(r.dev.counts.eioReplies, 2);
});

test('after takeOver with EVENT_IDX the device moves avail_event on, so the driver keeps kicking', () => {
  const r = rig(V1 | featureBit(VIRTIO_F_RING_EVENT_IDX));
  r.dev.takeOver();
  for (let i = 0; i < 3; i++) {
    fuseRequest(r, r.req, BigInt(i));
    r.dev.onQueueNotify(1);
    assert.is(r.req.usedIdx(), i + 1);
    assert.is(r.req.availEvent(), r.req.availIdx(), 'avail_event asks for the next chain');
  }
});

test('hostile chains after takeOver: a reply buffer too short, a header shorter than fuse_in_header, a chain out of RAM', () => {
  const r = rig();
  r.dev.takeOver();
  const short = fuseRequest(r, r.req, 5n, 8);
  r.dev.onQueueNotify(1);
  assert.is(r.req.usedEntry(0).len, 8, 'the 8 bytes that fit are written');
  assert.is(outHeader(r, short).len, FUSE_OUT_HEADER_SIZE);
  const tinyIn = r.arena.alloc(4);
  const out = r.arena.alloc(32);
  r.req.addChain([{ addr: tinyIn, len: 4 }, { addr: out, len: 32, write: true }]);
  r.dev.onQueueNotify(1);
  assert.equal(outHeader(r, out), { len: FUSE_OUT_HEADER_SIZE, error: -EIO, unique: 0n });
  r.req.addChain([{ addr: RAM - 8, len: 64 }, { addr: out, len: 32, write: true }]);
  r.dev.onQueueNotify(1);
  assert.is(r.req.usedIdx(), 3, 'the bad chain is still used (length 0)');
  assert.is(r.req.usedEntry(2).len, 0);
  assert.ok(r.dev.counts.badChains >= 2);
});

const cfg = (o: Partial<FsDeviceConfig>): FsDeviceConfig => ({ id: 'a', tag: 'a', socket: '/tmp/x.sock', shared_dir: null, ...o });
function configError(f: () => unknown, text: string): void {
  try {
    f();
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.is((e as ConfigError).faultMessage, `Fs config error: ${text}`);
    return;
  }
  assert.unreachable('accepted');
}

test('PUT /fs: tag length and uniqueness, one backend, shared_dir must be a directory, same id replaces', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-fs-'));
  writeFileSync(join(dir, 'file'), 'x');
  const list: FsDeviceConfig[] = [];
  configError(() => insertFs(list, cfg({ tag: '' })), FS_ERRORS.TagLength(''));
  configError(() => insertFs(list, cfg({ tag: 'é'.repeat(19) })), FS_ERRORS.TagLength('é'.repeat(19)));
  configError(() => insertFs(list, cfg({ socket: null })), FS_ERRORS.OneBackend);
  configError(() => insertFs(list, cfg({ shared_dir: dir })), FS_ERRORS.OneBackend);
  configError(() => insertFs(list, cfg({ socket: null, shared_dir: join(dir, 'missing') })), FS_ERRORS.SharedDir(join(dir, 'missing'), 'no such directory'));
  configError(() => insertFs(list, cfg({ socket: null, shared_dir: join(dir, 'file') })), FS_ERRORS.SharedDir(join(dir, 'file'), 'not a directory'));
  insertFs(list, cfg({ tag: 'x'.repeat(36) }));
  insertFs(list, cfg({ id: 'b', tag: 'b', socket: null, shared_dir: dir }));
  configError(() => insertFs(list, cfg({ id: 'c', tag: 'b' })), FS_ERRORS.TagInUse('b', 'b'));
  insertFs(list, cfg({ id: 'b', tag: 'b2' }));
  assert.equal(list.map((f) => [f.id, f.tag, f.socket]), [['a', 'x'.repeat(36), '/tmp/x.sock'], ['b', 'b2', '/tmp/x.sock']]);
  assert.equal(parseFs('{"id":"w","tag":"w","shared_dir":"/srv"}'), { id: 'w', tag: 'w', socket: null, shared_dir: '/srv' });
  assert.throws(() => parseFs('{"id":"w","tag":"w","socket":"/s","cache":"auto"}'), /unknown field `cache`/);
});

test('virtiofsd (Debian): Kindling starts it, the handshake offers VERSION_1 and negotiates REPLY_ACK', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-fs-'));
  const b = await startVirtiofsd(dir, 'fs t');
  try {
    const n = new VhostUserFrontend(b.socket, 5000).handshake();
    assert.ok(n.features & V1, 'VIRTIO_F_VERSION_1');
    assert.ok(n.features & bit64(VHOST_USER_F_PROTOCOL_FEATURES));
    assert.is(n.protocolFeatures, bit64(VHOST_USER_PROTOCOL_F_REPLY_ACK));
  } finally {
    b.socket.close();
    b.dispose();
  }
});

test('virtiofsd missing, or ending before it listens, is a VHOST_USER_BACKEND error naming why', async () => {
  const saved = process.env.KINDLING_VIRTIOFSD;
  try {
    process.env.KINDLING_VIRTIOFSD = '/nonexistent/virtiofsd';
    assert.throws(() => findVirtiofsd(), /virtiofsd not found \(looked for \/nonexistent\/virtiofsd\)/);
    await startVirtiofsd('/tmp', 'fs t').then(() => assert.unreachable('started'), (e: Error) => assert.instance(e, VhostUserError));
    process.env.KINDLING_VIRTIOFSD = '/bin/false';
    await startVirtiofsd('/tmp', 'fs t').then(
      () => assert.unreachable('started'),
      (e: Error) => assert.match(e.message, /fs t: false \(\/bin\/false\) ended before listening \(exit code 1\)/),
    );
  } finally {
    if (saved === undefined) delete process.env.KINDLING_VIRTIOFSD;
    else process.env.KINDLING_VIRTIOFSD = saved;
  }
});

test('bench fs: rates from the BENCH_FS line (64 MiB per step), none without it', () => {
  const r = fsRates('x\nBENCH_FS 10.00 12.00 13.00 20.00 24.00 28.00\n')!;
  assert.equal(r, { fs: { write: 32, read: 64 }, blk: { write: 16, read: 16 } });
  assert.is(fsRates('BENCH_FS 1 2'), undefined);
});

test.run();
