/**
 * The test tier's one retry (test/harness/tier.ts): a KVM-tier file whose failure shows a guest
 * triple fault or a guest kernel panic runs once more and its second run counts; any other
 * failure, or a second guest death, fails. Runs the real tier runner as a child on a stand-in
 * file (no KVM needed).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

function runTier(mode: string): { result: { passed: number; failed: number }; runs: number; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-tier-'));
  try {
    const r = spawnSync(process.execPath, [resolve('dist/test/harness/tier.js'), 'kvm', 'test/harness/fixtures/flaky-guest.ts'], {
      encoding: 'utf8',
      env: { ...process.env, KINDLING_TIER_RESULT: join(dir, 'result.json'), KINDLING_FIXTURE_MODE: mode, KINDLING_FIXTURE_RUNS: join(dir, 'runs') },
    });
    return {
      result: JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as { passed: number; failed: number },
      runs: readFileSync(join(dir, 'runs'), 'utf8').length,
      out: r.stdout,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a guest triple fault once: the file runs again, says so, and its second run counts', () => {
  const t = runTier('once');
  assert.is(t.runs, 2);
  assert.equal([t.result.passed, t.result.failed], [1, 0]);
  assert.match(t.out, /flaky-guest\.js failed with a guest triple fault, the nested rig.s known failure: running it once more/);
  assert.match(t.out, /second run after a guest triple fault: 1 passed, 0 failed/);
});

test('a triple fault in the second run too fails the file', () => {
  const t = runTier('twice');
  assert.is(t.runs, 2);
  assert.equal([t.result.passed, t.result.failed], [0, 1]);
});

test('only the vCPU\'s triple-fault line (the VM\'s closing line came after the file ended): the file runs again', () => {
  const t = runTier('fclog');
  assert.is(t.runs, 2);
  assert.equal([t.result.passed, t.result.failed], [1, 0]);
  assert.match(t.out, /second run after a guest triple fault: 1 passed, 0 failed/);
});

test('a guest kernel panic on a printed console: the file runs again and its second run counts', () => {
  const t = runTier('panic');
  assert.is(t.runs, 2);
  assert.equal([t.result.passed, t.result.failed], [1, 0]);
  assert.match(t.out, /second run after a guest kernel panic: 1 passed, 0 failed/);
});

test('any other failure is not retried', () => {
  const t = runTier('other');
  assert.is(t.runs, 1);
  assert.equal([t.result.passed, t.result.failed], [0, 1]);
});

test.run();
