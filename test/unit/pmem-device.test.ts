/**
 * virtio-pmem (docs/design.md "Persistent memory"): the pure model driven through an
 * MmioTransport by a driver-side MockQueue with an injected flush and a fake clock for the rate
 * limiter; then the real mapping of a backing file (src/memory/pmem-mapping.ts): a store
 * through the mapping reaches the file after flushPmem, the 2 MiB tail past a short file reads
 * as zeros, a read-only mapping and an empty or missing file.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VIRTIO_F_VERSION_1, VIRTIO_ID_PMEM, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, featureBit } from '../../src/devices/virtio/constants.js';
import { MmioTransport } from '../../src/devices/virtio/mmio.js';
import { MmioInterrupt, MmioState } from '../../src/devices/virtio/mmio-state.js';
import {
  PMEM_NUM_QUEUES, PMEM_QUEUE, PMEM_REQ_SIZE, PMEM_RESP_SIZE, PMEM_STATUS_FAILURE, PMEM_STATUS_OK, PmemDevice, VIRTIO_PMEM_REQ_TYPE_FLUSH,
} from '../../src/devices/virtio/pmem/device.js';
import { PMEM_METRIC_COUNTERS, PmemMetrics } from '../../src/devices/virtio/pmem/metrics.js';
import { RateLimiter, type RateLimiterConfig } from '../../src/devices/rate-limiter/rate-limiter.js';
import { DEVICE_GROUPS } from '../../src/metrics/groups.js';
import { arrayGuestMemory, must } from '../../src/memory/guest-memory.js';
import { PMEM_MAPPING_ALIGNMENT, flushPmem, mapPmemFile, unmapPmem } from '../../src/memory/pmem-mapping.js';
import { viewOf } from '../../src/kvm/libc.js';
import { PmemError } from '../../src/errors.js';
import { GuestArena, MockQueue, mmioDeviceFeatures, mmioDriverInit, mmioDriverOk, mmioNotify, mmioRead32, mmioWrite32 } from '../helpers/mock-queue.js';

const RAM = 1 << 20;
const START = 0x80_0000_0000; // 512 GiB
const SIZE = 4 * 1024 * 1024;
const FILE_LEN = 3 * 1024 * 1024;
const MS = 1_000_000n;

function rig(o: { limits?: RateLimiterConfig; flushOk?: boolean } = {}) {
  const mem = arrayGuestMemory([{ gpa: 0, size: RAM }]);
  const clock = { t: 0n };
  const metrics = new PmemMetrics();
  const flushes = { n: 0 };
  const dev = new PmemDevice({
    start: START, size: SIZE, fileLen: FILE_LEN, metrics, rateLimiter: new RateLimiter(o.limits ?? {}, () => clock.t),
    flush: () => { flushes.n++; return o.flushOk ?? true; },
  });
  const state = MmioState.create(PMEM_NUM_QUEUES);
  const irqs: number[] = [];
  const transport = new MmioTransport(state, dev.description, {
    onActivate: (a) => { dev.activate(mem, new MmioInterrupt(state, (bit) => irqs.push(bit)), a); },
    onNotify: (q) => dev.onQueueNotify(q),
    interrupt: (bit) => irqs.push(bit),
    onReset: () => dev.reset(),
  }, mem);
  const q = new MockQueue(mem, 64, 0);
  q.notify = () => mmioNotify(transport, PMEM_QUEUE);
  const arena = new GuestArena(q.end, RAM);
  mmioDriverInit(transport, mmioDeviceFeatures(transport), [q]);
  mmioDriverOk(transport);
  return { mem, dev, metrics, transport, q, arena, irqs, clock, flushes };
}
type Rig = ReturnType<typeof rig>;

/** Posts a FLUSH chain (optionally broken by `patch`); returns the status address. */
function post(r: Rig, patch: { type?: number; reqLen?: number; statusLen?: number; headWritable?: boolean; statusWritable?: boolean; noStatus?: boolean } = {}): number {
  const req = r.arena.alloc(8);
  const status = r.arena.alloc(8);
  must(r.mem.writeU32(req, patch.type ?? VIRTIO_PMEM_REQ_TYPE_FLUSH));
  must(r.mem.writeU32(status, 0x5a5a5a5a));
  const chain = [{ addr: req, len: patch.reqLen ?? PMEM_REQ_SIZE, write: patch.headWritable ?? false }];
  if (!patch.noStatus) chain.push({ addr: status, len: patch.statusLen ?? PMEM_RESP_SIZE, write: patch.statusWritable ?? true });
  r.q.addChain(chain);
  return status;
}

const statusAt = (r: Rig, a: number): number => must(r.mem.readU32(a)) | 0;

test('description: device id 27, VERSION_1 only, config start and size as le64', () => {
  const r = rig();
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_PMEM);
  assert.is(mmioDeviceFeatures(r.transport), featureBit(VIRTIO_F_VERSION_1));
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG) + mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + 4) * 2 ** 32, START);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + 8), SIZE);
  mmioWrite32(r.transport, VIRTIO_MMIO_CONFIG, 1);
  assert.is(r.metrics.count('cfg_fails'), 1, 'the config is read-only');
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + 8), SIZE);
});

test('FLUSH: one flush serves every request of a notification, status 0, used with 4 bytes', () => {
  const r = rig();
  const s = [post(r), post(r), post(r)];
  r.q.kick();
  assert.is(r.flushes.n, 1);
  assert.equal(r.q.takeUsed().map((u) => u.len), [PMEM_RESP_SIZE, PMEM_RESP_SIZE, PMEM_RESP_SIZE]);
  for (const a of s) assert.is(statusAt(r, a), PMEM_STATUS_OK);
  assert.ok(r.irqs.length > 0);
  post(r);
  r.q.kick();
  assert.is(r.flushes.n, 2, 'the next notification flushes again');
  assert.is(r.metrics.count('queue_event_count'), 2);
});

test('a failed msync answers -1', () => {
  const r = rig({ flushOk: false });
  const a = post(r);
  r.q.kick();
  assert.is(statusAt(r, a), PMEM_STATUS_FAILURE);
});

test('chains that break §5.19.6 are used with 0, counted, never flushed for; good ones still are', () => {
  const r = rig();
  const bad = [
    post(r, { type: 1 }), post(r, { reqLen: 8 }), post(r, { statusLen: 8 }), post(r, { headWritable: true }),
    post(r, { statusWritable: false }), post(r, { noStatus: true }),
  ];
  r.q.kick();
  assert.equal(r.q.takeUsed().map((u) => u.len), [0, 0, 0, 0, 0, 0]);
  for (const a of bad) assert.is(must(r.mem.readU32(a)), 0x5a5a5a5a, 'nothing written');
  assert.is(r.flushes.n, 0);
  assert.is(r.metrics.count('event_fails'), 6);
  post(r);
  r.q.kick();
  assert.equal(r.q.takeUsed().map((u) => u.len), [PMEM_RESP_SIZE]);
});

test('rate limiter: one op per second; a refused run waits in the ring for the timer', () => {
  const r = rig({ limits: { ops: { size: 1, refill_time: 1000 } } });
  post(r);
  r.q.kick();
  assert.is(r.flushes.n, 1);
  r.q.takeUsed();
  const a = post(r);
  r.q.kick();
  assert.is(r.flushes.n, 1, 'no budget left');
  assert.equal(r.q.takeUsed(), []);
  assert.is(r.metrics.count('rate_limiter_throttled_events'), 1);
  assert.ok(r.dev.retryAfterMs() > 0);
  r.clock.t += 1000n * MS;
  r.dev.onRateLimiterTimer();
  assert.is(r.flushes.n, 2);
  assert.is(statusAt(r, a), PMEM_STATUS_OK);
  assert.is(r.metrics.count('rate_limiter_event_count'), 1);
});

test('bandwidth: a flush costs the file\'s length', () => {
  const r = rig({ limits: { bandwidth: { size: FILE_LEN * 2, refill_time: 1000 } } });
  for (let i = 0; i < 3; i++) {
    post(r);
    r.q.kick();
  }
  assert.is(r.flushes.n, 2);
});

test('metrics: Firecracker\'s pmem group by name and order', () => {
  assert.equal(DEVICE_GROUPS.pmem.map((f) => f[0]), [...PMEM_METRIC_COUNTERS]);
});

test('mapping: a store reaches the file after flushPmem; the tail past a short file is zeros; read-only, empty and missing files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-pmem-'));
  try {
    const path = join(dir, 'img');
    writeFileSync(path, Buffer.alloc(FILE_LEN, 0x11));
    const m = mapPmemFile(path, false);
    assert.is(m.fileLen, FILE_LEN);
    assert.is(m.mmapLen, 2 * PMEM_MAPPING_ALIGNMENT);
    const view = new Uint8Array(viewOf(m.addr, m.mmapLen));
    view.set([1, 2, 3], 4096);
    assert.is(view[FILE_LEN + 5], 0, 'anonymous tail');
    assert.ok(flushPmem(m));
    unmapPmem(m);
    assert.equal([...readFileSync(path).subarray(4096, 4099)], [1, 2, 3]);
    assert.is(readFileSync(path).length, FILE_LEN, 'the file did not grow');

    const ro = mapPmemFile(path, true);
    assert.is(new Uint8Array(viewOf(ro.addr, 8))[0], 0x11);
    unmapPmem(ro);

    writeFileSync(join(dir, 'empty'), '');
    assert.throws(() => mapPmemFile(join(dir, 'empty'), false), (e: PmemError) => e.message === 'Error backing file size is 0');
    assert.throws(() => mapPmemFile(join(dir, 'missing'), false), (e: PmemError) => /^Error accessing backing file: No such file or directory \(os error 2\)/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
