/**
 * io_uring for the Async block engine, against the real kernel and real files (no KVM needed):
 * the uapi struct layouts, reads/writes/fsync through the ring with completions announced on
 * the eventfd, index wrap-around, and the BlockDevice driving a real file through
 * UringBlockBackend.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import koffi, { type TypeObject } from 'koffi';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as abi from '../../src/kvm/io-uring-abi.js';
import { IoUring } from '../../src/kvm/io-uring.js';
import { addressOf } from '../../src/kvm/libc.js';
import { pollReadable } from '../../src/kvm/eventfd.js';
import { must } from '../../src/memory/guest-memory.js';
import { UringBlockBackend } from '../../src/actors/virtio/uring-backend.js';
import { VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from '../../src/devices/virtio/constants.js';
import { DISK, guestBytes, pattern, request, rig, segmentedRequest, type Rig } from '../helpers/block-rig.js';

const sizes: [string, TypeObject, number][] = [
  ['io_sqring_offsets', abi.io_sqring_offsets, 40],
  ['io_cqring_offsets', abi.io_cqring_offsets, 40],
  ['io_uring_params', abi.io_uring_params, 120],
  ['io_uring_sqe', abi.io_uring_sqe, 64],
  ['io_uring_cqe', abi.io_uring_cqe, 16],
];
for (const [name, type, size] of sizes) {
  test(`sizeof(struct ${name}) = ${size}`, () => assert.is(koffi.sizeof(type), size));
}

test('io_uring offsets match linux/io_uring.h', () => {
  assert.is(koffi.offsetof(abi.io_uring_params, 'sq_off'), 40);
  assert.is(koffi.offsetof(abi.io_uring_params, 'cq_off'), 80);
  assert.equal([abi.SQE.OPCODE, abi.SQE.FD, abi.SQE.OFF, abi.SQE.ADDR, abi.SQE.LEN, abi.SQE.RW_FLAGS, abi.SQE.USER_DATA], [0, 4, 8, 16, 24, 28, 32]);
  assert.equal([abi.CQE.USER_DATA, abi.CQE.RES], [0, 8]);
});

function tmpFile(bytes: Uint8Array): { path: string; fd: number; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-uring-'));
  const path = join(dir, 'disk.img');
  writeFileSync(path, bytes);
  const fd = openSync(path, 'r+');
  return { path, fd, done: () => { closeSync(fd); rmSync(dir, { recursive: true, force: true }); } };
}

test('reads, writes and fsync go through the ring; the eventfd announces completions', () => {
  const f = tmpFile(pattern(8192, 1));
  const ring = new IoUring(4);
  try {
    assert.is(ring.entries, 4);
    const buf = new Uint8Array(new SharedArrayBuffer(4096));
    const src = pattern(512, 42);
    assert.ok(ring.prepRead(f.fd, addressOf(buf), 1024, 2048, 11));
    assert.ok(ring.prepWrite(f.fd, addressOf(src), 512, 0, 12));
    assert.ok(ring.prepFsync(f.fd, 13));
    assert.is(ring.sqFree(), 1);
    assert.is(ring.submit(), 3);
    ring.waitFor(3);
    assert.equal(pollReadable([ring.completions.fd], 1000), [ring.completions.fd]);
    const done = ring.reap().sort((a, b) => a.userData - b.userData);
    assert.equal(done, [{ userData: 11, res: 1024 }, { userData: 12, res: 512 }, { userData: 13, res: 0 }]);
    assert.equal(buf.subarray(0, 1024), pattern(8192, 1).subarray(2048, 3072));
    assert.equal(new Uint8Array(readFileSync(f.path)).subarray(0, 512), src);
    assert.equal(ring.reap(), [], 'reaped completions are gone');
  } finally {
    ring.close();
    f.done();
  }
});

test('a full submission queue refuses more; indices wrap around over many batches', () => {
  const f = tmpFile(pattern(64 * 512, 3));
  const ring = new IoUring(2);
  try {
    const buf = new Uint8Array(512);
    let total = 0;
    for (let round = 0; round < 40; round++) {
      assert.ok(ring.prepRead(f.fd, addressOf(buf), 512, (round % 64) * 512, round * 2));
      assert.ok(ring.prepRead(f.fd, addressOf(buf), 512, 0, round * 2 + 1));
      assert.not.ok(ring.prepRead(f.fd, addressOf(buf), 512, 0, 999), 'SQ full');
      ring.submit();
      ring.waitFor(2);
      const got = ring.reap();
      assert.equal(got.map((c) => c.res), [512, 512]);
      total += got.length;
    }
    assert.is(total, 80);
  } finally {
    ring.close();
    f.done();
  }
});

test('an error comes back as -errno in the completion', () => {
  const f = tmpFile(new Uint8Array(512));
  const ro = openSync(f.path, 'r');
  const ring = new IoUring(2);
  try {
    ring.prepWrite(ro, addressOf(new Uint8Array(512)), 512, 0, 1);
    ring.submit();
    ring.waitFor(1);
    assert.equal(ring.reap(), [{ userData: 1, res: -9 }], 'EBADF: the fd is read-only');
  } finally {
    ring.close();
    closeSync(ro);
    f.done();
  }
});

/** Kicks the queue and serves io_uring completions until `n` chains are used (5 s at most). */
function kickAndCollect(r: Rig, uring: UringBlockBackend, n: number): { id: number; len: number }[] {
  r.mq.kick();
  const used: { id: number; len: number }[] = [];
  const deadline = Date.now() + 5000;
  while (used.length < n && Date.now() < deadline) {
    if (pollReadable([uring.completionFd], 1000).length === 0) continue;
    uring.drainDoorbell();
    r.dev.onIoCompletion();
    used.push(...r.mq.takeUsed());
  }
  return used;
}

test('the block device moves guest data to and from a real file through io_uring', () => {
  const f = tmpFile(pattern(DISK, 5));
  let uring: UringBlockBackend | undefined;
  const r = rig({ engine: () => (uring = new UringBlockBackend(f.fd)) });
  try {
    const rd = request(r, VIRTIO_BLK_T_IN, 3n, { len: 2048, write: true });
    const wr = request(r, VIRTIO_BLK_T_OUT, 20n, { len: 1024, write: false });
    must(r.mem.write(wr.dataAddr, pattern(1024, 77)));
    const fl = request(r, VIRTIO_BLK_T_FLUSH, 0n, null);
    const used = kickAndCollect(r, uring!, 3);
    assert.equal(used.sort((a, b) => a.id - b.id), [{ id: rd.head, len: 2049 }, { id: wr.head, len: 1 }, { id: fl.head, len: 1 }].sort((a, b) => a.id - b.id));
    assert.equal([rd.status(), wr.status(), fl.status()], [VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
    assert.equal(guestBytes(r.mem, rd.dataAddr, 2048), pattern(DISK, 5).subarray(3 * 512, 3 * 512 + 2048));
    assert.equal(new Uint8Array(readFileSync(f.path)).subarray(20 * 512, 21 * 512 + 512), pattern(1024, 77));
  } finally {
    uring?.close();
    f.done();
  }
});

test('io_uring READV/WRITEV: a request of several segments reaches the file in order', () => {
  const f = tmpFile(pattern(DISK, 6));
  let uring: UringBlockBackend | undefined;
  const r = rig({ engine: () => (uring = new UringBlockBackend(f.fd)) });
  try {
    const rd = segmentedRequest(r, VIRTIO_BLK_T_IN, 2n, [100, 924, 512], true);
    const wr = segmentedRequest(r, VIRTIO_BLK_T_OUT, 30n, [512, 1024], false);
    must(r.mem.write(wr.segs[0]!.addr, pattern(512, 40)));
    must(r.mem.write(wr.segs[1]!.addr, pattern(1024, 41)));
    const used = kickAndCollect(r, uring!, 2);
    assert.equal(used.sort((a, b) => a.id - b.id), [{ id: rd.head, len: 1537 }, { id: wr.head, len: 1 }]);
    const want = pattern(DISK, 6).subarray(2 * 512, 2 * 512 + 1536);
    assert.equal(guestBytes(r.mem, rd.segs[0]!.addr, 100), want.subarray(0, 100));
    assert.equal(guestBytes(r.mem, rd.segs[1]!.addr, 924), want.subarray(100, 1024));
    assert.equal(guestBytes(r.mem, rd.segs[2]!.addr, 512), want.subarray(1024));
    const file = new Uint8Array(readFileSync(f.path));
    assert.equal(file.subarray(30 * 512, 31 * 512), pattern(512, 40));
    assert.equal(file.subarray(31 * 512, 33 * 512), pattern(1024, 41));
  } finally {
    uring?.close();
    f.done();
  }
});

test.run();
