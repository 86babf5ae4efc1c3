/**
 * The block device actor's control path without KVM: BlockHandle starts the real device worker
 * (src/actors/virtio/block-worker.ts) over real files and eventfds; only the VM's ioeventfd and
 * irqfd registration is stubbed (no guest drives the queue here). PATCH of the backing file and
 * of the rate limiter, errors with their codes, and stop go through the control channel.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, mkdtempSync, openSync, readlinkSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockHandle } from '../../src/actors/virtio/block-handle.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { VIRTIO_BLK_CONFIG_CAPACITY } from '../../src/devices/virtio/constants.js';
import type { VmFd } from '../../src/kvm/kvm.js';
import { KindlingError } from '../../src/errors.js';
import { rejectionOf, withTimeout } from '../helpers/guest.js';

const DEADLINE_MS = 20_000;
const dir = mkdtempSync(join(tmpdir(), 'kindling-blk-actor-'));
/** The VM side a BlockHandle needs: registrations only (nothing rings the queue here). */
const vm = { registerIoeventfd() {}, registerIrqfd() {} } as unknown as VmFd;
const RAM = 64 * 1024;
const memory = new GuestMemory([{ gpa: 0, size: RAM, bytes: new Uint8Array(new SharedArrayBuffer(RAM)) }]).describe();

/** A raw image of `bytes` bytes, opened read-write. */
function image(name: string, bytes: number): { path: string; fd: number } {
  const path = join(dir, name);
  writeFileSync(path, '');
  truncateSync(path, bytes);
  return { path, fd: openSync(path, 'r+') };
}

/** What fd `fd` refers to now ('' once it is closed). */
function target(fd: number): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return '';
  }
}

const capacity = (h: BlockHandle): bigint => new DataView(h.manifest.config).getBigUint64(VIRTIO_BLK_CONFIG_CAPACITY, true);

function spawn(fileFd: number, diskSizeBytes: number): Promise<BlockHandle> {
  return withTimeout(BlockHandle.spawn({
    vm, memory, driveId: 'rootfs', fileFd, diskSizeBytes, readOnly: false, cacheType: 'Unsafe',
    rateLimiter: { bandwidth: null, ops: null }, addr: 0xd000_0000, gsi: 5,
  }), DEADLINE_MS, 'the block worker did not become ready');
}

const rejection = (p: Promise<unknown>): Promise<KindlingError> => rejectionOf<KindlingError>(p, DEADLINE_MS);

test('PATCH path_on_host: the worker takes the new file, updates the capacity and closes the old file', async () => {
  const a = image('a.img', 64 * 1024);
  const b = image('b.img', 256 * 1024);
  const h = await spawn(a.fd, 64 * 1024);
  try {
    assert.is(capacity(h), 128n);
    await withTimeout(h.updateBackingFile(b.fd, 256 * 1024), DEADLINE_MS, 'PATCH not answered');
    assert.is(capacity(h), 512n, 'the config space shows the new capacity');
    assert.is.not(target(a.fd), a.path, 'the worker closed the old backing file');
    assert.is(target(b.fd), b.path);
  } finally {
    await h.stop();
  }
  assert.is.not(target(b.fd), b.path, 'stop closed the current backing file');
});

test('a rate limiter the worker rejects fails the PATCH with RATE_LIMITER_CONFIG; the drive keeps serving', async () => {
  const a = image('c.img', 64 * 1024);
  const h = await spawn(a.fd, 64 * 1024);
  try {
    const e = await rejection(h.updateRateLimiter({ bandwidth: { size: -1, refill_time: 100 }, ops: null }));
    assert.instance(e, KindlingError);
    assert.is(e.code, 'RATE_LIMITER_CONFIG');
    assert.is(e.name, 'RateLimiterError');
    await withTimeout(h.updateRateLimiter({ bandwidth: { size: 1 << 20, refill_time: 100 }, ops: null }), DEADLINE_MS, 'valid PATCH not answered');
  } finally {
    await h.stop();
  }
});

test('stop is one stop however often it is called; calls behind it reject with ACTOR_EXITED', async () => {
  const a = image('d.img', 64 * 1024);
  const h = await spawn(a.fd, 64 * 1024);
  const raced = image('e.img', 64 * 1024);
  const first = h.stop();
  // Posted right behind stop, usually served in the same wake-up: the worker must refuse it.
  const behind = rejection(h.updateBackingFile(raced.fd, 64 * 1024));
  assert.is(h.stop(), first);
  await withTimeout(first, DEADLINE_MS, 'stop not answered');
  assert.is.not(target(a.fd), a.path);
  assert.is((await behind).code, 'ACTOR_EXITED');
  const late = image('f.img', 64 * 1024);
  assert.is((await rejection(h.updateBackingFile(late.fd, 64 * 1024))).code, 'ACTOR_EXITED');
  for (const f of [raced, late]) {
    assert.is(target(f.fd), f.path, 'a refused PATCH leaves the new file with the caller');
    closeSync(f.fd);
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
