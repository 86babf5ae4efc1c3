/**
 * How the balloon is wired into a VM without KVM: its place among the virtio devices (first,
 * Firecracker's attach order), the build runs it with free page reporting and hinting,
 * its counters reach the metrics file as the `balloon` group with Kindling's own kept out,
 * and guest RAM's backing picks the advice that frees it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../../src/metrics/metrics.js';
import { BALLOON_KINDLING_COUNTERS, BalloonMetrics } from '../../src/devices/virtio/balloon/metrics.js';
import { placements, planVirtioDevices } from '../../src/vmm/virtio-devices.js';
import { KVM_SUPPORTED, requiredKinds } from '../../src/vmm/features.js';
import type { VmConfig } from '../../src/config/resources.js';

const balloon = { amount_mib: 0, deflate_on_oom: true, stats_polling_interval_s: 1, free_page_hinting: false, free_page_reporting: false };
const base = {
  balloon,
  drives: [{ kind: 'virtio-block', drive_id: 'rootfs' }],
  networkInterfaces: [{ iface_id: 'eth0' }],
  vsock: { guest_cid: 3, uds_path: '/tmp/v.sock' },
  entropy: { rate_limiter: null },
  pmem: [],
  memoryHotplug: null,
} as unknown as VmConfig;

test('the balloon is placed first, before drives, interfaces, vsock and entropy', () => {
  const plan = planVirtioDevices(base);
  assert.equal(placements(plan).map((p) => p.gsi), [5, 6, 7, 8, 9]);
  assert.equal(plan.balloon, { config: balloon, addr: 0xc000_1000, gsi: 5, pci: null });
  assert.equal(plan.drives[0]?.gsi, 6);
  assert.equal(plan.entropy?.gsi, 9);
  assert.is(planVirtioDevices({ ...base, balloon: null } as VmConfig).balloon, null);
});

const cfg = (b: object) => ({
  machine: { smt: false, huge_pages: 'None', track_dirty_pages: false, cpu_template: null, custom_cpu_template: null },
  bootSource: { initrd_path: null }, balloon: { ...balloon, ...b }, drives: [], networkInterfaces: [], mmds: null, pmem: [], vsock: null,
  entropy: null, memoryHotplug: null, serial: { serial_out_path: null, rate_limiter: null }, bootTimer: false, pciEnabled: false,
}) as unknown as VmConfig;

test('the KVM build runs the balloon, free page reporting and free page hinting', () => {
  assert.ok(KVM_SUPPORTED.has('balloon'));
  assert.equal(requiredKinds(cfg({})), ['balloon']);
  assert.equal(requiredKinds(cfg({ free_page_hinting: true, free_page_reporting: true })), ['balloon', 'balloon-free-page-hinting', 'balloon-free-page-reporting']);
  assert.ok(KVM_SUPPORTED.has('balloon-free-page-hinting'));
  assert.ok(KVM_SUPPORTED.has('balloon-free-page-reporting'));
});

test('a group source: deltas per flush into `balloon`; Kindling\'s counters stay out of the file', () => {
  const m = createMetrics();
  const b = new BalloonMetrics();
  const off = m.addGroupSource('balloon', () => b.snapshot());
  b.inc('inflate_count', 3);
  b.inc('pages_discarded', 1000);
  b.inc('bad_pfns', 2);
  const f1 = JSON.parse(m.serialize()) as Record<string, Record<string, number>>;
  assert.is(f1.balloon!.inflate_count, 3);
  for (const k of BALLOON_KINDLING_COUNTERS) assert.not.ok(k in f1.balloon!, k);
  b.inc('inflate_count');
  assert.is((JSON.parse(m.serialize()) as Record<string, Record<string, number>>).balloon!.inflate_count, 1);
  off();
});

test.run();
