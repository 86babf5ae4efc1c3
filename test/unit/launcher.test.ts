/**
 * bin/firecracker, the sh launcher (docs/design.md, Startup snapshot): it starts node from the
 * CLI's startup snapshot when V8 takes the blob on this machine, and bin/kindling.js when it
 * does not, deciding once per blob and boot. Run on copies of bin/ and dist/bundle/ so the
 * blob can be spoiled without touching the build.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'kindling-launcher-'));
const stamps = join(dir, 'stamps');

/** A copy of the package's runtime with blob id `id`; returns its bin/firecracker. */
function copy(name: string, id: string, spoil: boolean): string {
  const root = join(dir, name);
  cpSync(resolve('bin'), join(root, 'bin'), { recursive: true });
  cpSync(resolve('dist/bundle'), join(root, 'dist', 'bundle'), { recursive: true });
  cpSync(resolve('package.json'), join(root, 'package.json'));
  symlinkSync(resolve('node_modules'), join(root, 'node_modules'));
  writeFileSync(join(root, 'dist', 'bundle', 'kindling.blob.id'), `${id}\n`);
  if (spoil) writeFileSync(join(root, 'dist', 'bundle', 'kindling.blob'), 'not a V8 snapshot');
  return join(root, 'bin', 'firecracker');
}

function run(launcher: string): string {
  return execFileSync(launcher, ['--version'], { encoding: 'utf8', env: { ...process.env, TMPDIR: stamps, KINDLING_NODE: process.execPath } });
}

const verdict = (id: string): string => {
  const f = readdirSync(stamps).find((n) => n.startsWith(`kindling-snapshot-${id}-`));
  return f ? readFileSync(join(stamps, f), 'utf8').trim() : 'none';
};

test('a blob V8 takes is used and the verdict kept; a spoiled one falls back to bin/kindling.js', () => {
  execFileSync('mkdir', ['-p', stamps]);
  const good = copy('good', 'goodblob', false);
  assert.match(run(good), /^Firecracker v1\.16\.1\n/);
  assert.is(verdict('goodblob'), 'usable');
  const bad = copy('bad', 'badblob', true);
  assert.match(run(bad), /^Firecracker v1\.16\.1\n/, 'the ESM bundle answers instead');
  assert.is(verdict('badblob'), 'refused');
  // The verdict is reused: a second start does not try the blob again (it still answers).
  assert.match(run(bad), /^Firecracker v1\.16\.1\n/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
