/**
 * The host-initiated side of the vsock model (host-listener.ts, muxer.ts) on real Unix
 * sockets, with the queue fake as the guest driver and a fake clock: `CONNECT <port>\n` →
 * REQUEST → guest RESPONSE → `OK <local_port>\n`; a guest RST or no answer; lines in pieces;
 * hostile clients (garbage, silence, a flood), the connection limit, and fd counts back to
 * where they started. The CONNECT line parser itself is in vsock-packet.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CONN_REQUEST_TIMEOUT_MS, HOST_CONNECT_TIMEOUT_MS, LOCAL_PORT_FIRST, MAX_CONNECTIONS, MAX_PENDING_HOST_CONNECTIONS,
  VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_RST, VIRTIO_VSOCK_OP_RW, VSOCK_HOST_CID,
} from '../../src/devices/virtio/vsock/constants.js';
import { GUEST_CID, openFds, pattern, vsockRig, type VsockRig } from '../helpers/vsock-rig.js';

const text = (b: Uint8Array | null): string => (b ? new TextDecoder().decode(b) : '<closed>');

/** Steps until the guest has a REQUEST; returns it. */
function awaitRequest(r: VsockRig) {
  let req: ReturnType<VsockRig['recv']>[number] | undefined;
  r.until(() => (req ??= r.recv().find((p) => p.hdr.op === VIRTIO_VSOCK_OP_REQUEST)) !== undefined, 'a REQUEST for the guest');
  return req!.hdr;
}

test('CONNECT 5000: REQUEST to the guest, its RESPONSE gives the host "OK <port>", data flows both ways', () => {
  const r = vsockRig();
  try {
    r.postRx(16);
    // Data right behind the line, in the same write: it is the connection's first data.
    const c = r.hostConnect('CONNECT 5000\nearly');
    const req = awaitRequest(r);
    assert.equal([req.srcCid, req.dstCid, req.srcPort, req.dstPort], [VSOCK_HOST_CID, GUEST_CID, LOCAL_PORT_FIRST, 5000]);
    assert.equal(r.hostRead(c), new Uint8Array(0), 'no reply before the guest accepts');
    r.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 5000, dstPort: LOCAL_PORT_FIRST });
    assert.is(text(r.hostRead(c)), `OK ${LOCAL_PORT_FIRST}\n`);
    r.until(() => r.metrics.count('rx_bytes_count') === 5, 'the early bytes');
    const early = r.recv().filter((p) => p.hdr.op === VIRTIO_VSOCK_OP_RW);
    assert.is(text(early[0]!.data), 'early');
    r.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5000, dstPort: LOCAL_PORT_FIRST }, pattern(300));
    assert.equal(r.hostRead(c), pattern(300));
    r.io.close(c);
  } finally {
    r.close();
  }
});

test('the guest refuses (RST): the host connection is closed; the next one gets the next local port', () => {
  const r = vsockRig();
  try {
    r.postRx(16);
    const c1 = r.hostConnect('connect 5001\n');
    const req = awaitRequest(r);
    r.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: 5001, dstPort: req.srcPort });
    assert.is(r.hostRead(c1), null);
    const c2 = r.hostConnect('CONNECT 5001\n');
    assert.is(awaitRequest(r).srcPort, LOCAL_PORT_FIRST + 1, 'round robin, not the freed port');
    r.io.close(c1);
    r.io.close(c2);
  } finally {
    r.close();
  }
});

test('a REQUEST the guest never answers is reset after 2 s and the host connection closed', () => {
  const r = vsockRig();
  try {
    r.postRx(16);
    const c = r.hostConnect('CONNECT 5002\n');
    const req = awaitRequest(r);
    r.advance(CONN_REQUEST_TIMEOUT_MS - 1);
    assert.is(r.dev.connectionCount, 1);
    r.advance(2);
    const rst = r.recv().find((p) => p.hdr.op === VIRTIO_VSOCK_OP_RST);
    assert.equal([rst?.hdr.srcPort, rst?.hdr.dstPort], [req.srcPort, 5002]);
    assert.is(r.dev.connectionCount, 0);
    assert.is(r.hostRead(c), null);
    assert.is(r.metrics.count('conns_killed'), 1);
    r.io.close(c);
  } finally {
    r.close();
  }
});

test('a line in pieces, any case, a + sign and extra words; garbage, end of stream and silence are closed and counted', () => {
  const r = vsockRig();
  try {
    r.postRx(32);
    const slow = r.hostConnect('CON');
    r.step(10);
    r.hostWrite(slow, new TextEncoder().encode('NECT +6'));
    r.step(10);
    r.hostWrite(slow, new TextEncoder().encode('000 whatever\n'));
    assert.is(awaitRequest(r).dstPort, 6000);
    const bad = ['HELLO 5000\n', 'CONNECT abc\n', 'CONNECT 4294967296\n', 'CONNECT\n\n\n\n\n\n\n\n\n', 'x'.repeat(40)]
      .map((l) => r.hostConnect(l));
    const bin = r.hostConnect();
    r.hostWrite(bin, Uint8Array.from([0x43, 0x4f, 0xff, 0xfe, 0x20, 0x31, 0x20, 0x20, 0x20, 0x20, 0x0a]));
    const eof = r.hostConnect('CONNECT');
    r.step(10);
    r.io.close(eof);
    const silent = r.hostConnect();
    r.until(() => r.metrics.count('host_connects_invalid') === 7, 'seven invalid clients closed');
    for (const fd of [...bad, bin]) assert.is(r.hostRead(fd), null, 'closed without a reply');
    assert.is(r.dev.pendingHostCount, 1, 'only the silent one waits');
    r.advance(HOST_CONNECT_TIMEOUT_MS);
    assert.is(r.dev.pendingHostCount, 0);
    assert.is(r.metrics.count('host_connects_timed_out'), 1);
    assert.is(r.hostRead(silent), null);
    [...bad, bin, silent, slow].forEach((fd) => r.io.close(fd));
  } finally {
    r.close();
  }
});

test('a flood of 1000 silent clients: at most 128 held, the rest wait in the backlog; all served in turn, no fd leak', () => {
  const before = openFds();
  const r = vsockRig();
  try {
    const clients = Array.from({ length: 1000 }, () => r.hostConnect());
    let maxPending = 0;
    for (let round = 0; r.metrics.count('host_connects_timed_out') < 1000; round++) {
      for (let i = 0; i < 4; i++) {
        r.step(0);
        maxPending = Math.max(maxPending, r.dev.pendingHostCount);
      }
      r.advance(HOST_CONNECT_TIMEOUT_MS);
      if (round > 100) throw new Error(`stuck: ${r.metrics.count('host_connects_timed_out')} timed out`);
    }
    assert.is(maxPending, MAX_PENDING_HOST_CONNECTIONS);
    assert.is(r.metrics.count('host_connects_accepted'), 1000);
    // A well-behaved client after the flood is served at once.
    r.postRx(4);
    const ok = r.hostConnect('CONNECT 80\n');
    assert.is(awaitRequest(r).dstPort, 80);
    clients.forEach((fd) => r.io.close(fd));
    r.io.close(ok);
  } finally {
    r.close();
  }
  assert.is(openFds(), before, 'every fd of the flood is closed');
});

test(`at ${MAX_CONNECTIONS} connections further requests get RST and host clients are closed at once`, () => {
  const before = openFds();
  const r = vsockRig();
  const hostSide: number[] = [];
  try {
    const lfd = r.hostListen(9000);
    for (let i = 0; i < MAX_CONNECTIONS; i++) {
      if (i % 100 === 0) r.postRx(100);
      r.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 10_000 + i, dstPort: 9000 });
      r.recv();
      hostSide.push(r.io.accept(lfd));
    }
    assert.is(r.dev.connectionCount, MAX_CONNECTIONS);
    r.postRx(8);
    r.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 99, dstPort: 9000 });
    assert.is(r.recv()[0]?.hdr.op, VIRTIO_VSOCK_OP_RST);
    const c = r.hostConnect('CONNECT 1\n');
    r.until(() => r.hostRead(c) === null, 'the host client closed');
    assert.ok(r.metrics.count('connection_limit_refusals') >= 2);
    // One connection goes: room for one more.
    r.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: 10_000, dstPort: 9000 });
    r.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 99, dstPort: 9000 });
    assert.is(r.recv()[0]?.hdr.op, VIRTIO_VSOCK_OP_RESPONSE);
    hostSide.push(r.io.accept(lfd));
    r.io.close(lfd);
    r.io.close(c);
  } finally {
    r.close();
    hostSide.forEach((fd) => r.io.close(fd));
  }
  assert.is(openFds(), before, 'closing the device closed its 1023 connections');
});

test.run();
