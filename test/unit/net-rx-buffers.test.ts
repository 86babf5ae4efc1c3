/** RxBuffers (src/devices/virtio/net/rx-buffers.ts): ring order, accounting and num_buffers across many takes. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RX_MAX_HELD_DESCRIPTORS, RxBuffers } from '../../src/devices/virtio/net/rx-buffers.js';
import { VIRTIO_NET_HDR_NUM_BUFFERS } from '../../src/devices/virtio/constants.js';

const chain = (head: number, len: number) => ({ head, len, bufs: [new Uint8Array(len)] });

test('chains are taken oldest first with exact accounting, through many takes and pushes', () => {
  const rx = new RxBuffers();
  let nextHead = 0;
  let expectHead = 0;
  const held: number[] = [];
  // Keep ~200 chains held while taking one or three at a time: the taken front is dropped and
  // compacted many times over.
  for (let round = 0; round < 2000; round++) {
    while (rx.length < 200) {
      assert.ok(rx.push(chain(nextHead, 100 + (nextHead % 7))));
      held.push(100 + (nextHead % 7));
      nextHead++;
    }
    const want = round % 5 === 0 ? 3 : 1;
    const lens = held.slice(0, want);
    const frame = lens.reduce((a, b) => a + b, 0) - (want > 1 ? 1 : 0);
    const views = rx.readViews(true);
    assert.is(views.length, 200, 'all held chains are offered (each far below MAX_BUFFER_SIZE)');
    const used = rx.take(frame);
    assert.equal(used.map((u) => u.head), Array.from({ length: want }, (_, i) => expectHead + i));
    assert.is(used.reduce((a, u) => a + u.len, 0), frame);
    assert.is(new DataView(views[0]!.buffer).getUint16(VIRTIO_NET_HDR_NUM_BUFFERS, true), want, 'num_buffers in the first chain');
    expectHead += want;
    held.splice(0, want);
    assert.is(rx.length, held.length);
    assert.is(rx.capacity, held.reduce((a, b) => a + b, 0));
  }
  rx.clear();
  assert.equal([rx.length, rx.capacity, rx.readViews(true).length], [0, 0, 0]);
});

test('the descriptor limit holds after takes: a full set refuses one more, a take makes room', () => {
  const rx = new RxBuffers();
  for (let i = 0; i < RX_MAX_HELD_DESCRIPTORS; i++) assert.ok(rx.push(chain(i, 10)));
  assert.not.ok(rx.push(chain(999, 10)));
  rx.take(10);
  assert.ok(rx.push(chain(999, 10)));
  assert.is(rx.length, RX_MAX_HELD_DESCRIPTORS);
  assert.equal(rx.readViews(false).length, 1, 'without MRG_RXBUF only the first chain is offered');
});

test.run();
