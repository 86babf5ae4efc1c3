/**
 * The actor control channel (src/actors/control-channel.ts) against a real worker_thread that
 * sleeps in poll() on a real eventfd (test/helpers/control-actor.ts): calls wake it through the
 * doorbell, async replies are out before it sleeps again, errors keep their code, `stop` ends
 * its loop after replying, and calls to a dead actor reject instead of hanging.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { EventFd } from '../../src/kvm/eventfd.js';
import { connectControl, type ControlClient } from '../../src/actors/control-channel.js';
import { KindlingError } from '../../src/errors.js';
import { rejectionOf, withTimeout } from '../helpers/guest.js';
import type { TestControl } from '../helpers/control-actor.js';

const DEADLINE_MS = 10_000;

interface Actor { worker: Worker; doorbell: EventFd; client: ControlClient<TestControl>; exited: Promise<number> }

async function startActor(): Promise<Actor> {
  const doorbell = new EventFd();
  const worker = new Worker(new URL('../helpers/control-actor.js', import.meta.url), { workerData: { doorbellFd: doorbell.fd } });
  const exited = once(worker, 'exit').then(([code]) => code as number);
  const client = connectControl<TestControl>(worker, doorbell, 'test actor');
  await withTimeout(once(worker, 'message'), DEADLINE_MS, 'the test actor did not start');
  return { worker, doorbell, client, exited };
}

/** Stops the actor through the channel and closes its doorbell. */
async function stopActor(a: Actor): Promise<void> {
  await withTimeout(a.client.remote.stop(), DEADLINE_MS, 'stop was not answered');
  await a.exited;
  a.client.close();
  a.doorbell.close();
}

const call = <T>(p: Promise<T>, what: string): Promise<T> => withTimeout(p, DEADLINE_MS, `${what}: no reply (the actor was not woken, or replied only after sleeping again)`);

const rejection = (p: Promise<unknown>): Promise<KindlingError> => rejectionOf<KindlingError>(p, DEADLINE_MS);

test('a call wakes the sleeping actor through the doorbell and returns its result', async () => {
  const a = await startActor();
  try {
    assert.is(await call(a.client.remote.add(2, 3), 'add'), 5);
    assert.ok(await call(a.client.remote.wakeups(), 'wakeups') >= 1);
  } finally {
    await stopActor(a);
  }
});

test('concurrent calls are each answered with their own result', async () => {
  const a = await startActor();
  try {
    const sums = await call(Promise.all(Array.from({ length: 20 }, (_, i) => a.client.remote.add(i, 100))), '20 adds');
    assert.equal(sums, Array.from({ length: 20 }, (_, i) => i + 100));
  } finally {
    await stopActor(a);
  }
});

test('an async method\'s reply is posted before the actor blocks in poll() again', async () => {
  const a = await startActor();
  try {
    assert.is(await call(a.client.remote.later('x'), 'later'), 'x later');
    // The actor is asleep again; a second call must still get through.
    assert.is(await call(a.client.remote.later('y'), 'later again'), 'y later');
  } finally {
    await stopActor(a);
  }
});

test('a thrown error arrives as a KindlingError with its code and class name', async () => {
  const a = await startActor();
  try {
    const e = await rejection(a.client.remote.fail());
    assert.instance(e, KindlingError);
    assert.is(e.code, 'RATE_LIMITER_CONFIG');
    assert.is(e.name, 'RateLimiterError');
    assert.is(e.message, 'bucket size out of range');
    assert.is(await call(a.client.remote.add(1, 1), 'add after a throw'), 2, 'the actor keeps serving');
  } finally {
    await stopActor(a);
  }
});

test('stop ends the actor\'s loop after its reply is delivered', async () => {
  const a = await startActor();
  assert.is(await call(a.client.remote.stop(), 'stop'), 'stopped');
  assert.is(await withTimeout(a.exited, DEADLINE_MS, 'the actor did not exit after stop'), 0);
  a.client.close();
  a.doorbell.close();
});

test('a call pending when the worker dies, and calls after, reject with ACTOR_EXITED without ringing', async () => {
  const a = await startActor();
  const pending = await rejection(a.client.remote.crash());
  assert.is(pending.code, 'ACTOR_EXITED');
  assert.is(await a.exited, 3);
  a.doorbell.drain();
  const after = await rejection(a.client.remote.add(1, 2));
  assert.is(after.code, 'ACTOR_EXITED');
  assert.is(a.doorbell.drain(), 0n, 'no doorbell write for a dead actor');
  a.client.close();
  a.doorbell.close();
});

test('after close() calls reject and never write to the doorbell', async () => {
  const a = await startActor();
  try {
    const spare = new EventFd();
    const closed = connectControl<TestControl>(a.worker, spare, 'closed client');
    closed.close();
    assert.is((await rejection(closed.remote.add(1, 2))).code, 'ACTOR_EXITED');
    assert.is(spare.drain(), 0n);
    spare.close();
  } finally {
    await stopActor(a);
  }
});

test.run();
