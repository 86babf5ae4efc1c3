/**
 * A minimal actor for test/unit/control-channel.test.ts, shaped like a device worker
 * (src/actors/virtio/block-worker.ts): it blocks its thread in poll() on the doorbell eventfd
 * and serves its control object only when the doorbell rings.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { setImmediate as macrotask } from 'node:timers/promises';
import { EventFd, pollReadable } from '../../src/kvm/eventfd.js';
import { serveControl } from '../../src/actors/control-channel.js';
import { RateLimiterError } from '../../src/errors.js';

/** What the test actor serves. */
export interface TestControl {
  add(a: number, b: number): number;
  /** Answers only after a macrotask: the actor must not be back in poll() by then. */
  later(text: string): Promise<string>;
  /** Throws a KindlingError subclass. */
  fail(): void;
  /** How many times the loop woke from poll() so far. */
  wakeups(): number;
  /** Ends the worker without replying. */
  crash(): void;
  /** Ends the loop after the reply. */
  stop(): string;
}

const port = parentPort!;
const doorbell = new EventFd((workerData as { doorbellFd: number }).doorbellFd);
let stopping = false;
let wakeups = 0;
const control: TestControl = {
  add: (a, b) => a + b,
  later: async (text) => { await macrotask(); return `${text} later`; },
  fail: () => { throw new RateLimiterError('bucket size out of range'); },
  wakeups: () => wakeups,
  crash: () => process.exit(3),
  stop: () => { stopping = true; return 'stopped'; },
};
const server = serveControl(control, port);
port.postMessage({ kind: 'ready' });
while (!stopping) {
  pollReadable([doorbell.fd], -1);
  wakeups++;
  doorbell.drain();
  await server.dispatch();
}
process.exit(0);
