/**
 * Device metrics sources (firecracker src/vmm/src/logger/metrics.rs; Firecracker devices/virtio/block/virtio/metrics.rs): a
 * drive's worker keeps absolute counters in shared memory, the registry turns them into
 * per-flush deltas (SharedIncMetric), emits `block_<drive_id>` for each drive (sorted, as
 * Firecracker's BTreeMap) and the `block` aggregate, and the Vmm registers/unregisters the
 * sources around the drive actors' life.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics, type DeviceMetricValues } from '../../src/metrics/metrics.js';
import { BlockMetrics } from '../../src/devices/virtio/block/metrics.js';
import { Vmm, type VmmParts } from '../../src/vmm/vmm.js';

type Agg = { min_us: number; max_us: number; sum_us: number };
type Group = Record<string, number | Agg>;
type Flush = Record<string, Group>;

/** BlockDeviceMetrics field order in Firecracker v1.16 (the JSON key order). */
const BLOCK_FIELDS = [
  'activate_fails', 'cfg_fails', 'no_avail_buffer', 'event_fails', 'execute_fails', 'invalid_reqs_count', 'flush_count',
  'queue_event_count', 'rate_limiter_event_count', 'update_count', 'update_fails', 'read_bytes', 'write_bytes', 'read_count',
  'write_count', 'read_agg', 'write_agg', 'rate_limiter_throttled_events', 'io_engine_throttled_events', 'remaining_reqs_count',
];

/** A block group with every field 0 (what Firecracker emits for an idle drive). */
function zeros(): Group {
  return Object.fromEntries(BLOCK_FIELDS.map((f) => [f, f.endsWith('_agg') ? { min_us: 0, max_us: 0, sum_us: 0 } : 0]));
}

/** A fake drive: absolute values the test mutates, as the worker would. */
function fakeDrive(): { v: { -readonly [K in keyof DeviceMetricValues<'block'>]: DeviceMetricValues<'block'>[K] }; read: () => DeviceMetricValues<'block'> } {
  const v = zeros() as unknown as { -readonly [K in keyof DeviceMetricValues<'block'>]: DeviceMetricValues<'block'>[K] };
  return { v, read: () => structuredClone(v) };
}

const flush = (m: ReturnType<typeof createMetrics>, commit = true): Flush => JSON.parse(m.serialize(commit)) as Flush;

test('counters: each flush emits the increase since the previous one; a peek consumes nothing', () => {
  const m = createMetrics();
  const d = fakeDrive();
  m.addDeviceSource('block', 'rootfs', d.read);
  d.v.read_count = 3;
  d.v.read_bytes = 3 * 4096;
  assert.is(flush(m, false).block_rootfs!.read_count, 3);
  assert.is(flush(m, false).block_rootfs!.read_count, 3, 'a second peek still sees the pending delta');
  const f1 = flush(m);
  assert.is(f1.block_rootfs!.read_count, 3);
  assert.is(f1.block_rootfs!.read_bytes, 12288);
  d.v.read_count = 5;
  d.v.read_bytes = 5 * 4096;
  d.v.update_count = 1;
  const f2 = flush(m);
  assert.is(f2.block_rootfs!.read_count, 2, 'absolute 5 after 3 was flushed: delta 2');
  assert.is(f2.block_rootfs!.read_bytes, 8192);
  assert.is(f2.block_rootfs!.update_count, 1);
  assert.equal(flush(m).block_rootfs, zeros(), 'no activity: all counters 0');
});

test('latency aggregates: sum_us is a delta, min_us/max_us are gauges kept across flushes', () => {
  const m = createMetrics();
  const d = fakeDrive();
  m.addDeviceSource('block', 'rootfs', d.read);
  d.v.read_agg = { min_us: 7, max_us: 90, sum_us: 150 };
  assert.equal(flush(m).block_rootfs!.read_agg, { min_us: 7, max_us: 90, sum_us: 150 });
  d.v.read_agg = { min_us: 5, max_us: 90, sum_us: 160 };
  assert.equal(flush(m).block_rootfs!.read_agg, { min_us: 5, max_us: 90, sum_us: 10 });
  assert.equal(flush(m).block_rootfs!.read_agg, { min_us: 5, max_us: 90, sum_us: 0 }, 'SharedStoreMetric: not reset by a flush');
});

test('aggregate `block` over two drives: counters summed; agg sums sum_us, min/max stay 0 as in Firecracker', () => {
  const m = createMetrics();
  const a = fakeDrive();
  const b = fakeDrive();
  m.addDeviceSource('block', 'scratch', b.read);
  m.addDeviceSource('block', 'rootfs', a.read);
  a.v.read_count = 4;
  a.v.write_bytes = 1000;
  a.v.read_agg = { min_us: 3, max_us: 40, sum_us: 100 };
  b.v.read_count = 6;
  b.v.write_bytes = 24;
  b.v.flush_count = 2;
  b.v.read_agg = { min_us: 1, max_us: 9, sum_us: 20 };
  b.v.write_agg = { min_us: 11, max_us: 11, sum_us: 11 };
  const f1 = flush(m);
  assert.equal(Object.keys(f1).filter((k) => k.startsWith('block')), ['block_rootfs', 'block_scratch', 'block']);
  assert.is(f1.block!.read_count, 10);
  assert.is(f1.block!.write_bytes, 1024);
  assert.is(f1.block!.flush_count, 2);
  // BlockDeviceMetrics::aggregate adds only read_agg.sum_us / write_agg.sum_us.
  assert.equal(f1.block!.read_agg, { min_us: 0, max_us: 0, sum_us: 120 });
  assert.equal(f1.block!.write_agg, { min_us: 0, max_us: 0, sum_us: 11 });
  a.v.read_count = 5;
  a.v.read_agg = { min_us: 3, max_us: 40, sum_us: 130 };
  const f2 = flush(m);
  assert.is(f2.block!.read_count, 1, 'the aggregate is built from deltas too');
  assert.equal(f2.block!.read_agg, { min_us: 0, max_us: 0, sum_us: 30 });
  assert.is(f2.block!.write_bytes, 0);
});

test('an idle drive is emitted with every field at 0, in Firecracker order', () => {
  const m = createMetrics();
  const busy = fakeDrive();
  m.addDeviceSource('block', 'idle', fakeDrive().read);
  m.addDeviceSource('block', 'busy', busy.read);
  busy.v.write_count = 1;
  const f = flush(m);
  assert.equal(f.block_idle, zeros());
  assert.equal(Object.keys(f.block_idle!), BLOCK_FIELDS);
  assert.equal(Object.keys(f.block_idle!.read_agg as Agg), ['min_us', 'max_us', 'sum_us']);
  assert.is(f.block!.write_count, 1);
});

test('removing a source: the last counts still flush once, the group stays, later counts are not read', () => {
  const m = createMetrics();
  const d = fakeDrive();
  const off = m.addDeviceSource('block', 'rootfs', d.read);
  d.v.write_count = 2;
  assert.is(flush(m).block_rootfs!.write_count, 2);
  d.v.write_count = 5;
  off();
  off(); // idempotent: a second call must not pull again
  d.v.write_count = 100;
  const f = flush(m);
  assert.is(f.block_rootfs!.write_count, 3, 'counted before removal: 5 - 2');
  assert.is(f.block!.write_count, 3);
  assert.equal(flush(m).block_rootfs, zeros(), 'still listed, as Firecracker keeps the entry');
  // Registering the id again continues its totals (BlockMetricsPerDevice::alloc reuses the entry).
  const again = fakeDrive();
  m.addDeviceSource('block', 'rootfs', again.read);
  again.v.write_count = 4;
  assert.is(flush(m).block_rootfs!.write_count, 4);
});

test('serialized line: block_<id> slots between balloon and deprecated_api, exact field layout', () => {
  const m = createMetrics();
  m.addDeviceSource('block', 'b', fakeDrive().read);
  m.addDeviceSource('block', 'a', fakeDrive().read);
  const line = m.serialize();
  const keys = Object.keys(JSON.parse(line) as object);
  assert.equal(keys.slice(0, 7), ['utc_timestamp_ms', 'api_server', 'balloon', 'block_a', 'block_b', 'block', 'deprecated_api']);
  const group = BLOCK_FIELDS.map((f) => `"${f}":${f.endsWith('_agg') ? '{"min_us":0,"max_us":0,"sum_us":0}' : '0'}`).join(',');
  assert.ok(line.includes(`"block_a":{${group}},"block_b":{${group}},"block":{${group}},"deprecated_api":`), line.slice(0, 400));
});

test('a BlockMetrics buffer as the source: counts made through another view (the worker) are read', () => {
  const m = createMetrics();
  const main = new BlockMetrics();
  const worker = new BlockMetrics(main.buffer);
  m.addDeviceSource('block', 'rootfs', () => main.snapshot());
  worker.inc('read_count');
  worker.inc('read_bytes', 512);
  worker.recordLatency('read_agg', 25);
  worker.recordLatency('read_agg', 15);
  const f = flush(m);
  assert.is(f.block_rootfs!.read_count, 1);
  assert.is(f.block_rootfs!.read_bytes, 512);
  assert.equal(f.block_rootfs!.read_agg, { min_us: 15, max_us: 25, sum_us: 40 });
  worker.inc('read_bytes', 512);
  assert.is(flush(m).block_rootfs!.read_bytes, 512);
});

test('Vmm wiring: drives register at build, unregister after their workers stopped', async () => {
  const m = createMetrics();
  const bm = new BlockMetrics();
  const block = {
    driveId: 'rootfs',
    metricsSnapshot: () => bm.snapshot(),
    // A request completing while the worker drains on stop: must still reach the metrics.
    stop: async (): Promise<void> => { bm.inc('write_count'); },
  };
  const closeable = { close: (): void => undefined };
  const parts = {
    kvm: closeable, vm: closeable, mem: closeable, vcpus: [], handles: [],
    vmControl: new Int32Array(new SharedArrayBuffer(64)),
    devices: { sendCtrlAltDel: () => true, close: async () => undefined, manifest: [], legacyMetrics: () => ({ uart: {}, i8042: {} }) },
    config: { drives: [] },
    log: () => undefined, blocks: [block], nets: [], metrics: m,
  } as unknown as VmmParts;
  const vmm = new Vmm(parts);
  assert.equal(flush(m).block_rootfs, zeros(), 'the group exists before the first flush');
  bm.inc('read_count', 2);
  assert.is(flush(m).block_rootfs!.read_count, 2);
  const exit = await vmm.stop();
  assert.is(exit.code, 0);
  bm.inc('read_count', 50); // after teardown: no longer read
  const f = flush(m);
  assert.is(f.block_rootfs!.write_count, 1);
  assert.is(f.block_rootfs!.read_count, 0);
});

test.run();
