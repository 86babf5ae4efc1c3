/**
 * The balloon across a snapshot, as Firecracker's users run it: `bin/kindling` processes over
 * their API sockets, one boot of the minimal kernel. Process A boots with a balloon (stats
 * every second), inflates it to 40 MiB through PATCH /balloon, is paused and takes a Full
 * snapshot, and is killed. A fresh process B loads it (File backend, resume_vm) and:
 *  - reports the restored balloon at once (GET /balloon/statistics: target and actual 40 MiB,
 *    from the saved config space);
 *  - gets statistics again (the stats buffer the device held is held again after restore, so
 *    the polling timer can hand it back);
 *  - deflates to 0 and inflates to 30 MiB on the guest's say (both queues run on from their
 *    saved indices; the inflate releases private copy-on-write pages with MADV_DONTNEED);
 *  - the guest still answers on its console.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, testBootArgs } from '../helpers/guest.js';
import { KindlingProc } from '../helpers/kindling-proc.js';
import type { FirecrackerClient } from 'kindling/client';

const dir = mkdtempSync(join(tmpdir(), 'kindling-balloon-snap-'));
const files = { state: join(dir, 'b.state'), mem: join(dir, 'b.mem'), metrics: join(dir, 'b.metrics') };
const procs: KindlingProc[] = [];

interface Stats { target_mib: number; actual_mib: number; actual_pages: number; free_memory?: number; total_memory?: number }

/** Polls the async `cond` every 250 ms until it holds (rejects after `ms`). */
async function pollUntil(cond: () => Promise<boolean>, ms: number, what: () => string): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`${what()} within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function stats(api: FirecrackerClient): Promise<Stats> {
  const r = await api.request('GET', '/balloon/statistics');
  assert.is(r.status, 200, r.body);
  return JSON.parse(r.body) as Stats;
}

async function patch(api: FirecrackerClient, amountMib: number): Promise<void> {
  const r = await api.request('PATCH', '/balloon', { amount_mib: amountMib });
  assert.is(r.status, 204, r.body);
}

async function actualReaches(api: FirecrackerClient, p: KindlingProc, mib: number): Promise<void> {
  let last: Stats | undefined;
  await pollUntil(async () => (last = await stats(api)).actual_mib === mib && last.actual_pages === mib * 256, 240_000,
    () => `the balloon did not reach ${mib} MiB (last ${JSON.stringify(last)})${p.tail()}`);
}

test('a balloon inflated before a Full snapshot: restored target, actual and statistics; deflate and inflate go on', async () => {
  try {
    const a = new KindlingProc(dir, 'a');
    procs.push(a);
    const api = await a.api();
    await api.putBootSource({
      kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'),
      boot_args: testBootArgs('"echo READY; while read -r cmd; do eval $cmd; done"', 'loglevel=3'),
    });
    await api.putMachineConfig({ vcpu_count: 1, mem_size_mib: 128 });
    const put = await api.request('PUT', '/balloon', { amount_mib: 0, deflate_on_oom: false, stats_polling_interval_s: 1 });
    assert.is(put.status, 204, put.body);
    await api.instanceStart();
    await a.waitConsole(/READY\r?\n/, 240_000);
    await patch(api, 40);
    await actualReaches(api, a, 40);
    await api.request('PATCH', '/vm', { state: 'Paused' });
    const snap = await api.request('PUT', '/snapshot/create', { snapshot_type: 'Full', snapshot_path: files.state, mem_file_path: files.mem });
    assert.is(snap.status, 204, snap.body);
    await a.kill();

    const b = new KindlingProc(dir, 'b');
    procs.push(b);
    const bApi = await b.api();
    assert.is((await bApi.request('PUT', '/metrics', { metrics_path: files.metrics })).status, 204);
    const load = await bApi.request('PUT', '/snapshot/load', { snapshot_path: files.state, mem_backend: { backend_type: 'File', backend_path: files.mem }, resume_vm: true });
    assert.is(load.status, 204, `${load.body}${b.tail()}`);
    const first = await stats(bApi);
    assert.is(first.target_mib, 40, 'target restored');
    assert.is(first.actual_mib, 40, 'actual restored');
    const cfg = JSON.parse((await bApi.request('GET', '/balloon')).body) as { amount_mib: number };
    assert.is(cfg.amount_mib, 40, 'GET /balloon: the amount set by PATCH before the snapshot');
    await pollUntil(async () => (await stats(bApi)).total_memory !== undefined, 60_000, () => `no statistics after restore${b.tail()}`);
    const s = await stats(bApi);
    console.log(`\n    restored: ${JSON.stringify(s)}`);

    await patch(bApi, 0);
    await actualReaches(bApi, b, 0);
    await patch(bApi, 30);
    await actualReaches(bApi, b, 30);
    b.type('echo ALIVE_$((1+1))');
    await b.waitConsole(/ALIVE_2\r?\n/, 60_000);
    assert.is((await bApi.request('PUT', '/actions', { action_type: 'FlushMetrics' })).status, 204);
    const lines = readFileSync(files.metrics, 'utf8').trim().split('\n');
    const balloon = (JSON.parse(lines[lines.length - 1]!) as { balloon: Record<string, number> }).balloon;
    const sum = (k: string): number => lines.reduce((n, l) => n + ((JSON.parse(l) as { balloon: Record<string, number> }).balloon[k] ?? 0), 0);
    console.log(`    after restore: deflate to 0 and inflate to 30 MiB; balloon metrics inflate_count ${sum('inflate_count')}, deflate_count ${sum('deflate_count')}, event_fails ${sum('event_fails')}`);
    assert.ok(sum('inflate_count') > 0 && sum('deflate_count') > 0);
    assert.is(sum('event_fails'), 0);
    assert.not.ok('pages_discarded' in balloon);
  } finally {
    for (const p of procs) await p.kill();
  }
});

test.run();
