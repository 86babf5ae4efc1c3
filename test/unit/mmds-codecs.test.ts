/**
 * The MMDS frame codecs (src/mmds/ethernet.ts, ipv4.ts, tcp-segment.ts): what they write
 * checks out with an independent checksum, and every malformed input is a reason, never a
 * throw — one defect at a time, as Firecracker's pdu tests break one field and repair it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ETH_HLEN } from '../../src/mmds/constants.js';
import { etherType, ipv4FromString, ipv4ToString, parseArpRequest, writeArpReply, writeEthernetHeader } from '../../src/mmds/ethernet.js';
import { Ipv4Header, internetChecksum, parseIpv4, writeIpv4Header } from '../../src/mmds/ipv4.js';
import { TcpHeader, parseTcp, writeTcpSegment } from '../../src/mmds/tcp-segment.js';
import { MmdsError } from '../../src/errors.js';
import { ACK, FIN, GUEST_IP, GUEST_MAC, MMDS_IP, SYN, arpRequest, onesSum, pseudoSum, tcpFrame } from '../helpers/mmds-guest.js';

test('internet checksum: RFC 1071 §3 example, odd lengths, and a header that sums to zero', () => {
  const words = Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
  assert.is(internetChecksum(words, 0, words.length), ~0xddf2 & 0xffff);
  assert.is(internetChecksum(Uint8Array.from([0xab]), 0, 1), ~0xab00 & 0xffff);
  const h = new Uint8Array(20);
  writeIpv4Header(h, 0, 6, GUEST_IP, MMDS_IP, 100);
  assert.is(internetChecksum(h, 0, 20), 0, 'a written header verifies');
  assert.is(onesSum(h), 0xffff, 'and so says the independent sum');
});

test('IPv4 addresses: dotted quads both ways; malformed text is an MmdsError', () => {
  assert.is(ipv4FromString('169.254.169.254'), MMDS_IP);
  assert.is(ipv4ToString(MMDS_IP), '169.254.169.254');
  assert.is(ipv4ToString(ipv4FromString('0.0.0.0')), '0.0.0.0');
  for (const bad of ['1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.x', '']) {
    assert.throws(() => ipv4FromString(bad), (e: unknown) => e instanceof MmdsError && e.code === 'MMDS_CONFIG', bad);
  }
});

test('Ethernet: EtherType, -1 for a frame shorter than the header; header writer', () => {
  assert.is(etherType(new Uint8Array(13)), -1);
  const f = new Uint8Array(ETH_HLEN);
  writeEthernetHeader(f, [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], 0x0806);
  assert.equal(Array.from(f), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 6]);
  assert.is(etherType(f), 0x0806);
});

test('ARP: a request is read; each wrong field is its own reason; padding is ignored', () => {
  const req = parseArpRequest(arpRequest());
  assert.ok(typeof req !== 'string');
  assert.equal(Array.from(req.sha), GUEST_MAC);
  assert.is(req.spa, GUEST_IP);
  assert.is(req.tpa, MMDS_IP);
  assert.ok(typeof parseArpRequest(arpRequest(MMDS_IP, { pad: 18 })) !== 'string', 'padded to 60 bytes');
  assert.is(parseArpRequest(arpRequest().subarray(0, 41)), 'arp-truncated');
  assert.is(parseArpRequest(arpRequest(MMDS_IP, { oper: 2 })), 'arp-not-request');
  for (const [off, value] of [[15, 6], [17, 0xdd], [18, 8], [19, 16]] as const) {
    const f = arpRequest();
    f[off] = value;
    assert.is(parseArpRequest(f), 'arp-not-ipv4-over-ethernet', `byte ${off}`);
  }
});

test('ARP reply writer: RFC 826 layout', () => {
  const b = new Uint8Array(28);
  writeArpReply(b, 0, [6, 1, 0x23, 0x45, 0x67, 1], MMDS_IP, GUEST_MAC, GUEST_IP);
  const v = new DataView(b.buffer);
  assert.equal([v.getUint16(0), v.getUint16(2), b[4], b[5], v.getUint16(6)], [1, 0x0800, 6, 4, 2]);
  assert.is(v.getUint32(14), MMDS_IP);
  assert.equal(Array.from(b.subarray(18, 24)), GUEST_MAC);
  assert.is(v.getUint32(24), GUEST_IP);
});

test('IPv4: a guest packet parses; every malformation is a reason', () => {
  const good = tcpFrame({ seq: 1, flags: SYN });
  const h = new Ipv4Header();
  assert.is(parseIpv4(good, ETH_HLEN, h), null);
  assert.equal([h.headerLen, h.protocol, h.src, h.dst, h.payloadOffset, h.payloadLen], [20, 6, GUEST_IP, MMDS_IP, 34, 20]);
  const broken = (mutate: (f: Uint8Array, v: DataView) => void, fixChecksum = true): Uint8Array => {
    const f = good.slice();
    const v = new DataView(f.buffer);
    mutate(f, v);
    if (fixChecksum) {
      v.setUint16(24, 0);
      v.setUint16(24, ~onesSum(f.subarray(14, 14 + Math.max(20, (f[14]! & 15) * 4))) & 0xffff);
    }
    return f;
  };
  assert.is(parseIpv4(good.subarray(0, 33), ETH_HLEN, h), 'ipv4-truncated', 'shorter than a header');
  assert.is(parseIpv4(good, good.length + 5, h), 'ipv4-truncated', 'offset past the end');
  assert.is(parseIpv4(broken((f) => (f[14] = 0x65)), ETH_HLEN, h), 'ipv4-version');
  assert.is(parseIpv4(broken((f) => (f[14] = 0x44)), ETH_HLEN, h), 'ipv4-header-length', 'IHL 4');
  assert.is(parseIpv4(broken((_, v) => v.setUint16(16, 19)), ETH_HLEN, h), 'ipv4-total-length');
  assert.is(parseIpv4(broken((_, v) => v.setUint16(16, 41)), ETH_HLEN, h), 'ipv4-truncated', 'total length beyond the frame');
  assert.is(parseIpv4(broken((f) => (f[14] = 0x4f)), ETH_HLEN, h), 'ipv4-total-length', 'IHL 15: a header longer than the packet');
  assert.is(parseIpv4(broken((f) => (f[22] = 1), false), ETH_HLEN, h), 'ipv4-checksum');
  assert.is(parseIpv4(broken((_, v) => v.setUint16(20, 0x2000)), ETH_HLEN, h), 'ipv4-fragment', 'more fragments');
  assert.is(parseIpv4(broken((_, v) => v.setUint16(20, 0x0001)), ETH_HLEN, h), 'ipv4-fragment', 'fragment offset');
  const padded = new Uint8Array(good.length + 6);
  padded.set(good);
  assert.is(parseIpv4(padded, ETH_HLEN, h), null, 'Ethernet padding after the packet');
  assert.is(h.payloadLen, 20);
  const withOptions = new Uint8Array(58);
  withOptions.set(good);
  const wv = new DataView(withOptions.buffer);
  withOptions[14] = 0x46; // IHL 6: one option word (its content and the TCP header after it do not matter here)
  wv.setUint16(16, 44);
  wv.setUint16(24, 0);
  wv.setUint16(24, ~onesSum(withOptions.subarray(14, 38)) & 0xffff);
  assert.is(parseIpv4(withOptions, ETH_HLEN, h), null, 'options are skipped');
  assert.is(h.payloadOffset, 38);
});

test('TCP: parse a SYN with MSS; bad lengths, bad options and bad checksums are reasons', () => {
  const t = new TcpHeader();
  const parse = (f: Uint8Array): string | null => parseTcp(f, 34, f.length - 34, GUEST_IP, MMDS_IP, t);
  assert.is(parse(tcpFrame({ seq: 7, flags: SYN, mss: 1460, window: 1000, srcPort: 5555 })), null);
  assert.equal([t.srcPort, t.destPort, t.seq, t.flags, t.window, t.mss, t.headerLen, t.payloadLen], [5555, 80, 7, SYN, 1000, 1460, 24, 0]);
  assert.is(parse(tcpFrame({ seq: 7, flags: ACK, payload: 'hello' })), null);
  assert.equal([t.mss, t.payloadLen, t.payloadOffset], [0, 5, 54]);
  assert.is(parse(tcpFrame({ seq: 7, flags: ACK, payload: 'x', tcpChecksum: 'partial' })), null, 'offloaded checksum: pseudo-header only');
  assert.is(parse(tcpFrame({ seq: 7, flags: ACK, payload: 'x', tcpChecksum: 'bad' })), 'tcp-checksum');
  assert.is(parseTcp(new Uint8Array(50), 34, 16, GUEST_IP, MMDS_IP, t), 'tcp-truncated');
  assert.is(parseTcp(new Uint8Array(50), 34, 30, GUEST_IP, MMDS_IP, t), 'tcp-truncated', 'length past the frame');
  for (const dataOffset of [4, 6]) {
    const f = tcpFrame({ seq: 7, flags: ACK });
    f[34 + 12] = dataOffset << 4; // 16 bytes, or 24 over a 20-byte segment
    assert.is(parse(f), 'tcp-header-length', `data offset ${dataOffset}`);
  }
  const mss = (bytes: number[]): string | null => {
    const f = tcpFrame({ seq: 7, flags: SYN, mss: 1460 });
    f.set(bytes, 54);
    const v = new DataView(f.buffer);
    v.setUint16(50, 0);
    v.setUint16(50, ~onesSum(f.subarray(34), pseudoSum(GUEST_IP, MMDS_IP, f.length - 34)) & 0xffff);
    return parse(f);
  };
  assert.is(mss([2, 4, 0, 99]), 'tcp-bad-option', 'MSS below 100');
  assert.is(mss([2, 3, 5, 0]), 'tcp-bad-option', 'MSS option length 3');
  assert.is(mss([8, 0, 0, 0]), 'tcp-bad-option', 'option length 0');
  assert.is(mss([8, 9, 0, 0]), 'tcp-bad-option', 'option running past the header');
  assert.is(mss([1, 1, 1, 0]), null, 'NOPs then EOL: no MSS');
  assert.is(t.mss, 0);
});

test('TCP writer: header, MSS option, payload slice and a checksum the independent sum accepts', () => {
  const buf = new Uint8Array(100);
  const payload = new TextEncoder().encode('..HTTP/1.1 200 ..');
  const len = writeTcpSegment(buf, 10, 80, 40000, 0xfffffff0, 77, ACK | FIN, 2500, 0, MMDS_IP, GUEST_IP, payload, 2, 13);
  assert.is(len, 33);
  const seg = buf.subarray(10, 10 + len);
  assert.is(onesSum(seg, pseudoSum(MMDS_IP, GUEST_IP, len)), 0xffff);
  assert.is(new TextDecoder().decode(seg.subarray(20)), 'HTTP/1.1 200 ');
  const t = new TcpHeader();
  assert.is(parseTcp(buf, 10, len, MMDS_IP, GUEST_IP, t), null);
  assert.equal([t.srcPort, t.destPort, t.seq, t.ack, t.flags, t.window], [80, 40000, 0xfffffff0, 77, ACK | FIN, 2500]);
  const synAck = writeTcpSegment(buf, 0, 80, 1, 5, 6, SYN | ACK, 2500, 536, MMDS_IP, GUEST_IP, null, 0, 0);
  assert.is(synAck, 24);
  assert.is(parseTcp(buf, 0, 24, MMDS_IP, GUEST_IP, t), null);
  assert.is(t.mss, 536);
});

test.run();
