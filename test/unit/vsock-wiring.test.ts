/**
 * How the vsock device reaches the rest of the VMM: its counters flow into Firecracker's one
 * `vsock` metrics group (and only Firecracker's fields reach the file), it is placed after the
 * drives and network interfaces, the KVM factory runs it, and a bind failure at InstanceStart
 * carries the text Firecracker's PUT /vsock gives.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../../src/metrics/metrics.js';
import { GROUPS } from '../../src/metrics/groups.js';
import { VSOCK_FIRECRACKER_COUNTERS, VSOCK_KINDLING_COUNTERS, VsockMetrics } from '../../src/devices/virtio/vsock/metrics.js';
import { placements, planVirtioDevices } from '../../src/vmm/virtio-devices.js';
import { KVM_SUPPORTED } from '../../src/vmm/features.js';
import { vsockBindError } from '../../src/config/vsock.js';
import { HostIoError } from '../../src/util/io-error.js';
import type { VmConfig } from '../../src/config/resources.js';

test('the vsock counters Firecracker emits are its `vsock` group, field for field', () => {
  assert.equal([...VSOCK_FIRECRACKER_COUNTERS], GROUPS.vsock.map(([name]) => name));
});

test('a group source: deltas per flush into `vsock`; Kindling\'s own counters stay out of the file', () => {
  const m = createMetrics();
  const v = new VsockMetrics();
  const off = m.addGroupSource('vsock', () => v.snapshot());
  v.inc('conns_added', 3);
  v.inc('tx_bytes_count', 1000);
  v.inc('host_connects_invalid', 7);
  const f1 = JSON.parse(m.serialize()) as Record<string, Record<string, number>>;
  assert.is(f1.vsock!.conns_added, 3);
  assert.is(f1.vsock!.tx_bytes_count, 1000);
  for (const k of VSOCK_KINDLING_COUNTERS) assert.not.ok(k in f1.vsock!, k);
  v.inc('conns_added');
  assert.is((JSON.parse(m.serialize()) as Record<string, Record<string, number>>).vsock!.conns_added, 1);
  v.inc('conns_removed', 4);
  off(); // the device stopped: a last pull, then no more
  v.inc('conns_removed', 100);
  assert.is((JSON.parse(m.serialize()) as Record<string, Record<string, number>>).vsock!.conns_removed, 4);
});

test('placement: vsock after the drives and the interfaces, next window and GSI; the KVM factory runs it', () => {
  const cfg = {
    drives: [{ kind: 'virtio-block', drive_id: 'a', io_engine: 'Sync' }],
    networkInterfaces: [{ iface_id: 'eth0' }, { iface_id: 'eth1' }],
    vsock: { guest_cid: 3, uds_path: '/tmp/v.sock' },
    pmem: [],
  } as unknown as VmConfig;
  const plan = planVirtioDevices(cfg);
  assert.equal(placements(plan), [
    { addr: 0xc000_1000, gsi: 5 }, { addr: 0xc000_2000, gsi: 6 }, { addr: 0xc000_3000, gsi: 7 }, { addr: 0xc000_4000, gsi: 8 },
  ]);
  assert.equal(plan.vsock?.config, { guest_cid: 3, uds_path: '/tmp/v.sock' });
  assert.is(planVirtioDevices({ ...cfg, vsock: null } as VmConfig).vsock, null);
  assert.ok(KVM_SUPPORTED.has('vsock'));
});

test('a bind that fails at InstanceStart reads as Firecracker\'s PUT /vsock error', () => {
  assert.is(vsockBindError(HostIoError.os('EADDRINUSE')).faultMessage,
    'Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: Address in use (os error 98)');
});

test.run();
