/**
 * The device workers' wait (src/actors/virtio/device-poll.ts) over a real eventfd: an fd that
 * keeps waking the worker does not stop the rate limiter's timer from coming due; and the
 * net worker's once-per-turn irqfd write (transport.ts) on a real eventfd.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventFd } from '../../src/kvm/eventfd.js';
import { DeviceLoopTimer } from '../../src/actors/virtio/device-poll.js';
import { deferredTransportInterrupt } from '../../src/actors/virtio/transport.js';
import { MMIO_SLOT, MmioState } from '../../src/devices/virtio/mmio-state.js';
import { VIRTIO_INTERRUPT } from '../../src/devices/virtio/device.js';

test('a readable fd returns at once; the timer is due once its delay has passed, however often the fd woke the worker', () => {
  const evt = new EventFd();
  try {
    const timer = new DeviceLoopTimer();
    const start = performance.now();
    let wakes = 0;
    let due = false;
    // The worker's pattern: wait, handle what woke it, repeat; here the fd is always ready and
    // the device keeps asking for its full retry delay (the worst case for re-arming).
    while (!due && performance.now() - start < 5_000) {
      evt.signal();
      assert.equal(timer.wait([evt.fd], 40), [evt.fd]);
      evt.drain();
      wakes++;
      due = timer.due();
    }
    assert.ok(due, 'the timer came due');
    assert.ok(performance.now() - start >= 40, 'not before its delay');
    assert.ok(wakes > 10, `the fd woke the loop ${wakes} times first`);
  } finally {
    evt.close();
  }
});

test('no limiter waiting (delay 0): never due, and an idle wait returns on the fd only', () => {
  const evt = new EventFd();
  try {
    const timer = new DeviceLoopTimer();
    evt.signal();
    assert.equal(timer.wait([evt.fd], 0), [evt.fd]);
    assert.is(timer.due(), false);
    evt.drain();
    // An armed timer with nothing readable: the wait ends at its time, and it is due.
    assert.equal(timer.wait([evt.fd], 20), []);
    assert.is(timer.due(), true);
    assert.is(timer.due(), false, 'disarmed once fired');
  } finally {
    evt.close();
  }
});

test('deferred MMIO interrupt: triggers of one loop turn become one irqfd write at the flush; the status bits are set at once', () => {
  const irq = new EventFd();
  try {
    const state = new MmioState(MmioState.create(2));
    const d = deferredTransportInterrupt(null, state, irq);
    d.interrupt.trigger(VIRTIO_INTERRUPT.VRING, 1);
    d.interrupt.trigger(VIRTIO_INTERRUPT.VRING, 0);
    assert.is(state.load(MMIO_SLOT.INTERRUPT_STATUS), 1, 'InterruptStatus set at the trigger');
    assert.is(irq.drain(), 0n, 'no write before the flush');
    d.flush();
    assert.is(irq.drain(), 1n, 'one write for the turn');
    d.flush();
    assert.is(irq.drain(), 0n, 'nothing pending: no write');
  } finally {
    irq.close();
  }
});

test.run();
