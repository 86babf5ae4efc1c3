/**
 * The MMDS's TCP (src/mmds/tcp-connection.ts, tcp-listener.ts; Firecracker dumbo/tcp/),
 * driven through an MmdsStack with a fake clock: handshake, requests split and reordered,
 * RSTs, the connection limit and eviction, the 2500-byte request buffer, retransmission and
 * its give-up, closing, and the segment size limits.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MMDS_EVICTION_MS, MMDS_MAX_CONNECTIONS, MMDS_RCV_BUF_SIZE, MMDS_RTO_COUNT_MAX, MMDS_RTO_MS } from '../../src/mmds/constants.js';
import { MmdsStack } from '../../src/mmds/stack.js';
import { TOKEN_KEY_LEN, TokenAuthority } from '../../src/mmds/token.js';
import { ACK, FIN, GUEST_IP, GuestConn, MMDS_IP, PSH, RST, SYN, drain, fakeClock, tcpFrame, type Reply } from '../helpers/mmds-guest.js';

const ISN = 0xfffffff0; // near the wrap, so sequence arithmetic is exercised
const GET = 'GET /latest/meta-data HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n';

function rig() {
  const clock = fakeClock();
  const tokens = new TokenAuthority({ key: new Uint8Array(TOKEN_KEY_LEN), instanceId: 'i', now: clock.now });
  const stack = new MmdsStack({ tokens, now: clock.now, random: () => ISN });
  stack.setData('{"latest":{"meta-data":{"ami-id":"ami-1","big":"' + 'x'.repeat(3000) + '"}}}');
  return { clock, stack, m: stack.metrics };
}

const tcp = (r: Reply): NonNullable<Reply['tcp']> => r.tcp!;
const flagsOf = (rs: Reply[]): number[] => rs.map((r) => tcp(r).flags);

test('handshake: SYN → SYN-ACK (ISN, ack, MSS echoed, window 2500, checksums) → ACK, nothing more', () => {
  const { stack, m } = rig();
  const c = new GuestConn(stack, 40000, 1000);
  const [synAck, ...rest] = c.send(SYN, '', { mss: 1460 });
  assert.is(rest.length, 0);
  const t = tcp(synAck!);
  assert.equal([t.flags, t.seq, t.ack, t.mss, t.window, t.srcPort, t.dstPort], [SYN | ACK, ISN, 1001, 1460, MMDS_RCV_BUF_SIZE, 80, 40000]);
  assert.equal([synAck!.ip!.src, synAck!.ip!.dst, synAck!.ip!.ttl, synAck!.ip!.checksumOk, t.checksumOk], [MMDS_IP, GUEST_IP, 1, true, true]);
  assert.equal(c.send(ACK), []);
  assert.is(stack.connectionCount, 1);
  assert.is(m.count('connections_created'), 1);
  assert.is(stack.nextTimeoutMs(), null, 'nothing outstanding: no timer');
  const d = new GuestConn(stack, 40001);
  assert.is(tcp(d.send(SYN)[0]!).mss, 536, 'no MSS option: 536');
  const e = new GuestConn(stack, 40002);
  assert.is(tcp(e.send(SYN | 0x40 | 0x80)[0]!).flags, SYN | ACK, 'an ECN-setup SYN is a SYN (ECN not negotiated back)');
});

test('a request split over several segments is answered once complete; each part is ACKed', () => {
  const { stack } = rig();
  const c = new GuestConn(stack);
  c.connect();
  const acks = c.send(ACK, GET.slice(0, 10));
  assert.equal(flagsOf(acks), [ACK]);
  assert.is(tcp(acks[0]!).ack, (1001 + 10) >>> 0);
  assert.is(tcp(acks[0]!).window, MMDS_RCV_BUF_SIZE - 10, 'the window is the free buffer');
  c.send(ACK, GET.slice(10, 30));
  const reply = c.send(ACK | PSH, GET.slice(30));
  assert.ok(reply.length === 1 && tcp(reply[0]!).payload.length > 0);
  assert.match(c.received, /^HTTP\/1\.1 200 \r\n[\s\S]*\r\n\r\nami-id\nbig$/);
  assert.is(tcp(reply[0]!).window, MMDS_RCV_BUF_SIZE, 'the request left the buffer');
});

test('out-of-order and duplicate segments: dropped with a duplicate ACK, then accepted in order; overlap trimmed', () => {
  const { stack, m } = rig();
  const c = new GuestConn(stack);
  c.connect();
  const base = c.seq;
  const early = c.send(ACK, GET.slice(20), { seq: base + 20 });
  assert.equal(early.map((r) => [tcp(r).flags, tcp(r).ack]), [[ACK, base]], 'a gap: ACK of what we have');
  assert.is(stack.events['tcp-unexpected-seq'], 1);
  c.send(ACK, GET.slice(0, 10), { seq: base });
  const dup = c.send(ACK, GET.slice(0, 10), { seq: base });
  assert.equal(dup.map((r) => tcp(r).ack), [base + 10], 'a duplicate: re-ACKed, not stored twice');
  const overlap = c.send(ACK, GET.slice(5), { seq: base + 5 });
  assert.ok(overlap.some((r) => tcp(r).payload.length > 0), 'bytes 5..9 trimmed, the rest completes the request');
  assert.match(c.received, /200/);
  assert.is(m.count('rx_accepted_unusual'), 2);
});

test('pipelined requests are answered one after the other, on one keep-alive connection', () => {
  const { stack } = rig();
  const c = new GuestConn(stack);
  c.connect();
  const one = 'GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n';
  const out = c.request(one + one);
  assert.is(out.match(/HTTP\/1\.1 200 /g)!.length, 2);
  assert.ok(out.endsWith('ami-1'));
  assert.match(c.request(one), /ami-1$/, 'the connection stays up for the next request');
  assert.is(stack.connectionCount, 1);
});

test('RSTs: closed port, unknown connection, bad flags; a RST is never answered', () => {
  const { stack, m } = rig();
  stack.detourFrame(tcpFrame({ dstPort: 8080, seq: 500, flags: SYN }));
  const [closed] = drain(stack);
  assert.equal([tcp(closed!).flags, tcp(closed!).seq, tcp(closed!).ack, tcp(closed!).srcPort], [RST | ACK, 0, 501, 8080], 'refused: the SYN is ACKed');
  assert.is(m.count('rx_accepted_err'), 1);
  stack.detourFrame(tcpFrame({ srcPort: 1234, seq: 9, ack: 777, flags: ACK, payload: 'x' }));
  assert.equal(drain(stack).map((r) => [tcp(r).flags, tcp(r).seq]), [[RST, 777]], 'an ACK for nothing: RST with seq = its ACK');
  stack.detourFrame(tcpFrame({ srcPort: 1234, seq: 9, flags: RST }));
  assert.equal(drain(stack), []);
  stack.detourFrame(tcpFrame({ srcPort: 1235, seq: 9, flags: SYN | FIN }));
  assert.equal(flagsOf(drain(stack)), [RST | ACK], 'SYN+FIN opens nothing');
  stack.detourFrame(tcpFrame({ srcPort: 1236, seq: 9, flags: SYN, payload: 'data' }));
  assert.equal(drain(stack), [], 'a SYN with data is ignored, as Firecracker does');
  assert.is(stack.connectionCount, 0);

  const c = new GuestConn(stack);
  c.connect();
  assert.equal(flagsOf(c.send(SYN, '', { seq: 5 })), [RST | ACK], 'a SYN on an established connection resets it');
  assert.is(stack.connectionCount, 0);
  assert.is(m.count('connections_destroyed'), 1);

  const d = new GuestConn(stack, 41000);
  d.send(SYN);
  assert.equal(flagsOf(d.send(ACK, '', { ack: 12345 })), [RST], 'the handshake ACK acks something else');
  assert.is(stack.connectionCount, 0);
});

test('a RST from the guest: in window ends the connection, out of window is ignored', () => {
  const { stack, m } = rig();
  const c = new GuestConn(stack);
  c.connect();
  c.send(RST, '', { seq: c.seq + 100_000 });
  assert.is(stack.connectionCount, 1);
  assert.is(stack.events['tcp-invalid-rst'], 1);
  assert.equal(c.send(RST), []);
  assert.is(stack.connectionCount, 0);
  assert.is(m.count('connections_destroyed'), 1);
});

test('30 connections at most: the 31st SYN is refused, or evicts the stalest after 10 s of silence', () => {
  const { stack, clock, m } = rig();
  const conns = Array.from({ length: MMDS_MAX_CONNECTIONS }, (_, i) => new GuestConn(stack, 10_000 + i));
  for (const c of conns) {
    c.connect();
    clock.advance(1);
  }
  conns[0]!.send(ACK, 'GET'); // the first connection is no longer the stalest
  assert.is(stack.connectionCount, MMDS_MAX_CONNECTIONS);
  const late = new GuestConn(stack, 20_000, 77);
  assert.equal(late.send(SYN).map((r) => [tcp(r).flags, tcp(r).ack, tcp(r).dstPort]), [[RST | ACK, 78, 20_000]]);
  assert.is(stack.connectionCount, MMDS_MAX_CONNECTIONS);
  clock.advance(MMDS_EVICTION_MS + 1);
  const replies = late.send(SYN);
  assert.equal(replies.map((r) => [tcp(r).flags, tcp(r).dstPort]).sort(), [[RST, 10_001], [SYN | ACK, 20_000]].sort(), 'port 10001 was silent longest');
  assert.is(stack.connectionCount, MMDS_MAX_CONNECTIONS);
  assert.equal([m.count('connections_created'), m.count('connections_destroyed')], [31, 1]);
});

test('the 2500-byte request buffer: exactly 2500 bytes is served, one more resets the connection', () => {
  const { stack, m } = rig();
  const head = 'GET /latest/meta-data/ami-id HTTP/1.1\r\nX-pad: ';
  const exact = head + 'p'.repeat(MMDS_RCV_BUF_SIZE - head.length - 4) + '\r\n\r\n';
  assert.is(exact.length, MMDS_RCV_BUF_SIZE);
  const c = new GuestConn(stack);
  c.connect(1460);
  assert.match(c.request(exact, [1400, 1100]), /ami-1$/);
  const d = new GuestConn(stack, 40001);
  d.connect(1460);
  const part = 'GET / HTTP/1.1\r\nX-pad: ' + 'p'.repeat(1400);
  d.send(ACK, part);
  assert.equal(flagsOf(d.send(ACK, 'p'.repeat(MMDS_RCV_BUF_SIZE - part.length - 1))), [ACK], '2499 bytes: still waiting');
  const more = d.send(ACK, 'p');
  assert.equal(flagsOf(more), [RST], 'the buffer is full and holds no complete request');
  assert.is(stack.events['tcp-request-too-large'], 1);
  assert.is(stack.connectionCount, 1);
  const e = new GuestConn(stack, 40002);
  e.connect();
  e.send(ACK, 'x'.repeat(2000));
  assert.equal(e.send(ACK, 'y'.repeat(600)).map((r) => tcp(r).ack), [e.seq - 600], 'beyond the window: dropped and re-ACKed');
  assert.is(stack.events['tcp-beyond-window'], 1);
  assert.ok(m.count('rx_accepted_unusual') >= 2);
});

test('retransmission: unacknowledged data is resent after 300 ms with the same sequence number; 15 timeouts reset', () => {
  const { stack, clock, m } = rig();
  const c = new GuestConn(stack);
  c.connect();
  const first = c.send(ACK | PSH, 'GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n');
  assert.is(first.length, 1);
  const seq = tcp(first[0]!).seq;
  assert.is(stack.nextTimeoutMs(), MMDS_RTO_MS);
  clock.advance(MMDS_RTO_MS - 1);
  assert.not.ok(stack.hasPendingFrames());
  assert.is(stack.nextTimeoutMs(), 1);
  clock.advance(1);
  assert.ok(stack.hasPendingFrames(), 'a due timer counts as pending');
  assert.is(stack.nextTimeoutMs(), 0);
  const again = drain(stack);
  assert.equal(again.map((r) => [tcp(r).seq, tcp(r).payload.length]), [[seq, tcp(first[0]!).payload.length]]);
  for (let i = 2; i < MMDS_RTO_COUNT_MAX; i++) {
    clock.advance(MMDS_RTO_MS);
    stack.tick();
    assert.is(drain(stack).length, 1, `retransmission ${i}`);
  }
  clock.advance(MMDS_RTO_MS);
  stack.tick();
  assert.equal(flagsOf(drain(stack)), [RST], 'the 15th timeout gives up');
  assert.is(stack.connectionCount, 0);
  assert.is(stack.nextTimeoutMs(), null);
  assert.is(m.count('connections_destroyed'), 1);
});

test('retransmission: the SYN-ACK when the handshake stalls; progress resets the count; a duplicate ACK resends one segment', () => {
  const { stack, clock } = rig();
  const c = new GuestConn(stack);
  c.send(SYN, '', { mss: 100 });
  clock.advance(MMDS_RTO_MS);
  assert.equal(flagsOf(drain(stack)), [SYN | ACK]);
  assert.equal(flagsOf(c.send(SYN, '', { seq: 1000, mss: 100 })), [SYN | ACK], 'a retransmitted SYN gets the SYN-ACK again');
  c.send(ACK);
  const segs = c.send(ACK | PSH, 'GET /latest/meta-data/big HTTP/1.1\r\n\r\n');
  assert.ok(segs.length > 5 && segs.every((r) => tcp(r).payload.length <= 100), 'the guest MSS bounds every segment');
  const una = tcp(segs[0]!).seq;
  const dup = c.send(ACK, '', { ack: una });
  assert.equal(dup.map((r) => [tcp(r).seq, tcp(r).payload.length]), [[una, 100]], 'one segment from the first unacknowledged byte');
  assert.is(stack.events['tcp-dup-ack'], 1);
});

test('lost segments: after the timeout the stack goes back to the first unacknowledged byte and the answer completes', () => {
  const { stack, clock } = rig();
  const c = new GuestConn(stack);
  c.connect(200);
  const sent = drainAfter(c, 'GET /latest/meta-data/big HTTP/1.1\r\n\r\n');
  assert.ok(sent.length > 10);
  c.absorb(sent.slice(0, 2)); // the rest is "lost"
  const ackOfTwo = c.send(ACK);
  assert.equal(ackOfTwo, [], 'an ACK of the first two: everything else is already in flight');
  clock.advance(MMDS_RTO_MS);
  const resent = c.absorb(drain(stack));
  assert.is(tcp(resent[0]!).seq, tcp(sent[2]!).seq, 'from the first unacknowledged byte');
  assert.is(resent.length, sent.length - 2);
  c.send(ACK);
  assert.ok(c.received.endsWith('x'.repeat(3000)));
  assert.not.ok(stack.hasPendingFrames());
  assert.is(stack.nextTimeoutMs(), null);
});

/** Sends a request and returns every frame the stack answers with, without the guest taking them in. */
function drainAfter(c: GuestConn, request: string): Reply[] {
  c.stack.detourFrame(tcpFrame({ seq: c.seq, ack: c.ack, flags: ACK | PSH, payload: request, srcPort: c.srcPort }));
  c.seq += request.length;
  return drain(c.stack);
}

test('the peer window bounds the data in flight; a window update lets more out', () => {
  const { stack } = rig();
  const c = new GuestConn(stack);
  c.send(SYN, '', { mss: 1000, window: 300 });
  c.send(ACK, '', { window: 300 });
  const first = c.send(ACK | PSH, 'GET /latest/meta-data/big HTTP/1.1\r\n\r\n', { window: 300 });
  assert.equal(first.map((r) => tcp(r).payload.length), [300]);
  const next = c.send(ACK, '', { window: 1500 });
  assert.equal(next.map((r) => tcp(r).payload.length), [1000, 500]);
});

test('closing: the guest FIN gets our FIN once no response is pending; done when ours is ACKed, without a gratuitous RST', () => {
  const { stack, m } = rig();
  const c = new GuestConn(stack);
  c.connect();
  const out = c.send(ACK | PSH | FIN, 'GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n');
  assert.equal(flagsOf(out), [ACK], 'the response first (it ACKs the FIN too)');
  assert.is(tcp(out[0]!).ack, c.seq);
  const fin = c.send(ACK);
  assert.equal(flagsOf(fin), [FIN | ACK], 'the response ACKed: our FIN');
  assert.is(stack.connectionCount, 1);
  assert.equal(c.send(ACK), [], 'the last ACK draws nothing');
  assert.is(stack.connectionCount, 0);
  assert.is(m.count('connections_destroyed'), 1);
});

test('closing: a lost FIN is retransmitted', () => {
  const { stack, clock } = rig();
  const c = new GuestConn(stack);
  c.connect();
  assert.equal(flagsOf(c.send(FIN | ACK)), [FIN | ACK]);
  clock.advance(MMDS_RTO_MS);
  assert.equal(flagsOf(drain(stack)), [FIN | ACK]);
  c.send(ACK);
  assert.is(stack.connectionCount, 0);
});

test('at most 100 RSTs wait; the rest are dropped and counted', () => {
  const { stack } = rig();
  for (let i = 0; i < 150; i++) stack.detourFrame(tcpFrame({ srcPort: 2000 + i, seq: i, ack: i, flags: ACK }));
  assert.is(drain(stack).length, 100);
  assert.is(stack.events['tcp-rst-queue-full'], 50);
});

test('frame buffers: under 58 bytes nothing is written (tx_errors); a small buffer shrinks the segments', () => {
  const { stack, m } = rig();
  const c = new GuestConn(stack);
  c.connect();
  c.stack.detourFrame(tcpFrame({ seq: c.seq, ack: c.ack, flags: ACK | PSH, payload: 'GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n' }));
  assert.is(stack.writeNextFrame(new Uint8Array(57)), 0);
  assert.is(m.count('tx_errors'), 1);
  const small = drain(stack, 100);
  assert.ok(small.length > 1 && small.every((r) => tcp(r).payload.length <= 100 - 54 && tcp(r).checksumOk));
  assert.is(stack.writeNextFrame(new Uint8Array(10)), 0);
  assert.is(m.count('tx_errors'), 1, 'nothing pending: not an error');
});

test.run();
