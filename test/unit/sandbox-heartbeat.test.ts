/**
 * The sandbox's heartbeat (test/sandbox/sandbox.ts `heartbeat`): a stand-in for QEMU — a real
 * shell process that prints the sandbox's "up" line and then, as a stopped sandbox kernel does,
 * nothing more — is killed once the heartbeat file is older than `staleMs`, and the error says
 * `stalled`; one that keeps the file fresh and exits with a status is left alone.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'kindling-heartbeat-'));
process.env.KINDLING_CACHE = join(dir, 'cache');
process.env.KINDLING_SANDBOX_LOCK = join(dir, 'sandbox.lock');
writeFileSync(join(dir, 'vmlinuz'), '');
writeFileSync(join(dir, 'sandbox-initrd.cpio.gz'), '');
const { runInSandbox, SandboxError } = await import('../sandbox/sandbox.js');

/** A fake qemu-system-x86_64: finds the run folder in its `kindling.out=` argument, runs `body`. */
function fakeQemu(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh
out=$(printf '%s\\n' "$@" | tr ' ' '\\n' | sed -n 's/^kindling\\.out=//p')
echo "KINDLING_SANDBOX_UP 1.0"
${body}
`);
  chmodSync(path, 0o755);
  return path;
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('a sandbox whose heartbeat file goes stale is killed, with a stalled SandboxError', async () => {
  process.env.KINDLING_QEMU = fakeQemu('stuck-qemu', 'echo beat > "$out/watch.txt"; exec sleep 60');
  const t0 = Date.now();
  const err = await runInSandbox({ script: 'true', fixtures: dir, timeoutMs: 30_000, onLine: () => undefined, heartbeat: { file: 'watch.txt', staleMs: 600 } })
    .then(() => undefined, (e: unknown) => e);
  assert.instance(err, SandboxError);
  assert.ok((err as InstanceType<typeof SandboxError>).stalled, 'stalled');
  assert.match((err as Error).message, /watch\.txt not refreshed/);
  assert.ok(Date.now() - t0 < 10_000, `killed after ${Date.now() - t0} ms, long before the 30 s deadline`);
});

test('a sandbox that keeps its heartbeat fresh runs to its end and reports its status', async () => {
  process.env.KINDLING_QEMU = fakeQemu('live-qemu', 'for i in 1 2 3 4 5 6 7 8; do echo beat > "$out/watch.txt"; sleep 0.2; done; echo 3 > "$out/status"; echo KINDLING_SANDBOX_EXIT=3');
  const res = await runInSandbox({ script: 'true', fixtures: dir, timeoutMs: 30_000, onLine: () => undefined, heartbeat: { file: 'watch.txt', staleMs: 600 } });
  assert.is(res.status, 3);
});

test.run();
