/**
 * Actions and the post-boot half of the API (firecracker src/vmm/src/rpc_interface.rs): InstanceStart (success, retryable
 * failure, unsupported devices), PATCH /vm, runtime device updates, snapshot routing, MMDS after
 * boot, metrics flushed at start, and the API log lines.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ApiHarness, reportSlowest, startApi } from '../helpers/api-harness.js';
import { POST_BOOT, PRE_BOOT, boot, fault, ok, serde } from '../helpers/api-expect.js';

let h: ApiHarness;
test.before.each(async () => {
  h = await startApi();
});
test.after.each(async () => {
  await h.close();
});
test.after(() => reportSlowest('api-runtime'));

test('PUT /actions: body errors and phase rules', async () => {
  await fault(h, 'PUT', '/actions', { action_type: 'Reboot' }, serde('unknown variant `Reboot`, expected one of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel` at line 1 column 23'));
  await fault(h, 'PUT', '/actions', {}, serde('missing field `action_type` at line 1 column 2'));
  await fault(h, 'PUT', '/actions', { action_type: 'InstanceStart', x: 1 }, serde('unknown field `x`, expected `action_type` at line 1 column 34'));
  await fault(h, 'PUT', '/actions', { action_type: 'FlushMetrics' }, PRE_BOOT);
  await fault(h, 'PUT', '/actions', { action_type: 'SendCtrlAltDel' }, PRE_BOOT);
  await fault(h, 'PUT', '/actions', { action_type: 'InstanceStart' }, 'Start microvm error: Cannot start microvm without kernel configuration.');
  assert.is(h.metrics.put_api_requests.actions_count.count(), 6);
  assert.is(h.metrics.put_api_requests.actions_fails.count(), 3);
});

test('InstanceStart hands the backend the full VmConfig and switches to Running', async () => {
  const disk = h.file('root.img');
  await ok(h, 'PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 256 });
  await ok(h, 'PUT', '/boot-source', { kernel_image_path: h.kernel, boot_args: 'console=ttyS0 -- init=/bin/sh' });
  await ok(h, 'PUT', '/drives/rootfs', { drive_id: 'rootfs', path_on_host: disk, is_root_device: true });
  await ok(h, 'PUT', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: '06:00:00:00:00:01' });
  await ok(h, 'PUT', '/mmds/config', { network_interfaces: ['eth0'], version: 'V2' });
  await ok(h, 'PUT', '/actions', { action_type: 'InstanceStart' });
  const c = h.backend.started!;
  assert.is(c.machine.vcpu_count, 2);
  assert.equal(c.bootSource.cmdline, { boot_args: 'console=ttyS0', init_args: 'init=/bin/sh' });
  assert.is(c.drives[0]!.drive_id, 'rootfs');
  assert.equal(c.networkInterfaces.map((n) => [n.iface_id, n.mmds]), [['eth0', true]]);
  assert.is(c.mmds!.config.version, 'V2');
  assert.is(((await ok(h, 'GET', '/', undefined, 200)) as { state: string }).state, 'Running');
  await fault(h, 'PUT', '/actions', { action_type: 'InstanceStart' }, POST_BOOT);
  await ok(h, 'PUT', '/actions', { action_type: 'SendCtrlAltDel' });
  assert.ok(h.backend.callNames.includes('sendCtrlAltDel'));
});

test('a failed InstanceStart is not fatal: fix and retry', async () => {
  await ok(h, 'PUT', '/boot-source', { kernel_image_path: h.kernel });
  h.backend.failStart = 'Invalid Memory Configuration: out of memory';
  await fault(h, 'PUT', '/actions', { action_type: 'InstanceStart' }, 'Start microvm error: Invalid Memory Configuration: out of memory');
  assert.is(((await ok(h, 'GET', '/', undefined, 200)) as { state: string }).state, 'Not started');
  await ok(h, 'PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 64 });
  await ok(h, 'PUT', '/actions', { action_type: 'InstanceStart' });
  assert.is(h.backend.started!.machine.mem_size_mib, 64);
});

test('a configured device the backend cannot provide fails InstanceStart, naming it', async () => {
  h.backend.unsupported.add('vsock');
  await ok(h, 'PUT', '/boot-source', { kernel_image_path: h.kernel });
  await ok(h, 'PUT', '/vsock', { guest_cid: 3, uds_path: `${h.dir}/v.sock` });
  await fault(h, 'PUT', '/actions', { action_type: 'InstanceStart' }, 'Start microvm error: The configuration uses vsock, which this Kindling build does not support.');
  assert.not.ok(h.backend.callNames.includes('start'));
  h.backend.unsupported.delete('vsock');
  h.backend.unsupported.add('block-io-engine-async');
  await ok(h, 'PUT', '/drives/d', { drive_id: 'd', path_on_host: h.kernel, is_root_device: false, io_engine: 'Async' });
  await fault(h, 'PUT', '/actions', { action_type: 'InstanceStart' }, 'Start microvm error: The configuration uses the Async (io_uring) block io_engine, which this Kindling build does not support.');
});

test('PATCH /vm: Paused/Resumed after boot; refused before; body errors', async () => {
  await fault(h, 'PATCH', '/vm', { state: 'Paused' }, PRE_BOOT);
  await fault(h, 'PATCH', '/vm', { state: 'Stopped' }, serde('unknown variant `Stopped`, expected `Paused` or `Resumed` at line 1 column 18'));
  await fault(h, 'PATCH', '/vm', {}, serde('missing field `state` at line 1 column 2'));
  await boot(h);
  await ok(h, 'PATCH', '/vm', { state: 'Paused' });
  assert.is(((await ok(h, 'GET', '/', undefined, 200)) as { state: string }).state, 'Paused');
  assert.ok(h.metrics.latencies_us.pause_vm.fetch() > 0);
  await ok(h, 'PATCH', '/vm', { state: 'Resumed' });
  assert.is(((await ok(h, 'GET', '/', undefined, 200)) as { state: string }).state, 'Running');
  assert.ok(h.logs.some((l) => l.includes("'pause vm' API request took ")));
});

test('runtime device updates: drives, network interfaces, balloon', async () => {
  const disk = h.file('d.img');
  await ok(h, 'PUT', '/drives/d', { drive_id: 'd', path_on_host: disk, is_root_device: false });
  await ok(h, 'PUT', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: 'tap0' });
  await ok(h, 'PUT', '/balloon', { amount_mib: 16, deflate_on_oom: false, stats_polling_interval_s: 1 });
  await boot(h);
  const disk2 = h.file('d2.img');
  await ok(h, 'PATCH', '/drives/d', { drive_id: 'd', path_on_host: disk2 });
  await fault(h, 'PATCH', '/drives/zz', { drive_id: 'zz', path_on_host: disk2 },
    'Drive config error: Unable to patch the block device: Failed perform action on device: Device not found Please verify the request arguments.');
  await fault(h, 'PATCH', '/drives/d', { drive_id: 'e' }, 'The id from the path does not match the id from the body!');
  await fault(h, 'PATCH', '/drives/d', { drive_id: 'd', is_read_only: true }, serde('unknown field `is_read_only`, expected one of `drive_id`, `path_on_host`, `rate_limiter` at line 1 column 30'));
  const cfg = (await ok(h, 'GET', '/vm/config', undefined, 200)) as { drives: { path_on_host: string }[] };
  assert.is(cfg.drives[0]!.path_on_host, disk2);

  await ok(h, 'PATCH', '/network-interfaces/eth0', { iface_id: 'eth0', rx_rate_limiter: { ops: { size: 10, refill_time: 100 } } });
  await fault(h, 'PATCH', '/network-interfaces/eth9', { iface_id: 'eth9' }, 'Network config error: Unable to update the net device: Failed perform action on device: Device not found');
  await fault(h, 'PATCH', '/network-interfaces/eth0', { iface_id: 'eth1' }, 'The id from the path [eth0] does not match the id from the body [eth1]!');
  await fault(h, 'PATCH', '/network-interfaces/eth0', {}, serde('missing field `iface_id` at line 1 column 2'));

  await ok(h, 'PATCH', '/balloon', { amount_mib: 32 });
  assert.is(((await ok(h, 'GET', '/balloon', undefined, 200)) as { amount_mib: number }).amount_mib, 32);
  assert.equal(await ok(h, 'GET', '/balloon/statistics', undefined, 200), { target_pages: 256, actual_pages: 0, target_mib: 1, actual_mib: 0, free_memory: 1024 });
  await ok(h, 'PATCH', '/balloon/statistics', { stats_polling_interval_s: 5 });
  await ok(h, 'PATCH', '/balloon/hinting/start');
  assert.equal(await ok(h, 'GET', '/balloon/hinting/status', undefined, 200), { host_cmd: 2, guest_cmd: null });
  await ok(h, 'PATCH', '/balloon/hinting/stop');
  await fault(h, 'PATCH', '/balloon', { amount: 1 }, serde('unknown field `amount`, expected `amount_mib` at line 1 column 9'));
  await fault(h, 'PATCH', '/balloon', undefined, 'Empty PATCH request.');
});

test('post-boot GETs on absent devices and MMDS without an MMDS interface', async () => {
  await boot(h);
  await fault(h, 'GET', '/balloon', undefined, 'Internal VMM error: Failed perform action on device: Device not found');
  await fault(h, 'PATCH', '/balloon', { amount_mib: 1 }, 'Balloon update error: Failed perform action on device: Device not found');
  await fault(h, 'GET', '/hotplug/memory', undefined, 'Internal VMM error: Failed perform action on device: Device not found');
  await fault(h, 'GET', '/mmds', undefined, 'MMDS error: The MMDS data store is not initialized.');
  await fault(h, 'PUT', '/mmds', { a: 1 }, 'MMDS error: The MMDS data store is not initialized.');
  await fault(h, 'DELETE', '/drives/x', undefined, 'PCI is not enabled');
});

test('snapshot routes: phases, load after boot resources, body errors', async () => {
  await fault(h, 'PUT', '/snapshot', {}, 'Missing snapshot operation type.');
  await fault(h, 'PUT', '/snapshot/foo', {}, 'Invalid request method and/or path: PUT /snapshot/foo.');
  await fault(h, 'PUT', '/snapshot/create', { snapshot_path: 's', mem_file_path: 'm' }, PRE_BOOT);
  await fault(h, 'PUT', '/snapshot/load', { snapshot_path: 's' }, serde('missing field: either `mem_backend` or `mem_file_path` is required'));
  await fault(h, 'PUT', '/snapshot/load', { snapshot_path: 's', mem_file_path: 'm', mem_backend: { backend_path: 'm', backend_type: 'File' } },
    serde('too many fields: either `mem_backend` or `mem_file_path` exclusively is required'));
  await ok(h, 'PUT', '/logger', {});
  await ok(h, 'PUT', '/boot-source', { kernel_image_path: h.kernel });
  await fault(h, 'PUT', '/snapshot/load', { snapshot_path: 's', mem_backend: { backend_path: 'm', backend_type: 'File' } },
    'Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.');
});

test('snapshot load on a fresh API restores Paused; deprecated mem_file_path', async () => {
  const r = await h.client.request('PUT', '/snapshot/load', { snapshot_path: 's', mem_file_path: 'm' });
  assert.is(r.status, 204);
  assert.is(r.headers.deprecation, 'true');
  assert.is(((await ok(h, 'GET', '/', undefined, 200)) as { state: string }).state, 'Paused');
  await ok(h, 'PUT', '/snapshot/create', { snapshot_path: 's2', mem_file_path: 'm2' });
  assert.ok(h.backend.callNames.includes('createSnapshot'));
});

test('InstanceStart flushes metrics once; FlushMetrics writes counter deltas', async () => {
  const path = `${h.dir}/metrics.fifo.json`;
  await ok(h, 'PUT', '/metrics', { metrics_path: path });
  await boot(h);
  await ok(h, 'PUT', '/actions', { action_type: 'FlushMetrics' });
  const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, Record<string, number>>);
  assert.is(lines.length, 2);
  assert.is(lines[0]!.put_api_requests!.actions_count, 1);
  assert.is(lines[1]!.put_api_requests!.actions_count, 1);
  assert.is(lines[0]!.put_api_requests!.metrics_count, 1);
  assert.is(lines[1]!.put_api_requests!.metrics_count, 0);
  assert.ok('block' in lines[0]! && 'vsock' in lines[0]! && 'memory_hotplug' in lines[0]!);
});

test('API log lines: received / outcome / duration, in that order', async () => {
  await ok(h, 'PUT', '/mmds', { secret: 1 });
  await fault(h, 'PUT', '/machine-config', { vcpu_count: 0, mem_size_mib: 1 },
    'Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.');
  const msgs = h.logs.map((l) => l.replace(/^\S+ \[[^\]]+\] /, '').trimEnd());
  const i = msgs.indexOf('The API server received a Put request on "/mmds".');
  assert.ok(i >= 0, msgs.join('\n'));
  assert.is(msgs[i + 1], 'The request was executed successfully. Status code: 204 No Content.');
  assert.match(msgs[i + 2]!, /^Total previous API call duration: \d+ us\.$/);
  assert.is(msgs[i + 3], 'The API server received a Put request on "/machine-config" with body "{\\"vcpu_count\\":0,\\"mem_size_mib\\":1}".');
  assert.is(msgs[i + 4], 'Received Error. Status code: 400 Bad Request. Message: Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.');
});

test.run();
