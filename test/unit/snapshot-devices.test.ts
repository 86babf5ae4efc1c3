/**
 * The device side of snapshots, on the pure models with driver-side queue fakes: queue indices
 * survive a save and a restore (QueueOptions.restore), the net device gives back the RX chains
 * it popped but did not fill (prepareSave), vsock tells a restored guest its connections are
 * gone (TRANSPORT_RESET), and the transport register file round-trips (MmioState.save/restore)
 * and refuses another device's layout, and a block device's acked SEG_MAX/SIZE_MAX survive it
 * with the config space rebuilt the same from the drive.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MmioState } from '../../src/devices/virtio/mmio-state.js';
import { MmioTransport } from '../../src/devices/virtio/mmio.js';
import { BLOCK_SEG_MAX, blockDescription } from '../../src/devices/virtio/block/device.js';
import {
  VIRTIO_BLK_CONFIG_SEG_MAX, VIRTIO_BLK_CONFIG_SIZE, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_STATUS,
  hasFeature,
} from '../../src/devices/virtio/constants.js';
import { mmioRead32 } from '../helpers/mock-queue.js';
import { rig } from '../helpers/block-rig.js';
import { VIRTIO_VSOCK_EVENT_TRANSPORT_RESET } from '../../src/devices/virtio/vsock/constants.js';
import { DeviceStateError } from '../../src/errors.js';
import { must } from '../../src/memory/guest-memory.js';
import { frame, netRig, postRx } from '../helpers/net-rig.js';
import { vsockRig } from '../helpers/vsock-rig.js';

test('net: RX chains popped for the next frame go back to the ring; the device pops them again', () => {
  const r = netRig();
  const chains = Array.from({ length: 24 }, () => postRx(r, [4096]));
  r.rxq.kick();
  r.tap.inbox.push(frame(100));
  r.dev.onTapReadable();
  assert.equal(r.rxq.takeUsed(), [{ id: chains[0]!.head, len: 100 }]);
  const rx = () => r.dev.activeQueues()[0]!.indices();
  assert.ok(rx().nextAvail > 1, `the device holds popped chains (${rx().nextAvail} popped)`);
  r.dev.prepareSave();
  assert.equal(rx(), { nextAvail: 1, nextUsed: 1, numAdded: rx().numAdded }, 'only the used chain stays popped');
  // The device goes on after the snapshot: the next frame lands in the next chain in order.
  r.tap.inbox.push(frame(200));
  r.rxq.kick();
  r.dev.onTapReadable();
  assert.equal(r.rxq.takeUsed(), [{ id: chains[1]!.head, len: 200 }]);
});

test('vsock: a restored device puts one TRANSPORT_RESET on the event queue', () => {
  const r = vsockRig();
  try {
    const ev = r.evq.addChain([{ addr: 15 << 20, len: 8, write: true }])[0]!;
    assert.is(r.dev.sendTransportReset(), true);
    assert.equal(r.evq.takeUsed(), [{ id: ev, len: 4 }]);
    assert.is(new DataView(must(r.mem.slice(15 << 20, 4)).slice().buffer).getUint32(0, true), VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
    assert.is(r.dev.sendTransportReset(), false, 'no event buffer posted: nothing sent');
    assert.is(r.metrics.snapshot().ev_queue_event_fails, 1);
    assert.is(r.dev.activeQueues().length, 3, 'rx, tx and the event queue are saved');
  } finally {
    r.io.close(r.listenFd);
  }
});

test('transport register file: saved and restored; another layout is refused', () => {
  const buf = MmioState.create(2);
  const s = new MmioState(buf);
  s.store(s.queueSlot(1, 0), 256);
  const saved = s.save();
  const back = new MmioState(MmioState.restore(saved, 2));
  assert.is(back.load(back.queueSlot(1, 0)), 256);
  assert.equal(back.save(), saved);
  assert.throws(() => MmioState.restore(saved, 3), (e: unknown) => e instanceof DeviceStateError);
  assert.throws(() => MmioState.restore(saved.map((v, i) => (i === 5 ? 2 ** 40 : v)), 2), (e: unknown) => e instanceof DeviceStateError);
});

test('block: the register file with SEG_MAX and SIZE_MAX acked round-trips; the restored device shows the same config space', () => {
  const r = rig();
  const acked = new MmioState(r.state).ackedFeatures();
  assert.ok(hasFeature(acked, VIRTIO_BLK_F_SEG_MAX) && hasFeature(acked, VIRTIO_BLK_F_SIZE_MAX), 'the driver took both');
  const saved = new MmioState(r.state).save();
  const back = new MmioState(MmioState.restore(saved, 1));
  assert.is(back.ackedFeatures(), acked);
  assert.ok(back.activated());
  // The block config space is not in the snapshot: the restored device rebuilds it from the drive.
  const noop = { onActivate: () => {}, onNotify: () => {}, interrupt: () => {}, onReset: () => false };
  const restored = new MmioTransport(back, blockDescription(r.cfg), noop, r.mem);
  for (let off = 0; off < VIRTIO_BLK_CONFIG_SIZE; off += 4) {
    assert.is(mmioRead32(restored, VIRTIO_MMIO_CONFIG + off), mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + off), `config offset ${off}`);
  }
  assert.is(mmioRead32(restored, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CONFIG_SEG_MAX), BLOCK_SEG_MAX);
  assert.is(mmioRead32(restored, VIRTIO_MMIO_STATUS), mmioRead32(r.transport, VIRTIO_MMIO_STATUS));
});

test.run();
