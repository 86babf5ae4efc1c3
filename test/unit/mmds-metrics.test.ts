/**
 * The top-level `mmds` metrics group fed by several MMDS stacks (one per net worker): each
 * stack counts into its own shared buffer, the registry sums them into the one group
 * Firecracker emits (src/metrics/metrics.ts `addGroupSource`), as deltas per flush.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../../src/metrics/metrics.js';
import { MMDS_METRIC_COUNTERS, MmdsMetrics } from '../../src/mmds/metrics.js';

type Flush = Record<string, Record<string, number>>;
const flush = (m: ReturnType<typeof createMetrics>, commit = true): Flush => JSON.parse(m.serialize(commit)) as Flush;

test('two stacks: their counters add up in `mmds`, flushed as deltas; the group keeps Firecracker field order', () => {
  const m = createMetrics();
  const eth0 = new MmdsMetrics();
  const eth1 = new MmdsMetrics();
  m.addGroupSource('mmds', () => new MmdsMetrics(eth0.buffer).snapshot());
  m.addGroupSource('mmds', () => eth1.snapshot());
  eth0.inc('rx_accepted', 3);
  eth1.inc('rx_accepted', 4);
  eth1.inc('tx_bytes', 100);
  const f1 = flush(m);
  assert.equal(Object.keys(f1.mmds!), [...MMDS_METRIC_COUNTERS]);
  assert.equal([f1.mmds!.rx_accepted, f1.mmds!.tx_bytes], [7, 100]);
  eth0.inc('rx_accepted');
  assert.is(flush(m, false).mmds!.rx_accepted, 1, 'a peek');
  assert.is(flush(m).mmds!.rx_accepted, 1, 'only the increase since the last flush');
  assert.is(flush(m).mmds!.rx_accepted, 0);
});

test('unregistering pulls a last time; the fixed counters of the group still work beside the sources', () => {
  const m = createMetrics();
  const eth0 = new MmdsMetrics();
  const stop = m.addGroupSource('mmds', () => eth0.snapshot());
  eth0.inc('connections_created', 2);
  stop();
  eth0.inc('connections_created', 5);
  m.mmds.rx_count.inc();
  const f = flush(m);
  assert.equal([f.mmds!.connections_created, f.mmds!.rx_count], [2, 1], 'counted before the stop, not after');
  stop();
});

test.run();
