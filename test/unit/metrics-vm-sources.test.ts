/**
 * The groups a running VM feeds from its actors' shared counters (src/vmm/vm-metrics.ts), over
 * stand-in parts whose counters are the real shared buffers (VcpuMetrics, the UART and i8042
 * states, virtio-mmio transport states): `vcpu` summed over vCPUs, `uart`/`i8042` from the
 * devices' wrapping counters, `interrupts.triggers` from the transports; and the Vmm's end as
 * Firecracker's (src/vmm/src/lib.rs `stop` + Drop): its log lines in order and one last metrics
 * line, written after the workers stopped, holding what they counted until then.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics, runningTotalU32 } from '../../src/metrics/metrics.js';
import { VcpuMetrics } from '../../src/actors/vcpu/metrics.js';
import { I8042, Serial } from '../../src/devices/legacy/index.js';
import { MmioInterrupt, MmioState } from '../../src/devices/virtio/mmio-state.js';
import { VIRTIO_INTERRUPT } from '../../src/devices/virtio/device.js';
import { Vmm, type VmmParts } from '../../src/vmm/vmm.js';

type Flush = Record<string, Record<string, number | { min_us: number; max_us: number; sum_us: number }>>;

/** A Vmm over stand-ins whose counters are real shared state; `logs` collects its lines. */
function rig(metrics = createMetrics()) {
  const logs: string[] = [];
  const closeable = { close: (): void => undefined };
  const vcpuMetrics = [new VcpuMetrics(), new VcpuMetrics()];
  const handles = vcpuMetrics.map((m, id) => ({
    id, metrics: m, exited: new Promise(() => undefined),
    timed: false,
    timeExits(): void { this.timed = true; },
    run: async (): Promise<void> => undefined,
    pause: async (): Promise<void> => undefined,
    // A vCPU that handles one more exit while it is being stopped: the final line must hold it.
    stop: async () => { m.inc('exit_io_out'); logs.push(`vcpu${id} stopped`); return { vcpuId: id, exitKind: 1, detail: '' }; },
  }));
  const serialState = Serial.allocateState();
  const i8042State = I8042.allocateState();
  const serial = new Serial(serialState, () => undefined);
  const i8042 = new I8042(i8042State, () => undefined, () => undefined);
  const virtio = [MmioState.create(1), MmioState.create(2)];
  const manifest = [
    { kind: 'serial', port: 0x3f8, state: serialState, gsi: 4 },
    { kind: 'i8042', port: 0x60, state: i8042State, gsi: 1 },
    ...virtio.map((state, i) => ({ kind: i === 0 ? 'virtio-block' : 'virtio-net', state })),
  ];
  const parts = {
    config: { drives: [] }, kvm: closeable, vm: closeable, mem: closeable,
    vcpus: [
      { kvmclockCtrl: (): void => { throw new Error('Invalid argument (os error 22)'); }, close: (): void => undefined },
      { kvmclockCtrl: (): void => undefined, close: (): void => undefined },
    ],
    handles, vmControl: new Int32Array(new SharedArrayBuffer(64)),
    devices: {
      manifest, sendCtrlAltDel: () => true, close: async () => { logs.push('devices closed'); },
      legacyMetrics: () => ({ uart: serial.metrics(), i8042: i8042.metrics() }),
    },
    log: (level: string, msg: string) => logs.push(`${level}: ${msg}`),
    blocks: [], nets: [], metrics,
  } as unknown as VmmParts;
  Atomics.store(parts.vmControl, 1, -1); // VM_SLOT.EXIT_CODE: none yet
  return { vmm: new Vmm(parts), metrics, logs, vcpuMetrics, serial, i8042, virtio };
}

const flush = (m: ReturnType<typeof createMetrics>): Flush => JSON.parse(m.serialize()) as Flush;

test('vcpu: exits, failures and latency aggregates of every vCPU, summed; kvmclock_ctrl failures counted on pause', async () => {
  const r = rig();
  const [a, b] = r.vcpuMetrics;
  a!.inc('exit_io_out', 3);
  a!.recordLatency('exit_io_out_agg', 7);
  b!.inc('exit_io_out');
  b!.recordLatency('exit_io_out_agg', 2);
  b!.inc('exit_mmio_read', 5);
  b!.inc('failures');
  await r.vmm.start();
  await r.vmm.pause();
  const f = flush(r.metrics).vcpu!;
  assert.is(f.exit_io_out, 4);
  assert.is(f.exit_mmio_read, 5);
  assert.is(f.failures, 1);
  assert.is(f.kvmclock_ctrl_fails, 1, 'the first vCPU refused KVM_KVMCLOCK_CTRL');
  assert.equal(f.exit_io_out_agg, { min_us: 2, max_us: 7, sum_us: 9 });
  assert.ok(r.logs.includes('warn: KVM_KVMCLOCK_CTRL call failed Invalid argument (os error 22)'), r.logs.join('\n'));
  a!.inc('exit_io_out');
  const g = flush(r.metrics).vcpu!;
  assert.is(g.exit_io_out, 1, 'the next flush: the delta');
  assert.equal(g.exit_io_out_agg, { min_us: 2, max_us: 7, sum_us: 0 }, 'min/max are gauges, sum a counter');
});

test('vcpu: exits are timed only once a metrics sink can read the latencies', () => {
  const timed = (r: ReturnType<typeof rig>): boolean[] => r.vmm.handles.map((h) => (h as unknown as { timed: boolean }).timed);
  const quiet = rig();
  assert.equal(timed(quiet), [false, false], 'no sink: no clock reads per exit');
  const dir = mkdtempSync(join(tmpdir(), 'kindling-metrics-time-'));
  quiet.metrics.init({ metrics_path: join(dir, 'late.json'), emit_id: false, properties: null }, 'test');
  quiet.metrics.write();
  assert.equal(timed(quiet), [true, true], 'a sink configured later: timed from its first flush');
  const early = createMetrics();
  early.init({ metrics_path: join(dir, 'early.json'), emit_id: false, properties: null }, 'test');
  const r = rig(early);
  assert.equal(timed(r), [true, true], 'a sink configured before the VM: timed from the first exit');
  quiet.metrics.close();
  early.close();
});

test('uart and i8042: the guest-side counters of the shared devices; interrupts: every virtio transport\'s triggers', () => {
  const r = rig();
  for (const ch of 'hi\n') r.serial.writeByte(0, ch.charCodeAt(0)); // THR
  r.serial.readByte(0); // RBR (empty FIFO still counts a read)
  r.i8042.writeByte(4, 0xfe); // CPU reset command
  new MmioInterrupt(r.virtio[0]!, () => undefined).trigger(VIRTIO_INTERRUPT.VRING);
  const net = new MmioInterrupt(r.virtio[1]!, () => undefined);
  net.trigger(VIRTIO_INTERRUPT.VRING);
  net.trigger(VIRTIO_INTERRUPT.CONFIG);
  const f = flush(r.metrics);
  assert.is(f.uart!.write_count, 3);
  assert.is(f.uart!.read_count, 1);
  assert.is(f.i8042!.reset_count, 1);
  assert.is(f.interrupts!.triggers, 3);
  assert.is(f.interrupts!.config_updates, 0, 'MSI-X only (PCI)');
  const g = flush(r.metrics);
  assert.is(g.uart!.write_count, 0);
  assert.is(g.interrupts!.triggers, 0);
});

test('a counter that wraps at 2^32 keeps flushing its increase', () => {
  const total = runningTotalU32();
  assert.is(total(0xffff_fff0), 0xffff_fff0);
  assert.is(total(0x10), 0xffff_fff0 + 0x20, 'wrapped: +0x20');
  assert.is(total(0xffff_ffff), 0xffff_fff0 + 0x20 + 0xffff_ffef, 'no wrap: +0xffffffef');
});

test('the end of a VM: Firecracker\'s lines in order, then one metrics line with what the workers counted until they stopped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-metrics-end-'));
  const path = join(dir, 'metrics.json');
  const metrics = createMetrics();
  metrics.init({ metrics_path: path, emit_id: false, properties: null }, 'test');
  const r = rig(metrics);
  r.i8042.writeByte(4, 0xfe);
  const exit = await r.vmm.stop();
  assert.is(exit.code, 0);
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  assert.is(lines.length, 1, 'one line, written at the end');
  const last = JSON.parse(lines[0]!) as Flush;
  assert.is(last.vcpu!.exit_io_out, 2, 'both vCPUs\' exits while stopping are in it');
  assert.is(last.i8042!.reset_count, 1);
  const order = ['info: Vmm is stopping.', 'info: Killing vCPU threads', 'vcpu0 stopped', 'devices closed'];
  assert.equal(r.logs.filter((l) => order.includes(l)), order, r.logs.join('\n'));
  metrics.close();
});

test.run();
