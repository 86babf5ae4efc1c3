/**
 * Pre-started actor workers. Starting a worker_thread means a new V8 isolate that loads its
 * whole module graph and koffi: about 150 ms natively and seconds under nested emulation, by
 * far the largest part of InstanceStart. The API process knows it will need at least one vCPU
 * actor, so once its socket listens it starts workers ahead (`prewarmActors`); they load their
 * code and then sleep until `startActor` hands one its init data. When none is waiting,
 * `startActor` starts a fresh worker, so the pool only ever saves time.
 *
 * Protocol with a pre-started worker (actor-init.ts is the worker's side): its workerData is
 * `{ prewarmed: doorbell }` (an Int32Array over a SharedArrayBuffer). To hand over, main posts
 * the init message and then sets the doorbell to DOORBELL.INIT and notifies; the worker,
 * blocked in Atomics.wait, takes the message with receiveMessageOnPort (so its port never
 * starts and no later message can be emitted to nobody). DOORBELL.QUIT makes it exit.
 */
import { Worker } from 'node:worker_threads';

/** The actor scripts, by kind. */
export const ACTOR_SCRIPTS = {
  vcpu: new URL('./vcpu/worker.js', import.meta.url),
  block: new URL('./virtio/block-worker.js', import.meta.url),
  net: new URL('./virtio/net-worker.js', import.meta.url),
  vsock: new URL('./virtio/vsock-worker.js', import.meta.url),
  entropy: new URL('./virtio/entropy-worker.js', import.meta.url),
  balloon: new URL('./virtio/balloon-worker.js', import.meta.url),
} as const;

export type ActorKind = keyof typeof ACTOR_SCRIPTS;

/** Doorbell values (Int32 slot 0). */
export const DOORBELL = { WAIT: 0, INIT: 1, QUIT: 2 } as const;

/** workerData of a pre-started worker. */
export interface PrewarmedWorkerData {
  prewarmed: SharedArrayBuffer;
}

/**
 * What an actor is started with (workerData of a fresh worker, or the message a pre-started
 * one takes): its init data and the name its thread gives itself (actor-init.ts).
 */
export interface ActorStart<T = unknown> {
  actorInit: T;
  thread: string;
}

interface WarmWorker {
  worker: Worker;
  doorbell: Int32Array;
}

const warm: Record<ActorKind, WarmWorker[]> = { vcpu: [], block: [], net: [], vsock: [], entropy: [], balloon: [] };

/** Pre-started workers of `kind` waiting for work. */
export function warmActorCount(kind: ActorKind): number {
  return warm[kind].length;
}

/** Starts `count` workers of `kind` ahead of need. They do not keep the process alive. */
export function prewarmActors(kind: ActorKind, count: number): void {
  for (let i = 0; i < count; i++) {
    const sab = new SharedArrayBuffer(4);
    const entry: WarmWorker = {
      worker: new Worker(ACTOR_SCRIPTS[kind], { workerData: { prewarmed: sab } satisfies PrewarmedWorkerData, name: `fc_${kind} (warm)` }),
      doorbell: new Int32Array(sab),
    };
    entry.worker.unref();
    // A pre-started worker that fails (e.g. cannot load koffi) is dropped; startActor then
    // starts a fresh one, which reports the same failure where InstanceStart sees it.
    const drop = (): void => {
      const i = warm[kind].indexOf(entry);
      if (i >= 0) warm[kind].splice(i, 1);
    };
    entry.worker.once('error', drop);
    entry.worker.once('exit', drop);
    warm[kind].push(entry);
  }
}

/**
 * A worker running actor `kind` with `init`: a pre-started one when available, else a new one.
 * Its thread names itself `name` (Firecracker's `fc_vcpu N`).
 */
export function startActor(kind: ActorKind, init: unknown, name: string): Worker {
  const start: ActorStart = { actorInit: init, thread: name };
  const entry = warm[kind].shift();
  if (!entry) return new Worker(ACTOR_SCRIPTS[kind], { workerData: start, name });
  entry.worker.removeAllListeners();
  entry.worker.ref();
  entry.worker.postMessage(start);
  Atomics.store(entry.doorbell, 0, DOORBELL.INIT);
  Atomics.notify(entry.doorbell, 0);
  return entry.worker;
}

/** Asks every pre-started worker to exit (process shutdown, tests). */
export async function drainActorPool(): Promise<void> {
  const all = [...warm.vcpu, ...warm.block];
  warm.vcpu = [];
  warm.block = [];
  await Promise.all(all.map(async ({ worker, doorbell }) => {
    worker.ref(); // an unref'd worker would not keep the process alive until its exit event
    const ended = new Promise<void>((r) => worker.once('exit', () => r()));
    Atomics.store(doorbell, 0, DOORBELL.QUIT);
    Atomics.notify(doorbell, 0);
    await ended;
  }));
}
