/**
 * How the pmem and virtio-mem devices are placed and wired (docs/design.md "Memory hotplug",
 * "Persistent memory"): guest-physical placement past the 64-bit MMIO gap, MMIO windows in
 * Firecracker's attach order, the root=/dev/pmemN argument, KVM slots of the hotplug region,
 * and the KVM build running both kinds.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FIRST_ADDR_PAST_64BITS_MMIO, GiB, MiB, PAST_64BITS_MMIO_SIZE, PMEM_ALIGNMENT, VIRTIO_MMIO_SIZE, VIRTIO_MMIO_START, deviceMemoryLayout,
} from '../../src/arch/x86_64/layout.js';
import { hotplugSlotPieces } from '../../src/actors/virtio/mem-handle.js';
import { placements, planVirtioDevices } from '../../src/vmm/virtio-devices.js';
import { addDeviceArgs } from '../../src/vmm/builder.js';
import { Cmdline } from '../../src/boot/cmdline.js';
import { KVM_SUPPORTED, requiredKinds } from '../../src/vmm/features.js';
import type { VmConfig } from '../../src/config/resources.js';
import { captureState } from '../../src/vmm/snapshot-create.js';
import type { VmmParts } from '../../src/vmm/vmm.js';
import type { SnapshotError } from '../../src/errors.js';

test('device memory: the hotplug region first at 512 GiB, then each pmem window 2 MiB-aligned; too much is refused', () => {
  const l = deviceMemoryLayout(256 * MiB, 1024 * MiB, [3 * MiB, 64 * MiB]);
  assert.equal(l, {
    hotplug: { gpa: FIRST_ADDR_PAST_64BITS_MMIO, size: 1024 * MiB },
    pmem: [{ gpa: FIRST_ADDR_PAST_64BITS_MMIO + 1024 * MiB, size: 4 * MiB }, { gpa: FIRST_ADDR_PAST_64BITS_MMIO + 1028 * MiB, size: 64 * MiB }],
  });
  assert.is(FIRST_ADDR_PAST_64BITS_MMIO, 512 * GiB);
  assert.equal(deviceMemoryLayout(256 * MiB, null, [PMEM_ALIGNMENT])?.pmem, [{ gpa: 512 * GiB, size: PMEM_ALIGNMENT }]);
  assert.is(deviceMemoryLayout(256 * MiB, PAST_64BITS_MMIO_SIZE, [1]), null, 'a pmem window past the end of the window');
  assert.ok(deviceMemoryLayout(256 * MiB, PAST_64BITS_MMIO_SIZE, []));
  // A guest whose RAM reaches past 512 GiB: the devices go after its RAM.
  const big = deviceMemoryLayout(600 * GiB, 128 * MiB, []);
  assert.ok(big!.hotplug!.gpa >= 512 * GiB + (600 - 256) * GiB);
  assert.equal(deviceMemoryLayout(16 * GiB * 1024, null, []), { hotplug: null, pmem: [] }, 'no device memory: nothing to place');
});

test('hotplug KVM slots: one per slot, split where a slot crosses two RAM chunks, numbered on', () => {
  const base = 512 * GiB;
  const one = hotplugSlotPieces(base, 512 * MiB, 128 * MiB, [{ gpa: base, size: 512 * MiB, hostAddr: 0x7000_0000_0000n }], 3);
  assert.equal(one.map((s) => s.map((p) => [p.kvmSlot, p.gpa - base, p.size / MiB])), [[[3, 0, 128]], [[4, 128 * MiB, 128]], [[5, 256 * MiB, 128]], [[6, 384 * MiB, 128]]]);
  assert.is(one[1]![0]!.hostAddr, 0x7000_0000_0000n + BigInt(128 * MiB));
  const split = hotplugSlotPieces(base, 384 * MiB, 192 * MiB, [
    { gpa: base, size: 256 * MiB, hostAddr: 0x1000_0000n }, { gpa: base + 256 * MiB, size: 128 * MiB, hostAddr: 0x9000_0000n },
  ], 10);
  assert.equal(split.map((s) => s.map((p) => [p.kvmSlot, p.size / MiB])), [[[10, 192]], [[11, 64], [12, 128]]]);
  assert.is(split[1]![1]!.hostAddr, 0x9000_0000n);
});

const cfg = (o: object): VmConfig => ({
  machine: { smt: false, huge_pages: 'None', track_dirty_pages: false, cpu_template: null, custom_cpu_template: null },
  bootSource: { initrd_path: null }, balloon: null, drives: [{ kind: 'virtio-block', drive_id: 'rootfs', is_root_device: false, io_engine: 'Sync' }],
  networkInterfaces: [{ iface_id: 'eth0' }], mmds: null, vsock: { guest_cid: 3, uds_path: '/tmp/v.sock' }, entropy: { rate_limiter: null },
  pmem: [{ id: 'a', path_on_host: '/a', root_device: false, read_only: false, rate_limiter: null }, { id: 'b', path_on_host: '/b', root_device: true, read_only: true, rate_limiter: null }],
  memoryHotplug: { total_size_mib: 1024, block_size_mib: 2, slot_size_mib: 128 },
  serial: { serial_out_path: null, rate_limiter: null }, bootTimer: false, pciEnabled: false, ...o,
}) as unknown as VmConfig;

test('placement: pmem after the interfaces, before vsock; virtio-mem last (Firecracker\'s attach order)', () => {
  const plan = planVirtioDevices(cfg({}));
  const slot = (addr: number): number => (addr - VIRTIO_MMIO_START) / VIRTIO_MMIO_SIZE;
  assert.equal([plan.drives[0]!, plan.nets[0]!, plan.pmem[0]!, plan.pmem[1]!, plan.vsock!, plan.entropy!, plan.mem!].map((d) => slot(d.addr)), [0, 1, 2, 3, 4, 5, 6]);
  assert.equal(plan.pmem.map((p) => p.gsi), [7, 8]);
  assert.is(placements(plan).length, 7, 'all of them in the DSDT and on the command line');
  assert.is(planVirtioDevices(cfg({ memoryHotplug: null })).mem, null);
});

test('command line: root=/dev/pmemN ro|rw by the root device\'s place among the pmem devices, before its virtio_mmio.device', () => {
  const plan = planVirtioDevices(cfg({ vsock: null, entropy: null, memoryHotplug: null, networkInterfaces: [] }));
  const c = Cmdline.parse('console=ttyS0');
  addDeviceArgs(c, false, plan);
  assert.is(c.toString(), 'console=ttyS0 pci=off virtio_mmio.device=4K@0xc0001000:5 virtio_mmio.device=4K@0xc0002000:6 ' +
    'root=/dev/pmem1 ro virtio_mmio.device=4K@0xc0003000:7');
  const rw = planVirtioDevices(cfg({ drives: [], networkInterfaces: [], vsock: null, entropy: null, memoryHotplug: null,
    pmem: [{ id: 'r', path_on_host: '/r', root_device: true, read_only: false, rate_limiter: null }] }));
  const c2 = Cmdline.parse('');
  addDeviceArgs(c2, false, rw);
  assert.is(c2.toString(), 'pci=off root=/dev/pmem0 rw virtio_mmio.device=4K@0xc0001000:5');
});

test('the KVM build runs pmem devices and memory hotplug', () => {
  assert.ok(KVM_SUPPORTED.has('pmem'));
  assert.ok(KVM_SUPPORTED.has('memory-hotplug'));
  assert.equal(requiredKinds(cfg({ drives: [], networkInterfaces: [], vsock: null, entropy: null })), ['pmem', 'memory-hotplug']);
});

test('snapshots of a VM with either device are refused with a clear error (not saved by Kindling yet)', async () => {
  for (const [o, what] of [[{}, 'memory hotplug \\(virtio-mem\\)'], [{ memoryHotplug: null }, 'pmem devices']] as const) {
    const e = await captureState({ config: cfg(o) } as unknown as VmmParts).then(() => null, (x: SnapshotError) => x);
    assert.is(e?.code, 'SNAPSHOT_NOT_ALLOWED');
    assert.match(e!.message, new RegExp(`^Cannot save the microVM state: snapshots of a microVM with ${what} are not supported by Kindling yet$`));
  }
});

test.run();
