/**
 * The library validates through the API's own store and controller (src/vmm/microvm.ts): a
 * bad resource throws the VmmActionError the API would answer with, before anything touches
 * KVM. Real files, no VM.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MicroVm } from '../../src/vmm/microvm.js';
import { VmmActionError } from '../../src/vmm/actions.js';

const dir = mkdtempSync(join(tmpdir(), 'kindling-lib-'));
const kernel = join(dir, 'vmlinux');
writeFileSync(kernel, 'not really a kernel');

function thrown(f: () => unknown): VmmActionError {
  try {
    f();
  } catch (e) {
    assert.instance(e, VmmActionError);
    return e as VmmActionError;
  }
  throw new Error('expected a VmmActionError');
}

test('a missing kernel reads as PUT /boot-source would answer', () => {
  const e = thrown(() => new MicroVm({ 'boot-source': { kernel_image_path: join(dir, 'missing') } }));
  assert.is(e.code, 'VMM_ACTION_FAILED');
  assert.match(e.message, /^Boot source error: The kernel file cannot be opened: No such file or directory \(os error 2\)/);
});

test('machine-config is applied like PATCH: partial bodies keep the defaults, bad values are refused', () => {
  const e = thrown(() => new MicroVm({ 'boot-source': { kernel_image_path: kernel }, 'machine-config': { vcpu_count: 0 } }));
  assert.match(e.message, /The number of vCPUs must be greater than 0/);
  const u = thrown(() => new MicroVm({ 'boot-source': { kernel_image_path: kernel }, 'machine-config': { vcpus: 2 } as never }));
  assert.match(u.message, /unknown field `vcpus`/);
  assert.not.throws(() => new MicroVm({ 'boot-source': { kernel_image_path: kernel }, 'machine-config': { mem_size_mib: 64 } }));
});

test('cpu-config takes the PUT /cpu-config body as an object or as text, and refuses what the API refuses', () => {
  const t = { cpuid_modifiers: [{ leaf: '0x1', subleaf: '0x0', flags: 0, modifiers: [{ register: 'ecx', bitmap: '0bx0' }] }] };
  assert.not.throws(() => new MicroVm({ 'boot-source': { kernel_image_path: kernel }, 'cpu-config': t }));
  assert.not.throws(() => new MicroVm({ 'boot-source': { kernel_image_path: kernel }, 'cpu-config': JSON.stringify(t) }));
  const bad = thrown(() => new MicroVm({ 'boot-source': { kernel_image_path: kernel }, 'cpu-config': { vcpu_features: [] } }));
  assert.match(bad.message, /unknown field `vcpu_features`, expected one of `kvm_capabilities`, `cpuid_modifiers`, `msr_modifiers`/);
});

test('drives: two roots are refused; a missing backing file names the path', () => {
  const img = join(dir, 'disk.img');
  writeFileSync(img, Buffer.alloc(4096));
  const two = thrown(() => new MicroVm({
    'boot-source': { kernel_image_path: kernel },
    drives: [{ drive_id: 'a', is_root_device: true, path_on_host: img }, { drive_id: 'b', is_root_device: true, path_on_host: img }],
  }));
  assert.match(two.message, /A root block device already exists!/);
  const missing = thrown(() => new MicroVm({ 'boot-source': { kernel_image_path: kernel }, drives: [{ drive_id: 'a', is_root_device: false, path_on_host: join(dir, 'nope') }] }));
  assert.match(missing.message, /No such file or directory \(os error 2\) .*nope/);
});

test('start() refuses a device this build does not run, naming it, and the VM stays unstarted', async () => {
  const vm = new MicroVm({ 'boot-source': { kernel_image_path: kernel }, drives: [{ drive_id: 'v', is_root_device: false, socket: join(dir, 'vhost.sock') }] });
  const err = await vm.start().then(() => null, (e: unknown) => e as VmmActionError);
  assert.instance(err, VmmActionError);
  assert.is(err!.message, 'Start microvm error: The configuration uses vhost-user-block drives (drive `socket`), which this Kindling build does not support.');
  assert.is(vm.state, 'Not started');
  const paused = await vm.pause().then(() => null, (e: unknown) => e as VmmActionError);
  assert.is(paused!.message, 'The requested operation is not supported before starting the microVM.');
});

test.run();
