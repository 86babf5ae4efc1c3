/**
 * How the entropy device is wired into a VM without KVM: its place among the virtio devices
 * (after vsock, Firecracker's attach order), the build supports it, and its counters reach the
 * metrics file as the `entropy` group through a group source (deltas per flush), with
 * Kindling's own counter kept out.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../../src/metrics/metrics.js';
import { ENTROPY_KINDLING_COUNTERS, EntropyMetrics } from '../../src/devices/virtio/rng/metrics.js';
import { placements, planVirtioDevices } from '../../src/vmm/virtio-devices.js';
import { KVM_SUPPORTED, requiredKinds } from '../../src/vmm/features.js';
import type { VmConfig } from '../../src/config/resources.js';

const base = {
  drives: [{ kind: 'virtio-block', drive_id: 'rootfs' }],
  networkInterfaces: [{ iface_id: 'eth0' }],
  vsock: { guest_cid: 3, uds_path: '/tmp/v.sock' },
  entropy: { rate_limiter: null },
  pmem: [],
  memoryHotplug: null,
} as unknown as VmConfig;

test('the entropy device is placed after drives, interfaces and vsock', () => {
  const plan = planVirtioDevices(base);
  assert.equal(placements(plan).map((p) => p.gsi), [5, 6, 7, 8]);
  assert.equal(plan.entropy, { config: { rate_limiter: null }, addr: 0xc000_4000, gsi: 8, pci: null });
  assert.equal(plan.vsock?.gsi, 7);
  assert.is(planVirtioDevices({ ...base, entropy: null } as VmConfig).entropy, null);
  const alone = planVirtioDevices({ ...base, drives: [], networkInterfaces: [], vsock: null } as unknown as VmConfig);
  assert.equal(alone.entropy?.gsi, 5);
});

test('the KVM build runs the entropy device and its rate limiter', () => {
  assert.ok(KVM_SUPPORTED.has('entropy'));
  const cfg = {
    machine: { smt: false, huge_pages: 'None', track_dirty_pages: false, cpu_template: null, custom_cpu_template: null },
    bootSource: { initrd_path: null }, balloon: null, drives: [], networkInterfaces: [], mmds: null, pmem: [], vsock: null,
    entropy: { rate_limiter: { bandwidth: { size: 1, refill_time: 1 } } }, memoryHotplug: null,
    serial: { serial_out_path: null, rate_limiter: null }, bootTimer: false, pciEnabled: false,
  } as unknown as VmConfig;
  assert.equal(requiredKinds(cfg), ['entropy', 'rate-limiter']);
  assert.ok(KVM_SUPPORTED.has('rate-limiter'));
});

test('a group source: deltas per flush into `entropy`; bad_chains stays out of the file', () => {
  const m = createMetrics();
  const e = new EntropyMetrics();
  const off = m.addGroupSource('entropy', () => e.snapshot());
  e.inc('entropy_bytes', 4096);
  e.inc('entropy_event_count', 2);
  e.inc('bad_chains', 5);
  const f1 = JSON.parse(m.serialize()) as Record<string, Record<string, number>>;
  assert.is(f1.entropy!.entropy_bytes, 4096);
  assert.is(f1.entropy!.entropy_event_count, 2);
  for (const k of ENTROPY_KINDLING_COUNTERS) assert.not.ok(k in f1.entropy!, k);
  e.inc('entropy_bytes', 10);
  assert.is((JSON.parse(m.serialize()) as Record<string, Record<string, number>>).entropy!.entropy_bytes, 10);
  off();
});

test.run();
