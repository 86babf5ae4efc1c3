/**
 * The virtio-net device worker: one worker_thread per network interface (net-protocol.ts).
 *
 * Loop: poll(ctl, RX queue, TX queue[, TAP while the device can take a frame];
 *            timeout = the rate limiters' retry delay or none)
 *   ctl  → control calls (PATCH, stop); activation once the transport saw DRIVER_OK: the
 *          TAP's offloads are set from the acked features, then both queues are processed;
 *   RX queue → the guest posted receive buffers: take them, read waiting frames;
 *   TX queue → frames to send: writev each one from guest RAM to the TAP, then read what the
 *          host queued meanwhile (NetDevice.onTxQueueNotify);
 *   TAP  → a frame is waiting and the guest has room: readv it into guest RAM;
 *   timeout → a rate limiter's block ended.
 * The used-buffer interrupt of a turn is written once, before the next wait.
 * The TAP is polled only while `wantsTapInput()` holds, so a guest that stops consuming RX
 * leaves the worker asleep (frames wait in the TAP's queue, which the kernel bounds) and never
 * spins; every other device and the API are on other threads.
 */
import { parentPort } from 'node:worker_threads';
import { actorInit } from '../actor-init.js';
import { serveControl } from '../control-channel.js';
import { MmdsError } from '../../errors.js';
import { EventFd } from '../../kvm/eventfd.js';
import { DeviceLoopTimer } from './device-poll.js';
import { WorkerLifecycle } from './worker-lifecycle.js';
import { Tap } from '../../kvm/tap.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { NetDevice } from '../../devices/virtio/net/device.js';
import { NetMetrics } from '../../devices/virtio/net/metrics.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { deferredTransportInterrupt } from './transport.js';
import { RateLimiter } from '../../devices/rate-limiter/rate-limiter.js';
import { MmdsStack } from '../../mmds/stack.js';
import { TokenAuthority } from '../../mmds/token.js';
import { MmdsMetrics } from '../../mmds/metrics.js';
import type { NetControl, NetWorkerInit } from './net-protocol.js';
import type { VirtioEventMessage } from './virtio-actor.js';

const init = actorInit<NetWorkerInit>();
const port = parentPort!;
const post = (m: VirtioEventMessage): void => port.postMessage(m);
const label = `net ${init.ifaceId}`;

const mem = GuestMemory.fromDescriptor(init.memory);
const state = new MmioState(init.state);
const ctlEvt = new EventFd(init.ctlFd);
const rxEvt = new EventFd(init.rxFd);
const txEvt = new EventFd(init.txFd);
const irqEvt = new EventFd(init.irqFd);
const tap = Tap.fromFd(init.tapName, init.tapFd);
const mmds = init.mmds && new MmdsStack({
  tokens: new TokenAuthority({ key: Uint8Array.from(init.mmds.key), instanceId: init.mmds.instanceId }),
  ipv4: init.mmds.ipv4, version: init.mmds.version, imdsCompat: init.mmds.imdsCompat, metrics: new MmdsMetrics(init.mmds.metrics),
});
mmds?.setData(init.mmds!.data);
const device = new NetDevice(
  { guestMac: init.guestMac ? Uint8Array.from(init.guestMac) : null, mtu: init.mtu },
  tap,
  {
    rxRateLimiter: new RateLimiter(init.rxRateLimiter), txRateLimiter: new RateLimiter(init.txRateLimiter),
    metrics: new NetMetrics(init.metrics), configBytes: new Uint8Array(init.config), mmds: mmds ?? undefined,
  },
);
// One irqfd write per loop turn at most (transport.ts `deferredTransportInterrupt`).
const { interrupt, flush: flushInterrupt } = deferredTransportInterrupt(init.pci, state, irqEvt);

const life = new WorkerLifecycle(label, (message) => post({ kind: 'log', level: 'error', message }));

/** Activates the device and sets the TAP's offloads from the acked features; true when it just did. */
function maybeActivate(): boolean {
  if (!life.activate(device, state, mem, interrupt)) return false;
  try {
    // Firecracker sets the TAP's offloads at activation (net/device.rs `activate`).
    tap.setOffload(device.tapOffloadFlags());
  } catch (e) {
    post({ kind: 'log', level: 'error', message: `${label}: ${(e as Error).message}` });
  }
  return true;
}

const control: NetControl = {
  updateRateLimiters(rx, tx) {
    life.refuseAfterStop();
    device.updateRateLimiters({ rx, tx });
  },
  quiesce() {
    return life.quiesce(device);
  },
  release() {
    life.release();
  },
  setMmdsData(json) {
    life.refuseAfterStop();
    if (!mmds) throw new MmdsError('MMDS_CONFIG', `${label}: MMDS is not attached to this interface`);
    mmds.setData(json);
  },
  stop() {
    life.stop();
    tap.close(); // the worker owns the TAP from spawn on
  },
};
const server = serveControl(control, port);

async function loop(): Promise<void> {
  const timer = new DeviceLoopTimer();
  if (life.restore(device, state, mem, interrupt, init.restore?.queues ?? null)) tap.setOffload(device.tapOffloadFlags());
  post({ kind: 'ready' });
  for (;;) {
    flushInterrupt(); // before any wait: the guest must never wait on a write held here
    if (life.quiesced) {
      // A snapshot is being taken: control calls only, no timers, TAP frames wait in the kernel.
      timer.wait([ctlEvt.fd], 0);
      ctlEvt.drain();
      await server.dispatch();
      if (life.stopping) return;
      continue;
    }
    const fds = [ctlEvt.fd, rxEvt.fd, txEvt.fd];
    if (device.wantsTapInput()) fds.push(tap.fd);
    const mmdsMs = device.mmdsTimeoutMs();
    const limiterMs = device.retryAfterMs();
    // 0 from the limiters means "no timer"; the MMDS's null does.
    const ready = timer.wait(fds, mmdsMs === null ? limiterMs : limiterMs === 0 ? Math.max(mmdsMs, 1) : Math.min(limiterMs, Math.max(mmdsMs, 1)));
    if (ready.includes(ctlEvt.fd)) {
      ctlEvt.drain();
      await server.dispatch();
      if (life.stopping) return;
      if (life.quiesced) continue;
      if (maybeActivate()) device.processQueues();
    }
    if (ready.includes(rxEvt.fd)) {
      rxEvt.drain();
      device.onRxQueueNotify();
    }
    if (ready.includes(txEvt.fd)) {
      txEvt.drain();
      device.onTxQueueNotify();
    }
    if (ready.includes(tap.fd)) device.onTapReadable();
    if (timer.due()) {
      device.onRateLimiterTimer();
      if (mmdsMs !== null) device.onMmdsTimer();
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
