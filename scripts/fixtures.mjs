/**
 * Where Kindling's guest fixtures and caches are: the one loader for scripts/*.mjs, the tests
 * and the bench. Plain JavaScript, so the scripts can use it before anything is compiled;
 * TypeScript imports it as '../../scripts/fixtures.mjs' and tsc (allowJs) emits a copy into
 * dist/scripts/ beside the compiled importers, where that relative path then points.
 *
 * scripts/guest-fixtures.sh builds the fixtures into cacheDir()/guest/<key>/ and points
 * cacheDir()/guest/current at them; it computes the same cache folder in bash.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Kindling's cache folder (fixtures, sandbox runs, `npm start` runs): $KINDLING_CACHE, else
 * $XDG_CACHE_HOME/kindling, else ~/.cache/kindling.
 * @returns {string}
 */
export function cacheDir() {
  return process.env.KINDLING_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kindling');
}

/**
 * The guest fixtures folder: $KINDLING_FIXTURES (setup exports the folder it built), else the
 * cache's current build.
 * @returns {string}
 */
export function fixturesDir() {
  return process.env.KINDLING_FIXTURES || join(cacheDir(), 'guest', 'current');
}

/**
 * The path of fixture `name` (e.g. 'vmlinuz'). Throws, naming the fix, when it is missing:
 * a test that needs a fixture fails rather than skips.
 * @param {string} name
 * @param {string} [dir] the fixtures folder (default fixturesDir())
 * @returns {string}
 */
export function fixturePath(name, dir = fixturesDir()) {
  const p = join(dir, name);
  if (!existsSync(p)) throw new Error(`guest fixture ${p} is missing (run: npm run fixtures, or set KINDLING_FIXTURES)`);
  return p;
}
