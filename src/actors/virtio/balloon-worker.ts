/**
 * The balloon device worker: one worker_thread for the VM's balloon (balloon-protocol.ts),
 * Firecracker's balloon event handler (devices/virtio/balloon/event_handler.rs) on its own
 * thread.
 *
 * Loop: poll(ctl, inflate, deflate[, stats][, hint][, report]; timeout = the next statistics poll)
 *   ctl      → control calls (target, stats interval, stats, snapshot, stop); activation once
 *              the transport saw DRIVER_OK;
 *   inflate  → release the listed pages' host memory (memory/discard.ts);
 *   deflate  → acknowledge;
 *   stats    → parse and keep the driver's statistics buffer;
 *   hint     → command ids and hinted free pages (released during a run);
 *   report   → release the free pages the guest reported;
 *   timeout  → hand the stats buffer back so the driver refills it.
 * Nothing crosses to main per request: interrupts go through the irqfd, counters through the
 * shared metrics buffer.
 */
import { parentPort } from 'node:worker_threads';
import { actorInit } from '../actor-init.js';
import { serveControl } from '../control-channel.js';
import { EventFd, pollReadable } from '../../kvm/eventfd.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { discardGuestPages } from '../../memory/discard.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { transportInterrupt } from './transport.js';
import { BalloonDevice } from '../../devices/virtio/balloon/device.js';
import { BalloonConfig } from '../../devices/virtio/balloon/config.js';
import { BalloonMetrics } from '../../devices/virtio/balloon/metrics.js';
import { WorkerLifecycle } from './worker-lifecycle.js';
import type { BalloonControl, BalloonWorkerInit } from './balloon-protocol.js';
import type { VirtioEventMessage } from './virtio-actor.js';

const init = actorInit<BalloonWorkerInit>();
const port = parentPort!;
const post = (m: VirtioEventMessage): void => port.postMessage(m);
const label = 'balloon';

const mem = GuestMemory.fromDescriptor(init.memory);
const state = new MmioState(init.state);
const ctlEvt = new EventFd(init.ctlFd);
const queueEvts = init.queueFds.map((fd) => new EventFd(fd));
const irqEvt = new EventFd(init.irqFd);
const device = new BalloonDevice({
  deflateOnOom: init.deflateOnOom, statsEnabled: init.statsIntervalS > 0, statsIntervalS: init.statsIntervalS, reporting: init.reporting, hinting: init.hinting, config: new BalloonConfig(init.config),
  metrics: new BalloonMetrics(init.metrics), discard: (view) => discardGuestPages(view, init.backing),
});
const interrupt = transportInterrupt(init.pci, state, irqEvt);

/** performance.now() of the next statistics poll (Firecracker's stats timerfd). */
let nextStatsAt = Infinity;

const life = new WorkerLifecycle(label, (message) => post({ kind: 'log', level: 'error', message }));
const control: BalloonControl = {
  quiesce() {
    return life.quiesce(device);
  },
  release() {
    life.release();
  },
  setTarget(amountMib) {
    life.refuseAfterStop();
    device.setTarget(amountMib);
  },
  setStatsInterval(seconds) {
    life.refuseAfterStop();
    const before = device.statsIntervalS;
    device.setStatsInterval(seconds);
    if (device.statsIntervalS !== before) armStats();
  },
  stats() {
    life.refuseAfterStop();
    return device.stats();
  },
  startHinting(ack) {
    life.refuseAfterStop();
    device.startHinting(ack);
  },
  stopHinting() {
    life.refuseAfterStop();
    device.stopHinting();
  },
  hintingStatus() {
    life.refuseAfterStop();
    return device.hintingStatus();
  },
  savedStatsHead() {
    return device.savedStatsHead();
  },
  stop() {
    life.stop();
  },
};
const server = serveControl(control, port);

function armStats(): void {
  const s = device.statsIntervalS;
  nextStatsAt = s > 0 && device.isActive ? performance.now() + s * 1000 : Infinity;
}

function timeoutMs(): number {
  if (life.quiesced || nextStatsAt === Infinity) return -1;
  return Math.max(0, Math.ceil(nextStatsAt - performance.now()));
}

async function loop(): Promise<void> {
  const fds = [ctlEvt.fd, ...queueEvts.map((e) => e.fd)];
  if (life.restore(device, state, mem, interrupt, init.restore?.queues ?? null)) {
    device.restoreStatsHead(init.restore?.statsHead ?? null);
    armStats();
  }
  post({ kind: 'ready' });
  for (;;) {
    const ready = pollReadable(life.quiesced ? [ctlEvt.fd] : fds, timeoutMs());
    if (ready.includes(ctlEvt.fd)) {
      ctlEvt.drain();
      await server.dispatch();
      if (life.stopping) return;
      if (life.quiesced) continue; // a snapshot is being taken
      if (life.activate(device, state, mem, interrupt)) {
        armStats();
        queueEvts.forEach((_, q) => device.onQueueNotify(q));
      }
    }
    queueEvts.forEach((e, q) => {
      if (!ready.includes(e.fd)) return;
      e.drain();
      device.onQueueNotify(q);
    });
    if (performance.now() >= nextStatsAt) {
      device.requestStats();
      armStats();
    }
  }
}

loop().then(
  () => process.exit(0),
  (e: Error) => {
    post({ kind: 'log', level: 'error', message: `${label}: device worker failed: ${e.stack ?? e}` });
    process.exit(1);
  },
);
