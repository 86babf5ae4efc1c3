/**
 * A guest's side of the MMDS link for the unit tests: builds the frames a guest would send
 * (ARP requests, IPv4/TCP segments) and reads the frames the stack answers with. Written
 * apart from src/mmds/ on purpose, with its own checksum arithmetic over a DataView, so a
 * shared mistake cannot make a wrong checksum look right.
 */

/** The part of an MmdsStack (src/mmds/stack.ts) a guest talks to. */
export interface MmdsLink {
  detourFrame(frame: Uint8Array): boolean;
  hasPendingFrames(): boolean;
  writeNextFrame(buf: Uint8Array): number;
}

export const GUEST_MAC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x07];
export const GUEST_IP = ip('172.16.0.2');
export const MMDS_IP = ip('169.254.169.254');
export const MMDS_MAC_TEXT = '06:01:23:45:67:01';
export const FIN = 1;
export const SYN = 2;
export const RST = 4;
export const PSH = 8;
export const ACK = 16;

/** Dotted quad → u32. */
export function ip(s: string): number {
  return s.split('.').reduce((a, p) => a * 256 + Number(p), 0);
}

export function macText(b: ArrayLike<number>): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** RFC 1071, written independently of src/mmds: 16-bit big-endian words, end-around carry. */
export function onesSum(bytes: Uint8Array, initial = 0): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let s = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) s += v.getUint16(i);
  if (bytes.length % 2 === 1) s += bytes[bytes.length - 1]! * 256;
  while (s > 0xffff) s = (s % 0x10000) + Math.trunc(s / 0x10000);
  return s;
}

/** The TCP pseudo-header sum (RFC 9293 §3.1). */
export function pseudoSum(src: number, dst: number, len: number): number {
  return Math.trunc(src / 0x10000) + (src % 0x10000) + Math.trunc(dst / 0x10000) + (dst % 0x10000) + 6 + len;
}

export interface TcpSpec {
  srcIp?: number;
  dstIp?: number;
  srcMac?: number[];
  dstMac?: number[];
  srcPort?: number;
  dstPort?: number;
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  mss?: number;
  payload?: Uint8Array | string;
  /** 'bad': a wrong TCP checksum; 'partial': only the pseudo-header sum (checksum offload). */
  tcpChecksum?: 'good' | 'bad' | 'partial';
  ipChecksum?: 'good' | 'bad';
  /** The flags/fragment-offset word. */
  fragment?: number;
}

/** An Ethernet frame with an IPv4/TCP segment, as a guest sends it. */
export function tcpFrame(s: TcpSpec): Uint8Array {
  const payload = typeof s.payload === 'string' ? new TextEncoder().encode(s.payload) : (s.payload ?? new Uint8Array());
  const opt = s.mss ? 4 : 0;
  const tcpLen = 20 + opt + payload.length;
  const f = new Uint8Array(14 + 20 + tcpLen);
  const v = new DataView(f.buffer);
  f.set(s.dstMac ?? [0x06, 0x01, 0x23, 0x45, 0x67, 0x01], 0);
  f.set(s.srcMac ?? GUEST_MAC, 6);
  v.setUint16(12, 0x0800);
  const src = s.srcIp ?? GUEST_IP;
  const dst = s.dstIp ?? MMDS_IP;
  v.setUint8(14, 0x45);
  v.setUint16(16, 20 + tcpLen);
  v.setUint16(18, 0x1234);
  v.setUint16(20, s.fragment ?? 0x4000); // DF, as Linux sets it
  v.setUint8(22, 64);
  v.setUint8(23, 6);
  v.setUint32(26, src);
  v.setUint32(30, dst);
  v.setUint16(24, (~onesSum(f.subarray(14, 34)) & 0xffff) ^ (s.ipChecksum === 'bad' ? 1 : 0));
  const t = 34;
  v.setUint16(t, s.srcPort ?? 40000);
  v.setUint16(t + 2, s.dstPort ?? 80);
  v.setUint32(t + 4, s.seq >>> 0);
  v.setUint32(t + 8, (s.ack ?? 0) >>> 0);
  v.setUint8(t + 12, ((20 + opt) / 4) << 4);
  v.setUint8(t + 13, s.flags);
  v.setUint16(t + 14, s.window ?? 64240);
  if (s.mss) {
    v.setUint8(t + 20, 2);
    v.setUint8(t + 21, 4);
    v.setUint16(t + 22, s.mss);
  }
  f.set(payload, t + 20 + opt);
  const pseudo = pseudoSum(src, dst, tcpLen);
  const mode = s.tcpChecksum ?? 'good';
  const full = ~onesSum(f.subarray(t), pseudo) & 0xffff;
  v.setUint16(t + 16, mode === 'partial' ? onesSum(new Uint8Array(), pseudo) : mode === 'bad' ? full ^ 0x5a5a : full);
  return f;
}

/** An ARP request from the guest for `target`. */
export function arpRequest(target = MMDS_IP, opts: { srcMac?: number[]; srcIp?: number; oper?: number; pad?: number } = {}): Uint8Array {
  const f = new Uint8Array(42 + (opts.pad ?? 0));
  const v = new DataView(f.buffer);
  f.fill(0xff, 0, 6);
  f.set(opts.srcMac ?? GUEST_MAC, 6);
  v.setUint16(12, 0x0806);
  v.setUint16(14, 1);
  v.setUint16(16, 0x0800);
  v.setUint8(18, 6);
  v.setUint8(19, 4);
  v.setUint16(20, opts.oper ?? 1);
  f.set(opts.srcMac ?? GUEST_MAC, 22);
  v.setUint32(28, opts.srcIp ?? GUEST_IP);
  v.setUint32(38, target);
  return f;
}

/** A frame the stack wrote, decoded, with independent checksum verdicts. */
export interface Reply {
  dstMac: string;
  srcMac: string;
  type: number;
  arp?: { oper: number; sha: string; spa: number; tha: string; tpa: number };
  ip?: { src: number; dst: number; ttl: number; totalLen: number; checksumOk: boolean; protocol: number };
  tcp?: { srcPort: number; dstPort: number; seq: number; ack: number; flags: number; window: number; mss: number; payload: Uint8Array; checksumOk: boolean };
}

export function decode(frame: Uint8Array): Reply {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const r: Reply = { dstMac: macText(frame.subarray(0, 6)), srcMac: macText(frame.subarray(6, 12)), type: v.getUint16(12) };
  if (r.type === 0x0806) {
    r.arp = { oper: v.getUint16(20), sha: macText(frame.subarray(22, 28)), spa: v.getUint32(28), tha: macText(frame.subarray(32, 38)), tpa: v.getUint32(38) };
    return r;
  }
  const ihl = (frame[14]! & 15) * 4;
  const totalLen = v.getUint16(16);
  r.ip = {
    src: v.getUint32(26), dst: v.getUint32(30), ttl: frame[22]!, totalLen, protocol: frame[23]!,
    checksumOk: onesSum(frame.subarray(14, 14 + ihl)) === 0xffff,
  };
  const t = 14 + ihl;
  const seg = frame.subarray(t, 14 + totalLen);
  const hl = (frame[t + 12]! >> 4) * 4;
  r.tcp = {
    srcPort: v.getUint16(t), dstPort: v.getUint16(t + 2), seq: v.getUint32(t + 4), ack: v.getUint32(t + 8), flags: frame[t + 13]!,
    window: v.getUint16(t + 14), mss: hl > 20 && frame[t + 20] === 2 ? v.getUint16(t + 22) : 0, payload: seg.slice(hl),
    checksumOk: onesSum(seg, pseudoSum(r.ip.src, r.ip.dst, seg.length)) === 0xffff,
  };
  return r;
}

/** Every frame the stack has ready now, decoded. */
export function drain(stack: MmdsLink, bufLen = 2048): Reply[] {
  const out: Reply[] = [];
  const buf = new Uint8Array(bufLen);
  for (let n = stack.writeNextFrame(buf); n > 0; n = stack.writeNextFrame(buf)) out.push(decode(buf.slice(0, n)));
  return out;
}

/** A manual clock. */
export function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** A guest-side TCP client of one connection (ports fixed), for driving the stack by hand. */
export class GuestConn {
  seq: number;
  ack = 0;
  /** Bytes received in order. */
  received = '';
  constructor(readonly stack: MmdsLink, readonly srcPort = 40000, isn = 1000, readonly srcIp = GUEST_IP) {
    this.seq = isn;
  }

  /** Sends a segment (seq/ack default to the client's), returning what the stack answered. */
  send(flags: number, payload: Uint8Array | string = '', extra: Partial<TcpSpec> = {}): Reply[] {
    const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
    const frame = tcpFrame({ srcPort: this.srcPort, srcIp: this.srcIp, seq: this.seq, ack: this.ack, flags, payload: bytes, ...extra });
    if (!this.stack.detourFrame(frame)) throw new Error('frame not taken by the MMDS');
    if (extra.seq === undefined) this.seq = (this.seq + bytes.length + (flags & (SYN | FIN) ? 1 : 0)) >>> 0;
    return this.absorb(drain(this.stack));
  }

  /** Learns the stack's sequence numbers and data from replies addressed to this client. */
  absorb(replies: Reply[]): Reply[] {
    for (const r of replies) {
      if (!r.tcp || r.tcp.dstPort !== this.srcPort) continue;
      const t = r.tcp;
      if (t.flags & SYN) this.ack = (t.seq + 1) >>> 0;
      else if (t.seq === this.ack && t.payload.length > 0) {
        this.received += new TextDecoder().decode(t.payload);
        this.ack = (this.ack + t.payload.length) >>> 0;
      }
      if (t.flags & FIN && ((t.seq + t.payload.length) >>> 0) === this.ack) this.ack = (this.ack + 1) >>> 0;
    }
    return replies;
  }

  /** SYN, SYN-ACK, ACK. */
  connect(mss = 1460): Reply[] {
    const synAck = this.send(SYN, '', { mss });
    this.send(ACK);
    return synAck;
  }

  /** Sends a request in one segment, then ACKs until the stack stops sending; returns the bytes received. */
  request(text: string, chunks = [text.length]): string {
    const start = this.received.length;
    let off = 0;
    for (const n of chunks) {
      this.send(ACK | PSH, text.slice(off, off + n));
      off += n;
    }
    for (let i = 0; i < 100 && this.stack.hasPendingFrames(); i++) this.absorb(drain(this.stack));
    this.send(ACK);
    return this.received.slice(start);
  }
}
