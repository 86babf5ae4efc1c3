/**
 * Pre-boot configuration endpoints over the real socket (firecracker src/firecracker/src/api_server/ and src/vmm/src/vmm_config/): for each path and
 * method the happy path and at least three refusals, asserting status and exact fault_message.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ApiHarness, reportSlowest, startApi } from '../helpers/api-harness.js';
import { POST_BOOT, PRE_BOOT, boot, fault, ok, serde } from '../helpers/api-expect.js';

let h: ApiHarness;
test.before.each(async () => {
  h = await startApi();
});
test.after.each(async () => {
  await h.close();
});
test.after(() => reportSlowest('api-routes'));

const BOOT_FIELDS = 'expected one of `kernel_image_path`, `initrd_path`, `boot_args`';
const MC_FIELDS = 'expected one of `vcpu_count`, `mem_size_mib`, `smt`, `cpu_template`, `track_dirty_pages`, `huge_pages`';

test('GET / and GET /version (trailing segments ignored); unknown paths', async () => {
  assert.equal(await ok(h, 'GET', '/', undefined, 200), { id: 'anonymous-instance', state: 'Not started', vmm_version: '1.16.1', app_name: 'Firecracker' });
  assert.equal(await ok(h, 'GET', '/version/extra/segments', undefined, 200), { firecracker_version: '1.16.1' });
  await fault(h, 'GET', '/versions', undefined, 'Invalid request method and/or path: GET versions.');
  await fault(h, 'PUT', '/foo', {}, 'Invalid request method and/or path: PUT foo.');
  await fault(h, 'PATCH', '/version', {}, 'Invalid request method and/or path: PATCH version.');
  await fault(h, 'DELETE', '/vm', undefined, 'Invalid request method and/or path: DELETE vm.');
  await fault(h, 'GET', '/vm', undefined, 'Invalid request method and/or path: GET vm.');
  assert.is(h.metrics.get_api_requests.instance_info_count.count(), 1);
});

test('PUT /boot-source: happy path and refusals', async () => {
  await ok(h, 'PUT', '/boot-source', { kernel_image_path: h.kernel, boot_args: 'console=ttyS0' });
  await fault(h, 'PUT', '/boot-source', { kernel_image_path: h.kernel, foo: 1 }, serde(`unknown field \`foo\`, ${BOOT_FIELDS} at line 1 column ${JSON.stringify({ kernel_image_path: h.kernel }).length + 5}`));
  await fault(h, 'PUT', '/boot-source', '{"kernel_image_path": 5}', serde('invalid type: integer `5`, expected a string at line 1 column 23'));
  await fault(h, 'PUT', '/boot-source', '{"boot_args": "x"}', serde('missing field `kernel_image_path` at line 1 column 18'));
  await fault(h, 'PUT', '/boot-source', { kernel_image_path: `${h.dir}/nope` }, 'Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)');
  await fault(
    h, 'PUT', '/boot-source', { kernel_image_path: h.kernel, initrd_path: `${h.dir}/nope` },
    'Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. No such file or directory (os error 2)',
  );
  await fault(h, 'PUT', '/boot-source', { kernel_image_path: h.kernel, boot_args: 'a'.repeat(2048) }, 'Boot source error: The kernel command line is invalid: Invalid cmdline capacity provided.');
  await ok(h, 'PUT', '/boot-source', { kernel_image_path: h.kernel, boot_args: 'a'.repeat(2047) });
  assert.is(h.metrics.put_api_requests.boot_source_count.count(), 8);
  assert.is(h.metrics.put_api_requests.boot_source_fails.count(), 3);
});

test('GET/PUT/PATCH /machine-config', async () => {
  assert.equal(await ok(h, 'GET', '/machine-config', undefined, 200), { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false, huge_pages: 'None' });
  await ok(h, 'PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 256, huge_pages: '2M' });
  assert.equal(await ok(h, 'GET', '/machine-config', undefined, 200), { vcpu_count: 2, mem_size_mib: 256, smt: false, track_dirty_pages: false, huge_pages: '2M' });
  await fault(h, 'PUT', '/machine-config', '{"mem_size_mib": 128}', serde('missing field `vcpu_count` at line 1 column 21'));
  await fault(h, 'PUT', '/machine-config', '{"vcpu_count": "2", "mem_size_mib": 128}', serde('invalid type: string "2", expected u8 at line 1 column 18'));
  await fault(h, 'PUT', '/machine-config', '{"vcpu_count": 2, "mem_size_mib": 128, "foo": 1}', serde(`unknown field \`foo\`, ${MC_FIELDS} at line 1 column 44`));
  await fault(h, 'PUT', '/machine-config', { vcpu_count: 3, mem_size_mib: 128, smt: true },
    'Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.');
  await fault(h, 'PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 0 }, 'Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.');
  await fault(h, 'PATCH', '/machine-config', { mem_size_mib: 129 }, 'Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.');
  await fault(h, 'PATCH', '/machine-config', {}, 'Empty PATCH request.');
  await fault(h, 'PATCH', '/machine-config', { vcpu: 1 }, serde(`unknown field \`vcpu\`, ${MC_FIELDS} at line 1 column 7`));
  await ok(h, 'PATCH', '/machine-config', { vcpu_count: 4 });
  assert.equal(await ok(h, 'GET', '/machine-config', undefined, 200), { vcpu_count: 4, mem_size_mib: 256, smt: false, track_dirty_pages: false, huge_pages: '2M' });
  await ok(h, 'PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128, cpu_template: 'T2' });
  assert.is(((await ok(h, 'GET', '/machine-config', undefined, 200)) as { cpu_template: string }).cpu_template, 'T2');
});

test('PUT /drives/{id}: ids, root device rules, backing file, ordering', async () => {
  const disk = h.file('disk.img');
  const rootfs = h.file('rootfs.img');
  await ok(h, 'PUT', '/drives/data', { drive_id: 'data', path_on_host: disk, is_root_device: false });
  await ok(h, 'PUT', '/drives/root', { drive_id: 'root', path_on_host: rootfs, is_root_device: true, is_read_only: true });
  await fault(h, 'PUT', '/drives/root2', { drive_id: 'root2', path_on_host: rootfs, is_root_device: true }, 'Drive config error: A root block device already exists!');
  await fault(h, 'PUT', '/drives/a', { drive_id: 'b', path_on_host: disk, is_root_device: false }, 'The id from the path does not match the id from the body!');
  await fault(h, 'PUT', '/drives/a-b', { drive_id: 'a-b', path_on_host: disk, is_root_device: false }, 'API Resource IDs can only contain alphanumeric characters and underscores.');
  await fault(h, 'PUT', '/drives/', { drive_id: 'x', path_on_host: disk, is_root_device: false }, 'The ID cannot be empty.');
  await fault(h, 'PUT', '/drives/x', '{"drive_id":"x","path_on_host":"/y"}', serde('missing field `is_root_device` at line 1 column 36'));
  await fault(h, 'PUT', '/drives/x', { drive_id: 'x', path_on_host: `${h.dir}/missing`, is_root_device: false },
    `Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: No such file or directory (os error 2) ${h.dir}/missing`);
  await fault(h, 'PUT', '/drives/x', { drive_id: 'x', is_root_device: false }, 'Drive config error: Unable to create the virtio block device: Invalid block config.');
  const cfg = (await ok(h, 'GET', '/vm/config', undefined, 200)) as { drives: { drive_id: string }[] };
  assert.equal(cfg.drives.map((d) => d.drive_id), ['root', 'data']);
  assert.equal(cfg.drives[0], {
    drive_id: 'root', partuuid: null, is_root_device: true, cache_type: 'Unsafe', is_read_only: true, path_on_host: rootfs, rate_limiter: null, io_engine: 'Sync', socket: null,
  });
  await fault(h, 'PATCH', '/drives/data', { drive_id: 'data', path_on_host: disk }, PRE_BOOT);
  await fault(h, 'DELETE', '/drives/data', undefined, PRE_BOOT);
});

test('PUT /network-interfaces/{id}: MAC rules, TAP probe, MTU, id mismatch text', async () => {
  await ok(h, 'PUT', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: 'AA:FC:00:00:00:01' });
  await fault(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'tap1', guest_mac: 'aa:fc:00:00:00:01' }, 'Network config error: The MAC address is already in use: aa:fc:00:00:00:01');
  await fault(h, 'PUT', '/network-interfaces/eth1', '{"iface_id":"eth1","host_dev_name":"tap1","guest_mac":"zz"}', serde('The provided MAC address is invalid. at line 1 column 58'));
  await fault(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth2', host_dev_name: 'tap1' }, 'The id from the path [eth1] does not match the id from the body [eth2]!');
  await fault(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'a123456789abcdef' }, 'Network config error: Could not create the network device: Open tap device failed: Invalid interface name');
  h.backend.badTaps.add('badtap');
  await fault(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'badtap' },
    'Network config error: Could not create the network device: Open tap device failed: Error while creating ifreq structure: Invalid argument (os error 22). Invalid TUN/TAP Backend provided by badtap. Check our documentation on setting up the network devices.');
  await fault(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'tap1', mtu: 50 }, 'Network config error: Could not create the network device: MTU 50 is out of range [68, 65535]');
  await fault(h, 'PUT', '/network-interfaces/eth1', '{"iface_id":"eth1"}', serde('missing field `host_dev_name` at line 1 column 19'));
  await fault(h, 'PATCH', '/network-interfaces/eth0', { iface_id: 'eth0' }, PRE_BOOT);
});

test('PUT /vsock, /balloon, /entropy, /serial', async () => {
  await ok(h, 'PUT', '/vsock', { guest_cid: 3, uds_path: `${h.dir}/v.sock` });
  await fault(h, 'PUT', '/vsock', '{"uds_path": "/tmp/x"}', serde('missing field `guest_cid` at line 1 column 22'));
  await fault(h, 'PUT', '/vsock', { guest_cid: 3, uds_path: h.kernel }, 'Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: Address in use (os error 98)');
  await fault(h, 'PUT', '/vsock', { guest_cid: -1, uds_path: 'x' }, serde('invalid value: integer `-1`, expected u32 at line 1 column 15'));

  await fault(h, 'GET', '/balloon', undefined, 'Balloon config error: No balloon device found.');
  await ok(h, 'PUT', '/balloon', { amount_mib: 64, deflate_on_oom: true });
  assert.equal(await ok(h, 'GET', '/balloon', undefined, 200), { amount_mib: 64, deflate_on_oom: true, stats_polling_interval_s: 0, free_page_hinting: false, free_page_reporting: false });
  await fault(h, 'PUT', '/balloon', { amount_mib: 129, deflate_on_oom: true }, 'Balloon config error: Amount of pages requested is too large.');
  await fault(h, 'PUT', '/balloon', '{"amount_mib": 1}', serde('missing field `deflate_on_oom` at line 1 column 17'));
  await fault(h, 'PATCH', '/machine-config', { mem_size_mib: 32 }, 'Machine config error: The memory size (MiB) is smaller than the previously set balloon device target size.');
  await fault(h, 'PATCH', '/balloon', { amount_mib: 1 }, PRE_BOOT);
  await fault(h, 'GET', '/balloon/statistics', undefined, PRE_BOOT);
  await fault(h, 'GET', '/balloon/foo', undefined, 'Unrecognized GET request path `foo`.');
  await fault(h, 'PATCH', '/balloon/hinting/go', undefined, 'Unrecognized PATCH request path `/hinting/go`.');

  await ok(h, 'PUT', '/entropy', {});
  await fault(h, 'PUT', '/entropy', { rate: 1 }, serde('unknown field `rate`, expected `rate_limiter` at line 1 column 7'));
  await fault(h, 'PUT', '/entropy', { rate_limiter: { bandwidth: { size: 1 } } }, serde('missing field `refill_time` at line 1 column 39'));
  await fault(h, 'PUT', '/entropy', { rate_limiter: { bw: {} } }, serde('unknown field `bw`, expected `bandwidth` or `ops` at line 1 column 21'));

  await ok(h, 'PUT', '/serial', { serial_out_path: `${h.dir}/serial.out` });
  await fault(h, 'PUT', '/serial', { serial_out_path: 1 }, serde('invalid type: integer `1`, expected path string at line 1 column 20'));
  await fault(h, 'PUT', '/serial', { out: 'x' }, serde('unknown field `out`, expected `serial_out_path` or `rate_limiter` at line 1 column 6'));
  await fault(h, 'PUT', '/serial', '[', serde('EOF while parsing a list at line 1 column 1'));
});

test('PUT /logger and /metrics', async () => {
  await ok(h, 'PUT', '/logger', { log_path: `${h.dir}/fc.log`, level: 'Warning', show_level: true });
  assert.is(h.logger.level, 'Warn');
  h.logger.level = 'Debug';
  await fault(h, 'PUT', '/logger', { level: 'loud' }, serde('Invalid LevelFilter at line 1 column 15'));
  await fault(h, 'PUT', '/logger', { log_path: `${h.dir}/no/such/dir/x.log` }, 'Logger error: Failed to open target file: No such file or directory (os error 2)');
  await fault(h, 'PUT', '/logger', { colour: true }, serde('unknown field `colour`, expected one of `log_path`, `level`, `show_level`, `show_log_origin`, `module` at line 1 column 9'));

  await fault(h, 'PUT', '/metrics', {}, serde('missing field `metrics_path` at line 1 column 2'));
  await ok(h, 'PUT', '/metrics', { metrics_path: `${h.dir}/m.json`, unknown_field: 1 });
  await fault(h, 'PUT', '/metrics', { metrics_path: `${h.dir}/m2.json` }, 'Metrics error: Cannot initialize the metrics system due to bad user input: Reinitialization of metrics not allowed.');
  await fault(h, 'PUT', '/metrics', { metrics_path: `${h.dir}/no/dir` }, 'Metrics error: Cannot initialize the metrics system due to bad user input: No such file or directory (os error 2)');
});

test('MMDS data and /mmds/config pre-boot', async () => {
  assert.equal(await ok(h, 'GET', '/mmds', undefined, 200), {});
  await fault(h, 'PATCH', '/mmds', { a: 1 }, 'MMDS error: The MMDS data store is not initialized.');
  await ok(h, 'PUT', '/mmds', { z: 1, a: { c: 2, b: [1, 2] } });
  await ok(h, 'PATCH', '/mmds', { z: null, a: { d: 'x' } });
  const r = await h.client.request('GET', '/mmds');
  assert.is(r.body, '{"a":{"b":[1,2],"c":2,"d":"x"}}');
  await fault(h, 'PUT', '/mmds', `"${'x'.repeat(51190)}" `, 'MMDS limit exceeded error: The MMDS patch request doesn\'t fit.', 413).catch(() => undefined);
  await fault(h, 'PUT', '/mmds', '{"a":', serde('EOF while parsing a value at line 1 column 5'));
  await fault(h, 'PUT', '/mmds/foo', {}, 'Unrecognized PUT request path `foo`.');
  await fault(h, 'PUT', '/mmds/config', { network_interfaces: [] }, 'MMMDS config error: The list of network interface IDs that allow forwarding MMDS requests is empty.');
  await fault(h, 'PUT', '/mmds/config', { network_interfaces: ['eth9'] },
    'MMMDS config error: The list of network interface IDs provided contains at least one ID that does not correspond to any existing network interface.');
  await ok(h, 'PUT', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: 'tap0' });
  await fault(h, 'PUT', '/mmds/config', { network_interfaces: ['eth0'], ipv4_address: '10.0.0.1', version: 'V2' }, 'MMMDS config error: The MMDS IPv4 address is not link local.');
  await fault(h, 'PUT', '/mmds/config', '{"network_interfaces": ["eth0"], "ipv4_address": "1.2.3"}', serde('invalid IPv4 address syntax at line 1 column 56'));
  await ok(h, 'PUT', '/mmds/config', { network_interfaces: ['eth0'], version: 'V2' });
  const cfg = (await ok(h, 'GET', '/vm/config', undefined, 200)) as Record<string, unknown>;
  assert.equal(cfg['mmds-config'], { version: 'V2', network_interfaces: ['eth0'], ipv4_address: '169.254.169.254', imds_compat: false });
});

test('the MMDS data store limit answers 413', async () => {
  const small = await startApi({ payloadMaxSize: 51200 });
  try {
    const big = { k: 'x'.repeat(51200 - 8) };
    assert.is(JSON.stringify(big).length, 51200);
    await ok(small, 'PUT', '/mmds', big);
    await fault(small, 'PATCH', '/mmds', { k2: 'y' }, "MMDS limit exceeded error: The MMDS patch request doesn't fit.", 413);
  } finally {
    await small.close();
  }
});

test('PUT /cpu-config, /pmem, /hotplug/memory', async () => {
  await ok(h, 'PUT', '/cpu-config', { cpuid_modifiers: [{ leaf: '0x1', subleaf: '0x0', flags: 0, modifiers: [{ register: 'ecx', bitmap: '0bxxxx1xxxxxxxxxxxxxxxxxxxxxxxxxxx' }] }] });
  await fault(h, 'PUT', '/cpu-config', { reg_modifiers: [] }, serde('unknown field `reg_modifiers`, expected one of `kvm_capabilities`, `cpuid_modifiers`, `msr_modifiers` at line 1 column 16'));
  await fault(h, 'PUT', '/cpu-config', '{"msr_modifiers": [{"addr": "10", "bitmap": "0b1"}]}',
    serde("No supported number system prefix found in value [10]. Make sure to prefix the number with '0x' for hexadecimal numbers or '0b' for binary numbers. at line 1 column 32"));
  await fault(h, 'PUT', '/cpu-config', '{"cpuid_modifiers": [{"leaf": "0x1", "subleaf": "0x0", "flags": 0, "modifiers": [{"register": "rax", "bitmap": "0b1"}]}]}',
    serde('Invalid CPUID register. Must be one of [eax, ebx, ecx, edx] at line 1 column 99'));

  const pm = h.file('pmem.img');
  await ok(h, 'PUT', '/pmem/p0', { id: 'p0', path_on_host: pm, root_device: true });
  await fault(h, 'PUT', '/pmem/p1', { id: 'p1', path_on_host: pm, root_device: true }, 'Pmem config error: A root pmem device already exist');
  await fault(h, 'PUT', '/drives/r', { drive_id: 'r', path_on_host: pm, is_root_device: true }, 'Drive config error: Attempt to add block as a root device while the root device defined as a pmem device');
  await fault(h, 'PUT', '/pmem/p1', '{"id": "p1"}', serde('missing field `path_on_host` at line 1 column 12'));
  await fault(h, 'PATCH', '/pmem/p0', { id: 'p0' }, PRE_BOOT);

  await ok(h, 'PUT', '/hotplug/memory', { total_size_mib: 1024 });
  await fault(h, 'PUT', '/hotplug/memory', { total_size_mib: 1024, block_size_mib: 3 }, 'Memory hotplug config error: Block size must be a power of 2');
  await fault(h, 'PUT', '/hotplug/memory', { total_size_mib: 64 }, 'Memory hotplug config error: Total size must not be lower than slot size (128 MiB)');
  await fault(h, 'PUT', '/hotplug/memory', { total: 1 }, serde('unknown field `total`, expected one of `total_size_mib`, `block_size_mib`, `slot_size_mib` at line 1 column 8'));
  await fault(h, 'GET', '/hotplug/memory', undefined, PRE_BOOT);
  await fault(h, 'PATCH', '/hotplug/memory', { requested_size_mib: 128 }, PRE_BOOT);
  await fault(h, 'PUT', '/hotplug/cpu', { x: 1 }, 'Invalid request method and/or path: PUT hotplug.');
});

test('configuration endpoints are refused after boot', async () => {
  await boot(h);
  for (const [path, body] of [
    ['/boot-source', { kernel_image_path: h.kernel }], ['/machine-config', { vcpu_count: 1, mem_size_mib: 128 }], ['/logger', {}],
    ['/metrics', { metrics_path: `${h.dir}/m` }], ['/vsock', { guest_cid: 3, uds_path: `${h.dir}/v2.sock` }], ['/balloon', { amount_mib: 1, deflate_on_oom: false }],
    ['/entropy', {}], ['/serial', {}], ['/cpu-config', {}], ['/hotplug/memory', { total_size_mib: 1024 }], ['/mmds/config', { network_interfaces: ['x'] }],
  ] as const) {
    await fault(h, 'PUT', path, body, POST_BOOT);
  }
  await fault(h, 'PATCH', '/machine-config', { vcpu_count: 2 }, POST_BOOT);
  await fault(h, 'PUT', '/drives/x', { drive_id: 'x', path_on_host: h.kernel, is_root_device: false }, 'PCI is not enabled');
  assert.equal(await ok(h, 'GET', '/machine-config', undefined, 200), { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false, huge_pages: 'None' });
});

test('PUT /fs/{id} (Kindling\'s virtio-fs): happy paths, refusals with their fault_message, refused after boot', async () => {
  await ok(h, 'PUT', '/fs/work', { id: 'work', tag: 'work', socket: `${h.dir}/virtiofsd.sock` });
  await ok(h, 'PUT', '/fs/home', { id: 'home', tag: 'home', shared_dir: h.dir });
  await fault(h, 'PUT', '/fs/work', { id: 'other', tag: 'work', socket: '/s' }, 'The id from the path does not match the id from the body!');
  await fault(h, 'PUT', '/fs/', { id: 'x', tag: 'x', socket: '/s' }, 'The ID cannot be empty.');
  await fault(h, 'PUT', '/fs/x', { id: 'x', tag: 'x', shared_dir: `${h.dir}/missing` }, `Fs config error: Cannot share ${h.dir}/missing: no such directory`);
  await fault(h, 'PUT', '/fs/x', { id: 'x', tag: 't'.repeat(37), socket: '/s' }, `Fs config error: The tag "${'t'.repeat(37)}" must be 1 to 36 bytes long.`);
  await fault(h, 'PUT', '/fs/x', { id: 'x', tag: 'home', socket: '/s' }, 'Fs config error: The tag "home" is already used by fs device home.');
  await fault(h, 'PUT', '/fs/x', { id: 'x', tag: 'x' }, 'Fs config error: Exactly one of socket and shared_dir must be given.');
  await fault(h, 'PUT', '/fs/x', '{"id":"x","tag":"x","socket":"/s","dax":true}', serde('unknown field `dax`, expected one of `id`, `tag`, `socket`, `shared_dir` at line 1 column 39'));
});

test('PUT /fs/{id} after InstanceStart is refused', async () => {
  await boot(h);
  await fault(h, 'PUT', '/fs/late', { id: 'late', tag: 'late', socket: '/s' }, POST_BOOT);
});

test.run();
