/**
 * API abuse, part 1: requests generated from Firecracker's API schema, valid and mutated
 * (test/helpers/api-schema-arb.ts), sent over a kept connection to the real server and
 * controller with the fake VM, before and after InstanceStart. For every request: the server
 * answers exactly once with a valid reply (no 5xx), later requests on the connection are
 * answered, and a refused request leaves GET /vm/config and GET /machine-config as they were.
 * Fixed seeds; bounded runs (a few seconds in all).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiHarness, RawClient, startApi } from '../helpers/api-harness.js';
import { AbuseCounts, SEEDS, checkResources, exchange, sampleResources, storedConfig } from '../helpers/api-abuse.js';
import { Fixtures, describeRequest, requestBytes, requests } from '../helpers/api-schema-arb.js';

let fx: Fixtures;
let cwd: string;
test.before(() => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-abuse-'));
  fx = { dir, file: join(dir, 'image') };
  writeFileSync(fx.file, Buffer.alloc(64 * 1024, 'x'));
  // A mutated body may name a relative path (`"log_path": "x"`), which the API opens and, for
  // the logger and metrics, creates: resolve those in the fixture folder, not in the repo.
  cwd = process.cwd();
  process.chdir(dir);
});
test.after(() => {
  process.chdir(cwd);
  rmSync(fx.dir, { recursive: true, force: true });
});

/** A harness with the two connections a run uses: one for the generated requests, one to read the config. */
interface Target {
  h: ApiHarness;
  actor: RawClient;
  observer: RawClient;
  config: string;
}

async function target(booted: boolean): Promise<Target> {
  const h = await startApi();
  h.logger.sink = () => undefined;
  if (booted) {
    assert.is((await h.client.request('PUT', '/boot-source', { kernel_image_path: fx.file })).status, 204);
    assert.is((await h.client.request('PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);
  }
  const observer = new RawClient(h.socketPath);
  return { h, actor: new RawClient(h.socketPath), observer, config: await storedConfig(observer) };
}

async function release(t: Target): Promise<void> {
  t.actor.destroy();
  t.observer.destroy();
  await t.h.close();
}

/**
 * Runs `numRuns` generated sequences of 1–8 requests against one server (before boot: a fresh
 * one whenever a request started or restored the VM, so configuration requests keep being tried).
 */
async function run(booted: boolean, seed: number, numRuns: number, counts: AbuseCounts): Promise<void> {
  let t = await target(booted);
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(requests(fx), { minLength: 1, maxLength: 8 }), async (reqs) => {
        for (const r of reqs) {
          counts.cases++;
          const reply = await exchange(t.actor, requestBytes(r), describeRequest(r));
          const after = await storedConfig(t.observer);
          counts.requests += 3;
          counts.status(reply.status);
          if (reply.status >= 400) assert.is(after, t.config, `refused (${reply.status}: ${reply.body}) yet changed the stored configuration: ${describeRequest(r)}`);
          t.config = after;
          if (!booted && t.h.backend.callNames.some((m) => m === 'start' || m === 'loadSnapshot')) {
            await release(t);
            t = await target(false);
          }
        }
      }),
      { seed, numRuns, endOnFailure: true },
    );
  } finally {
    await release(t);
  }
}

test('generated requests before boot: one valid reply each, refusals leave the config alone', async () => {
  const counts = new AbuseCounts();
  await run(false, SEEDS.schemaPreBoot, 200, counts);
  console.log(counts.line('api-abuse-schema (before boot)'));
  assert.ok(counts.statuses.get(204)! > 0 && counts.statuses.get(400)! > 0, 'both accepted and refused requests were tried');
});

test('generated requests after boot: one valid reply each, refusals leave the config alone', async () => {
  const counts = new AbuseCounts();
  await run(true, SEEDS.schemaPostBoot, 120, counts);
  console.log(counts.line('api-abuse-schema (after boot)'));
  assert.ok(counts.statuses.get(400)! > 0);
});

test('fds and memory are flat after another generated run (the runs above were the warm-up)', async () => {
  const counts = new AbuseCounts();
  const before = sampleResources();
  await run(false, SEEDS.schemaPreBoot + 1, 250, counts);
  await run(true, SEEDS.schemaPostBoot + 1, 120, counts);
  const line = checkResources(before, sampleResources());
  console.log(`${counts.line('api-abuse-schema (resource run)')}; ${line}`);
});

test.run();
