/**
 * The one-sandbox-per-machine lock (test/sandbox/sandbox-lock.ts), with real flock(1)
 * processes on a lock file of the test's own.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { acquireSandboxLock, flockHolders } from '../sandbox/sandbox-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'kindling-lock-'));
const lock = join(dir, 'sandbox.lock');
writeFileSync(lock, '');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('flockHolders reads holders, not waiters, of one inode from /proc/locks', () => {
  const text = [
    '1: FLOCK  ADVISORY  WRITE 4242 00:1f:777 0 EOF',
    '1: -> FLOCK  ADVISORY  WRITE 5151 00:1f:777 0 EOF',
    '2: FLOCK  ADVISORY  WRITE 6161 00:1f:778 0 EOF',
    '3: POSIX  ADVISORY  WRITE 7171 00:1f:777 0 EOF',
  ].join('\n');
  assert.equal(flockHolders(777, text), [4242]);
});

test('waits while another process holds the lock, and takes it once released', async () => {
  const other = spawn('flock', ['-o', lock, 'sleep', '30'], { stdio: 'ignore', detached: true });
  for (let i = 0; i < 100 && !flockHolders(statSync(lock).ino).length; i++) await sleep(20);
  assert.ok(flockHolders(statSync(lock).ino).length > 0, 'the other process holds the lock');
  const waits: string[] = [];
  let got = false;
  const acquiring = acquireSandboxLock((m) => waits.push(m), lock).then((release) => { got = true; return release; });
  await sleep(1300);
  assert.is(got, false, 'not taken while held elsewhere');
  assert.is(waits.length, 1, 'the wait is reported');
  process.kill(-other.pid!, 'SIGTERM'); // flock and its sleep
  const release = await acquiring;
  assert.ok(flockHolders(statSync(lock).ino).length === 1, 'held by our flock');
  release();
  for (let i = 0; i < 100 && flockHolders(statSync(lock).ino).length; i++) await sleep(20);
  assert.equal(flockHolders(statSync(lock).ino), [], 'released');
});

test('a lock held by an ancestor (`flock <file> npm test`) counts as ours: no self-deadlock', () => {
  const mod = resolve('dist/test/sandbox/sandbox-lock.js');
  const script = `import('${mod}').then(async (m) => { const r = await m.acquireSandboxLock(() => console.log('waited'), '${lock}'); r(); console.log('taken'); })`;
  const out = execFileSync('flock', [lock, process.execPath, '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.is(out.trim(), 'taken');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
