/**
 * The TAP layer (src/kvm/tap.ts) against a real TAP device: the ABI sizes and ioctl numbers,
 * Firecracker's error texts for a busy TAP and a bad name, and frames written with writev
 * arriving on the interface. Runs as root (CI does); the TAP is created here and removed after.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import koffi from 'koffi';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Tap, VNET_HDR_SIZE } from '../../src/kvm/tap.js';
import { IOVEC_SIZE, TUNSETIFF, TUNSETOFFLOAD, TUNSETVNETHDRSZ, ifreq, iovec } from '../../src/kvm/tun-abi.js';
import { TapError } from '../../src/errors.js';
import { IovecArray, addressOf, hostAddress } from '../../src/kvm/libc.js';

const NAME = `kt${process.pid % 100000}`;
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });
const rxPackets = (): number => Number(readFileSync(`/sys/class/net/${NAME}/statistics/rx_packets`, 'utf8'));

test.before(() => {
  ip('tuntap', 'add', 'dev', NAME, 'mode', 'tap');
  ip('link', 'set', NAME, 'up');
});
test.after(() => {
  ip('link', 'del', NAME);
});

test('uapi layout: struct ifreq 40 bytes, struct iovec 16, ioctl numbers of if_tun.h', () => {
  assert.is(koffi.sizeof(ifreq), 40);
  assert.is(koffi.sizeof(iovec), IOVEC_SIZE);
  assert.is(koffi.offsetof(ifreq, 'ifr_flags'), 16);
  assert.is(TUNSETIFF, 0x400454ca);
  assert.is(TUNSETOFFLOAD, 0x400454d0);
  assert.is(TUNSETVNETHDRSZ, 0x400454d8);
});

test('IovecArray: koffi\'s struct iovec encoding of the view, from a base looked up once per buffer', () => {
  const ram = new SharedArrayBuffer(1 << 20);
  const views = [new Uint8Array(ram, 4096, 1500), new Uint8Array(ram, 0x80000, 65536), new Uint8Array(ram, 7, 0), Buffer.from('x')];
  const iovecs = new IovecArray(views.length);
  views.forEach((v, i) => iovecs.set(i, v));
  const iov = iovecs.buffer;
  views.forEach((v, i) => {
    const want = Buffer.alloc(IOVEC_SIZE);
    koffi.encode(want, iovec, { iov_base: addressOf(v.byteLength ? v : new Uint8Array(v.buffer)) + BigInt(v.byteLength ? 0 : v.byteOffset), iov_len: v.byteLength });
    assert.equal(iov.subarray(i * IOVEC_SIZE, (i + 1) * IOVEC_SIZE), want, `iovec ${i}`);
  });
  assert.is(hostAddress(views[1]!) - hostAddress(views[0]!), 0x80000 - 4096);
});

test('a second open of the same TAP is refused with Firecracker\'s text; the first keeps working', () => {
  const tap = Tap.open(NAME);
  try {
    const e = (() => { try { Tap.open(NAME); } catch (x) { return x; } return null; })();
    assert.instance(e, TapError);
    assert.is((e as TapError).code, 'TAP_IFREQ');
    assert.is((e as TapError).message, `Error while creating ifreq structure: Device or resource busy (os error 16). Invalid TUN/TAP Backend provided by ${NAME}. Check our documentation on setting up the network devices.`);
    tap.setOffload(0);
  } finally {
    tap.close();
  }
});

test('names that cannot be an interface are refused before any syscall', () => {
  for (const bad of ['x'.repeat(16), 'a\0b']) {
    assert.throws(() => Tap.open(bad), (e: unknown) => e instanceof TapError && e.code === 'TAP_INVALID_NAME' && e.message === 'Invalid interface name');
  }
});

test('writev puts one frame (vnet header + Ethernet) on the interface; an empty TAP reads -EAGAIN', () => {
  const tap = Tap.open(NAME);
  try {
    const before = rxPackets();
    const hdr = new Uint8Array(VNET_HDR_SIZE);
    const frame = new Uint8Array(60);
    frame.fill(0xff, 0, 6); // broadcast destination
    frame.set([0x02, 0, 0, 0, 0, 1], 6);
    frame.set([0x88, 0xb5], 12); // IEEE local experimental EtherType: nothing answers it
    const n = tap.write([hdr, frame.subarray(0, 20), frame.subarray(20)]);
    assert.is(n, VNET_HDR_SIZE + frame.length);
    assert.is(rxPackets(), before + 1, 'the kernel received exactly one frame');
    const EAGAIN = 11;
    const drainOne = (): number => tap.read([new Uint8Array(VNET_HDR_SIZE), new Uint8Array(2048)]);
    let r = drainOne();
    // The kernel may have queued its own frames (IPv6 DAD, MLD) on an up interface: drain them.
    for (let i = 0; i < 64 && r > 0; i++) r = drainOne();
    assert.is(r, -EAGAIN);
  } finally {
    tap.close();
  }
});

test.run();
