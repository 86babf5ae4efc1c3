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
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { BUNDLE } from '../util/bundle-info.js';
import { onBeforeExit } from '../util/exit-hooks.js';

/** The actor scripts in tsc's module tree, by kind. */
const MODULE_SCRIPTS = {
  vcpu: './vcpu/worker.js',
  block: './virtio/block-worker.js',
  net: './virtio/net-worker.js',
  vsock: './virtio/vsock-worker.js',
  entropy: './virtio/entropy-worker.js',
  balloon: './virtio/balloon-worker.js',
  mem: './virtio/mem-worker.js',
  pmem: './virtio/pmem-worker.js',
  fs: './virtio/fs-worker.js',
} as const;

export type ActorKind = keyof typeof MODULE_SCRIPTS;

/** The bundle's actor entry of `kind` (scripts/bundle.mjs names them so). */
const bundleEntry = (kind: ActorKind): string => `actor-${kind}.js`;

/**
 * Where each actor's script is. A worker loads its script's whole module graph into a new
 * isolate, so the bundled entry (one file plus shared chunks) starts markedly faster than tsc's
 * tree (bench/results, Start-up). Code running from the bundle finds its sibling entries;
 * code running from dist/src (the in-process library, tests) uses dist/bundle's actors when
 * the build made them, so all three users start the same scripts; KINDLING_ACTOR_SCRIPTS=modules
 * forces tsc's tree (a build that skipped the bundle step, debugging).
 */
function actorScripts(): Record<ActorKind, URL> {
  const kinds = Object.keys(MODULE_SCRIPTS) as ActorKind[];
  const pick = (at: (k: ActorKind) => URL): Record<ActorKind, URL> =>
    Object.fromEntries(kinds.map((k) => [k, at(k)])) as Record<ActorKind, URL>;
  if (BUNDLE) return pick((k) => new URL(`./${bundleEntry(k)}`, import.meta.url));
  const bundled = pick((k) => new URL(`../../bundle/${bundleEntry(k)}`, import.meta.url));
  if (process.env.KINDLING_ACTOR_SCRIPTS !== 'modules' && kinds.every((k) => existsSync(bundled[k]))) return bundled;
  return pick((k) => new URL(MODULE_SCRIPTS[k], import.meta.url));
}

/** The actor scripts, by kind (see actorScripts). */
export const ACTOR_SCRIPTS: Readonly<Record<ActorKind, URL>> = actorScripts();

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

const warm: Record<ActorKind, WarmWorker[]> = { vcpu: [], block: [], net: [], vsock: [], entropy: [], balloon: [], mem: [], pmem: [], fs: [] };

/** Pre-started workers of `kind` waiting for work. */
export function warmActorCount(kind: ActorKind): number {
  return warm[kind].length;
}

/** Starts `count` workers of `kind` ahead of need. They do not keep the process alive. */
export function prewarmActors(kind: ActorKind, count: number): void {
  // Before the process exits, the pool's workers quit (src/cli/exit.ts says why).
  if (count > 0) onBeforeExit(drainActorPool);
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

/** Starts workers of `kind` until `count` wait in the pool (none when enough already do). */
export function topUpActors(kind: ActorKind, count: number): void {
  const missing = count - warm[kind].length;
  if (missing > 0) prewarmActors(kind, missing);
}

/** topUpActors for every kind of `demand` (what a configuration or a state file will start). */
export function topUpAll(demand: Readonly<Record<ActorKind, number>>): void {
  for (const kind of Object.keys(demand) as ActorKind[]) topUpActors(kind, demand[kind]);
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
  const all = Object.values(warm).flat();
  for (const k of Object.keys(warm) as ActorKind[]) warm[k] = [];
  await Promise.all(all.map(async ({ worker, doorbell }) => {
    worker.ref(); // an unref'd worker would not keep the process alive until its exit event
    const ended = new Promise<void>((r) => worker.once('exit', () => r()));
    Atomics.store(doorbell, 0, DOORBELL.QUIT);
    Atomics.notify(doorbell, 0);
    await ended;
  }));
}
