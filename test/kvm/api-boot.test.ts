/**
 * The Firecracker-compatible binary, tried as a new user would, under real KVM:
 *  - `kindling --api-sock <path>`: PUT /boot-source, PUT /machine-config, PUT /actions
 *    InstanceStart through the undici client; GET / is answered (200, Running) all through
 *    the kernel's boot, between lines of its console output (the slowest answer is printed);
 *    the guest's reboot ends the process with exit code 0;
 *  - `kindling --config-file vm.json --no-api` boots the same guest and exits 0.
 * Both use the minimal kernel (the fastest boot in the nested sandbox).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FirecrackerClient } from 'kindling/client';
import { fixture, testBootArgs, withTimeout } from '../helpers/guest.js';
import { pollUntil } from '../helpers/poll.js';

const BIN = resolve('bin/kindling.js');
// The marker is computed by the guest shell, so the logged request body (which holds the
// command text) cannot match it. The guest keeps running 10 s after its marker so that no
// GET / lands after the VM is gone.
const GUEST_CMD = '"echo API_GUEST_$((40+2)); sleep 10"';
const MARKER = 'API_GUEST_42';
const INFO = { id: 'api-test', vmm_version: '1.16.1', app_name: 'Firecracker' };

interface Proc { child: ChildProcess; console: { text: string }; all: { text: string }; exit: Promise<number | null> }

/** Starts bin/kindling; `console` is its stdout (the serial console when logs go to a file). */
function startKindling(args: string[]): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const console = { text: '' };
  const all = { text: '' };
  child.stdout!.on('data', (b: Buffer) => { console.text += b.toString(); all.text += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { all.text += b.toString(); });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, console, all, exit };
}

test('kindling --api-sock: boot over HTTP; GET / answered all through the boot, between console lines', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-api-'));
  const sock = join(dir, 'api.sock');
  const logPath = join(dir, 'fc.log');
  // Logs to a file, so stdout is the serial console alone and its growth is the guest's.
  const p = startKindling(['--api-sock', sock, '--id', 'api-test', '--log-path', logPath]);
  const tail = (): string => `\nconsole:\n${p.console.text.slice(-1500)}\nstderr+log:\n${p.all.text.slice(-500)}${existsSync(logPath) ? readFileSync(logPath, 'utf8').slice(-1500) : ''}`;
  try {
    await pollUntil(() => existsSync(sock), 30_000, () => `the API socket did not appear${tail()}`, 50);
    const api = new FirecrackerClient(sock);
    assert.equal(await api.getInstanceInfo(), { ...INFO, state: 'Not started' });
    await api.putBootSource({
      kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'),
      // Without `quiet` (loglevel=7 comes later and wins) the kernel logs its boot on the
      // console, which is what the GETs below interleave with.
      boot_args: testBootArgs(GUEST_CMD, 'loglevel=7'),
    });
    await api.putMachineConfig({ vcpu_count: 1, mem_size_mib: 128 });
    const t0 = performance.now();
    await api.instanceStart();

    // GET / all through the boot, until the guest's marker, one request in flight at a time
    // and the next sent as soon as one is answered (no pacing timer, so how many land in the
    // boot scales with the machine's speed, not a fixed gap): the API must never wait on a
    // vCPU. Each answer notes how much console output had arrived by then.
    const answers: { ms: number; consoleAt: number }[] = [];
    const deadline = performance.now() + 240_000;
    while (!p.console.text.includes(MARKER)) {
      if (performance.now() > deadline) throw new Error(`the guest marker did not appear within 240 s${tail()}`);
      const s = performance.now();
      const r = await api.request('GET', '/');
      answers.push({ ms: performance.now() - s, consoleAt: p.console.text.length });
      assert.is(r.status, 200, `GET / #${answers.length} during the boot: ${r.body}`);
      assert.equal(JSON.parse(r.body), { ...INFO, state: 'Running' }, `GET / #${answers.length} body`);
    }
    const markerAt = p.console.text.indexOf(MARKER);
    // Where in the kernel's output (before the marker) the answers arrived: at many distinct
    // points, and with no stretch of a quarter of that output going by without an answer.
    const points = [...new Set(answers.map((a) => a.consoleAt).filter((at) => at > 0 && at <= markerAt))];
    const gaps = [...points, markerAt].map((at, i) => at - (i === 0 ? 0 : points[i - 1]!));
    const maxGap = Math.max(...gaps);
    console.log(`\n    API boot: marker after ${((performance.now() - t0) / 1000).toFixed(1)} s, ${markerAt} console bytes before it; ${answers.length} GET / during boot, ${points.length} at distinct points of the kernel's output (longest stretch without an answer ${maxGap} bytes), slowest ${Math.max(...answers.map((a) => a.ms)).toFixed(1)} ms`);
    const trace = `console position of each answer: ${answers.map((a) => a.consoleAt).join(',')}; marker at ${markerAt}`;
    assert.ok(points.length >= 10, `only ${points.length} GET / answers landed while the kernel was printing its boot (${trace})`);
    assert.ok(maxGap < markerAt / 4, `${maxGap} of the ${markerAt} boot console bytes went by without a GET / answer (${trace})`);

    await api.close();
    assert.is(await withTimeout(p.exit, 60_000, () => `no exit after the guest script${tail()}`), 0, 'the guest reboot ends the process with 0');
  } finally {
    p.child.kill('SIGKILL');
  }
});

test('kindling --config-file --no-api boots the same guest and exits 0', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cfg-'));
  const cfg = join(dir, 'vm.json');
  writeFileSync(cfg, JSON.stringify({
    'boot-source': { kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs(GUEST_CMD) },
    'machine-config': { vcpu_count: 1, mem_size_mib: 128 },
    drives: [],
  }));
  const p = startKindling(['--config-file', cfg, '--no-api']);
  try {
    const code = await withTimeout(p.exit, 240_000, () => `no exit; output:\n${p.all.text.slice(-2000)}`);
    assert.ok(p.console.text.includes(MARKER), p.all.text.slice(-2000));
    assert.is(code, 0);
  } finally {
    p.child.kill('SIGKILL');
  }
});

test.run();
