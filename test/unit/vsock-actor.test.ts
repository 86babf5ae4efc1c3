/**
 * The vsock device actor without KVM: VsockHandle binds a real socket and starts the real
 * worker (src/actors/virtio/vsock-worker.ts); the register window is the one a vCPU thread
 * builds (buildBuses), driven by the driver-side queue fake over shared guest memory. Only
 * KVM's ioeventfd/irqfd registration is stubbed: a notify reaches the worker through the
 * transport's bus path (the same eventfd). Host clients are node:net sockets.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createConnection, createServer, type Socket } from 'node:net';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VsockHandle } from '../../src/actors/virtio/vsock-handle.js';
import { buildBuses } from '../../src/actors/vcpu/devices.js';
import { GuestMemory, must } from '../../src/memory/guest-memory.js';
import type { VmFd } from '../../src/kvm/kvm.js';
import type { BusDevice } from '../../src/devices/bus.js';
import { HostIoError } from '../../src/util/io-error.js';
import {
  LOCAL_PORT_FIRST, VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_RST, VIRTIO_VSOCK_OP_RW, VIRTIO_VSOCK_TYPE_STREAM,
  VSOCK_EV_INDEX, VSOCK_HOST_CID, VSOCK_PKT_HDR_SIZE, VSOCK_RX_INDEX, VSOCK_TX_INDEX,
} from '../../src/devices/virtio/vsock/constants.js';
import { decodeHeader, emptyHeader, encodeHeader, type VsockHeader } from '../../src/devices/virtio/vsock/packet.js';
import { VIRTIO_F_VERSION_1 } from '../../src/devices/virtio/constants.js';
import { GuestArena, MockQueue, mmioDriverInit, mmioDriverOk, mmioNotify } from '../helpers/mock-queue.js';
import { withTimeout } from '../helpers/guest.js';
import { openFds, pattern } from '../helpers/vsock-rig.js';

const ADDR = 0xd000_0000;
const RAM = 8 << 20;
const GUEST_CID = 3;
const DEADLINE_MS = 20_000;
const vm = { registerIoeventfd() {}, registerIrqfd() {}, irqLine() {} } as unknown as VmFd;
const dir = mkdtempSync(join(tmpdir(), 'kindling-vsock-actor-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + DEADLINE_MS;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A started vsock actor and a minimal guest driver for it. */
async function rig(udsPath: string) {
  const mem = new GuestMemory([{ gpa: 0, size: RAM, bytes: new Uint8Array(new SharedArrayBuffer(RAM)) }]);
  const h = await withTimeout(VsockHandle.spawn({ vm, memory: mem.describe(), guestCid: GUEST_CID, udsPath, addr: ADDR, gsi: 5 }), DEADLINE_MS, 'no ready');
  const { mmio } = buildBuses([h.manifest], { vm, mem, sink: { log() {}, requestExit() {} } as never });
  const dev: BusDevice = { read: (off, d) => { mmio.read(ADDR + off, d); }, write: (off, d) => { mmio.write(ADDR + off, d); } };
  const rxq = new MockQueue(mem, 256, 0);
  const txq = new MockQueue(mem, 256, 0x4000);
  const evq = new MockQueue(mem, 4, 0x8000);
  rxq.notify = () => mmioNotify(dev, VSOCK_RX_INDEX);
  txq.notify = () => mmioNotify(dev, VSOCK_TX_INDEX);
  evq.notify = () => mmioNotify(dev, VSOCK_EV_INDEX);
  const arena = new GuestArena(0x10000, RAM);
  mmioDriverInit(dev, 1n << BigInt(VIRTIO_F_VERSION_1), [rxq, txq, evq]);
  mmioDriverOk(dev);
  const posted = new Map<number, { hdr: number; data: number }>();
  const received: { hdr: VsockHeader; data: Uint8Array }[] = [];
  const scratch = new Uint8Array(VSOCK_PKT_HDR_SIZE);
  const g = {
    h, mem,
    postRx(n: number): void {
      for (let i = 0; i < n; i++) {
        const hdr = arena.alloc(VSOCK_PKT_HDR_SIZE);
        const data = arena.alloc(4096);
        posted.set(rxq.addChain([{ addr: hdr, len: VSOCK_PKT_HDR_SIZE, write: true }, { addr: data, len: 4096, write: true }])[0]!, { hdr, data });
      }
      rxq.kick();
    },
    /** Collects delivered packets into `received`. */
    poll(): void {
      for (const u of rxq.takeUsed()) {
        const p = posted.get(u.id)!;
        const hdr = decodeHeader(must(mem.slice(p.hdr, VSOCK_PKT_HDR_SIZE)).slice());
        received.push({ hdr, data: must(mem.slice(p.data, hdr.len)).slice() });
      }
    },
    received,
    async waitFor(pred: (p: { hdr: VsockHeader }) => boolean, what: string) {
      let hit: { hdr: VsockHeader; data: Uint8Array } | undefined;
      await until(() => { g.poll(); return (hit = received.find(pred)) !== undefined; }, what);
      return hit!;
    },
    send(h: Partial<VsockHeader>, data?: Uint8Array): void {
      const hdr = { ...emptyHeader(), srcCid: GUEST_CID, dstCid: VSOCK_HOST_CID, type: VIRTIO_VSOCK_TYPE_STREAM, bufAlloc: 1 << 20, len: data?.length ?? 0, ...h };
      encodeHeader(hdr, scratch);
      const at = arena.alloc(VSOCK_PKT_HDR_SIZE);
      must(mem.write(at, scratch));
      const bufs = [{ addr: at, len: VSOCK_PKT_HDR_SIZE }];
      if (data?.length) {
        const d = arena.alloc(data.length);
        must(mem.write(d, data));
        bufs.push({ addr: d, len: data.length });
      }
      txq.addChain(bufs);
      txq.kick();
    },
  };
  return g;
}

/** A node:net client of `path` that collects what it receives. */
function client(path: string, first?: string) {
  const s = createConnection(path);
  const chunks: Buffer[] = [];
  s.on('data', (b) => chunks.push(b));
  s.on('error', () => undefined);
  const closed = new Promise<void>((r) => s.on('close', () => r()));
  if (first !== undefined) s.write(first);
  return { s, closed, text: () => Buffer.concat(chunks).toString('latin1'), bytes: () => Buffer.concat(chunks) };
}

test('host CONNECT → guest RESPONSE → "OK"; 64 KiB host → guest; guest → host connect and data; stop closes everything', async () => {
  const fds = openFds();
  const path = join(dir, 'a.sock');
  const g = await rig(path);
  const server = createServer();
  const accepted: Socket[] = [];
  let serverGot = '';
  server.on('connection', (s) => { accepted.push(s); s.on('data', (b) => { serverGot += b.toString(); }); });
  await new Promise<void>((r) => server.listen(`${path}_6000`, r));
  try {
    g.postRx(64);
    const c = client(path, 'CONNECT 5000\n');
    const req = await g.waitFor((p) => p.hdr.op === VIRTIO_VSOCK_OP_REQUEST, 'the REQUEST');
    assert.is(req.hdr.dstPort, 5000);
    g.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 5000, dstPort: req.hdr.srcPort });
    await until(() => c.text() === `OK ${LOCAL_PORT_FIRST}\n`, 'the OK line');
    c.s.write(Buffer.from(pattern(64 * 1024)));
    let got = 0;
    const chunks: Uint8Array[] = [];
    await until(() => {
      g.poll();
      for (const p of g.received.splice(0)) if (p.hdr.op === VIRTIO_VSOCK_OP_RW) { got += p.data.length; chunks.push(p.data); }
      if (g.h.metricsSnapshot().rx_bytes_count === got && got < 64 * 1024) g.postRx(8);
      return got === 64 * 1024;
    }, '64 KiB in the guest');
    assert.equal(Buffer.concat(chunks), Buffer.from(pattern(64 * 1024)));
    // Guest-initiated: the host listener on <uds_path>_6000.
    g.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 777, dstPort: 6000 });
    await g.waitFor((p) => p.hdr.op === VIRTIO_VSOCK_OP_RESPONSE && p.hdr.dstPort === 777, 'the RESPONSE');
    g.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 777, dstPort: 6000 }, new TextEncoder().encode('hello from the guest'));
    await until(() => serverGot === 'hello from the guest', 'the message on the host');
    // Nobody on 6001: RST.
    g.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 778, dstPort: 6001 });
    await g.waitFor((p) => p.hdr.op === VIRTIO_VSOCK_OP_RST && p.hdr.dstPort === 778, 'the RST');
    assert.equal(await g.h.connections(), { open: 2, pendingHost: 0 });
    const m = g.h.metricsSnapshot();
    assert.is(m.guest_connects_refused, 1);
    assert.is(m.conns_added, 2);
    await g.h.stop();
    await withTimeout(c.closed, DEADLINE_MS, 'the host client was not closed');
    await until(() => accepted.every((s) => s.closed || s.readableEnded), 'the guest connection closed on the host');
  } finally {
    server.close();
    accepted.forEach((s) => s.destroy());
    await g.h.stop();
  }
  assert.ok(existsSync(path), 'the socket file stays, as Firecracker leaves it');
  await until(() => openFds() === fds, `fds back to ${fds} (now ${openFds()})`);
});

test('hostile host clients against the real worker: garbage, silence and a burst of 300; stop closes them all', async () => {
  const fds = openFds();
  const path = join(dir, 'b.sock');
  const g = await rig(path);
  const clients = [
    ...Array.from({ length: 100 }, () => client(path, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')),
    ...Array.from({ length: 100 }, () => client(path)),
    ...Array.from({ length: 100 }, (_, i) => client(path, `${'\0'.repeat(i % 40)}CONNECT 1\n`)),
  ];
  try {
    await until(() => g.h.metricsSnapshot().host_connects_accepted === 300, 'all accepted');
    await until(() => g.h.metricsSnapshot().host_connects_invalid >= 100, 'the garbage closed');
    const { pendingHost } = await g.h.connections();
    assert.ok(pendingHost <= 200, `${pendingHost} pending`);
    await g.h.stop();
    await withTimeout(Promise.all(clients.map((c) => c.closed)), DEADLINE_MS, 'clients still open after stop');
  } finally {
    clients.forEach((c) => c.s.destroy());
    await g.h.stop();
  }
  await until(() => openFds() === fds, `fds back to ${fds} (now ${openFds()})`);
});

test('a uds_path that exists fails the spawn with Firecracker\'s bind text; nothing is left running or open', async () => {
  const fds = openFds();
  const path = join(dir, 'taken');
  writeFileSync(path, '');
  const e = await VsockHandle.spawn({ vm, memory: new GuestMemory([]).describe(), guestCid: 3, udsPath: path, addr: ADDR, gsi: 5 }).then(
    () => null, (x: unknown) => x,
  );
  assert.instance(e, HostIoError);
  assert.is((e as Error).message, 'Address in use (os error 98)');
  assert.is(openFds(), fds);
});

test.run();
