/**
 * virtio-balloon model without KVM: a driver-side MockQueue programs an MmioTransport whose
 * DRIVER_OK activates a BalloonDevice over guest memory in ArrayBuffers (two regions with a
 * hole, so PFNs past RAM and across the hole are exercised), with a discard function that
 * records what the host would release. Covers the description and features, the config space
 * (num_pages, actual, read-only fields), inflate PFN lists (runs merged, duplicates once, bad
 * PFNs counted, torn lists refused), deflate, the statistics buffer protocol, setTarget's
 * config interrupt and refusals, and the metrics.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BalloonError } from '../../src/errors.js';
import {
  VIRTIO_F_VERSION_1, VIRTIO_ID_BALLOON, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_SEL, featureBit,
} from '../../src/devices/virtio/constants.js';
import { MmioTransport } from '../../src/devices/virtio/mmio.js';
import { MmioInterrupt, MmioState } from '../../src/devices/virtio/mmio-state.js';
import {
  BALLOON_CONFIG_ACTUAL, BALLOON_CONFIG_NUM_PAGES, BALLOON_CONFIG_SIZE, BALLOON_DEFLATE_QUEUE, BALLOON_INFLATE_QUEUE, BALLOON_QUEUE_SIZE,
  BALLOON_STATS_QUEUE, BalloonConfig, PAGES_PER_MIB, VIRTIO_BALLOON_F_DEFLATE_ON_OOM, VIRTIO_BALLOON_F_PAGE_REPORTING, VIRTIO_BALLOON_F_STATS_VQ,
  balloonHintingQueue, balloonQueueCount, balloonReportingQueue, BALLOON_CONFIG_FREE_PAGE_HINT_CMD_ID, VIRTIO_BALLOON_F_FREE_PAGE_HINT,
} from '../../src/devices/virtio/balloon/config.js';
import { BALLOON_DEVICE_ERRORS, BALLOON_STATS_MAX_BYTES, BalloonDevice } from '../../src/devices/virtio/balloon/device.js';
import { BALLOON_FIRECRACKER_COUNTERS, BalloonMetrics } from '../../src/devices/virtio/balloon/metrics.js';
import { BALLOON_STAT_SIZE } from '../../src/devices/virtio/balloon/pages.js';
import { GROUPS } from '../../src/metrics/groups.js';
import { arrayGuestMemory, must } from '../../src/memory/guest-memory.js';
import { GuestArena, MockQueue, mmioDeviceFeatures, mmioDriverInit, mmioDriverOk, mmioNotify, mmioRead32, mmioWrite32 } from '../helpers/mock-queue.js';

const PAGE = 4096;
/** Region 0: 1 MiB at 0; region 1: 1 MiB at 2 MiB (a hole between). */
const R0 = 1 << 20;
const R1_START = 2 << 20;
const R1_PFN = R1_START / PAGE;
const LAST_PFN = (R1_START + R0) / PAGE - 1;

function rig(o: { stats?: boolean; deflateOnOom?: boolean; reporting?: boolean; hinting?: boolean; targetPages?: number; discardFails?: boolean } = {}) {
  const mem = arrayGuestMemory([{ gpa: 0, size: R0 }, { gpa: R1_START, size: R0 }]);
  const params = { statsEnabled: o.stats ?? true, deflateOnOom: o.deflateOnOom ?? true, reporting: o.reporting ?? false, hinting: o.hinting ?? false };
  const config = BalloonConfig.create(o.targetPages ?? 0, false);
  const discarded: { gpa: number; len: number }[] = [];
  const metrics = new BalloonMetrics();
  const dev = new BalloonDevice({
    ...params, config, metrics,
    discard: (v) => {
      // Which guest range the view is: find the region whose bytes it shares.
      const r = mem.regions.find((x) => x.bytes.buffer === v.buffer)!;
      discarded.push({ gpa: r.gpa + v.byteOffset - r.bytes.byteOffset, len: v.length });
      v.fill(0);
      return !o.discardFails;
    },
  });
  const n = balloonQueueCount(params);
  const state = MmioState.create(n);
  const irqs: number[] = [];
  const transport = new MmioTransport(state, dev.description, {
    onActivate: (a) => { dev.activate(mem, new MmioInterrupt(state, (bit) => irqs.push(bit)), a); },
    onNotify: (q) => dev.onQueueNotify(q),
    interrupt: (bit) => irqs.push(bit),
    onReset: () => dev.reset(),
  }, mem);
  const qs: MockQueue[] = [];
  let base = 0;
  for (let i = 0; i < n; i++) {
    const q = new MockQueue(mem, 16, base);
    q.notify = () => mmioNotify(transport, i);
    qs.push(q);
    base = Math.ceil(q.end / PAGE) * PAGE;
  }
  const arena = new GuestArena(base, R0);
  mmioDriverInit(transport, mmioDeviceFeatures(transport), qs);
  mmioDriverOk(transport);
  return { mem, dev, config, metrics, transport, qs, arena, irqs, discarded };
}
type Rig = ReturnType<typeof rig>;

/** Posts one buffer of le32 PFNs on queue `q` and kicks. */
function postPfns(r: Rig, q: number, pfns: readonly number[], extraBytes = 0): void {
  const len = pfns.length * 4 + extraBytes;
  const at = r.arena.alloc(Math.max(len, 1));
  const v = new DataView(must(r.mem.slice(at, Math.max(len, 1))).buffer, at, Math.max(len, 1));
  pfns.forEach((p, i) => v.setUint32(i * 4, p, true));
  r.qs[q]!.addChain([{ addr: at, len }]);
  r.qs[q]!.kick();
}

/** Posts a stats buffer with `entries` ([tag, value]). */
function postStats(r: Rig, entries: readonly [number, bigint][], extraBytes = 0): void {
  const len = entries.length * BALLOON_STAT_SIZE + extraBytes;
  const at = r.arena.alloc(len);
  const v = new DataView(must(r.mem.slice(at, len)).buffer, at, len);
  entries.forEach(([tag, val], i) => { v.setUint16(i * BALLOON_STAT_SIZE, tag, true); v.setBigUint64(i * BALLOON_STAT_SIZE + 2, val, true); });
  r.qs[BALLOON_STATS_QUEUE]!.addChain([{ addr: at, len }]);
  r.qs[BALLOON_STATS_QUEUE]!.kick();
}

test('description: device id 5, STATS_VQ and DEFLATE_ON_OOM as configured, 2 or 3 queues of 256', () => {
  const r = rig();
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BALLOON);
  assert.is(mmioDeviceFeatures(r.transport), featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_BALLOON_F_STATS_VQ) | featureBit(VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
  mmioWrite32(r.transport, VIRTIO_MMIO_QUEUE_SEL, BALLOON_STATS_QUEUE);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_QUEUE_NUM_MAX), BALLOON_QUEUE_SIZE);
  const plain = rig({ stats: false, deflateOnOom: false });
  assert.is(mmioDeviceFeatures(plain.transport), featureBit(VIRTIO_F_VERSION_1));
  assert.is(plain.dev.activeQueues().length, 2);
  assert.ok(r.dev.isActive);
  assert.is(r.dev.activeQueues().length, 3);
});

test('config space: num_pages from the target, the driver writes actual only', () => {
  const r = rig({ targetPages: 300 });
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + BALLOON_CONFIG_NUM_PAGES), 300);
  mmioWrite32(r.transport, VIRTIO_MMIO_CONFIG + BALLOON_CONFIG_ACTUAL, 123);
  assert.is(r.config.actual, 123);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + BALLOON_CONFIG_ACTUAL), 123);
  mmioWrite32(r.transport, VIRTIO_MMIO_CONFIG + BALLOON_CONFIG_NUM_PAGES, 7); // read-only for the driver
  assert.is(r.config.numPages, 300);
  const c = BalloonConfig.create(5, false);
  c.restore(r.config.save());
  assert.equal([c.numPages, c.actual], [300, 123]);
  assert.throws(() => c.restore([1, 2, 3]), /12/);
  assert.is(r.config.save().length, BALLOON_CONFIG_SIZE);
});

test('setTarget: num_pages = MiB × 256 and a config interrupt; more than RAM or before activation refused', () => {
  const r = rig();
  r.irqs.length = 0;
  r.dev.setTarget(1);
  assert.is(r.config.numPages, PAGES_PER_MIB);
  assert.ok(r.irqs.includes(VIRTIO_MMIO_INT_CONFIG));
  try {
    r.dev.setTarget(3);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, BalloonError);
    assert.is((e as Error).message, BALLOON_DEVICE_ERRORS.TooManyPagesRequested);
  }
  const idle = new BalloonDevice({ statsEnabled: false, deflateOnOom: false, config: BalloonConfig.create(0, false), discard: () => true });
  assert.throws(() => idle.setTarget(1), (e: Error) => e.message === BALLOON_DEVICE_ERRORS.DeviceNotActive);
});

test('inflate: frames sorted and merged into runs, a duplicate taken once, each run discarded once', () => {
  const r = rig();
  postPfns(r, BALLOON_INFLATE_QUEUE, [12, 10, 11, 11, 40, R1_PFN + 1, R1_PFN]);
  assert.equal(r.discarded, [
    { gpa: 10 * PAGE, len: 3 * PAGE }, { gpa: 40 * PAGE, len: PAGE }, { gpa: R1_START, len: 2 * PAGE },
  ]);
  const m = r.metrics.snapshot();
  assert.is(m.pages_discarded, 6);
  assert.is(m.inflate_count, 1);
  assert.is(m.bad_pfns, 0);
  assert.equal(r.qs[BALLOON_INFLATE_QUEUE]!.takeUsed(), [{ id: 0, len: 0 }]);
});

test('inflate: PFNs outside RAM (the hole, past the end, 2^32-1) are counted and skipped, the rest served', () => {
  const r = rig();
  const hole = R0 / PAGE; // first frame after region 0
  postPfns(r, BALLOON_INFLATE_QUEUE, [hole - 1, hole, hole + 1, LAST_PFN, LAST_PFN + 1, 0xffff_ffff]);
  const m = r.metrics.snapshot();
  assert.is(m.bad_pfns, 4, 'the hole (2), past the end, 2^32-1');
  assert.is(m.pages_discarded, 2);
  assert.equal(r.discarded, [{ gpa: (hole - 1) * PAGE, len: PAGE }, { gpa: LAST_PFN * PAGE, len: PAGE }]);
  assert.is(m.event_fails, 0);
});

test('inflate: a list that is not whole le32 frames, or a device-writable buffer, is a bad chain used with 0', () => {
  const r = rig();
  postPfns(r, BALLOON_INFLATE_QUEUE, [1, 2], 3);
  const at = r.arena.alloc(8);
  r.qs[BALLOON_INFLATE_QUEUE]!.addChain([{ addr: at, len: 8, write: true }]);
  r.qs[BALLOON_INFLATE_QUEUE]!.kick();
  const m = r.metrics.snapshot();
  assert.is(m.bad_chains, 2);
  assert.is(m.event_fails, 2);
  assert.is(r.discarded.length, 0);
  assert.is(r.qs[BALLOON_INFLATE_QUEUE]!.takeUsed().length, 2);
});

test('inflate: a host refusal is counted discard_fails, not pages_discarded', () => {
  const r = rig({ discardFails: true });
  postPfns(r, BALLOON_INFLATE_QUEUE, [5]);
  assert.is(r.metrics.snapshot().discard_fails, 1);
  assert.is(r.metrics.snapshot().pages_discarded, 0);
});

test('deflate: acknowledged, nothing discarded', () => {
  const r = rig();
  postPfns(r, BALLOON_DEFLATE_QUEUE, [10, 11]);
  assert.equal(r.qs[BALLOON_DEFLATE_QUEUE]!.takeUsed(), [{ id: 0, len: 0 }]);
  assert.is(r.discarded.length, 0);
  assert.is(r.metrics.snapshot().deflate_count, 1);
});

test('stats: the buffer is parsed and held; requestStats gives it back; a second buffer returns the first', () => {
  const r = rig({ targetPages: 512 });
  postStats(r, [[4, 1000n], [5, 2000n], [99, 1n]]);
  const q = r.qs[BALLOON_STATS_QUEUE]!;
  assert.equal(q.takeUsed(), [], 'the device keeps the buffer');
  const s = r.dev.stats();
  assert.equal(s.stats, { free_memory: 1000, total_memory: 2000 });
  assert.equal([s.target_pages, s.target_mib, s.actual_pages], [512, 2, 0]);
  assert.is(r.metrics.snapshot().stats_update_fails, 1, 'an unknown tag');
  assert.is(r.dev.savedStatsHead(), 0);
  r.dev.requestStats();
  assert.equal(q.takeUsed(), [{ id: 0, len: 0 }]);
  assert.is(r.dev.savedStatsHead(), null);
  r.dev.requestStats(); // nothing held: nothing happens
  assert.equal(q.takeUsed(), []);
  postStats(r, [[4, 7n]]);
  postStats(r, [[4, 8n]]);
  assert.is(q.takeUsed().length, 1, 'the older buffer comes back');
  assert.is(r.dev.stats().stats.free_memory, 8);
  assert.is(r.metrics.snapshot().stats_updates_count, 3);
});

test('stats: a huge buffer is parsed only up to BALLOON_STATS_MAX_BYTES', () => {
  const r = rig();
  const len = 64 * 1024;
  const at = r.arena.alloc(len);
  const v = new DataView(must(r.mem.slice(at, len)).buffer, at, len);
  v.setUint16(0, 5, true);
  v.setBigUint64(2, 42n, true);
  v.setUint16(BALLOON_STATS_MAX_BYTES + 8, 4, true); // past the cap: never read
  r.qs[BALLOON_STATS_QUEUE]!.addChain([{ addr: at, len }]);
  r.qs[BALLOON_STATS_QUEUE]!.kick();
  const s = r.dev.stats().stats;
  assert.is(s.total_memory, 42);
  assert.is(s.free_memory, undefined);
});

test('stats interval: a new one asks at once; 0 ↔ non-zero refused with Firecracker\'s text', () => {
  const r = rig();
  postStats(r, [[4, 1n]]);
  r.dev.setStatsInterval(1); // unchanged: nothing
  assert.equal(r.qs[BALLOON_STATS_QUEUE]!.takeUsed(), []);
  r.dev.setStatsInterval(5);
  assert.is(r.dev.statsIntervalS, 5);
  assert.equal(r.qs[BALLOON_STATS_QUEUE]!.takeUsed(), [{ id: 0, len: 0 }], 'the held buffer is given back');
  assert.throws(() => r.dev.setStatsInterval(0), (e: Error) => e instanceof BalloonError && e.message === BALLOON_DEVICE_ERRORS.StatisticsStateChange);
  const off = rig({ stats: false });
  assert.throws(() => off.dev.setStatsInterval(1), (e: Error) => e.message === BALLOON_DEVICE_ERRORS.StatisticsStateChange);
});

test('stats disabled: no stats queue, GET refused with Firecracker\'s text', () => {
  const r = rig({ stats: false });
  assert.throws(() => r.dev.stats(), (e: Error) => e.message === BALLOON_DEVICE_ERRORS.StatisticsDisabled);
  r.dev.onQueueNotify(BALLOON_STATS_QUEUE); // no such queue: ignored
});

test('free page reporting: queue 2 without stats, 3 with; each reported run released, bad runs counted', () => {
  assert.is(balloonReportingQueue({ statsEnabled: false, deflateOnOom: false, reporting: true }), 2);
  assert.is(balloonReportingQueue({ statsEnabled: true, deflateOnOom: false, reporting: true }), 3);
  assert.is(balloonReportingQueue({ statsEnabled: true, deflateOnOom: false }), -1);
  const r = rig({ reporting: true });
  assert.ok(mmioDeviceFeatures(r.transport) & featureBit(VIRTIO_BALLOON_F_PAGE_REPORTING));
  assert.is(r.dev.activeQueues().length, 4);
  const q = r.qs[3]!;
  // Linux posts reported pages as device-writable buffers (virtqueue_add_inbuf); direction is not checked.
  q.addChain([{ addr: 64 * PAGE, len: 4 * PAGE, write: true }, { addr: R1_START, len: 2 * PAGE, write: true }]);
  q.addChain([{ addr: 70 * PAGE + 1, len: PAGE, write: true }]);
  q.addChain([{ addr: R1_START + R0, len: PAGE, write: true }]);
  q.kick();
  assert.equal(r.discarded, [{ gpa: 64 * PAGE, len: 4 * PAGE }, { gpa: R1_START, len: 2 * PAGE }]);
  const m = r.metrics.snapshot();
  assert.is(m.free_page_report_count, 1);
  assert.is(m.free_page_report_freed, 6 * PAGE);
  assert.is(m.free_page_report_fails, 2, 'an unaligned run and one outside RAM');
  assert.equal(q.takeUsed(), [{ id: 0, len: 0 }, { id: 2, len: 0 }, { id: 3, len: 0 }]);
});

test('free page hinting: start writes cmd 2 with a config interrupt; hints of the run released; STOP answered with DONE', () => {
  assert.is(balloonHintingQueue({ statsEnabled: true, deflateOnOom: false, hinting: true, reporting: true }), 3);
  assert.is(balloonReportingQueue({ statsEnabled: true, deflateOnOom: false, hinting: true, reporting: true }), 4);
  assert.is(balloonHintingQueue({ statsEnabled: false, deflateOnOom: false, hinting: true }), 2);
  const r = rig({ hinting: true });
  assert.ok(mmioDeviceFeatures(r.transport) & featureBit(VIRTIO_BALLOON_F_FREE_PAGE_HINT));
  const q = r.qs[3]!;
  assert.equal(r.dev.hintingStatus(), { host_cmd: 1, guest_cmd: null });
  r.irqs.length = 0;
  r.dev.startHinting(true);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + BALLOON_CONFIG_FREE_PAGE_HINT_CMD_ID), 2);
  assert.ok(r.irqs.includes(VIRTIO_MMIO_INT_CONFIG));
  const cmd = (id: number): void => {
    const at = r.arena.alloc(4);
    must(r.mem.slice(at, 4)).set([id, 0, 0, 0]);
    q.addChain([{ addr: at, len: 4 }]);
  };
  q.addChain([{ addr: 80 * PAGE, len: 4 * PAGE, write: true }]); // before the guest took up run 2: left alone
  cmd(2);
  q.addChain([{ addr: 64 * PAGE, len: 4 * PAGE, write: true }]);
  q.kick();
  assert.equal(r.discarded, [{ gpa: 64 * PAGE, len: 4 * PAGE }]);
  assert.equal(r.dev.hintingStatus(), { host_cmd: 2, guest_cmd: 2 });
  r.irqs.length = 0;
  cmd(0);
  q.kick();
  assert.equal(r.dev.hintingStatus(), { host_cmd: 1, guest_cmd: 0 }, 'STOP acknowledged with DONE');
  assert.ok(r.irqs.includes(VIRTIO_MMIO_INT_CONFIG));
  q.addChain([{ addr: 90 * PAGE, len: PAGE, write: true }]); // after DONE: left alone
  q.kick();
  assert.is(r.discarded.length, 1);
  const m = r.metrics.snapshot();
  assert.equal([m.free_page_hint_count, m.free_page_hint_freed, m.free_page_hint_fails], [2, 4 * PAGE, 0]);
  assert.is(q.takeUsed().length, 5);
  r.dev.startHinting(false);
  assert.is(r.dev.hintingStatus().host_cmd, 3);
  cmd(3);
  cmd(0);
  q.kick();
  assert.equal(r.dev.hintingStatus(), { host_cmd: 3, guest_cmd: 0 }, 'without acknowledge_on_stop the host says DONE itself');
  r.dev.stopHinting();
  assert.is(r.dev.hintingStatus().host_cmd, 1);
  const off = rig();
  assert.throws(() => off.dev.startHinting(true), (e: Error) => e.message === BALLOON_DEVICE_ERRORS.HintingNotEnabled);
});

test('metrics: Firecracker\'s balloon group by name and order', () => {
  assert.equal([...BALLOON_FIRECRACKER_COUNTERS], GROUPS.balloon.map(([n]) => n));
});

test.run();
