/**
 * A virtio-net test rig: guest memory over an ArrayBuffer, driver-side MockQueues for RX (0)
 * and TX (1) that program an MmioTransport, DRIVER_OK activating a NetDevice over an in-memory
 * TAP (MemTap), one fake clock for both rate limiters and the TAP write latency, and helpers
 * to lay out frames and receive chains as a driver would. Shared by the net device tests.
 */
import { constants as osConstants } from 'node:os';
import { arrayGuestMemory, must, type GuestMemory } from '../../src/memory/guest-memory.js';
import { MmioTransport } from '../../src/devices/virtio/mmio.js';
import { MmioInterrupt, MmioState } from '../../src/devices/virtio/mmio-state.js';
import { NetDevice, type NetBackend, type NetMmds } from '../../src/devices/virtio/net/device.js';
import { NET_CONFIG_STATE_SIZE, netDescription, type NetDeviceParams } from '../../src/devices/virtio/net/config.js';
import { NetMetrics } from '../../src/devices/virtio/net/metrics.js';
import { ETH_ALEN, NET_NUM_QUEUES, NET_RX_INDEX, NET_TX_INDEX } from '../../src/devices/virtio/net/constants.js';
import { RateLimiter, type RateLimiterConfig } from '../../src/devices/rate-limiter/rate-limiter.js';
import { VIRTIO_NET_HDR_SIZE, VIRTQ_DESC_SIZE } from '../../src/devices/virtio/constants.js';
import { GuestArena, MockQueue, mmioDeviceFeatures, mmioDriverInit, mmioDriverOk, mmioNotify } from './mock-queue.js';

export const RAM = 8 << 20;
export const EAGAIN = osConstants.errno.EAGAIN;
export const GUEST_MAC = Uint8Array.from([0x06, 0x00, 0xac, 0x10, 0x00, 0x02]);
export const OTHER_MAC = Uint8Array.from([0x06, 0x00, 0xac, 0x10, 0x00, 0x99]);
/** Where the TX rings start after the RX rings (any multiple of the 16-byte ring alignment). */
const PAGE = 4096;
/** Nanoseconds per millisecond, for the fake clock. */
export const MS = 1_000_000n;

/** A TAP in memory: frames queued for the guest, frames the guest sent, injected failures. */
export class MemTap implements NetBackend {
  /** Frames (vnet header included) the next reads return, oldest first. */
  readonly inbox: Uint8Array[] = [];
  /** Frames written by the device, copied out of guest memory. */
  readonly sent: Uint8Array[] = [];
  /** Total bytes of the views each read was offered. */
  readonly readOffers: number[] = [];
  /** The next read / write returns this instead (a negative errno), then clears it. */
  readResult: number | undefined;
  writeResult: number | undefined;
  /** The next write throws. */
  throwOnWrite = false;

  read(bufs: readonly Uint8Array[]): number {
    this.readOffers.push(bufs.reduce((n, b) => n + b.length, 0));
    if (this.readResult !== undefined) {
      const r = this.readResult;
      this.readResult = undefined;
      return r;
    }
    const f = this.inbox.shift();
    if (!f) return -EAGAIN;
    let at = 0;
    for (const b of bufs) {
      const n = Math.min(b.length, f.length - at);
      b.set(f.subarray(at, at + n));
      at += n;
    }
    return at;
  }

  write(bufs: readonly Uint8Array[]): number {
    if (this.throwOnWrite) {
      this.throwOnWrite = false;
      throw new Error('tap gone');
    }
    if (this.writeResult !== undefined) {
      const r = this.writeResult;
      this.writeResult = undefined;
      return r;
    }
    const out = new Uint8Array(bufs.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of bufs) {
      out.set(b, at);
      at += b.length;
    }
    this.sent.push(out);
    return out.length;
  }
}

export interface NetRigOptions {
  params?: Partial<NetDeviceParams>;
  /** Features the driver acks, from the offered ones (default: all). */
  features?: (offered: bigint) => bigint;
  rxLimits?: RateLimiterConfig;
  txLimits?: RateLimiterConfig;
  /** Queue size the driver programs (default 64). */
  queueSize?: number;
  /** An MMDS on the interface. */
  mmds?: NetMmds;
}

export function netRig(o: NetRigOptions = {}) {
  const mem = arrayGuestMemory([{ gpa: 0, size: RAM }]);
  const tap = new MemTap();
  const clock = { t: 0n, us: 0 };
  const params: NetDeviceParams = { guestMac: GUEST_MAC, mtu: null, ...o.params };
  const metrics = new NetMetrics();
  const configBytes = new Uint8Array(new SharedArrayBuffer(NET_CONFIG_STATE_SIZE));
  const dev = new NetDevice(params, tap, {
    metrics,
    configBytes,
    rxRateLimiter: new RateLimiter(o.rxLimits ?? {}, () => clock.t),
    txRateLimiter: new RateLimiter(o.txLimits ?? {}, () => clock.t),
    nowUs: () => clock.us,
    mmds: o.mmds,
  });
  const state = MmioState.create(NET_NUM_QUEUES);
  const irqs: number[] = [];
  // In Kindling the activation and notifies cross to the device worker; here they run in place.
  const transport = new MmioTransport(
    state,
    netDescription(params, configBytes, metrics),
    {
      onActivate: (a) => {
        dev.activate(mem, new MmioInterrupt(state, (bit) => irqs.push(bit)), a);
      },
      onNotify: (q) => dev.onQueueNotify(q),
      interrupt: (bit) => irqs.push(bit),
      onReset: () => dev.reset(),
    },
    mem,
  );
  const size = o.queueSize ?? 64;
  const rxq = new MockQueue(mem, size, 0);
  const txq = new MockQueue(mem, size, Math.ceil(rxq.end / PAGE) * PAGE); // rings must be aligned
  rxq.notify = () => mmioNotify(transport, NET_RX_INDEX);
  txq.notify = () => mmioNotify(transport, NET_TX_INDEX);
  const arena = new GuestArena(txq.end, RAM);
  const offered = mmioDeviceFeatures(transport);
  mmioDriverInit(transport, o.features ? o.features(offered) : offered, [rxq, txq]);
  mmioDriverOk(transport);
  return { mem, tap, dev, metrics, transport, rxq, txq, arena, irqs, clock, offered, configBytes };
}

export type NetRig = ReturnType<typeof netRig>;

/** A frame as the driver sends it: zeroed vnet header, destination, `src`, ethertype, payload. */
export function frame(totalLen: number, src: Uint8Array = GUEST_MAC, seed = 1): Uint8Array {
  const f = new Uint8Array(totalLen);
  for (let i = VIRTIO_NET_HDR_SIZE; i < totalLen; i++) f[i] = (i * 7 + seed) & 0xff;
  f.fill(0, 0, Math.min(VIRTIO_NET_HDR_SIZE, totalLen));
  if (totalLen >= VIRTIO_NET_HDR_SIZE + 2 * ETH_ALEN) f.set(src, VIRTIO_NET_HDR_SIZE + ETH_ALEN);
  return f;
}

/**
 * Puts `bytes` in guest memory split as `sizes` (default one buffer) and queues it on TX, as a
 * ring chain or, with `indirect`, as one ring slot pointing at an indirect table.
 */
export function sendFrame(r: NetRig, bytes: Uint8Array, sizes: readonly number[] = [bytes.length], indirect = false) {
  let at = 0;
  const bufs = sizes.map((len) => {
    const addr = r.arena.alloc(len);
    must(r.mem.write(addr, bytes.subarray(at, at + len)));
    at += len;
    return { addr, len };
  });
  const idx = indirect ? [r.txq.addIndirectChain(bufs, r.arena.alloc(VIRTQ_DESC_SIZE * bufs.length))] : r.txq.addChain(bufs);
  return { head: idx[0]!, idx };
}

/** Posts a device-writable receive chain of buffers of `sizes` bytes. */
export function postRx(r: NetRig, sizes: readonly number[]) {
  const bufs = sizes.map((len) => ({ addr: r.arena.alloc(len), len, write: true }));
  const idx = r.rxq.addChain(bufs);
  return { head: idx[0]!, idx, bufs };
}

/** The first `len` bytes of a posted chain's buffers, as the driver reads them. */
export function chainBytes(mem: GuestMemory, chain: { bufs: readonly { addr: number; len: number }[] }, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let at = 0;
  for (const b of chain.bufs) {
    if (at === len) break;
    const n = Math.min(b.len, len - at);
    out.set(mem.slice(b.addr, n) as Uint8Array, at);
    at += n;
  }
  return out;
}
