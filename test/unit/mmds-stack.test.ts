/**
 * The MMDS network stack end to end (src/mmds/stack.ts; Firecracker mmds/ns.rs): which frames
 * it takes, ARP, the full guest path from ARP to an HTTP answer with independently verified
 * checksums, V2 tokens across two interfaces sharing a key, metrics as Firecracker names
 * them, and hostile input — malformed frames counted and survived, and random bytes
 * (fast-check) that never make it throw.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { MmdsMetrics } from '../../src/mmds/metrics.js';
import { MMDS_FRAME_PEEK_LEN, MmdsStack } from '../../src/mmds/stack.js';
import { TOKEN_KEY_LEN, TokenAuthority } from '../../src/mmds/token.js';
import {
  ACK, FIN, GUEST_IP, GUEST_MAC, GuestConn, MMDS_IP, MMDS_MAC_TEXT, PSH, SYN, arpRequest, decode, drain, fakeClock, ip, macText, onesSum,
  tcpFrame,
} from '../helpers/mmds-guest.js';

function rig(opts: { version?: 'V1' | 'V2'; key?: Uint8Array; ipv4?: string } = {}) {
  const clock = fakeClock();
  const tokens = new TokenAuthority({ key: opts.key ?? new Uint8Array(TOKEN_KEY_LEN).fill(3), instanceId: 'i-abc', now: clock.now });
  const stack = new MmdsStack({ tokens, now: clock.now, version: opts.version, ...(opts.ipv4 ? { ipv4: opts.ipv4 } : {}) });
  stack.setData('{"latest":{"meta-data":{"ami-id":"ami-12345678","local-ipv4":"172.16.0.2","tags":{"Name":"web"}}}}');
  return { clock, stack, m: stack.metrics };
}

test('ARP: a request for the MMDS address is answered from the MMDS MAC to the asker', () => {
  const { stack, m } = rig();
  assert.ok(stack.detourFrame(arpRequest()));
  assert.ok(stack.hasPendingFrames());
  const buf = new Uint8Array(1514);
  const n = stack.writeNextFrame(buf);
  assert.is(n, 42);
  const r = decode(buf.subarray(0, n));
  assert.equal([r.dstMac, r.srcMac, r.type], [macText(GUEST_MAC), MMDS_MAC_TEXT, 0x0806]);
  assert.equal(r.arp, { oper: 2, sha: MMDS_MAC_TEXT, spa: MMDS_IP, tha: macText(GUEST_MAC), tpa: GUEST_IP });
  assert.not.ok(stack.hasPendingFrames());
  assert.equal([m.count('rx_accepted'), m.count('tx_count'), m.count('tx_frames'), m.count('tx_bytes')], [1, 1, 1, 42]);
});

test('which frames are taken: ARP and IPv4 to the MMDS address only; ARP that is no request is swallowed unanswered', () => {
  const { stack, m } = rig();
  assert.not.ok(stack.detourFrame(arpRequest(ip('172.16.0.1'))), 'ARP for the gateway goes to the TAP');
  assert.not.ok(stack.detourFrame(tcpFrame({ dstIp: ip('8.8.8.8'), seq: 1, flags: SYN })));
  const ipv6 = new Uint8Array(60);
  ipv6[12] = 0x86;
  ipv6[13] = 0xdd;
  assert.not.ok(stack.detourFrame(ipv6));
  assert.not.ok(stack.detourFrame(new Uint8Array(13)), 'shorter than Ethernet');
  assert.is(m.count('rx_bad_eth'), 1);
  assert.ok(stack.detourFrame(arpRequest(MMDS_IP, { oper: 2 })), 'an ARP reply naming the MMDS: taken');
  assert.not.ok(stack.hasPendingFrames());
  assert.is(stack.events['arp-not-request'], 1);
  assert.ok(stack.detourFrame(arpRequest(MMDS_IP, { pad: 18 })), 'a padded request');
  assert.is(drain(stack).length, 1);
  assert.is(m.count('rx_accepted'), 2, 'only the two ARP frames naming the MMDS');
});

test('isMmdsFrame looks at the first MMDS_FRAME_PEEK_LEN bytes only and counts nothing', () => {
  const { stack, m } = rig();
  assert.is(MMDS_FRAME_PEEK_LEN, 42);
  assert.ok(stack.isMmdsFrame(tcpFrame({ seq: 1, flags: SYN }).subarray(0, MMDS_FRAME_PEEK_LEN)));
  assert.ok(stack.isMmdsFrame(arpRequest().subarray(0, MMDS_FRAME_PEEK_LEN)));
  assert.not.ok(stack.isMmdsFrame(tcpFrame({ seq: 1, flags: SYN }).subarray(0, 33)));
  assert.is(m.count('rx_accepted'), 0);
});

test('the full guest path: ARP → reply; SYN → SYN-ACK; a request in three segments → an HTTP answer, every checksum right', () => {
  const { stack, m } = rig();
  const arp = (stack.detourFrame(arpRequest()), drain(stack));
  assert.is(arp[0]!.arp!.sha, MMDS_MAC_TEXT, 'the guest learns the MMDS MAC');
  const c = new GuestConn(stack, 45678, 0x12345678);
  const [synAck] = c.send(SYN, '', { mss: 1460, dstMac: [6, 1, 0x23, 0x45, 0x67, 1] });
  assert.equal([synAck!.dstMac, synAck!.srcMac], [macText(GUEST_MAC), MMDS_MAC_TEXT]);
  assert.ok(synAck!.ip!.checksumOk && synAck!.tcp!.checksumOk);
  c.send(ACK);
  const req = 'GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n';
  const replies: ReturnType<typeof drain> = [];
  for (const part of [req.slice(0, 20), req.slice(20, 50), req.slice(50)]) replies.push(...c.send(ACK | PSH, part));
  const data = replies.filter((r) => r.tcp!.payload.length > 0);
  assert.ok(data.length >= 1);
  for (const r of replies) {
    assert.ok(r.ip!.checksumOk, 'IPv4 header checksum');
    assert.ok(r.tcp!.checksumOk, 'TCP checksum over the pseudo-header');
    assert.equal([r.ip!.src, r.ip!.dst, r.tcp!.srcPort, r.tcp!.dstPort], [MMDS_IP, GUEST_IP, 80, 45678]);
  }
  assert.is(
    c.received,
    'HTTP/1.1 200 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n\r\nami-id\nlocal-ipv4\ntags/',
  );
  c.send(ACK);
  assert.equal(c.send(FIN | ACK).map((r) => r.tcp!.flags), [FIN | ACK]);
  c.send(ACK);
  assert.is(stack.connectionCount, 0);
  assert.equal(
    [m.count('connections_created'), m.count('connections_destroyed'), m.count('rx_accepted_err'), m.count('tx_errors')],
    [1, 1, 0, 0],
  );
  assert.is(m.count('tx_frames'), m.count('tx_count'));
  assert.ok(m.count('rx_count') >= 7 && m.count('rx_accepted') === m.count('rx_count') + 1, 'every TCP frame handled, plus the ARP');
});

test('V2 across interfaces: a token from one stack opens the other (one shared key); no token → 401', () => {
  const key = TokenAuthority.generateKey();
  const a = rig({ version: 'V2', key });
  const b = rig({ version: 'V2', key });
  const ca = new GuestConn(a.stack);
  ca.connect();
  const put = ca.request('PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 300\r\n\r\n');
  assert.match(put, /^HTTP\/1\.1 200 \r\n[\s\S]*X-metadata-token-ttl-seconds: 300\r\n/);
  const token = put.split('\r\n\r\n')[1]!;
  assert.is(token.length, 48);
  const cb = new GuestConn(b.stack);
  cb.connect();
  assert.match(cb.request('GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 401 [\s\S]*No MMDS token provided/);
  assert.match(cb.request(`GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: ${token}\r\n\r\n`), /\r\n\r\nami-12345678$/);
  assert.is(b.m.count('rx_no_token'), 1);
  const other = rig({ version: 'V2' });
  const co = new GuestConn(other.stack);
  co.connect();
  assert.match(co.request(`GET / HTTP/1.1\r\nX-metadata-token: ${token}\r\n\r\n`), /401[\s\S]*MMDS token not valid\.$/);
  assert.is(other.m.count('rx_invalid_token'), 1);
});

test('over the wire: PATCH gets 405 with Allow, an unknown method 501 as micro_http answers it, a bad request line 400', () => {
  const { stack } = rig();
  const c = new GuestConn(stack);
  c.connect();
  assert.is(
    c.request('DELETE /latest HTTP/1.0\r\n\r\n'),
    'HTTP/1.0 405 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nAllow: GET, PUT\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\nNot allowed HTTP method.',
  );
  assert.is(
    c.request('POST /latest HTTP/1.0\r\n\r\n'),
    'HTTP/1.1 501 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\nUnsupported HTTP method.',
  );
  assert.match(c.request('GET /latest\n\n'), /^HTTP\/1\.1 400 [\s\S]*\r\n\r\nInvalid request\.$/);
  assert.match(c.request('GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n'), /ami-12345678$/, 'and the connection still serves');
});

test('configuration: another IPv4 address, V2 and imds_compat take effect; new data is served at once', () => {
  const { stack } = rig({ ipv4: '169.254.170.2' });
  assert.not.ok(stack.detourFrame(arpRequest(MMDS_IP)));
  assert.ok(stack.detourFrame(arpRequest(ip('169.254.170.2'))));
  assert.is(drain(stack)[0]!.arp!.spa, ip('169.254.170.2'));
  stack.setConfig({ ipv4: '169.254.169.254', imdsCompat: true });
  const c = new GuestConn(stack);
  c.connect();
  assert.match(c.request('GET /latest HTTP/1.1\r\nAccept: application/json\r\n\r\n'), /application\/json[\s\S]*\r\n\r\nmeta-data\/$/);
  stack.setData('{"latest":"new"}');
  assert.match(c.request('GET /latest HTTP/1.1\r\n\r\n'), /\r\n\r\nnew$/);
  stack.setConfig({ version: 'V2' });
  assert.match(c.request('GET /latest HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 401 /);
  assert.throws(() => stack.setData('{nope'));
});

test('metrics live in shared memory: another view over the buffer (main thread) reads the same counts', () => {
  const { stack } = rig();
  stack.detourFrame(arpRequest());
  drain(stack);
  const mainView = new MmdsMetrics(stack.metrics.buffer);
  assert.equal(
    Object.keys(mainView.snapshot()),
    ['rx_accepted', 'rx_accepted_err', 'rx_accepted_unusual', 'rx_bad_eth', 'rx_invalid_token', 'rx_no_token', 'rx_count', 'tx_bytes', 'tx_count',
      'tx_errors', 'tx_frames', 'connections_created', 'connections_destroyed'],
    "Firecracker's field names and order",
  );
  assert.equal([mainView.count('rx_accepted'), mainView.count('tx_bytes')], [1, 42]);
});

test('malformed IPv4 and TCP to the MMDS: consumed, counted by reason and metric; the stack still serves afterwards', () => {
  const { stack, m } = rig();
  const good = tcpFrame({ seq: 1, flags: SYN });
  const variants: [string, Uint8Array][] = [
    ['ipv4-checksum', tcpFrame({ seq: 1, flags: SYN, ipChecksum: 'bad' })],
    ['ipv4-fragment', tcpFrame({ seq: 1, flags: SYN, fragment: 0x2000 })],
    ['ipv4-truncated', good.subarray(0, 40)],
    ['tcp-checksum', tcpFrame({ seq: 1, flags: SYN, tcpChecksum: 'bad' })],
  ];
  const ihl = good.slice();
  ihl[14] = 0x43;
  variants.push(['ipv4-header-length', ihl]);
  for (const [reason, frame] of variants) {
    assert.ok(stack.detourFrame(frame), reason);
    assert.is(stack.events[reason as keyof typeof stack.events], 1, reason);
  }
  assert.is(m.count('rx_accepted_err'), variants.length);
  const udp = good.slice();
  udp[23] = 17;
  udp[24] = udp[25] = 0;
  const sum = ~onesSum(udp.subarray(14, 34)) & 0xffff;
  udp[24] = sum >> 8;
  udp[25] = sum & 0xff;
  assert.ok(stack.detourFrame(udp));
  assert.is(m.count('rx_accepted_unusual'), 1, 'UDP to the MMDS is unusual');
  assert.equal(drain(stack), [], 'none of them is answered');
  const c = new GuestConn(stack);
  c.connect();
  assert.match(c.request('GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n'), /ami-12345678$/);
  assert.ok(stack.detourFrame(tcpFrame({ seq: c.seq, ack: c.ack, flags: ACK, payload: 'x', tcpChecksum: 'partial', srcPort: c.srcPort })),
    'an offloaded (partial) checksum is accepted');
  assert.is(stack.events['tcp-checksum'], 1);
});

test('property: random bytes into detourFrame never throw, and the stack keeps writing valid frames', () => {
  const { stack, clock } = rig();
  const buf = new Uint8Array(1600);
  const prefix = (kind: number): number[] =>
    kind === 0 ? [] : [6, 1, 0x23, 0x45, 0x67, 1, ...GUEST_MAC, 0x08, kind === 1 ? 0x06 : 0x00];
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 }), fc.uint8Array({ maxLength: 200 }), fc.nat(1000), (kind, bytes, dt) => {
      const f = new Uint8Array([...prefix(kind), ...bytes]);
      // Aim a share of the frames at the MMDS address so they get past the first check.
      if (kind === 1 && f.length >= 42) f.set([169, 254, 169, 254], 38);
      if (kind === 2 && f.length >= 34) f.set([169, 254, 169, 254], 30);
      stack.detourFrame(f);
      clock.advance(dt);
      stack.tick();
      for (let n = stack.writeNextFrame(buf); n > 0; n = stack.writeNextFrame(buf)) {
        const r = decode(buf.slice(0, n));
        if (r.ip) assert.ok(r.ip.checksumOk && r.tcp!.checksumOk);
      }
    }),
    { numRuns: 3000 },
  );
  assert.is(stack.events['internal-error'], 0);
});

test('property: mutated valid segments (SYN, data, FIN) never throw and never leave a bad checksum out', () => {
  const { stack, clock } = rig();
  const buf = new Uint8Array(1600);
  const base = [
    tcpFrame({ seq: 100, flags: SYN, mss: 1460 }),
    tcpFrame({ seq: 101, ack: 1, flags: ACK | PSH, payload: 'GET /latest HTTP/1.1\r\n\r\n' }),
    tcpFrame({ seq: 125, ack: 1, flags: ACK | FIN }),
    arpRequest(),
  ];
  fc.assert(
    fc.property(fc.nat(base.length - 1), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }), fc.nat(600), (which, edits, dt) => {
      const f = base[which]!.slice();
      for (const [pos, value] of edits) f[pos % f.length] = value;
      stack.detourFrame(f);
      stack.detourFrame(f.subarray(0, edits.length * 7));
      clock.advance(dt);
      for (let n = stack.writeNextFrame(buf); n > 0; n = stack.writeNextFrame(buf)) {
        const r = decode(buf.slice(0, n));
        if (r.ip) assert.ok(r.ip.checksumOk && r.tcp!.checksumOk);
      }
    }),
    { numRuns: 3000 },
  );
  assert.ok(stack.connectionCount <= 30);
  assert.is(stack.events['internal-error'], 0);
});

test.run();
