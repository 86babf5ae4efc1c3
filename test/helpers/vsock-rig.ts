/**
 * A virtio-vsock test rig: the pure VsockDevice over guest memory in an ArrayBuffer, driven by
 * driver-side MockQueues (RX 0, TX 1, event 2) through an MmioTransport, with its host side on
 * REAL Unix sockets (src/kvm/unix-socket.ts) in a temporary folder and a fake clock for the
 * connection timers. `step()` is one turn of the device worker's loop (poll without waiting,
 * dispatch, deliver RX), so tests stay synchronous. Shared by the vsock model tests.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { arrayGuestMemory, must } from '../../src/memory/guest-memory.js';
import { MmioTransport } from '../../src/devices/virtio/mmio.js';
import { MmioInterrupt, MmioState } from '../../src/devices/virtio/mmio-state.js';
import { VsockDevice } from '../../src/devices/virtio/vsock/device.js';
import { vsockDescription } from '../../src/devices/virtio/vsock/config.js';
import { VsockMetrics } from '../../src/devices/virtio/vsock/metrics.js';
import {
  VIRTIO_VSOCK_TYPE_STREAM, VSOCK_EV_INDEX, VSOCK_HOST_CID, VSOCK_NUM_QUEUES, VSOCK_PKT_HDR_SIZE, VSOCK_RX_INDEX, VSOCK_TX_INDEX,
} from '../../src/devices/virtio/vsock/constants.js';
import { decodeHeader, emptyHeader, encodeHeader, type VsockHeader } from '../../src/devices/virtio/vsock/packet.js';
import { UnixSocketIo } from '../../src/kvm/unix-socket.js';
import { PollSet } from '../../src/kvm/poll.js';
import { MockQueue, mmioDeviceFeatures, mmioDriverInit, mmioDriverOk, mmioNotify } from './mock-queue.js';

export const RAM = 16 << 20;
export const GUEST_CID = 3;
/** The guest's receive buffer per connection, as Linux advertises it (VIRTIO_VSOCK_DEFAULT_BUF_SIZE, 256 KiB). */
export const GUEST_BUF_ALLOC = 256 * 1024;
/** Linux 6.1's RX buffer: a header descriptor and a 4 KiB data descriptor. */
export const RX_DATA = 4096;
export const EAGAIN = constants.errno.EAGAIN;
const PAGE = 4096;

/** The number of fds this process has open. */
export const openFds = (): number => readdirSync('/proc/self/fd').length;

/** A bump allocator that wraps around: buffers are reused once the region has been gone through. */
class RingArena {
  private next: number;
  constructor(private readonly start: number, private readonly end: number) {
    this.next = start;
  }
  alloc(len: number): number {
    const at = Math.ceil(this.next / 16) * 16;
    if (at + len > this.end) {
      this.next = this.start + len;
      return this.start;
    }
    this.next = at + len;
    return at;
  }
}

/** A packet the device put on the RX queue. */
export interface RxPacket {
  hdr: VsockHeader;
  data: Uint8Array;
  /** The used length the device reported. */
  used: number;
}

export interface VsockRigOptions {
  /** Features the driver acks, from the offered ones (default: all). */
  features?: (offered: bigint) => bigint;
}

export function vsockRig(o: VsockRigOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-vsock-'));
  const udsPath = join(dir, 'v.sock');
  const io = new UnixSocketIo();
  const listenFd = UnixSocketIo.listen(udsPath);
  const mem = arrayGuestMemory([{ gpa: 0, size: RAM }]);
  const clock = { ms: 1000 };
  const metrics = new VsockMetrics();
  const dev = new VsockDevice({ guestCid: GUEST_CID, udsPath, listenFd }, io, { metrics, nowMs: () => clock.ms });
  const state = MmioState.create(VSOCK_NUM_QUEUES);
  const irqs: number[] = [];
  const transport = new MmioTransport(state, vsockDescription(GUEST_CID, metrics), {
    onActivate: (a) => {
      dev.activate(mem, new MmioInterrupt(state, (bit) => irqs.push(bit)), a);
      dev.processQueues();
    },
    onNotify: (q) => dev.onQueueNotify(q),
    interrupt: (bit) => irqs.push(bit),
    onReset: () => dev.reset(),
  }, mem);
  const rxq = new MockQueue(mem, 256, 0);
  const txq = new MockQueue(mem, 256, Math.ceil(rxq.end / PAGE) * PAGE);
  const evq = new MockQueue(mem, 16, Math.ceil(txq.end / PAGE) * PAGE);
  rxq.notify = () => mmioNotify(transport, VSOCK_RX_INDEX);
  txq.notify = () => mmioNotify(transport, VSOCK_TX_INDEX);
  evq.notify = () => mmioNotify(transport, VSOCK_EV_INDEX);
  const base = Math.ceil(evq.end / PAGE) * PAGE;
  const rxArena = new RingArena(base, base + (4 << 20));
  const txArena = new RingArena(base + (4 << 20), RAM);
  const offered = mmioDeviceFeatures(transport);
  mmioDriverInit(transport, o.features ? o.features(offered) : offered, [rxq, txq, evq]);
  mmioDriverOk(transport);
  const posted = new Map<number, { hdr: number; data: number; dataLen: number }>();
  const ps = new PollSet();
  const scratch = new Uint8Array(VSOCK_PKT_HDR_SIZE);

  const rig = {
    dir, udsPath, io, listenFd, mem, clock, metrics, dev, transport, rxq, txq, evq, irqs, offered,

    /** Posts `count` RX chains of a header descriptor and a `dataLen`-byte data descriptor, and notifies. */
    postRx(count: number, dataLen = RX_DATA, kick = true): void {
      for (let i = 0; i < count; i++) {
        const hdr = rxArena.alloc(VSOCK_PKT_HDR_SIZE);
        const data = rxArena.alloc(Math.max(dataLen, 1));
        const bufs = [{ addr: hdr, len: VSOCK_PKT_HDR_SIZE, write: true }];
        if (dataLen > 0) bufs.push({ addr: data, len: dataLen, write: true });
        const head = rxq.addChain(bufs)[0]!;
        posted.set(head, { hdr, data, dataLen });
      }
      if (kick) rxq.kick();
    },

    /** Packets the device delivered since the last call. */
    recv(): RxPacket[] {
      return rxq.takeUsed().map((u) => {
        const p = posted.get(u.id)!;
        const hdr = decodeHeader(must(mem.slice(p.hdr, VSOCK_PKT_HDR_SIZE)).slice());
        const n = Math.min(hdr.len, p.dataLen, Math.max(0, u.len - VSOCK_PKT_HDR_SIZE));
        return { hdr, data: must(mem.slice(p.data, Math.max(n, 0))).slice(), used: u.len };
      });
    },

    /** A header from the guest with the usual fields (its CID to the host, stream, 256 KiB buffer). */
    header(h: Partial<VsockHeader>): VsockHeader {
      return { ...emptyHeader(), srcCid: GUEST_CID, dstCid: VSOCK_HOST_CID, type: VIRTIO_VSOCK_TYPE_STREAM, bufAlloc: GUEST_BUF_ALLOC, ...h };
    },

    /** Queues one TX packet (header descriptor, then the data in one descriptor) without notifying. */
    queue(h: Partial<VsockHeader>, data?: Uint8Array): number {
      const hdr = rig.header({ len: data?.length ?? 0, ...h });
      encodeHeader(hdr, scratch);
      const at = txArena.alloc(VSOCK_PKT_HDR_SIZE);
      must(mem.write(at, scratch));
      const bufs = [{ addr: at, len: VSOCK_PKT_HDR_SIZE }];
      if (data && data.length) {
        const d = txArena.alloc(data.length);
        must(mem.write(d, data));
        bufs.push({ addr: d, len: data.length });
      }
      return txq.addChain(bufs)[0]!;
    },

    /** Queues one TX packet and notifies. */
    send(h: Partial<VsockHeader>, data?: Uint8Array): number {
      const head = rig.queue(h, data);
      txq.kick();
      return head;
    },

    /** One turn of the worker loop: poll the host fds without waiting, dispatch, deliver RX. */
    step(waitMs = 0): number {
      ps.clear();
      dev.collectPoll((fd, ev) => ps.add(fd, ev));
      const n = ps.size ? ps.wait(waitMs) : 0;
      for (let i = 0; i < ps.size; i++) {
        const r = ps.revents(i);
        if (r) dev.onHostEvent(ps.fd(i), r);
      }
      dev.processRx();
      return n;
    },

    /** Steps until `cond` holds (at most `max` turns, waiting up to 20 ms for the host each). */
    until(cond: () => boolean, what: string, max = 500): void {
      for (let i = 0; i < max; i++) {
        if (cond()) return;
        rig.step(20);
      }
      if (!cond()) throw new Error(`never: ${what}`);
    },

    /** Moves the fake clock and runs the device's timer. */
    advance(ms: number): void {
      clock.ms += ms;
      dev.onTimer();
    },

    /** Host side: a client of uds_path, optionally sending `text` at once. */
    hostConnect(text?: string): number {
      const fd = io.connect(udsPath);
      if (fd < 0) throw new Error(`connect ${udsPath}: ${fd}`);
      if (text !== undefined) rig.hostWrite(fd, new TextEncoder().encode(text));
      return fd;
    },

    /** Host side: a listener on `<uds_path>_<port>`. */
    hostListen(port: number): number {
      return UnixSocketIo.listen(`${udsPath}_${port}`);
    },

    hostWrite(fd: number, bytes: Uint8Array): number {
      return io.write(fd, [bytes]);
    },

    /** Host side: what is queued on `fd` now (empty when nothing), or null once the stream ended or was reset. */
    hostRead(fd: number, max = 1 << 20): Uint8Array | null {
      const buf = new Uint8Array(max);
      const n = io.read(fd, [buf]);
      if (n === -EAGAIN) return new Uint8Array(0);
      return n <= 0 ? null : buf.slice(0, n);
    },

    /** Stops the device and removes everything. */
    close(): void {
      dev.close();
      io.close(listenFd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return rig;
}

export type VsockRig = ReturnType<typeof vsockRig>;

/** Bytes 0..n-1 of a repeating pattern seeded by `seed`. */
export function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}
