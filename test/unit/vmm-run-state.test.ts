/**
 * The Vmm's run-state machine over stand-in parts (no KVM): the order of what it asks of the
 * vCPU actors and device actors on start, pause and resume.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Vmm, type VmmParts } from '../../src/vmm/vmm.js';

/** A Vmm whose vCPU handles and block handles append to `calls`. */
function rig(): { vmm: Vmm; calls: string[] } {
  const calls: string[] = [];
  const closeable = { close: (): void => undefined };
  const vcpu = (id: number) => ({
    id,
    exited: new Promise(() => undefined),
    run: async (): Promise<void> => { calls.push(`vcpu${id}.run`); },
    pause: async (): Promise<void> => { calls.push(`vcpu${id}.pause`); },
    stop: async () => ({ vcpuId: id, exitKind: 0, detail: '' }),
  });
  const block = (driveId: string) => ({
    driveId,
    kick: (): void => { calls.push(`${driveId}.kick`); },
    stop: async (): Promise<void> => undefined,
    metricsSnapshot: () => ({}),
  });
  const parts = {
    config: { drives: [] }, kvm: closeable, vm: closeable, mem: closeable,
    vcpus: [{ kvmclockCtrl: (): void => undefined, close: (): void => undefined }],
    handles: [vcpu(0), vcpu(1)], vmControl: new Int32Array(new SharedArrayBuffer(64)),
    devices: { sendCtrlAltDel: () => true, close: async () => undefined },
    log: () => undefined, blocks: [block('rootfs'), block('data')], nets: [block('eth0')],
  } as unknown as VmmParts;
  return { vmm: new Vmm(parts), calls };
}

test('resume kicks every device before any vCPU runs again (resume_vm → kick_devices)', async () => {
  const { vmm, calls } = rig();
  await vmm.start();
  await vmm.pause();
  calls.length = 0;
  await vmm.resume();
  assert.equal(calls.slice(0, 3).sort(), ['data.kick', 'eth0.kick', 'rootfs.kick']);
  assert.equal(calls.slice(3).sort(), ['vcpu0.run', 'vcpu1.run']);
  assert.is(vmm.state, 'Running');
});

test('start and pause do not kick devices; pause then resume is idempotent per state', async () => {
  const { vmm, calls } = rig();
  await vmm.start();
  await vmm.pause();
  await vmm.pause();
  assert.not.ok(calls.some((c) => c.endsWith('.kick')));
  assert.is(vmm.state, 'Paused');
  await vmm.resume();
  const kicks = calls.filter((c) => c.endsWith('.kick')).length;
  await vmm.resume();
  assert.is(calls.filter((c) => c.endsWith('.kick')).length, kicks, 'resuming a running VM does nothing');
});

test.run();
