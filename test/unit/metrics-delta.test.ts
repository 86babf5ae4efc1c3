/**
 * Metrics semantics (firecracker src/vmm/src/logger/metrics.rs): counters flush as deltas, gauges as absolute values, every group
 * present (zeros), per-device groups with an aggregate, one JSON object per line, sink set once.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics } from '../../src/metrics/metrics.js';

type Flush = Record<string, Record<string, number | Record<string, number>> | number | string>;

test('counters are emitted as the delta since the previous flush; gauges absolute', () => {
  const m = createMetrics();
  m.put_api_requests.actions_count.add(3);
  m.latencies_us.pause_vm.store(42);
  const a = JSON.parse(m.serialize()) as Flush;
  const b = JSON.parse(m.serialize()) as Flush;
  assert.is((a.put_api_requests as Record<string, number>).actions_count, 3);
  assert.is((b.put_api_requests as Record<string, number>).actions_count, 0);
  assert.is((b.latencies_us as Record<string, number>).pause_vm, 42);
  m.put_api_requests.actions_count.inc();
  assert.is((JSON.parse(m.serialize()) as Flush & { put_api_requests: { actions_count: number } }).put_api_requests.actions_count, 1);
  assert.is(m.put_api_requests.actions_count.count(), 4);
});

test('every group is present with zeros, in Firecracker order', () => {
  const keys = Object.keys(JSON.parse(createMetrics().serialize()) as object);
  assert.equal(keys, [
    'utc_timestamp_ms', 'api_server', 'balloon', 'block', 'deprecated_api', 'get_api_requests', 'i8042', 'uart', 'latencies_us', 'logger', 'mmds', 'net',
    'patch_api_requests', 'put_api_requests', 'seccomp', 'vcpu', 'vmm', 'signals', 'vsock', 'entropy', 'pmem', 'interrupts', 'memory_hotplug',
  ]);
});

test('device groups: block_<id> per drive (sorted) plus the aggregate', () => {
  const m = createMetrics();
  m.device('block', 'rootfs').read_count.add(2);
  m.device('block', 'data').read_count.add(5);
  m.device('block', 'data').read_agg.record(10);
  const f = JSON.parse(m.serialize()) as Record<string, Record<string, unknown>>;
  assert.equal(Object.keys(f).filter((k) => k.startsWith('block')), ['block_data', 'block_rootfs', 'block']);
  assert.is(f.block!.read_count, 7);
  assert.equal(f.block_data!.read_agg, { min_us: 10, max_us: 10, sum_us: 10 });
  assert.is((JSON.parse(m.serialize()) as Record<string, Record<string, number>>).block!.read_count, 0);
});

test('sink: one line per flush, set once, emit_id and sorted properties', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-metrics-'));
  const m = createMetrics();
  assert.is(m.write(), false);
  m.init({ metrics_path: join(dir, 'm.json'), emit_id: true, properties: { z: '1', a: '2' } }, 'vm-9');
  assert.throws(() => m.init({ metrics_path: join(dir, 'm2.json'), emit_id: false, properties: null }, 'x'), /Reinitialization of metrics not allowed/);
  m.vcpu.exit_io_in.inc();
  assert.ok(m.write());
  assert.ok(m.write());
  m.close();
  const lines = readFileSync(join(dir, 'm.json'), 'utf8').split('\n');
  assert.is(lines.length, 3);
  const first = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(Object.keys(first).slice(0, 4), ['utc_timestamp_ms', 'id', 'properties', 'api_server']);
  assert.is(first.id, 'vm-9');
  assert.equal(Object.keys(first.properties as object), ['a', 'z']);
  assert.is((first.vcpu as Record<string, number>).exit_io_in, 1);
  assert.is((JSON.parse(lines[1]!) as { vcpu: Record<string, number> }).vcpu.exit_io_in, 0);
});

test.run();
