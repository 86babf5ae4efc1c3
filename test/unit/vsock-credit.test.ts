/**
 * vsock credit-based flow control (virtio 1.1 §5.10.6.3) in the device model, with the queue
 * fake and real Unix sockets: the device's buf_alloc/fwd_cnt and its credit updates, host data
 * held back at the guest's credit and resumed by its CREDIT_UPDATE, a CREDIT_REQUEST when data
 * waits without credit, the TX buffer under host back-pressure, a guest that overruns its
 * credit, and u32 wrap-around of the counters.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CONN_TX_BUF_SIZE, VIRTIO_VSOCK_OP_CREDIT_REQUEST, VIRTIO_VSOCK_OP_CREDIT_UPDATE, VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
} from '../../src/devices/virtio/vsock/constants.js';
import { VsockConnection } from '../../src/devices/virtio/vsock/connection.js';
import { VsockMetrics } from '../../src/devices/virtio/vsock/metrics.js';
import { UnixSocketIo } from '../../src/kvm/unix-socket.js';
import { pattern, vsockRig, type VsockRig } from '../helpers/vsock-rig.js';

const PORT = 7000;
const GUEST_PORT = 4321;

/** An established guest-initiated connection with a host socket; `bufAlloc` is the guest's buffer. */
function connect(r: VsockRig, bufAlloc?: number) {
  const lfd = r.hostListen(PORT);
  r.postRx(1);
  r.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: GUEST_PORT, dstPort: PORT, ...(bufAlloc !== undefined ? { bufAlloc } : {}) });
  r.recv();
  const host = r.io.accept(lfd);
  r.io.close(lfd);
  return host;
}

const rw = (r: VsockRig, data: Uint8Array, fwdCnt = 0) => r.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: GUEST_PORT, dstPort: PORT, fwdCnt }, data);

test('guest → host: fwd_cnt counts what reached the host; a CREDIT_UPDATE once the guest thinks under 4 KiB is free', () => {
  const r = vsockRig();
  try {
    const host = connect(r);
    r.postRx(4);
    rw(r, pattern(40 * 1024));
    assert.equal(r.recv(), [], '24 KiB still free in the guest\'s view: no update yet');
    rw(r, pattern(21 * 1024));
    const [u] = r.recv();
    assert.is(u!.hdr.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    assert.is(u!.hdr.fwdCnt, 61 * 1024);
    assert.is(u!.hdr.bufAlloc, CONN_TX_BUF_SIZE);
    assert.is(r.hostRead(host)!.length, 61 * 1024);
    r.io.close(host);
  } finally {
    r.close();
  }
});

test('host → guest stops at the guest\'s credit and resumes on its CREDIT_UPDATE', () => {
  const r = vsockRig();
  try {
    const host = connect(r, 8192);
    r.postRx(16);
    r.hostWrite(host, pattern(20_000));
    r.until(() => r.metrics.count('rx_bytes_count') === 8192, '8 KiB delivered');
    for (let i = 0; i < 5; i++) r.step(5);
    assert.is(r.metrics.count('rx_bytes_count'), 8192, 'no more without credit');
    const first = r.recv();
    assert.ok(first.every((p) => p.hdr.op === VIRTIO_VSOCK_OP_RW));
    // The guest consumed it all: its fwd_cnt catches up, 8 KiB more may come.
    r.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: GUEST_PORT, dstPort: PORT, bufAlloc: 8192, fwdCnt: 8192 });
    r.until(() => r.metrics.count('rx_bytes_count') === 16_384, 'the next 8 KiB');
    r.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: GUEST_PORT, dstPort: PORT, bufAlloc: 8192, fwdCnt: 16_384 });
    r.until(() => r.metrics.count('rx_bytes_count') === 20_000, 'the rest');
    const data = [...first, ...r.recv()].filter((p) => p.hdr.op === VIRTIO_VSOCK_OP_RW).map((p) => [...p.data]).flat();
    assert.equal(new Uint8Array(data), pattern(20_000));
    r.io.close(host);
  } finally {
    r.close();
  }
});

test('data waiting without credit: the device sends a CREDIT_REQUEST', () => {
  const r = vsockRig();
  try {
    const host = connect(r);
    r.hostWrite(host, pattern(100));
    r.step(20); // readable: a data packet is due, but no RX buffer is posted
    // Meanwhile the guest says its buffer is full.
    r.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: GUEST_PORT, dstPort: PORT, bufAlloc: 0 });
    r.postRx(2);
    const [p] = r.recv();
    assert.is(p!.hdr.op, VIRTIO_VSOCK_OP_CREDIT_REQUEST);
    r.io.close(host);
  } finally {
    r.close();
  }
});

test('host back-pressure: the TX buffer takes what the socket refuses and flushes it on POLLOUT; the guest hears of it', () => {
  const r = vsockRig();
  try {
    const host = connect(r);
    r.postRx(64);
    // An honest guest: it sends what the device's last credit information allows.
    let sent = 0;
    let seenFwd = 0;
    const fwd = (): number => r.metrics.count('tx_bytes_count');
    const hear = (): void => {
      for (const p of r.recv()) if (p.hdr.op === VIRTIO_VSOCK_OP_CREDIT_UPDATE) seenFwd = p.hdr.fwdCnt;
    };
    while (sent === fwd()) {
      hear();
      const credit = CONN_TX_BUF_SIZE - (sent - seenFwd);
      assert.ok(credit > 0, 'the device keeps the guest informed while the host keeps up');
      rw(r, pattern(credit, sent & 0xff));
      sent += credit;
    }
    hear();
    assert.ok(sent - fwd() > 0, 'data waits in the TX buffer');
    assert.is(r.metrics.count('credit_violations'), 0);
    // The host drains its socket; the device flushes the buffer on POLLOUT and tells the guest.
    let got = 0;
    r.until(() => {
      got += r.hostRead(host)!.length;
      return fwd() === sent && got === sent;
    }, 'everything on the host');
    hear();
    assert.is(seenFwd, sent, 'the guest learns that everything was forwarded');
    r.io.close(host);
  } finally {
    r.close();
  }
});

test('a guest that sends past its credit while the host is slow is reset (credit_violations)', () => {
  const r = vsockRig();
  try {
    const host = connect(r);
    r.postRx(64);
    let sent = 0;
    const fwd = (): number => r.metrics.count('tx_bytes_count');
    while (sent === fwd()) {
      rw(r, pattern(CONN_TX_BUF_SIZE));
      sent += CONN_TX_BUF_SIZE;
    }
    // Data waits in the TX buffer now; a full buffer more ignores the credit.
    rw(r, pattern(CONN_TX_BUF_SIZE));
    assert.is(r.metrics.count('credit_violations'), 1);
    const ops = r.recv().map((p) => p.hdr.op);
    assert.ok(ops.includes(VIRTIO_VSOCK_OP_RST), `ops ${ops}`);
    assert.is(r.dev.connectionCount, 0);
    r.io.close(host);
  } finally {
    r.close();
  }
});

test('the host goes away while data waits in the TX buffer and the guest posts no RX buffer: reset owed, socket no longer polled', () => {
  const r = vsockRig();
  try {
    const host = connect(r);
    let sent = 0;
    const fwd = (): number => r.metrics.count('tx_bytes_count');
    while (sent === fwd()) {
      rw(r, pattern(CONN_TX_BUF_SIZE));
      sent += CONN_TX_BUF_SIZE;
    }
    r.io.close(host); // unread data: the device's next write fails (EPIPE)
    r.step(20);
    assert.is(r.metrics.count('tx_flush_fails'), 1);
    const polled: number[] = [];
    r.dev.collectPoll((fd) => polled.push(fd));
    assert.equal(polled, [r.listenFd], 'the killed connection\'s broken socket is out of the poll set');
    assert.is(r.step(0), 0, 'nothing wakes the worker');
    r.postRx(1);
    assert.is(r.recv()[0]?.hdr.op, VIRTIO_VSOCK_OP_RST);
    assert.is(r.dev.connectionCount, 0);
  } finally {
    r.close();
  }
});

test('credit arithmetic is u32: counters that wrap past 2^32 still give the right credit', () => {
  const io = new UnixSocketIo();
  const conn = VsockConnection.peerInit({ io, metrics: new VsockMetrics(), now: () => 0, guestCid: 3 }, -1, 1, 2, 65536);
  conn.rxCnt = 0x0000_0100; // wrapped: 0x1_0000_0100 sent in total
  conn.peerFwdCnt = 0xffff_ff00; // the guest consumed up to 512 bytes ago
  assert.is(conn.peerAvailCredit(), 65536 - 512);
  conn.peerFwdCnt = 0x0000_0100;
  assert.is(conn.peerAvailCredit(), 65536);
});

test.run();
