/**
 * The virtio-vsock device model with the driver-side queue fake and real Unix sockets
 * (test/helpers/vsock-rig.ts): features and config space, guest-initiated connections to
 * `<uds_path>_<port>` (accepted, refused → RST), packets for unknown connections, wrong CIDs
 * and types, ops out of order, shutdown flags, malformed chains one defect at a time, and a
 * broken queue. Credit accounting is in vsock-credit.test.ts, the host-initiated side in
 * vsock-host.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_IN_ORDER, VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1, VIRTIO_ID_VSOCK, VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_STATUS, VIRTQ_DESC_F_WRITE, featureBit,
} from '../../src/devices/virtio/constants.js';
import {
  CONN_TX_BUF_SIZE, VIRTIO_VSOCK_OP_CREDIT_UPDATE, VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW, VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_SHUTDOWN_RCV, VIRTIO_VSOCK_SHUTDOWN_SEND, VSOCK_HOST_CID, VSOCK_PKT_HDR_SIZE,
  VSOCK_QUEUE_SIZE,
} from '../../src/devices/virtio/vsock/constants.js';
import { mmioRead32, mmioWrite32 } from '../helpers/mock-queue.js';
import { GUEST_CID, openFds, pattern, vsockRig, type VsockRig } from '../helpers/vsock-rig.js';

/** The guest connects from `srcPort` to host port `port`, where a host listener waits: the established pair. */
function guestConnect(r: VsockRig, port: number, srcPort = 1234, rxBuffers = 8) {
  const lfd = r.hostListen(port);
  r.postRx(rxBuffers);
  r.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort, dstPort: port });
  const [resp] = r.recv();
  const host = r.io.accept(lfd);
  r.io.close(lfd);
  return { resp: resp!, host, srcPort, port };
}

test('features, queues and config: guest_cid as le64, 32-bit halves, anything else cfg_fails', () => {
  const r = vsockRig();
  try {
    assert.is(r.offered, [VIRTIO_F_VERSION_1, VIRTIO_F_IN_ORDER, VIRTIO_F_RING_EVENT_IDX].reduce((f, b) => f | featureBit(b), 0n));
    assert.is(mmioRead32(r.transport, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_VSOCK);
    for (const q of [0, 1, 2]) {
      mmioWrite32(r.transport, VIRTIO_MMIO_QUEUE_SEL, q);
      assert.is(mmioRead32(r.transport, VIRTIO_MMIO_QUEUE_NUM_MAX), VSOCK_QUEUE_SIZE);
    }
    const eight = new Uint8Array(8).fill(0xee);
    r.transport.read(VIRTIO_MMIO_CONFIG, eight);
    assert.equal([...eight], [GUEST_CID, 0, 0, 0, 0, 0, 0, 0]);
    assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG), GUEST_CID);
    assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + 4), 0);
    assert.is(r.metrics.count('cfg_fails'), 0);
    const two = new Uint8Array(2).fill(0xee);
    r.transport.read(VIRTIO_MMIO_CONFIG + 2, two);
    assert.equal([...two], [0, 0], 'an unsupported read returns zeros');
    r.transport.write(VIRTIO_MMIO_CONFIG, new Uint8Array(8));
    assert.is(r.metrics.count('cfg_fails'), 2);
  } finally {
    r.close();
  }
});

test('guest → host: REQUEST to a listener gets RESPONSE; data both ways; guest RST closes the host socket', () => {
  const r = vsockRig();
  try {
    const c = guestConnect(r, 6000);
    assert.is(c.resp.hdr.op, VIRTIO_VSOCK_OP_RESPONSE);
    assert.equal([c.resp.hdr.srcCid, c.resp.hdr.dstCid, c.resp.hdr.srcPort, c.resp.hdr.dstPort], [VSOCK_HOST_CID, GUEST_CID, 6000, 1234]);
    assert.is(c.resp.hdr.bufAlloc, CONN_TX_BUF_SIZE);
    assert.is(c.resp.used, VSOCK_PKT_HDR_SIZE);
    assert.ok(c.host >= 0);
    // Guest → host: the payload arrives on the host socket.
    r.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: 6000 }, pattern(1000));
    assert.equal(r.hostRead(c.host), pattern(1000));
    assert.is(r.metrics.count('tx_bytes_count'), 1000);
    // Host → guest: RW packets in the posted buffers.
    r.hostWrite(c.host, pattern(6000, 9));
    r.until(() => r.rxq.usedIdx() >= 3, 'two data packets');
    const pkts = r.recv();
    assert.equal(pkts.map((p) => [p.hdr.op, p.hdr.len]), [[VIRTIO_VSOCK_OP_RW, 4096], [VIRTIO_VSOCK_OP_RW, 6000 - 4096]]);
    assert.equal(new Uint8Array([...pkts[0]!.data, ...pkts[1]!.data]), pattern(6000, 9));
    assert.is(pkts[0]!.used, VSOCK_PKT_HDR_SIZE + 4096);
    assert.is(r.metrics.count('rx_bytes_count'), 6000);
    assert.is(r.dev.connectionCount, 1);
    r.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: 1234, dstPort: 6000 });
    assert.is(r.dev.connectionCount, 0);
    assert.is(r.hostRead(c.host), null, 'the host sees the end of the stream');
    assert.is(r.metrics.count('conns_added'), 1);
    assert.is(r.metrics.count('conns_removed'), 1);
    r.io.close(c.host);
  } finally {
    r.close();
  }
});

test('a REQUEST to a port nobody listens on is refused with RST; nothing stays open', () => {
  const r = vsockRig();
  try {
    const fds = openFds();
    r.postRx(4);
    r.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 77, dstPort: 6001 });
    const [rst] = r.recv();
    assert.is(rst!.hdr.op, VIRTIO_VSOCK_OP_RST);
    assert.equal([rst!.hdr.srcPort, rst!.hdr.dstPort, rst!.hdr.dstCid], [6001, 77, GUEST_CID]);
    assert.is(r.metrics.count('guest_connects_refused'), 1);
    assert.is(r.dev.connectionCount, 0);
    assert.is(openFds(), fds);
  } finally {
    r.close();
  }
});

test('packets for no connection get RST (an RST too); wrong CID is dropped; wrong type gets RST', () => {
  const r = vsockRig();
  try {
    r.postRx(8);
    r.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5, dstPort: 9 }, pattern(10));
    r.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: 6, dstPort: 9 });
    r.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 7, dstPort: 9, dstCid: 42 }, pattern(10));
    r.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 8, dstPort: 9, type: 2 });
    const got = r.recv().map((p) => [p.hdr.op, p.hdr.srcPort, p.hdr.dstPort]);
    assert.equal(got, [[VIRTIO_VSOCK_OP_RST, 9, 5], [VIRTIO_VSOCK_OP_RST, 9, 6], [VIRTIO_VSOCK_OP_RST, 9, 8]]);
    assert.is(r.metrics.count('tx_unknown_connection'), 2);
    assert.is(r.metrics.count('tx_wrong_cid'), 1);
    assert.is(r.metrics.count('tx_wrong_type'), 1);
    assert.is(r.txq.usedIdx(), 4, 'every TX chain was used');
  } finally {
    r.close();
  }
});

test('ops out of order are dropped and counted: RESPONSE when established, REQUEST again, op 0 and 99', () => {
  const r = vsockRig();
  try {
    const c = guestConnect(r, 6002);
    for (const op of [VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_REQUEST, 0, 99]) r.send({ op, srcPort: 1234, dstPort: 6002 });
    assert.is(r.metrics.count('tx_unexpected_ops'), 4);
    assert.equal(r.recv(), [], 'no reply to any of them');
    assert.is(r.dev.connectionCount, 1, 'the connection survives');
    r.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: 6002 }, pattern(5));
    assert.equal(r.hostRead(c.host), pattern(5));
    r.io.close(c.host);
  } finally {
    r.close();
  }
});

test('shutdown flags: RCV stops host → guest data, SEND then stops guest data; both → RST and close', () => {
  const r = vsockRig();
  try {
    const c = guestConnect(r, 6003);
    r.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, flags: VIRTIO_VSOCK_SHUTDOWN_RCV, srcPort: 1234, dstPort: 6003 });
    r.hostWrite(c.host, pattern(100));
    r.step(20);
    assert.equal(r.recv(), [], 'the guest receives no more');
    r.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: 6003 }, pattern(7));
    assert.equal(r.hostRead(c.host), pattern(7), 'but may still send');
    r.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, flags: VIRTIO_VSOCK_SHUTDOWN_SEND, srcPort: 1234, dstPort: 6003 });
    const [rst] = r.recv();
    assert.is(rst!.hdr.op, VIRTIO_VSOCK_OP_RST, 'both directions shut: the device resets');
    assert.is(r.dev.connectionCount, 0);
    assert.is(r.hostRead(c.host), null, 'closed (reset: the 100 bytes were never read)');
    r.io.close(c.host);
  } finally {
    r.close();
  }
});

test('the host closes: SHUTDOWN(RCV|SEND) to the guest, then RST after the shutdown timeout', () => {
  const r = vsockRig();
  try {
    const c = guestConnect(r, 6004);
    r.io.close(c.host);
    r.until(() => r.rxq.usedIdx() >= 2, 'the shutdown');
    const [sd] = r.recv();
    assert.is(sd!.hdr.op, VIRTIO_VSOCK_OP_SHUTDOWN);
    assert.is(sd!.hdr.flags, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
    r.advance(1999);
    assert.equal(r.recv(), [], 'not yet');
    r.advance(2);
    assert.is(r.recv()[0]?.hdr.op, VIRTIO_VSOCK_OP_RST);
    assert.is(r.metrics.count('conns_killed'), 1);
    assert.is(r.dev.connectionCount, 0);
  } finally {
    r.close();
  }
});

test('malformed chains, one defect each, are used with length 0 and counted; the device goes on', () => {
  const r = vsockRig();
  try {
    const c = guestConnect(r, 6005, 1234, 1);
    const before = r.txq.usedIdx();
    // 1. A device-writable descriptor in a TX chain.
    const h1 = r.queue({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: 6005 }, pattern(8));
    r.txq.patchDescriptor(h1, { flags: r.txq.readDescriptor(h1).flags | VIRTQ_DESC_F_WRITE });
    // 2. A chain shorter than the header.
    const h2 = r.queue({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: 6005 });
    r.txq.patchDescriptor(h2, { len: VSOCK_PKT_HDR_SIZE - 1 });
    // 3. len above 64 KiB. 4. len past the chain's end.
    r.queue({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: 6005, len: 64 * 1024 + 1 }, pattern(8));
    r.queue({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: 6005, len: 9 }, pattern(8));
    // 5. A descriptor index past the queue.
    const h5 = r.queue({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: 6005 }, pattern(8));
    r.txq.patchDescriptor(h5, { next: 1000 });
    r.txq.kick();
    assert.is(r.metrics.count('tx_malformed_packets'), 5);
    assert.equal(r.txq.takeUsed().slice(-5).map((u) => u.len), [0, 0, 0, 0, 0]);
    assert.is(r.txq.usedIdx(), before + 5);
    assert.equal(r.hostRead(c.host), new Uint8Array(0), 'none reached the host');
    // RX chains that cannot take a packet: read-only, or shorter than a header.
    r.rxq.addChain([{ addr: 0x700000, len: 100 }]);
    r.rxq.addChain([{ addr: 0x700100, len: 20, write: true }]);
    r.postRx(1, 4096, false);
    r.rxq.kick();
    r.hostWrite(c.host, pattern(3));
    r.until(() => r.metrics.count('rx_bytes_count') === 3, 'the data in the good chain');
    assert.is(r.metrics.count('rx_bad_buffers'), 2);
    r.io.close(c.host);
  } finally {
    r.close();
  }
});

test('a bogus avail.idx breaks the device: NEEDS_RESET, no more processing, no crash', () => {
  const r = vsockRig();
  try {
    r.txq.setAvailIdx(r.txq.availIdx() + 1000);
    r.txq.kick();
    assert.ok((mmioRead32(r.transport, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0);
    assert.is(r.metrics.count('tx_queue_event_fails'), 1);
    r.postRx(2);
    r.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 1, dstPort: 2 });
    assert.is(r.rxq.usedIdx(), 0, 'the broken device answers nothing');
    let polled = 0;
    r.dev.collectPoll(() => polled++);
    assert.is(polled, 0, 'and polls no host fd');
  } finally {
    r.close();
  }
});

test('an empty RW is dropped quietly; a CREDIT_REQUEST is answered with CREDIT_UPDATE', () => {
  const r = vsockRig();
  try {
    const c = guestConnect(r, 6006);
    r.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: 6006 });
    assert.is(r.metrics.count('tx_unexpected_ops'), 0);
    r.send({ op: 7, srcPort: 1234, dstPort: 6006 });
    const [u] = r.recv();
    assert.is(u!.hdr.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    assert.is(u!.hdr.fwdCnt, 0);
    r.io.close(c.host);
  } finally {
    r.close();
  }
});

test('a guest that posts no RX buffers: the readable host socket leaves the poll set (no spinning) until buffers come', () => {
  const r = vsockRig();
  try {
    const c = guestConnect(r, 6007, 1234, 1);
    r.hostWrite(c.host, pattern(10));
    r.step(20);
    const polled: number[] = [];
    r.dev.collectPoll((fd) => polled.push(fd));
    assert.equal(polled, [r.listenFd], 'a data packet is owed: the socket is not polled again');
    assert.is(r.step(0), 0, 'nothing wakes the worker');
    r.postRx(1);
    assert.equal(r.recv()[0]?.data, pattern(10));
    r.io.close(c.host);
  } finally {
    r.close();
  }
});

test.run();
