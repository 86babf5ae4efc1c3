/**
 * The virtio-fs device worker: the vhost-user frontend's thread for one device (fs-protocol.ts,
 * docs/design.md "virtio-fs").
 *
 * Loop: poll(ctl, the vhost-user socket, one call eventfd per queue)
 *   ctl     → control calls (backendGone, stop); at DRIVER_OK hand the rings to the backend:
 *             SET_FEATURES, SET_MEM_TABLE (the guest-RAM memfd, one fd per region, by
 *             SCM_RIGHTS), per queue SET_VRING_NUM/ADDR/BASE, SET_VRING_CALL with an eventfd
 *             of ours, SET_VRING_KICK with the queue's ioeventfd (KVM_IOEVENTFD on
 *             QueueNotify, datamatch = queue index: virtio-actor.ts), SET_VRING_ENABLE;
 *   call i  → the backend used buffers on queue i: OR VIRTIO_MMIO_INT_VRING into
 *             InterruptStatus and write the device's irqfd (MmioInterrupt.trigger). The call
 *             eventfds are not irqfds themselves because the guest's virtio-mmio interrupt
 *             handler reads InterruptStatus and ignores an interrupt whose bit 0 is clear
 *             (Linux drivers/virtio/virtio_mmio.c vm_interrupt); this thread is the one that
 *             sets it. One wake-up per batch of completions, not per request;
 *   socket  → readable only when the backend hangs up (it sends nothing unasked: no
 *             backend-request channel is negotiated): it died. The device takes the rings over
 *             and answers every request with EIO (src/devices/virtio/fs/device.ts), and from then
 *             on this loop polls the queues' ioeventfds itself.
 */
import { parentPort } from 'node:worker_threads';
import { actorInit } from '../actor-init.js';
import { serveControl } from '../control-channel.js';
import { EventFd, pollReadable } from '../../kvm/eventfd.js';
import { VhostUserSocket } from '../../kvm/vhost-user-socket.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { VIRTIO_INTERRUPT } from '../../devices/virtio/device.js';
import { VIRTQ_AVAIL_ELEM_SIZE, VIRTQ_RING_ENTRIES, VIRTQ_RING_IDX, VIRTQ_USED_ELEM_SIZE } from '../../devices/virtio/constants.js';
import { FsDevice } from '../../devices/virtio/fs/device.js';
import { VhostUserFrontend, type VhostUserVring } from '../../devices/virtio/fs/frontend.js';
import type { VhostUserMemRegion } from '../../devices/virtio/fs/vhost-user.js';
import type { QueueConfig } from '../../devices/virtio/queue.js';
import { transportInterrupt } from './transport.js';
import { WorkerLifecycle } from './worker-lifecycle.js';
import { VHOST_USER_REPLY_TIMEOUT_MS, type FsControl, type FsRingState, type FsWorkerInit, type FsWorkerStatus } from './fs-protocol.js';
import type { VirtioEventMessage } from './virtio-actor.js';

const init = actorInit<FsWorkerInit>();
const port = parentPort!;
const post = (m: VirtioEventMessage): void => port.postMessage(m);
const label = `fs ${init.id}`;
const log = (level: 'info' | 'warn' | 'error', message: string): void => post({ kind: 'log', level, message: `${label}: ${message}` });

const mem = GuestMemory.fromDescriptor(init.memory);
const state = new MmioState(init.state);
const ctlEvt = new EventFd(init.ctlFd);
const queueEvts = init.queueFds.map((fd) => new EventFd(fd));
const callEvts = init.queueFds.map(() => new EventFd());
const irqEvt = new EventFd(init.irqFd);
const sock = VhostUserSocket.adopt(init.sockFd, init.socketPath);
const frontend = VhostUserFrontend.resume(sock, VHOST_USER_REPLY_TIMEOUT_MS, init.negotiated);
const device = new FsDevice(init.tag, init.negotiated.features);
const interrupt = transportInterrupt(init.pci, state, irqEvt);
let backendUp = true;
let sockOpen = true;
const callsRelayed = callEvts.map(() => 0);

const life = new WorkerLifecycle(label, (message) => log('error', message));
const control: FsControl = {
  quiesce() {
    return life.quiesce(device);
  },
  release() {
    life.release();
  },
  backendGone() {
    return !backendUp;
  },
  status() {
    return status();
  },
  stop() {
    life.stop();
  },
};
const server = serveControl(control, port);

/** The host address of guest range [gpa, gpa + len), which the transport checked lies in RAM. */
function hostAddress(gpa: number): bigint {
  const r = init.ram.regions.find((x) => gpa >= x.gpa && gpa < x.gpa + x.size);
  if (!r) throw new Error(`guest address 0x${gpa.toString(16)} is not in a RAM region`);
  return r.hostAddr + BigInt(gpa - r.gpa);
}

/** A le16 of guest memory, or undefined where it cannot be read. */
function le16(gpa: number): number | undefined {
  const b = new Uint8Array(2);
  return mem.read(gpa, b) ? undefined : b[0]! | (b[1]! << 8);
}

/** FsWorkerStatus: counters, and each ring's indices as guest memory holds them now. */
function status(): FsWorkerStatus {
  const queues = device.isActive ? state.activation().queues : [];
  const rings = init.queueFds.map((_, i): FsRingState | null => {
    const q = queues[i];
    if (!q) return null;
    const availIdx = le16(q.availRing + VIRTQ_RING_IDX);
    const usedEvent = le16(q.availRing + VIRTQ_RING_ENTRIES + q.size * VIRTQ_AVAIL_ELEM_SIZE);
    const usedIdx = le16(q.usedRing + VIRTQ_RING_IDX);
    const availEvent = le16(q.usedRing + VIRTQ_RING_ENTRIES + q.size * VIRTQ_USED_ELEM_SIZE);
    if (availIdx === undefined || usedEvent === undefined || usedIdx === undefined || availEvent === undefined) return null;
    return { availIdx, usedIdx, usedEvent, availEvent };
  });
  return { backendUp, callsRelayed: [...callsRelayed], rings, eioReplies: device.counts.eioReplies, badChains: device.counts.badChains };
}

/** DRIVER_OK: the backend takes the rings (module comment). */
function startBackend(): void {
  try {
    const activation = state.activation();
    const regions: VhostUserMemRegion[] = init.ram.regions.map((r) => ({
      guestAddr: BigInt(r.gpa), size: BigInt(r.size), userAddr: r.hostAddr, mmapOffset: BigInt(r.fdOffset),
    }));
    // The transport checked every ring lies inside RAM at DRIVER_OK; hostAddress checks again.
    const vrings: VhostUserVring[] = activation.queues.map((q: QueueConfig, index) => ({
      index, size: q.size, desc: hostAddress(q.descTable), avail: hostAddress(q.availRing), used: hostAddress(q.usedRing),
      kickFd: init.queueFds[index]!, callFd: callEvts[index]!.fd,
    }));
    frontend.start(activation.ackedFeatures, regions, regions.map(() => init.ram.memfd), vrings);
    // Kick every ring once more now that all are enabled. The driver posts FUSE_INIT and kicks
    // right after DRIVER_OK, before the rings are handed over, so that kick may reach the
    // backend between SET_VRING_KICK and SET_VRING_ENABLE; whether a backend then drops it is
    // not verified here, and a spurious kick costs only a look at the avail ring.
    for (const q of queueEvts) q.signal();
    log('info', `the vhost-user backend at ${init.socketPath} serves the device`);
  } catch (e) {
    log('error', `handing the rings to the vhost-user backend failed: ${(e as Error).message}`);
    backendGone();
  }
}

/** The backend is gone: serve the rings with EIO from now on. */
function backendGone(): void {
  if (!backendUp) return;
  backendUp = false;
  closeSocket();
  // Completions the backend signalled just before it died still raise their interrupt.
  callEvts.forEach((c, i) => { if (c.drain() > 0n) interrupt.trigger(VIRTIO_INTERRUPT.VRING, i); });
  log('error', `the vhost-user backend at ${init.socketPath} hung up: requests on this device now fail with EIO`);
  if (device.isActive) device.takeOver();
}

function closeSocket(): void {
  if (!sockOpen) return;
  sockOpen = false;
  sock.close();
}

async function loop(): Promise<void> {
  post({ kind: 'ready' });
  for (;;) {
    const fds = backendUp ? [ctlEvt.fd, sock.fd, ...callEvts.map((c) => c.fd)] : [ctlEvt.fd, ...queueEvts.map((q) => q.fd)];
    const ready = pollReadable(life.quiesced ? [ctlEvt.fd] : fds, -1);
    if (ready.includes(ctlEvt.fd)) {
      ctlEvt.drain();
      await server.dispatch();
      if (life.stopping) return;
      if (life.quiesced) continue;
      if (life.activate(device, state, mem, interrupt)) {
        if (backendUp) startBackend();
        else device.takeOver();
      }
    }
    if (backendUp) {
      callEvts.forEach((c, i) => {
        if (ready.includes(c.fd) && c.drain() > 0n) {
          callsRelayed[i]!++;
          interrupt.trigger(VIRTIO_INTERRUPT.VRING, i);
        }
      });
      if (ready.includes(sock.fd)) {
        // The backend sends nothing unasked: bytes are ignored, a hang-up is its death.
        let got: Uint8Array;
        try {
          got = sock.recv(0);
        } catch {
          got = new Uint8Array(0); // a socket error ends the backend as a hang-up does
        }
        if (got.length === 0) backendGone();
      }
    } else {
      queueEvts.forEach((q, i) => { if (ready.includes(q.fd) && q.drain() > 0n) device.onQueueNotify(i); });
    }
  }
}

loop().then(
  () => {
    closeSocket();
    callEvts.forEach((c) => c.close()); // fds are process-wide: the worker's own die with it only if closed
    process.exit(0);
  },
  (e: Error) => {
    post({ kind: 'log', level: 'error', message: `${label}: device worker failed: ${e.stack ?? e}` });
    process.exit(1);
  },
);
