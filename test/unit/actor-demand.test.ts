/**
 * Pre-started actors follow the pre-boot configuration (VmFactory.expectActors,
 * src/vmm/controller.ts actorDemand): after each pre-boot request the factory learns how many
 * actors of each kind InstanceStart will start, so the KVM factory can load their workers
 * while the client is still configuring. Real API server and controller; the VM is the fake.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startApi } from '../helpers/api-harness.js';

test('each pre-boot request reports the actors the configuration asks for; none after InstanceStart', async () => {
  const h = await startApi();
  try {
    const last = (): Record<string, number> | undefined => h.backend.actorDemands.at(-1);
    let r = await h.client.request('PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 128 });
    assert.is(r.status, 204);
    assert.equal(last(), { vcpu: 2, block: 0, net: 0, vsock: 0, entropy: 0, balloon: 0, mem: 0, pmem: 0, fs: 0 });
    r = await h.client.request('PUT', '/drives/rootfs', { drive_id: 'rootfs', path_on_host: h.file('root.img'), is_root_device: true, is_read_only: false });
    assert.is(r.status, 204);
    r = await h.client.request('PUT', '/drives/data', { drive_id: 'data', path_on_host: h.file('data.img'), is_root_device: false, is_read_only: true });
    assert.is(r.status, 204);
    assert.is(last()?.block, 2);
    // The same drive again replaces it: still two.
    r = await h.client.request('PUT', '/drives/data', { drive_id: 'data', path_on_host: h.file('data.img'), is_root_device: false, is_read_only: false });
    assert.is(last()?.block, 2);
    r = await h.client.request('PUT', '/entropy', {});
    assert.is(r.status, 204);
    assert.equal(last(), { vcpu: 2, block: 2, net: 0, vsock: 0, entropy: 1, balloon: 0, mem: 0, pmem: 0, fs: 0 });
    // A refused request changes nothing: the demand stays what it was.
    const before = h.backend.actorDemands.length;
    r = await h.client.request('PUT', '/machine-config', { vcpu_count: 0, mem_size_mib: 128 });
    assert.is(r.status, 400);
    assert.is(h.backend.actorDemands.length, before);
    r = await h.client.request('PUT', '/boot-source', { kernel_image_path: h.kernel });
    assert.is(r.status, 204);
    r = await h.client.request('PUT', '/actions', { action_type: 'InstanceStart' });
    assert.is(r.status, 204);
    const atStart = h.backend.actorDemands.length;
    r = await h.client.request('GET', '/machine-config');
    assert.is(r.status, 200);
    assert.is(h.backend.actorDemands.length, atStart, 'after InstanceStart the pool is not topped up');
  } finally {
    await h.close();
  }
});

test.run();
