/** virtio-mmio v2 register file: ids, feature paging, the strict status machine, queue windows, activation. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { arrayGuestMemory } from '../../src/memory/guest-memory.js';
import { MmioTransport } from '../../src/devices/virtio/mmio.js';
import { MMIO_QUEUE_SLOT, MMIO_SLOT, MmioInterrupt, MmioState } from '../../src/devices/virtio/mmio-state.js';
import { ByteConfigSpace, VIRTIO_INTERRUPT, type VirtioActivation } from '../../src/devices/virtio/device.js';
import {
  VIRTIO_MMIO_SHM_BASE_HIGH, VIRTIO_MMIO_SHM_BASE_LOW, VIRTIO_MMIO_SHM_LEN_HIGH, VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_SHM_SEL,
  VIRTIO_CONFIG_S_ACKNOWLEDGE as ACK, VIRTIO_CONFIG_S_DRIVER as DRIVER, VIRTIO_CONFIG_S_DRIVER_OK as DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED as FAILED, VIRTIO_CONFIG_S_FEATURES_OK as FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET as NEEDS_RESET,
  VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1, VIRTIO_ID_BLOCK, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_MAGIC, VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_VERSION, VIRTIO_BLK_F_RO, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_QUEUE_DESC_LOW, featureBit,
} from '../../src/devices/virtio/constants.js';
import type { VirtioMmioError } from '../../src/errors.js';
import { MockQueue, mmioDriverInit, mmioDriverOk, mmioNotify, mmioRead32, mmioSetupQueue, mmioWrite32 } from '../helpers/mock-queue.js';

const RAM = 64 * 1024;
const QUEUE_MAX = 8;
/** virtio 1.2 QueueReset: not implemented by Kindling (no VIRTIO_F_RING_RESET), so unknown. */
const VIRTIO_MMIO_QUEUE_RESET = 0x0c0;
const OFFERED = featureBit(VIRTIO_F_RING_EVENT_IDX) | featureBit(VIRTIO_BLK_F_RO);

function rig(opts: { onReset?: () => boolean } = {}) {
  const mem = arrayGuestMemory([{ gpa: 0, size: RAM }]);
  const buffer = MmioState.create(1);
  const log = {
    activations: [] as VirtioActivation[],
    failures: [] as VirtioMmioError[],
    notifies: [] as number[],
    irqs: [] as number[],
    warnings: [] as string[],
    resets: 0,
    configWrites: [] as [number, number[]][],
  };
  const config = new ByteConfigSpace(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), (o, d) => log.configWrites.push([o, [...d]]));
  const t = new MmioTransport(
    buffer,
    { deviceId: VIRTIO_ID_BLOCK, features: OFFERED, queueMaxSizes: [QUEUE_MAX], config },
    {
      onActivate: (a) => log.activations.push(a),
      onActivateFailed: (e) => log.failures.push(e),
      onNotify: (q) => log.notifies.push(q),
      interrupt: (bit) => log.irqs.push(bit),
      onReset: () => {
        log.resets++;
        return opts.onReset ? opts.onReset() : true;
      },
      warn: (m) => log.warnings.push(m),
    },
    mem,
  );
  const mq = new MockQueue(mem, QUEUE_MAX, 0);
  return { mem, buffer, t, log, mq, state: new MmioState(buffer) };
}

const status = (t: MmioTransport) => mmioRead32(t, VIRTIO_MMIO_STATUS);
const setStatus = (t: MmioTransport, v: number) => mmioWrite32(t, VIRTIO_MMIO_STATUS, v);

test('identification registers', () => {
  const { t } = rig();
  assert.is(mmioRead32(t, VIRTIO_MMIO_MAGIC_VALUE), VIRTIO_MMIO_MAGIC);
  assert.is(mmioRead32(t, VIRTIO_MMIO_VERSION), 2);
  assert.is(mmioRead32(t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
  assert.is(mmioRead32(t, VIRTIO_MMIO_VENDOR_ID), 0);
  assert.is(mmioRead32(t, VIRTIO_MMIO_CONFIG_GENERATION), 0);
  assert.is(status(t), 0);
});

test('register accesses that are not 32 bits wide are ignored', () => {
  const { t, log } = rig();
  const two = new Uint8Array([0xaa, 0xaa]);
  t.read(VIRTIO_MMIO_MAGIC_VALUE, two);
  assert.equal([...two], [0, 0]);
  t.write(VIRTIO_MMIO_STATUS, new Uint8Array([ACK]));
  assert.is(status(t), 0);
  assert.is(log.warnings.length, 2);
});

test('unknown registers read as zero', () => {
  const { t, log } = rig();
  assert.is(mmioRead32(t, VIRTIO_MMIO_QUEUE_NUM), 0, 'QueueNum is write-only');
  assert.is(mmioRead32(t, VIRTIO_MMIO_QUEUE_RESET), 0);
  assert.is(log.warnings.length, 2);
});

test('shared memory registers: every region is absent (length and base read -1), SHMSel writes are accepted', () => {
  const { t, log } = rig();
  for (const sel of [0, 1, 255]) {
    mmioWrite32(t, VIRTIO_MMIO_SHM_SEL, sel);
    for (const r of [VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_SHM_LEN_HIGH, VIRTIO_MMIO_SHM_BASE_LOW, VIRTIO_MMIO_SHM_BASE_HIGH]) {
      assert.is(mmioRead32(t, r), 0xffff_ffff);
    }
  }
  assert.is(log.warnings.length, 0);
});

test('device features are paged; page 1 bit 0 is VIRTIO_F_VERSION_1; other pages read 0', () => {
  const { t } = rig();
  mmioWrite32(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  assert.is(mmioRead32(t, VIRTIO_MMIO_DEVICE_FEATURES), Number(OFFERED));
  mmioWrite32(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  assert.is(mmioRead32(t, VIRTIO_MMIO_DEVICE_FEATURES), 1 << (VIRTIO_F_VERSION_1 - 32));
  mmioWrite32(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
  assert.is(mmioRead32(t, VIRTIO_MMIO_DEVICE_FEATURES), 0);
});

test('driver features: accepted only between DRIVER and FEATURES_OK, unoffered bits dropped', () => {
  const { t, state, mq, log } = rig();
  const ackPage = (page: number, v: number) => {
    mmioWrite32(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, page);
    mmioWrite32(t, VIRTIO_MMIO_DRIVER_FEATURES, v);
  };
  ackPage(0, 0xffffffff); // status 0: ignored
  assert.is(state.ackedFeatures(), 0n);
  setStatus(t, ACK);
  setStatus(t, ACK | DRIVER);
  ackPage(0, 0xffffffff);
  ackPage(1, 0xffffffff);
  const expected = OFFERED | featureBit(VIRTIO_F_VERSION_1);
  assert.is(state.ackedFeatures(), expected);
  setStatus(t, ACK | DRIVER | FEATURES_OK);
  ackPage(0, 0); // after FEATURES_OK: ignored
  assert.is(state.ackedFeatures(), expected);
  mmioSetupQueue(t, 0, mq);
  mmioDriverOk(t);
  assert.is(log.activations[0]?.ackedFeatures, expected, 'the activation carries the acked set');
});

test('the legal status sequence is accepted', () => {
  const { t } = rig();
  for (const s of [ACK, ACK | DRIVER, ACK | DRIVER | FEATURES_OK]) {
    setStatus(t, s);
    assert.is(status(t), s);
  }
});

test('each illegal status transition is ignored', () => {
  const cases: [number[], number][] = [
    [[], DRIVER], // skipping ACKNOWLEDGE
    [[], ACK | DRIVER], // two steps at once
    [[ACK], ACK | FEATURES_OK], // FEATURES_OK without DRIVER
    [[ACK], ACK | DRIVER | FEATURES_OK],
    [[ACK, ACK | DRIVER], ACK], // clearing a bit
    [[ACK, ACK | DRIVER], ACK | DRIVER | DRIVER_OK], // DRIVER_OK before FEATURES_OK
    [[ACK, ACK | DRIVER, ACK | DRIVER | FEATURES_OK], ACK | DRIVER], // clearing FEATURES_OK
    [[ACK, ACK | DRIVER, ACK | DRIVER | FEATURES_OK], ACK | DRIVER | FEATURES_OK | NEEDS_RESET], // driver may not set NEEDS_RESET
  ];
  for (const [path, bad] of cases) {
    const { t, log } = rig();
    for (const s of path) setStatus(t, s);
    const before = status(t);
    setStatus(t, bad);
    assert.is(status(t), before, `0x${before.toString(16)} -> 0x${bad.toString(16)}`);
    assert.is(log.warnings.length, 1);
  }
});

test('FAILED is latched until reset', () => {
  const { t } = rig();
  setStatus(t, ACK);
  setStatus(t, FAILED | ACK | DRIVER);
  assert.is(status(t), ACK | FAILED);
  setStatus(t, ACK | DRIVER);
  assert.is(status(t), ACK | FAILED, 'no transition out of FAILED');
  setStatus(t, 0);
  assert.is(status(t), 0);
});

test('queue fields are writable only with FEATURES_OK and without DRIVER_OK/FAILED', () => {
  const { t, state } = rig();
  const num = () => state.load(state.queueSlot(0, MMIO_QUEUE_SLOT.NUM));
  setStatus(t, ACK);
  setStatus(t, ACK | DRIVER);
  mmioWrite32(t, VIRTIO_MMIO_QUEUE_SEL, 0);
  mmioWrite32(t, VIRTIO_MMIO_QUEUE_NUM, 4);
  assert.is(num(), 0, 'before FEATURES_OK');
  setStatus(t, ACK | DRIVER | FEATURES_OK);
  mmioWrite32(t, VIRTIO_MMIO_QUEUE_NUM, 4);
  assert.is(num(), 4, 'inside the window');
  mmioWrite32(t, VIRTIO_MMIO_QUEUE_READY, 1);
  assert.is(mmioRead32(t, VIRTIO_MMIO_QUEUE_READY), 1);
  setStatus(t, FAILED);
  mmioWrite32(t, VIRTIO_MMIO_QUEUE_NUM, 2);
  assert.is(num(), 4, 'after FAILED');
});

test('queue fields are frozen after DRIVER_OK', () => {
  const { t, state, mq } = rig();
  mmioDriverInit(t, OFFERED, [mq]);
  mmioDriverOk(t);
  mmioWrite32(t, VIRTIO_MMIO_QUEUE_NUM, 2);
  mmioWrite32(t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x100);
  const c = state.queueConfig(0);
  assert.is(c.size, QUEUE_MAX);
  assert.is(c.descTable, mq.config.descTable);
});

test('QueueNumMax, and a QueueSel past the last queue reads 0', () => {
  const { t } = rig();
  assert.is(mmioRead32(t, VIRTIO_MMIO_QUEUE_NUM_MAX), QUEUE_MAX);
  mmioWrite32(t, VIRTIO_MMIO_QUEUE_SEL, 1);
  assert.is(mmioRead32(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
  assert.is(mmioRead32(t, VIRTIO_MMIO_QUEUE_READY), 0);
});

test('DRIVER_OK with valid queues activates once with the negotiated state', () => {
  const { t, log, mq } = rig();
  const acked = featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_EVENT_IDX);
  mmioDriverInit(t, acked, [mq]);
  mmioNotify(t, 0);
  assert.equal(log.notifies, [], 'no notify before activation');
  mmioDriverOk(t);
  assert.is(status(t), ACK | DRIVER | FEATURES_OK | DRIVER_OK);
  assert.is(log.activations.length, 1);
  assert.equal(log.activations[0], { ackedFeatures: acked, queues: [mq.config] });
  mmioNotify(t, 0);
  mmioNotify(t, 1);
  assert.equal(log.notifies, [0], 'out-of-range queue notify dropped');
});

test('each activation failure sets NEEDS_RESET and raises a config interrupt', () => {
  const cases: [string, (c: { size: number; descTable: number; availRing: number; usedRing: number }) => object, boolean?][] = [
    ['VIRTIO_MMIO_QUEUE_NOT_READY', (c) => c, false],
    ['VIRTIO_MMIO_QUEUE_SIZE', (c) => ({ ...c, size: 0 })],
    ['VIRTIO_MMIO_QUEUE_SIZE', (c) => ({ ...c, size: 6 })],
    ['VIRTIO_MMIO_QUEUE_SIZE', (c) => ({ ...c, size: QUEUE_MAX * 2 })],
    ['VIRTIO_MMIO_QUEUE_ALIGNMENT', (c) => ({ ...c, descTable: c.descTable + 8 })],
    ['VIRTIO_MMIO_QUEUE_ALIGNMENT', (c) => ({ ...c, availRing: c.availRing + 1 })],
    ['VIRTIO_MMIO_QUEUE_ALIGNMENT', (c) => ({ ...c, usedRing: c.usedRing + 2 })],
    ['VIRTIO_MMIO_QUEUE_OUT_OF_RAM', (c) => ({ ...c, descTable: RAM })],
    ['VIRTIO_MMIO_QUEUE_OUT_OF_RAM', (c) => ({ ...c, usedRing: RAM - 16 })],
    ['VIRTIO_MMIO_QUEUE_OUT_OF_RAM', (c) => ({ ...c, availRing: 2 ** 40 })],
  ];
  for (const [code, mutate, ready = true] of cases) {
    const { t, log, mq } = rig();
    mmioDriverInit(t, OFFERED, []);
    mmioSetupQueue(t, 0, { config: mutate(mq.config) as typeof mq.config }, ready);
    mmioDriverOk(t);
    assert.is(status(t), ACK | DRIVER | FEATURES_OK | DRIVER_OK | NEEDS_RESET, code);
    assert.is(log.failures[0]?.code, code);
    assert.equal(log.activations, []);
    assert.equal(log.irqs, [VIRTIO_MMIO_INT_CONFIG]);
    assert.is(mmioRead32(t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
  }
});

test('InterruptStatus is set by the device worker and cleared by InterruptACK only after DRIVER_OK', () => {
  const { t, buffer, mq } = rig();
  const raised: number[] = [];
  const irq = new MmioInterrupt(buffer, (bit) => raised.push(bit));
  irq.trigger(VIRTIO_INTERRUPT.VRING);
  assert.is(mmioRead32(t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
  mmioWrite32(t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
  assert.is(mmioRead32(t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING, 'ACK before DRIVER_OK ignored');
  mmioDriverInit(t, OFFERED, [mq]);
  mmioDriverOk(t);
  irq.trigger(VIRTIO_INTERRUPT.CONFIG);
  assert.is(mmioRead32(t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
  mmioWrite32(t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
  assert.is(mmioRead32(t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
  assert.equal(raised, [VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_INT_CONFIG]);
});

test('every trigger signals, even with its bit still set (a lost edge is recovered); resend after a restore', () => {
  const { t, buffer, mq } = rig();
  mmioDriverInit(t, OFFERED, [mq]);
  mmioDriverOk(t);
  const raised: number[] = [];
  const irq = new MmioInterrupt(buffer, (bit) => raised.push(bit));
  irq.trigger(VIRTIO_INTERRUPT.VRING);
  irq.trigger(VIRTIO_INTERRUPT.VRING);
  assert.equal(raised, [VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_INT_VRING]);
  // A restored transport with a bit set: the edge may have been lost at the save.
  const restored = new MmioInterrupt(buffer, (bit) => raised.push(-bit));
  restored.resend();
  assert.is(raised.at(-1), -VIRTIO_MMIO_INT_VRING);
  mmioWrite32(t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
  const n = raised.length;
  restored.resend();
  assert.is(raised.length, n, 'nothing pending, nothing resent');
});

test('the device worker can ask for a reset only while active', () => {
  const { t, buffer, mq } = rig();
  const raised: number[] = [];
  const irq = new MmioInterrupt(buffer, (bit) => raised.push(bit));
  irq.needsReset();
  assert.is(status(t), 0);
  mmioDriverInit(t, OFFERED, [mq]);
  mmioDriverOk(t);
  irq.needsReset();
  irq.needsReset();
  assert.is(status(t) & NEEDS_RESET, NEEDS_RESET);
  assert.equal(raised, [VIRTIO_MMIO_INT_CONFIG], 'raised once');
});

test('status 0 resets every register; an active device that cannot reset latches FAILED', () => {
  const { t, state, log, mq } = rig({ onReset: () => false });
  setStatus(t, ACK);
  setStatus(t, 0);
  assert.is(log.resets, 0, 'inactive device: no device reset needed');
  mmioDriverInit(t, OFFERED, [mq]);
  mmioDriverOk(t);
  setStatus(t, 0);
  assert.is(log.resets, 1);
  assert.is(status(t), FAILED);
  assert.is(state.load(MMIO_SLOT.ACTIVATED), 1, 'the device still holds its activation');
  assert.equal(state.queueConfig(0), { size: 0, ready: false, descTable: 0, availRing: 0, usedRing: 0 });
  assert.is(state.ackedFeatures(), 0n);
});

test('a device that cannot reset stays FAILED: later resets latch it again, no new activation', () => {
  // Regression: the second reset used to find the transport inactive, clear FAILED and let the
  // driver reach DRIVER_OK again while the device worker kept its old rings and ignored the new.
  const { t, log, mq } = rig({ onReset: () => false });
  mmioDriverInit(t, OFFERED, [mq]);
  mmioDriverOk(t);
  setStatus(t, 0);
  setStatus(t, 0);
  assert.is(log.resets, 2, 'every reset asks the device');
  assert.is(status(t), FAILED);
  mmioDriverInit(t, OFFERED, [mq]);
  mmioDriverOk(t);
  assert.is(status(t), FAILED, 'no transition out of FAILED');
  assert.is(log.activations.length, 1, 'DRIVER_OK was never accepted again');
});

test('a device that supports reset goes back to 0 and can be activated again', () => {
  const { t, log, mq } = rig();
  mmioDriverInit(t, OFFERED, [mq]);
  mmioDriverOk(t);
  setStatus(t, 0);
  assert.is(status(t), 0);
  mmioDriverInit(t, OFFERED, [mq]);
  mmioDriverOk(t);
  assert.is(log.activations.length, 2);
});

test('config space: any width, delegated; writes only with DRIVER and without FAILED/NEEDS_RESET', () => {
  const { t, log } = rig();
  const two = new Uint8Array(2);
  t.read(VIRTIO_MMIO_CONFIG + 1, two);
  assert.equal([...two], [2, 3]);
  const past = new Uint8Array(4);
  t.read(VIRTIO_MMIO_CONFIG + 6, past);
  assert.equal([...past], [7, 8, 0, 0]);
  t.write(VIRTIO_MMIO_CONFIG, new Uint8Array([9]));
  assert.equal(log.configWrites, [], 'before DRIVER');
  setStatus(t, ACK);
  setStatus(t, ACK | DRIVER);
  t.write(VIRTIO_MMIO_CONFIG + 2, new Uint8Array([9]));
  assert.equal(log.configWrites, [[2, [9]]]);
  setStatus(t, FAILED);
  t.write(VIRTIO_MMIO_CONFIG, new Uint8Array([9]));
  assert.is(log.configWrites.length, 1, 'after FAILED');
});

test('transports on one state buffer share the register file', () => {
  const a = rig();
  const b = new MmioTransport(
    a.buffer,
    { deviceId: VIRTIO_ID_BLOCK, features: OFFERED, queueMaxSizes: [QUEUE_MAX], config: new ByteConfigSpace(new Uint8Array(0)) },
    { onActivate: () => {}, onNotify: () => {}, interrupt: () => {} },
    a.mem,
  );
  setStatus(a.t, ACK);
  assert.is(status(b), ACK);
  assert.throws(() => new MmioTransport(a.buffer, { deviceId: 1, features: 0n, queueMaxSizes: [8, 8], config: new ByteConfigSpace(new Uint8Array(0)) }, { onActivate: () => {}, onNotify: () => {}, interrupt: () => {} }, a.mem));
  assert.throws(() => new MmioState(new SharedArrayBuffer(256)));
});

test('the state lock serialises updates from several worker threads', async () => {
  const buffer = MmioState.create(1);
  const stateUrl = new URL('../../src/devices/virtio/mmio-state.js', import.meta.url).href;
  const rounds = 20000;
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.url).then(({ MmioState }) => {
      const s = new MmioState(workerData.buffer);
      const slot = s.queueSlot(0, 0);
      for (let i = 0; i < workerData.rounds; i++) {
        s.lock();
        const v = s.load(slot);
        s.store(slot, v + 1);
        s.unlock();
      }
      parentPort.postMessage('done');
    });`;
  const workers = [0, 1, 2, 3].map(() => new Worker(code, { eval: true, workerData: { buffer, url: stateUrl, rounds } }));
  await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  })));
  await Promise.all(workers.map((w) => w.terminate()));
  const s = new MmioState(buffer);
  assert.is(s.load(s.queueSlot(0, 0)), 4 * rounds);
});

test.run();
