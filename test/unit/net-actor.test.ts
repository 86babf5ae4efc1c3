/**
 * The virtio-net device actor without KVM: NetHandle opens a real TAP and starts the real
 * device worker (src/actors/virtio/net-worker.ts); the register window is the one a vCPU
 * thread builds (buildBuses), driven here by the driver-side queue fake over shared guest
 * memory. Only KVM's ioeventfd/irqfd registration is stubbed: a notify reaches the worker
 * through the transport's bus path (the same eventfd). Frames go guest → TAP (the kernel
 * counts them) and TAP → guest (the kernel's ARP request for a neighbour on the TAP's subnet,
 * prompted by a UDP datagram to it).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { NetHandle } from '../../src/actors/virtio/net-handle.js';
import { buildBuses } from '../../src/actors/vcpu/devices.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import type { VmFd } from '../../src/kvm/kvm.js';
import type { BusDevice } from '../../src/devices/bus.js';
import { VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_HDR_SIZE } from '../../src/devices/virtio/constants.js';
import { NET_RX_MIN_SMALL_BUFFER, NET_RX_INDEX, NET_TX_INDEX, MAX_BUFFER_SIZE } from '../../src/devices/virtio/net/constants.js';
import { GuestArena, MockQueue, mmioDriverInit, mmioDriverOk, mmioNotify } from '../helpers/mock-queue.js';
import { withTimeout } from '../helpers/guest.js';
import type { RateLimiterConfig } from '../../src/devices/rate-limiter/rate-limiter.js';

const TAP = `knt${process.pid % 100000}`;
// A link-local /30 of this process's own (never the MMDS address 169.254.169.254).
const SUBNET = `169.254.${10 + (process.pid % 150)}`;
const HOST_IP = `${SUBNET}.1`;
const NEIGHBOUR_IP = `${SUBNET}.2`;
const GUEST_MAC = [0x06, 0x00, 0xa9, 0xfe, 0x4d, 0x02];
const ADDR = 0xd000_0000;
const RAM = 4 << 20;
const DEADLINE_MS = 20_000;
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const tapStat = (name: string): number => Number(readFileSync(`/sys/class/net/${TAP}/statistics/${name}`, 'utf8'));

/** Resolves once `cond()` holds; fails with `what` after the deadline. Checks every 5 ms. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + DEADLINE_MS;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test.before(() => {
  try {
    ip('link', 'del', TAP); // left over by an earlier run of this pid that crashed
  } catch {
    // none: the usual case
  }
  ip('tuntap', 'add', 'dev', TAP, 'mode', 'tap');
  ip('addr', 'add', `${HOST_IP}/30`, 'dev', TAP);
  ip('link', 'set', TAP, 'up');
});
test.after(() => {
  ip('link', 'del', TAP);
});

const vm = { registerIoeventfd() {}, registerIrqfd() {}, irqLine() {} } as unknown as VmFd;

/** A started net actor on the test TAP, its register window driven by the queue fakes. */
async function rig(txRateLimiter: RateLimiterConfig = {}) {
  const mem = new GuestMemory([{ gpa: 0, size: RAM, bytes: new Uint8Array(new SharedArrayBuffer(RAM)) }]);
  const h = await withTimeout(NetHandle.spawn({
    vm, memory: mem.describe(), ifaceId: 'eth0', tapName: TAP, guestMac: Uint8Array.from(GUEST_MAC), mtu: null,
    rxRateLimiter: {}, txRateLimiter, addr: ADDR, gsi: 5,
  }), DEADLINE_MS, 'the net worker did not become ready');
  const { mmio } = buildBuses([h.manifest], { vm, mem, sink: { log() {}, requestExit() {} } as never });
  // The register window as the guest reaches it: through the vCPU's MMIO bus.
  const dev: BusDevice = { read: (off, d) => { mmio.read(ADDR + off, d); }, write: (off, d) => { mmio.write(ADDR + off, d); } };
  const rxq = new MockQueue(mem, 256, 0);
  const txq = new MockQueue(mem, 64, 0x4000);
  rxq.notify = () => mmioNotify(dev, NET_RX_INDEX);
  txq.notify = () => mmioNotify(dev, NET_TX_INDEX);
  const arena = new GuestArena(0x8000, RAM);
  mmioDriverInit(dev, (1n << BigInt(VIRTIO_F_VERSION_1)) | (1n << BigInt(VIRTIO_NET_F_MRG_RXBUF)) | (1n << BigInt(VIRTIO_NET_F_MAC)), [rxq, txq]);
  mmioDriverOk(dev);
  /** Queues one broadcast frame of `len` Ethernet bytes from the guest's MAC (not notified). */
  const queueFrame = (len: number): void => {
    const at = arena.alloc(VIRTIO_NET_HDR_SIZE + len);
    const eth = new Uint8Array(len);
    eth.fill(0xff, 0, 6);
    eth.set(GUEST_MAC, 6);
    eth.set([0x88, 0xb5], 12); // IEEE local experimental EtherType: nothing answers it
    mem.write(at + VIRTIO_NET_HDR_SIZE, eth);
    txq.addChain([{ addr: at, len: VIRTIO_NET_HDR_SIZE + len }]);
  };
  return { h, mem, rxq, txq, arena, queueFrame };
}

test('guest → TAP and TAP → guest through the real worker; stop releases the TAP', async () => {
  const { h, mem, rxq, txq, arena, queueFrame } = await rig();
  try {
    // TX: one broadcast frame with the guest's MAC as source.
    const sentBefore = tapStat('rx_packets');
    queueFrame(60);
    txq.kick();
    await until(() => tapStat('rx_packets') > sentBefore, 'the frame on the TAP');
    await until(() => txq.usedIdx() === 1, 'the TX chain completed');

    // RX: post small buffers — the device reads the TAP only while a whole maximum frame's
    // worth is posted, so leave room for the kernel's own frames too — then make the kernel
    // send an ARP request out of the TAP.
    const chains = 2 * Math.ceil(MAX_BUFFER_SIZE / NET_RX_MIN_SMALL_BUFFER);
    for (let i = 0; i < chains; i++) rxq.addChain([{ addr: arena.alloc(NET_RX_MIN_SMALL_BUFFER), len: NET_RX_MIN_SMALL_BUFFER, write: true }]);
    rxq.kick();
    // A datagram to a neighbour on the TAP's subnet: the kernel resolves it with ARP on the TAP.
    const udp = createSocket('udp4');
    udp.send(Buffer.from('kindling'), 9, NEIGHBOUR_IP);
    // The kernel may also send its own frames (IPv6 MLD, DAD) when the TAP comes up: look
    // through everything received for the ARP request.
    const frameAtUsed = (i: number): Uint8Array => {
      const used = rxq.usedEntry(i);
      const got = mem.slice(rxq.readDescriptor(used.id).addr, used.len);
      if (got instanceof Error) throw got;
      return got.subarray(VIRTIO_NET_HDR_SIZE);
    };
    const isArpRequest = (f: Uint8Array): boolean => f[12] === 0x08 && f[13] === 0x06 && f.subarray(0, 6).every((b) => b === 0xff);
    let seen = 0;
    let arp: Uint8Array | undefined;
    await until(() => {
      for (; seen < rxq.usedIdx(); seen++) if (isArpRequest(frameAtUsed(seen))) arp = frameAtUsed(seen);
      return arp !== undefined;
    }, `the kernel's ARP request in the guest (used ${rxq.usedIdx()}, metrics ${JSON.stringify(h.metricsSnapshot())})`);
    udp.close();
    const target = arp!.subarray(14 + 24, 14 + 28);
    assert.equal([...target], NEIGHBOUR_IP.split('.').map(Number), 'ARP who-has the neighbour (target protocol address)');
    const m = h.metricsSnapshot();
    assert.ok(m.tx_packets_count >= 1 && m.rx_packets_count >= 1, JSON.stringify(m));
  } finally {
    await withTimeout(h.stop(), DEADLINE_MS, 'stop');
  }
  // The worker closed the TAP: it can be attached again.
  const again = await withTimeout(NetHandle.spawn({
    vm: { registerIoeventfd() {}, registerIrqfd() {} } as unknown as VmFd, memory: new GuestMemory([{ gpa: 0, size: 4096, bytes: new Uint8Array(new SharedArrayBuffer(4096)) }]).describe(),
    ifaceId: 'eth0', tapName: TAP, guestMac: null, mtu: null, rxRateLimiter: {}, txRateLimiter: {}, addr: ADDR, gsi: 5,
  }), DEADLINE_MS, 'respawn');
  await again.stop();
});

test('TX rate limit in the worker: frames wait for the limiter\'s timer and all of them go out while other events wake the worker', async () => {
  // 4 KiB per 100 ms: 24 frames of 1000 bytes (24,288 bytes with headers) need about 0.5 s.
  const { h, txq, rxq, arena, queueFrame } = await rig({ bandwidth: { size: 4096, refill_time: 100 } });
  try {
    const chains = 2 * Math.ceil(MAX_BUFFER_SIZE / NET_RX_MIN_SMALL_BUFFER);
    for (let i = 0; i < chains; i++) rxq.addChain([{ addr: arena.alloc(NET_RX_MIN_SMALL_BUFFER), len: NET_RX_MIN_SMALL_BUFFER, write: true }]);
    rxq.kick();
    const before = tapStat('rx_packets');
    for (let i = 0; i < 24; i++) queueFrame(1000);
    txq.kick();
    // Keep the worker busy with other events while it is throttled: a fresh RX buffer (and
    // its notify) every 5 ms, more often than the limiter's 100 ms retry.
    const noise = setInterval(() => {
      rxq.addChain([{ addr: arena.alloc(64), len: 64, write: true }]);
      rxq.kick();
    }, 5);
    try {
      await until(() => txq.usedIdx() === 24, `all 24 frames sent (used ${txq.usedIdx()}, metrics ${JSON.stringify(h.metricsSnapshot())})`);
    } finally {
      clearInterval(noise);
    }
    assert.ok(tapStat('rx_packets') - before >= 24, 'the TAP saw every frame');
    const m = h.metricsSnapshot();
    assert.ok(m.tx_rate_limiter_throttled > 0 && m.tx_rate_limiter_event_count > 0, JSON.stringify(m));
  } finally {
    await withTimeout(h.stop(), DEADLINE_MS, 'stop');
  }
});

test('a TAP that does not exist as a TAP fails spawn with Firecracker\'s text and starts no worker', async () => {
  const err = await NetHandle.spawn({
    vm: { registerIoeventfd() {}, registerIrqfd() {} } as unknown as VmFd, memory: new GuestMemory([]).describe(),
    ifaceId: 'eth1', tapName: 'lo', guestMac: null, mtu: null, rxRateLimiter: {}, txRateLimiter: {}, addr: ADDR, gsi: 6,
  }).then(() => null, (e: Error) => e);
  assert.ok(err);
  assert.match(err!.message, /^Error while creating ifreq structure: .* \(os error \d+\)\. Invalid TUN\/TAP Backend provided by lo\./);
});

test.run();
