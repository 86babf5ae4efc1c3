/**
 * The MMDS inside the net device (docs/design.md "MMDS"), with the queue fake and an in-memory
 * TAP (test/helpers/net-rig.ts): frames the guest sends to the MMDS are answered through the
 * RX queue and never reach the TAP; answers go ahead of TAP frames, wait for receive buffers,
 * and are charged to neither rate limiter. The guest side is test/helpers/mmds-guest.ts's
 * TCP client, talking through the device's queues instead of to the stack directly.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VIRTIO_NET_HDR_NUM_BUFFERS, VIRTIO_NET_HDR_SIZE } from '../../src/devices/virtio/constants.js';
import { MmdsMetrics } from '../../src/mmds/metrics.js';
import { MmdsStack } from '../../src/mmds/stack.js';
import { TOKEN_KEY_LEN, TokenAuthority } from '../../src/mmds/token.js';
import { ACK, GuestConn, arpRequest, decode, fakeClock, tcpFrame, type MmdsLink, SYN } from '../helpers/mmds-guest.js';
import { chainBytes, frame, netRig, postRx, sendFrame, type NetRig, type NetRigOptions } from '../helpers/net-rig.js';

const RX_CHAIN = 2048;

/** A guest driver's view of the MMDS through the device: TX chains out, RX chains back. */
class DeviceLink implements MmdsLink {
  private readonly posted = new Map<number, ReturnType<typeof postRx>>();
  private readonly inbox: Uint8Array[] = [];
  /** The virtio-net headers of the frames received, for the header checks. */
  readonly headers: Uint8Array[] = [];
  constructor(readonly r: NetRig, chains = 8) {
    this.post(chains);
  }

  post(n: number): void {
    for (let i = 0; i < n; i++) {
      const c = postRx(this.r, [RX_CHAIN]);
      this.posted.set(c.head, c);
    }
    this.r.rxq.kick();
  }

  detourFrame(f: Uint8Array): boolean {
    const before = this.r.tap.sent.length;
    const withHdr = new Uint8Array(VIRTIO_NET_HDR_SIZE + f.length);
    withHdr.set(f, VIRTIO_NET_HDR_SIZE);
    sendFrame(this.r, withHdr);
    this.r.txq.kick();
    return this.r.tap.sent.length === before;
  }

  private collect(): void {
    for (const u of this.r.rxq.takeUsed()) {
      const c = this.posted.get(u.id)!;
      this.posted.delete(u.id);
      const bytes = chainBytes(this.r.mem, c, u.len);
      this.headers.push(bytes.slice(0, VIRTIO_NET_HDR_SIZE));
      this.inbox.push(bytes.slice(VIRTIO_NET_HDR_SIZE));
    }
  }

  hasPendingFrames(): boolean {
    this.collect();
    return this.inbox.length > 0;
  }

  writeNextFrame(buf: Uint8Array): number {
    this.collect();
    const f = this.inbox.shift();
    if (!f) return 0;
    buf.set(f);
    this.post(1);
    return f.length;
  }
}

function mmdsRig(o: NetRigOptions = {}, data = '{"latest":{"meta-data":{"id":"i-1234"}}}') {
  const clock = fakeClock();
  const metrics = new MmdsMetrics();
  const stack = new MmdsStack({ tokens: new TokenAuthority({ key: new Uint8Array(TOKEN_KEY_LEN).fill(9), instanceId: 'i-test', now: clock.now }), now: clock.now, metrics });
  stack.setData(data);
  const r = netRig({ ...o, mmds: stack });
  return { r, stack, metrics, clock };
}

test('ARP for the MMDS address: answered through RX with a clean virtio-net header, never written to the TAP', () => {
  const { r, metrics } = mmdsRig();
  const link = new DeviceLink(r);
  assert.ok(link.detourFrame(arpRequest()), 'the TAP saw nothing');
  const buf = new Uint8Array(RX_CHAIN);
  const n = link.writeNextFrame(buf);
  const reply = decode(buf.subarray(0, n));
  assert.is(reply.arp?.oper, 2);
  assert.is(reply.srcMac, '06:01:23:45:67:01');
  const hdr = new DataView(link.headers[0]!.buffer);
  assert.is(hdr.getUint16(VIRTIO_NET_HDR_NUM_BUFFERS, true), 1);
  assert.ok(link.headers[0]!.every((b, i) => i === VIRTIO_NET_HDR_NUM_BUFFERS || b === 0), 'no offload flags, no GSO');
  assert.is(r.tap.sent.length, 0);
  assert.is(metrics.snapshot().rx_accepted, 1);
  const m = r.metrics.snapshot();
  assert.equal([m.tx_packets_count, m.rx_packets_count], [0, 1], 'the answer is counted as received, the request not as sent to the TAP');
});

test('an HTTP GET over TCP through the device queues: the guest reads its metadata; other frames still reach the TAP', () => {
  const { r, metrics } = mmdsRig();
  const conn = new GuestConn(new DeviceLink(r));
  const synAck = conn.connect(536);
  assert.ok(synAck.some((f) => f.tcp && f.tcp.flags === (SYN | ACK) && f.tcp.checksumOk && f.ip!.checksumOk));
  const text = conn.request('GET /latest/meta-data/id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n');
  assert.match(text, /^HTTP\/1\.1 200/);
  assert.ok(text.endsWith('i-1234'), text);
  assert.is(r.tap.sent.length, 0, 'no MMDS segment on the TAP');
  assert.ok(metrics.snapshot().rx_accepted >= 3);
  sendFrame(r, frame(200));
  r.txq.kick();
  assert.is(r.tap.sent.length, 1, 'ordinary traffic is untouched');
});

test('MMDS frames are charged to neither rate limiter', () => {
  // One op per 100 s each way: a second TAP frame in either direction would wait.
  const limits = { ops: { size: 1, refill_time: 100_000 } };
  const { r } = mmdsRig({ txLimits: limits, rxLimits: limits });
  const link = new DeviceLink(r);
  for (let i = 0; i < 5; i++) assert.ok(link.detourFrame(arpRequest()));
  const buf = new Uint8Array(RX_CHAIN);
  let answers = 0;
  while (link.writeNextFrame(buf) > 0) answers++;
  assert.ok(answers >= 1, 'answers came back although the RX bucket allows one frame per 100 s');
  sendFrame(r, frame(100));
  r.txq.kick();
  assert.is(r.tap.sent.length, 1, 'the TX bucket still holds its one op for a TAP frame');
  assert.is(r.metrics.snapshot().tx_rate_limiter_throttled, 0);
});

test('an answer waits for receive buffers and is delivered once the driver posts them', () => {
  const { r, stack } = mmdsRig();
  const link = new DeviceLink(r, 0);
  assert.ok(link.detourFrame(arpRequest()));
  assert.is(r.rxq.takeUsed().length, 0, 'no buffer, no delivery');
  assert.ok(stack.hasPendingFrames(), 'the answer is kept');
  link.post(1);
  const buf = new Uint8Array(RX_CHAIN);
  assert.is(decode(buf.subarray(0, link.writeNextFrame(buf))).arp?.oper, 2);
});

test('a guest flooding the MMDS with malformed segments: all taken off the TAP, counted, the device keeps working', () => {
  const { r, metrics } = mmdsRig();
  const link = new DeviceLink(r);
  // Cut short: once the IPv4 destination (bytes 30..33) is in, the frame is the MMDS's and is
  // dropped as malformed; before that nobody can tell, and it goes to the TAP as Firecracker's would.
  const IPV4_DEST_END = 34;
  for (let len = 14; len < 60; len++) {
    const f = tcpFrame({ seq: len, flags: SYN }).subarray(0, len);
    assert.is(link.detourFrame(f), len >= IPV4_DEST_END, `a ${len}-byte frame`);
  }
  for (let i = 0; i < 20; i++) link.detourFrame(tcpFrame({ seq: i, flags: SYN, tcpChecksum: 'bad' }));
  assert.ok(metrics.snapshot().rx_accepted_err >= 20);
  const conn = new GuestConn(link, 41000);
  conn.connect();
  assert.match(conn.request('GET /latest/meta-data/id HTTP/1.1\r\n\r\n'), /i-1234$/);
});

test.run();
