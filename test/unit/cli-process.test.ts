/**
 * The binary as a process, as tools see it (no KVM needed: no VM is started):
 *  - started as `firecracker`, its process name is `firecracker` (/proc/<pid>/comm, pgrep -x)
 *    while its command line still carries `--api-sock`;
 *  - Firecracker's signal handling (src/cli/signals.ts): SIGPIPE logged and counted, the VMM
 *    goes on; SIGHUP, SIGSEGV and SIGSYS end it with 156, 150 and 2, each with its log line
 *    and a last metrics line counting it;
 *  - a real fault dies of its signal (the handlers are one-shot), it does not loop; a panic
 *    logs Firecracker's line, counts vmm.panic_count and aborts;
 *  - `--seccomp-filter` with a readable file is refused, never ignored;
 * and, in-process, the API gate of `--config-file`: a request read before the VM runs is
 * answered after it runs (src/api/server.ts `ready`).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FirecrackerClient } from '../../src/api/client.js';
import { ApiServer } from '../../src/api/server.js';
import { VmResources } from '../../src/config/resources.js';
import { Logger } from '../../src/logger/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { VmmController } from '../../src/vmm/controller.js';
import { FakeBackend } from '../helpers/api-fake-backend.js';
import { pollUntil } from '../helpers/poll.js';

const FIRECRACKER = resolve('bin/firecracker');

interface Vmm { child: ChildProcess; dir: string; sock: string; log: string; metrics: string; exit: Promise<number | null>; stderr: { text: string } }

/** `bin/firecracker --api-sock … --log-path … --metrics-path …`, once its socket listens. */
async function startFirecracker(extra: string[] = []): Promise<Vmm> {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-proc-'));
  const sock = join(dir, 'api.sock');
  const log = join(dir, 'fc.log');
  const metrics = join(dir, 'metrics.json');
  const child = spawn(process.execPath, [FIRECRACKER, '--api-sock', sock, '--id', 'proc-test', '--log-path', log, '--metrics-path', metrics, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr = { text: '' };
  child.stderr!.on('data', (b: Buffer) => { stderr.text += b.toString(); });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await pollUntil(() => existsSync(sock) || child.exitCode !== null, 30_000, () => `no API socket; stderr: ${stderr.text}`, 20);
  return { child, dir, sock, log, metrics, exit, stderr };
}

const logText = (v: Vmm): string => (existsSync(v.log) ? readFileSync(v.log, 'utf8') : '');
const lastMetrics = (v: Vmm): Record<string, Record<string, number>> => JSON.parse(readFileSync(v.metrics, 'utf8').trim().split('\n').pop()!) as Record<string, Record<string, number>>;

test('started as firecracker: comm is `firecracker` (pgrep -x finds it), the command line keeps --api-sock', async () => {
  const v = await startFirecracker();
  try {
    const pid = v.child.pid!;
    assert.is(readFileSync(`/proc/${pid}/comm`, 'utf8'), 'firecracker\n');
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    assert.ok(cmdline.includes('--api-sock') && cmdline.includes(v.sock), cmdline.join(' '));
    const pids = execFileSync('pgrep', ['-x', 'firecracker'], { encoding: 'utf8' }).split('\n').map(Number);
    assert.ok(pids.includes(pid), `pgrep -x firecracker: ${pids.join(',')}`);
  } finally {
    v.child.kill('SIGKILL');
    await v.exit;
  }
});

test('SIGPIPE is logged and counted and the VMM goes on; SIGHUP then ends it with 156, its line and a last metrics line', async () => {
  const v = await startFirecracker();
  v.child.kill('SIGPIPE');
  await pollUntil(() => logText(v).includes('Received signal 13, code 0.'), 30_000, () => `no SIGPIPE line:\n${logText(v)}`, 20);
  const api = new FirecrackerClient(v.sock);
  assert.is((await api.getInstanceInfo()).state, 'Not started', 'still serving after SIGPIPE');
  await api.close();
  v.child.kill('SIGHUP');
  assert.is(await v.exit, 156);
  assert.match(logText(v), /\[proc-test:main\] Shutting down VM after intercepting signal 1, code 0\.\n/);
  const m = lastMetrics(v);
  assert.is(m.signals!.sighup, 1);
  assert.is(m.signals!.sigpipe, 1);
});

test('SIGSEGV sent from outside: exit 150 and signals.sigsegv; SIGSYS (no seccomp trap): exit 2 and seccomp.num_faults', async () => {
  for (const [sig, code, signo, count] of [['SIGSEGV', 150, 11, (m: Record<string, Record<string, number>>) => m.signals!.sigsegv], ['SIGSYS', 2, 31, (m: Record<string, Record<string, number>>) => m.seccomp!.num_faults]] as const) {
    const v = await startFirecracker();
    v.child.kill(sig);
    assert.is(await v.exit, code, `${sig}: ${v.stderr.text}`);
    assert.ok(logText(v).includes(`Shutting down VM after intercepting signal ${signo}, code 0.`), logText(v));
    assert.is(count(lastMetrics(v)), 1, sig);
  }
});

test('a real fault (not a sent signal) kills the process with SIGSEGV instead of looping in the handler', async () => {
  const child = spawn(process.execPath, [resolve('dist/test/helpers/real-fault.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const ended = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (code, signal) => r([code, signal])));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code, signal] = await ended;
  clearTimeout(timer);
  assert.ok(out.includes('armed'), out);
  assert.equal([code, signal], [null, 'SIGSEGV'], `the child ended with ${code}/${signal} (SIGKILL: it hung in the fault):\n${out}`);
});

test('a panic (uncaught exception): Firecracker\'s line, vmm.panic_count in a last metrics line, SIGABRT', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-panic-'));
  const metrics = join(dir, 'metrics.json');
  const child = spawn(process.execPath, [resolve('dist/test/helpers/panic-child.js'), metrics], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (c, s) => r([c, s])));
  assert.equal([code, signal], [null, 'SIGABRT'], out);
  assert.match(out, /\[panic-test:main\] Firecracker panicked at .*panic-child\.js:\d+:\d+.*:\nthe VMM hit a bug\n/);
  const last = JSON.parse(readFileSync(metrics, 'utf8').trim().split('\n').pop()!) as Record<string, Record<string, number>>;
  assert.is(last.vmm!.panic_count, 1);
});

test('--seccomp-filter with a readable filter file is refused with exit 1, never ignored', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-proc-'));
  const filter = join(dir, 'filter.bpf');
  writeFileSync(filter, Buffer.alloc(64));
  const child = spawn(process.execPath, [FIRECRACKER, '--api-sock', join(dir, 'api.sock'), '--seccomp-filter', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.is(code, 1, out);
  assert.match(out, /Seccomp error: Kindling does not install seccomp filters/);
  assert.match(out, /Error: SeccompFilter\(Unsupported\)/);
  assert.not.ok(existsSync(join(dir, 'api.sock')), 'no API was served');
});

test('API gate: a request read before the VM runs is answered once it runs (GET / says Running)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-gate-'));
  const socketPath = join(dir, 'api.sock');
  const backend = new FakeBackend();
  const logger = new Logger();
  logger.sink = () => undefined;
  const controller = new VmmController({ instanceId: 'gate', factory: backend, resources: new VmResources(), logger, metrics: createMetrics() });
  let open!: () => void;
  const ready = new Promise<void>((r) => { open = r; });
  // The "boot" completes a macrotask after the request was queued: without the gate, the
  // request would be processed in the microtasks before it and see "Not started".
  const server = new ApiServer({ socketPath, controller, ready, onQueued: () => setImmediate(() => { controller.state = 'Running'; open(); }) });
  await server.listen();
  const api = new FirecrackerClient(socketPath);
  try {
    assert.is((await api.getInstanceInfo()).state, 'Running');
  } finally {
    await api.close();
    await server.close();
  }
});

test.run();
