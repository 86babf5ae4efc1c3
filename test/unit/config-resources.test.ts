/**
 * `VmResources` semantics and `--config-file` (firecracker src/vmm/src/vmm_config/): same-id replace, root first,
 * one root, MAC uniqueness, MMDS attachment, GET /vm/config shape, config-file order and errors.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigFileError, fromConfigFile } from '../../src/config/config-file.js';
import { parseKernelCmdline } from '../../src/config/boot-source.js';
import { VmResources } from '../../src/config/resources.js';
import type { LoggerConfig } from '../../src/config/logger.js';
import { tempFile } from '../helpers/api-harness.js';

const disk = tempFile('disk.img', 'x'.repeat(1024));
const kernel = tempFile('vmlinux', 'ELF');
const drive = (id: string, root = false) => ({
  drive_id: id, partuuid: null, is_root_device: root, cache_type: 'Unsafe' as const, is_read_only: null, path_on_host: disk, rate_limiter: null, io_engine: null, socket: null,
});
const net = (id: string, mac: string | null = null) => ({ iface_id: id, host_dev_name: `tap_${id}`, guest_mac: mac, mtu: null, rx_rate_limiter: null, tx_rate_limiter: null });

test('drives: root first, same id replaced in place, root moves to the front', () => {
  const r = new VmResources();
  r.insertDrive(drive('a'));
  r.insertDrive(drive('b'));
  r.insertDrive(drive('root', true));
  assert.equal(r.drives.map((d) => d.drive_id), ['root', 'a', 'b']);
  r.insertDrive({ ...drive('root', false) });
  r.insertDrive({ ...drive('b', true) });
  assert.equal(r.drives.map((d) => d.drive_id), ['b', 'a', 'root']);
  assert.throws(() => r.insertDrive(drive('c', true)), /A root block device already exists!/);
});

test('network interfaces: replace keeps the MAC check scoped to other ids; replace drops MMDS', () => {
  const r = new VmResources();
  r.insertNetworkInterface(net('eth0', 'aa:bb:cc:dd:ee:ff'));
  r.insertNetworkInterface(net('eth1'));
  r.insertNetworkInterface(net('eth0', 'aa:bb:cc:dd:ee:ff'));
  assert.equal(r.networkInterfaces.map((n) => n.iface_id), ['eth1', 'eth0']);
  assert.throws(() => r.insertNetworkInterface(net('eth2', 'aa:bb:cc:dd:ee:ff')), /The MAC address is already in use: aa:bb:cc:dd:ee:ff/);
  r.setMmdsConfig({ version: 'V1', network_interfaces: ['eth0'], ipv4_address: null, imds_compat: false });
  assert.equal(r.effectiveMmdsConfig()?.network_interfaces, ['eth0']);
  r.insertNetworkInterface(net('eth0'));
  assert.is(r.effectiveMmdsConfig(), null);
});

test('kernel command line: boot/init split outside quotes, 2048-byte capacity incl. NUL', () => {
  assert.equal(parseKernelCmdline(' a=1 -- init x '), { boot_args: 'a=1', init_args: 'init x' });
  assert.equal(parseKernelCmdline('a="x -- y" -- z'), { boot_args: 'a="x -- y"', init_args: 'z' });
  assert.equal(parseKernelCmdline('x'.repeat(2047)).boot_args.length, 2047);
  assert.throws(() => parseKernelCmdline('x'.repeat(2048)), /Invalid cmdline capacity provided/);
  assert.equal(parseKernelCmdline(`${'x'.repeat(2040)} -- abc`).init_args, 'abc');
  assert.throws(() => parseKernelCmdline(`${'x'.repeat(2041)} -- abc`), /Invalid cmdline capacity provided/);
});

test('GET /vm/config shape: kebab-case keys, explicit nulls, normalized rate limiters', () => {
  const r = new VmResources();
  r.setBootSource({ kernel_image_path: kernel, initrd_path: null, boot_args: null });
  r.insertDrive({ ...drive('d'), rate_limiter: { bandwidth: { size: 0, one_time_burst: null, refill_time: 100 }, ops: null } });
  const c = r.toFullVmConfiguration();
  assert.equal(Object.keys(c), ['balloon', 'drives', 'boot-source', 'cpu-config', 'logger', 'machine-config', 'metrics', 'mmds-config', 'network-interfaces', 'vsock', 'entropy', 'pmem', 'memory-hotplug']);
  assert.is(c.drives[0]!.rate_limiter, null);
  assert.is(c.drives[0]!.io_engine, 'Sync');
  assert.equal(c['boot-source'], { kernel_image_path: kernel, initrd_path: null, boot_args: null });
  const vm = r.toVmConfig('id');
  assert.is(vm.bootSource.cmdline.boot_args, 'reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce');
});

test('config file: good file builds resources in order and applies logger first', () => {
  const order: string[] = [];
  const json = JSON.stringify({
    'boot-source': { kernel_image_path: kernel, boot_args: 'console=ttyS0' },
    drives: [drive('rootfs', true)],
    'machine-config': { vcpu_count: 2, mem_size_mib: 512 },
    'network-interfaces': [net('eth0')],
    'mmds-config': { network_interfaces: ['eth0'], version: 'V2' },
    balloon: { amount_mib: 128, deflate_on_oom: true },
    logger: { level: 'Debug' },
    'unknown-top-level-key': { ignored: true },
  });
  const r = fromConfigFile(json, { configureLogger: (c: LoggerConfig) => order.push(`logger:${c.level}`), metadata: '{"k": "v"}' });
  assert.equal(order, ['logger:Debug']);
  assert.is(r.machineConfig.vcpu_count, 2);
  assert.is(r.drives[0]!.drive_id, 'rootfs');
  assert.is(r.mmds!.toJson(), '{"k":"v"}');
  assert.equal(r.effectiveMmdsConfig()?.version, 'V2');
});

test('config file: errors read like ResourcesError', () => {
  const bad = (json: unknown): string => {
    try {
      fromConfigFile(typeof json === 'string' ? json : JSON.stringify(json));
    } catch (e) {
      assert.instance(e, ConfigFileError);
      return (e as Error).message;
    }
    throw new Error('expected failure');
  };
  assert.is(bad({ 'boot-source': { kernel_image_path: kernel } }), 'Invalid JSON: missing field `drives` at line 1 column 45'.replace('45', String(JSON.stringify({ 'boot-source': { kernel_image_path: kernel } }).length)));
  assert.is(bad({ 'boot-source': { kernel_image_path: kernel }, drives: [], 'machine-config': { vcpu_count: 0, mem_size_mib: 128 } }),
    'VM config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.');
  assert.is(bad({ 'boot-source': { kernel_image_path: kernel }, drives: [], 'machine-config': { vcpu_count: 1 } }).replace(/column \d+/, 'column N'),
    'Invalid JSON: missing field `mem_size_mib` at line 1 column N');
  assert.is(bad({ 'boot-source': { kernel_image_path: '/nonexistent/k' }, drives: [] }), 'Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)');
  assert.is(bad({ 'boot-source': { kernel_image_path: kernel }, drives: [drive('a', true), drive('b', true)] }), 'Block device error: A root block device already exists!');
  assert.is(bad({ 'boot-source': { kernel_image_path: kernel }, drives: [], 'cpu-config': '/nonexistent.json' }), 'File operation error: No such file or directory (os error 2)');
  assert.is(bad({ 'boot-source': { kernel_image_path: kernel }, drives: [], 'cpu-config': { bogus: 1 } }).replace(/column \d+/, 'column N'),
    'Invalid JSON: data did not match any variant of untagged enum CustomCpuTemplateOrPath at line 1 column N');
});

test.run();
