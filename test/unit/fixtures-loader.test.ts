/**
 * The one guest-fixture loader (scripts/fixtures.mjs): its cache folder is the one
 * scripts/guest-fixtures.sh builds into (the script's own `cache=` line, run by bash, under the
 * same environment), $KINDLING_FIXTURES wins over the cache, and a missing fixture throws an
 * error that names the fix.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cacheDir, fixturePath, fixturesDir } from '../../scripts/fixtures.mjs';

const repo = fileURLToPath(new URL('../../..', import.meta.url)).replace(/\/$/, '');
const cacheLine = readFileSync(`${repo}/scripts/guest-fixtures.sh`, 'utf8').split('\n').find((l) => l.startsWith('cache='));
const VARS = ['KINDLING_CACHE', 'XDG_CACHE_HOME', 'HOME', 'KINDLING_FIXTURES'] as const;

/** Runs `f` with exactly these of VARS set (the others unset), then restores them. */
function withEnv<T>(env: Partial<Record<(typeof VARS)[number], string>>, f: () => T): T {
  const saved = VARS.map((k) => [k, process.env[k]] as const);
  for (const k of VARS) {
    if (env[k] === undefined) delete process.env[k];
    else process.env[k] = env[k];
  }
  try {
    return f();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

test('the cache folder is the one guest-fixtures.sh computes, for every way of setting it', () => {
  assert.ok(cacheLine, 'guest-fixtures.sh has a cache= line');
  const cases: Partial<Record<(typeof VARS)[number], string>>[] = [
    { HOME: '/h' },
    { HOME: '/h', XDG_CACHE_HOME: '/xdg' },
    { HOME: '/h', XDG_CACHE_HOME: '/xdg', KINDLING_CACHE: '/kc' },
    { HOME: '/h', KINDLING_CACHE: '' },
  ];
  for (const env of cases) {
    const bash = execFileSync('bash', ['-c', `${cacheLine}\nprintf %s "$cache"`], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
    const ours = withEnv(env, () => cacheDir());
    assert.is(ours, bash, JSON.stringify(env));
  }
});

test('KINDLING_FIXTURES names the fixtures folder; otherwise the cache\'s current build', () => {
  assert.is(withEnv({ HOME: '/h', KINDLING_FIXTURES: '/fx' }, () => fixturesDir()), '/fx');
  assert.is(withEnv({ HOME: '/h', KINDLING_CACHE: '/kc' }, () => fixturesDir()), '/kc/guest/current');
});

test('a missing fixture throws with the path and the fix', () => {
  assert.throws(() => fixturePath('vmlinuz', '/nonexistent-fixtures'), (e: Error) =>
    e.message.includes('/nonexistent-fixtures/vmlinuz') && e.message.includes('npm run fixtures'));
  assert.is(fixturePath('guest-fixtures.sh', `${repo}/scripts`), `${repo}/scripts/guest-fixtures.sh`);
});

test.run();
