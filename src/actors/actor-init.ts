/**
 * The worker side of actor start-up (actor-pool.ts): an actor started for a VM gets its init
 * data as workerData; a pre-started one has already loaded its modules (they are imported
 * before this runs) and sleeps here until main rings its doorbell, then takes the init
 * message synchronously. Blocking is fine: this is a worker thread with nothing else to do.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { setThreadName } from '../util/thread-name.js';
import { DOORBELL, type ActorStart, type PrewarmedWorkerData } from './actor-pool.js';

/**
 * This actor's init data; names the thread as main asked (`fc_vcpu N`, src/util/thread-name.ts).
 * Exits the thread when a pre-started worker is told to quit.
 */
export function actorInit<T>(): T {
  const pre = (workerData as Partial<PrewarmedWorkerData> | null)?.prewarmed;
  let start: ActorStart<T>;
  if (!(pre instanceof SharedArrayBuffer)) start = workerData as ActorStart<T>;
  else {
    const doorbell = new Int32Array(pre);
    while (Atomics.load(doorbell, 0) === DOORBELL.WAIT) Atomics.wait(doorbell, 0, DOORBELL.WAIT);
    if (Atomics.load(doorbell, 0) === DOORBELL.QUIT) process.exit(0);
    const msg = receiveMessageOnPort(parentPort as never);
    if (!msg) throw new Error('pre-started actor: doorbell rang without an init message');
    start = msg.message as ActorStart<T>;
  }
  setThreadName(start.thread);
  return start.actorInit;
}
