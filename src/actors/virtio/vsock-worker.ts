/**
 * The virtio-vsock device worker: one worker_thread for the VM's vsock device
 * (vsock-protocol.ts), Firecracker's vsock event handler and Unix muxer on their own thread.
 *
 * Loop: poll(ctl, RX, TX and event queue doorbells, and the host fds the device asks for:
 *            the listener on uds_path, host clients still sending CONNECT, each connection
 *            for reading and/or writing; timeout = the nearest connection or CONNECT timer)
 *   ctl     → control calls (stop); activation once the transport saw DRIVER_OK;
 *   TX      → guest packets: parsed in guest RAM, data written to its socket (writev from the
 *             chain's buffers), replies queued for RX;
 *   RX      → the guest posted buffers: deliver what is owed;
 *   event   → retry RX (Firecracker's reset acknowledgement path);
 *   host fd → accept, read a CONNECT line, mark data readable or flush a TX buffer;
 *             then one RX pass: each owed packet is read from its socket straight into a
 *             posted chain (readv into guest RAM) and the header written after it;
 *   timeout → reset connections whose request or shutdown timed out, drop silent clients.
 * Nothing crosses to main per packet: interrupts go through the irqfd, counters through the
 * shared metrics buffer. The device polls a socket only while it can act on it (no RX owed
 * already, credit left), so a guest that stops reading leaves the worker asleep.
 */
import { parentPort } from 'node:worker_threads';
import { actorInit } from '../actor-init.js';
import { serveControl } from '../control-channel.js';
import { EventFd } from '../../kvm/eventfd.js';
import { POLLIN, PollSet } from '../../kvm/poll.js';
import { UnixSocketIo } from '../../kvm/unix-socket.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { transportInterrupt } from './transport.js';
import { VsockDevice } from '../../devices/virtio/vsock/device.js';
import { VsockMetrics } from '../../devices/virtio/vsock/metrics.js';
import { DeviceLoopTimer } from './device-poll.js';
import { WorkerLifecycle } from './worker-lifecycle.js';
import type { VsockControl, VsockWorkerInit } from './vsock-protocol.js';
import type { VirtioEventMessage } from './virtio-actor.js';

const init = actorInit<VsockWorkerInit>();
const port = parentPort!;
const post = (m: VirtioEventMessage): void => port.postMessage(m);
const label = 'vsock';

const mem = GuestMemory.fromDescriptor(init.memory);
const state = new MmioState(init.state);
const ctlEvt = new EventFd(init.ctlFd);
const rxEvt = new EventFd(init.rxFd);
const txEvt = new EventFd(init.txFd);
const evEvt = new EventFd(init.evFd);
const irqEvt = new EventFd(init.irqFd);
const io = new UnixSocketIo();
const device = new VsockDevice({ guestCid: init.guestCid, udsPath: init.udsPath, listenFd: init.listenFd }, io, {
  metrics: new VsockMetrics(init.metrics),
});
const interrupt = transportInterrupt(init.pci, state, irqEvt);

const life = new WorkerLifecycle(label, (message) => post({ kind: 'log', level: 'error', message }));
const control: VsockControl = {
  quiesce() {
    return life.quiesce(device);
  },
  release() {
    life.release();
  },
  connections() {
    return { open: device.connectionCount, pendingHost: device.pendingHostCount };
  },
  stop() {
    life.stop();
  },
};
const server = serveControl(control, port);

/** Positions of the fixed fds in the poll set; the device's host fds follow. */
const CTL = 0;
const RXQ = 1;
const TXQ = 2;
const EVQ = 3;
const FIXED = 4;

async function loop(): Promise<void> {
  const timer = new DeviceLoopTimer();
  const ps = new PollSet();
  const add = (fd: number, events: number): void => ps.add(fd, events);
  // Back from a snapshot: the guest's connections ended with the process that took it.
  if (life.restore(device, state, mem, interrupt, init.restore?.queues ?? null)) device.sendTransportReset();
  post({ kind: 'ready' });
  for (;;) {
    ps.clear();
    for (const e of life.quiesced ? [ctlEvt] : [ctlEvt, rxEvt, txEvt, evEvt]) ps.add(e.fd, POLLIN);
    if (!life.quiesced) device.collectPoll(add);
    ps.wait(life.quiesced ? -1 : timer.timeoutMs(device.timeoutMs()));
    if (ps.revents(CTL)) {
      ctlEvt.drain();
      await server.dispatch();
      if (life.stopping) return;
      if (life.quiesced) continue; // a snapshot is being taken
      if (life.activate(device, state, mem, interrupt)) device.processQueues();
    }
    if (ps.revents(TXQ)) {
      txEvt.drain();
      device.onTxQueueNotify();
    }
    if (ps.revents(RXQ)) {
      rxEvt.drain();
      device.onRxQueueNotify();
    }
    if (ps.revents(EVQ)) {
      evEvt.drain();
      device.onEvQueueNotify();
    }
    let host = false;
    for (let i = FIXED; i < ps.size; i++) {
      const r = ps.revents(i);
      if (r === 0) continue;
      device.onHostEvent(ps.fd(i), r);
      host = true;
    }
    if (timer.due()) device.onTimer();
    else if (host) device.processRx();
  }
}

/** Closes every connection and the listener: the worker owns them from spawn on, and fds outlive a thread. */
function release(): void {
  try {
    device.close();
  } finally {
    io.close(init.listenFd);
  }
}

loop().then(
  () => {
    release();
    process.exit(0);
  },
  (e: Error) => {
    post({ kind: 'log', level: 'error', message: `${label}: device worker failed: ${e.stack ?? e}` });
    release();
    process.exit(1);
  },
);
