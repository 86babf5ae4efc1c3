/**
 * The net model past the 16-bit ring index wrap (virtio 1.1 §2.6.6: avail.idx and used.idx
 * are free-running u16): more than 65,536 frames each way through the queue fake, with the
 * driver recycling its buffers as a Linux guest does. A long stream crosses the wrap many
 * times (1 GiB of 1.5 KiB frames is about 700,000 frames); a short test never does.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { frame, netRig } from '../helpers/net-rig.js';
import { NET_RX_MIN_SMALL_BUFFER } from '../../src/devices/virtio/net/constants.js';
import { VIRTIO_NET_HDR_SIZE } from '../../src/devices/virtio/constants.js';
import { must } from '../../src/memory/guest-memory.js';

const FRAMES = 70_000;

test('TX: 70,000 frames through a 256-entry ring, the driver reusing one buffer per slot', () => {
  const r = netRig({ queueSize: 256, features: (f) => f });
  const slots = Array.from({ length: 64 }, () => r.arena.alloc(128));
  let sent = 0;
  let queued = 0;
  while (sent < FRAMES) {
    // The driver keeps up to 64 frames in flight, refilling as the device completes them.
    while (queued - sent < 64 && queued < FRAMES) {
      const f = frame(100, undefined, queued & 0xff);
      const at = slots[queued % slots.length]!;
      must(r.mem.write(at, f));
      r.txq.addChain([{ addr: at, len: f.length }]);
      queued++;
    }
    r.txq.kick();
    sent += r.txq.takeUsed().length;
  }
  assert.is(r.tap.sent.length, FRAMES);
  const last = r.tap.sent[FRAMES - 1]!;
  assert.equal([...last], [...frame(100, undefined, (FRAMES - 1) & 0xff)], 'the last frame went out intact');
  assert.is(r.metrics.snapshot().tx_packets_count, FRAMES);
});

test('RX: 70,000 frames into recycled receive buffers, each landing in the chain the used ring names', () => {
  const r = netRig({ queueSize: 256, features: (f) => f });
  const chains = new Map<number, number>(); // head → buffer address
  const post = (addr: number): void => { chains.set(r.rxq.addChain([{ addr, len: NET_RX_MIN_SMALL_BUFFER, write: true }])[0]!, addr); };
  for (let i = 0; i < 128; i++) post(r.arena.alloc(NET_RX_MIN_SMALL_BUFFER));
  r.rxq.kick();
  let got = 0;
  while (got < FRAMES) {
    for (let k = 0; k < 32 && got + r.tap.inbox.length < FRAMES; k++) r.tap.inbox.push(frame(80, undefined, (got + r.tap.inbox.length) & 0xff));
    r.dev.onTapReadable();
    for (const u of r.rxq.takeUsed()) {
      const addr = chains.get(u.id);
      assert.ok(addr !== undefined, `used id ${u.id} names a posted chain`);
      const bytes = r.mem.slice(addr!, u.len) as Uint8Array;
      assert.is(bytes[VIRTIO_NET_HDR_SIZE + 20], ((VIRTIO_NET_HDR_SIZE + 20) * 7 + got) & 0xff, `frame ${got} landed in its chain`);
      got++;
      chains.delete(u.id);
      post(addr!); // the driver recycles the buffer
    }
    r.rxq.kick();
  }
  assert.is(r.metrics.snapshot().rx_packets_count, FRAMES);
});

test.run();
