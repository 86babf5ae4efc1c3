/**
 * The binary as a process, as tools see it (no KVM needed: no VM is started):
 *  - started as `firecracker`, its process name is `firecracker` (/proc/<pid>/comm, pgrep -x)
 *    while its command line still carries `--api-sock`;
 *  - Firecracker's signal handling (src/cli/signals.ts): SIGPIPE logged and counted, the VMM
 *    goes on; SIGHUP, SIGSEGV and SIGSYS end it with 156, 150 and 2 (148 for SIGSYS under the
 *    default seccomp filter), each with its log line and a last metrics line counting it;
 *  - the default seccomp filter is on every thread (Seccomp: 2), none with --no-seccomp;
 *  - a real fault dies of its signal (the handlers are one-shot), it does not loop; a panic
 *    logs Firecracker's line, counts vmm.panic_count and aborts;
 *  - `--seccomp-filter` with a file that is no valid filter is refused with its reason;
 * and, in-process, the API gate of `--config-file`: a request read before the VM runs is
 * answered after it runs (src/api/server.ts `ready`).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
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
  const child = spawn(FIRECRACKER, ['--api-sock', sock, '--id', 'proc-test', '--log-path', log, '--metrics-path', metrics, ...extra], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KINDLING_NODE: process.execPath } });
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

test('SIGSEGV sent from outside: exit 150 and signals.sigsegv; SIGSYS with --no-seccomp (no trap possible): exit 2 and seccomp.num_faults', async () => {
  for (const [sig, code, signo, count] of [['SIGSEGV', 150, 11, (m: Record<string, Record<string, number>>) => m.signals!.sigsegv], ['SIGSYS', 2, 31, (m: Record<string, Record<string, number>>) => m.seccomp!.num_faults]] as const) {
    const v = await startFirecracker(['--no-seccomp']);
    v.child.kill(sig);
    assert.is(await v.exit, code, `${sig}: ${v.stderr.text}`);
    assert.ok(logText(v).includes(`Shutting down VM after intercepting signal ${signo}, code 0.`), logText(v));
    assert.is(count(lastMetrics(v)), 1, sig);
  }
});

test('with the default seccomp filter every thread shows Seccomp: 2, and a SIGSYS (taken for a trap) exits 148 with seccomp.num_faults', async () => {
  const v = await startFirecracker();
  const pid = v.child.pid!;
  const tasks = readdirSync(`/proc/${pid}/task`);
  assert.ok(tasks.length > 1, `threads: ${tasks.join(',')}`);
  for (const t of tasks) assert.match(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'), /^Seccomp:\t2$/m, `thread ${t}`);
  v.child.kill('SIGSYS');
  assert.is(await v.exit, 148, v.stderr.text);
  assert.match(logText(v), /\[proc-test:main\] Shutting down VM after intercepting a bad syscall\.\n/);
  assert.is(lastMetrics(v).seccomp!.num_faults, 1);
});

test('--no-seccomp: no filter on any thread', async () => {
  const v = await startFirecracker(['--no-seccomp']);
  const pid = v.child.pid!;
  for (const t of readdirSync(`/proc/${pid}/task`)) assert.match(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'), /^Seccomp:\t0$/m, `thread ${t}`);
  v.child.kill('SIGKILL');
  await v.exit;
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

test('--seccomp-filter with a file that is no filter: exit 1 with the reason, no API served', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-proc-'));
  const cases: [string, RegExp][] = [
    ['\u0000'.repeat(64), /Seccomp error: the filter file is not JSON/],
    [JSON.stringify({ vmm: { default_action: 'trap', filter_action: 'allow', filter: [{ syscall: 'no_such_call' }] } }), /Seccomp error: unknown x86_64 syscall "no_such_call"/],
    [JSON.stringify({ vcpu: { default_action: 'trap', filter_action: 'allow', filter: [] } }), /Seccomp error: category "vcpu" is not supported/],
  ];
  for (const [i, [text, expected]] of cases.entries()) {
    const filter = join(dir, `filter${i}.json`);
    writeFileSync(filter, text);
    const sock = join(dir, `api${i}.sock`);
    const child = spawn(FIRECRACKER, ['--api-sock', sock, '--seccomp-filter', filter], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KINDLING_NODE: process.execPath } });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    assert.is(code, 1, out);
    assert.match(out, expected);
    assert.match(out, /Error: SeccompFilter\(/);
    assert.not.ok(existsSync(sock), 'no API was served');
  }
});

test('API socket: its file appears only when it accepts, nothing is left beside it, close removes it but not a newer one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-sock-'));
  const socketPath = join(dir, 'api.sock');
  const logger = new Logger();
  logger.sink = () => undefined;
  const newServer = (): ApiServer => new ApiServer({
    socketPath, controller: new VmmController({ instanceId: 'sock', factory: new FakeBackend(), resources: new VmResources(), logger, metrics: createMetrics() }),
  });
  // A client that connects the moment the file exists, as Firecracker's clients do.
  const firstSight = new Promise<string>((resolveSight) => {
    const poll = (): void => {
      if (!existsSync(socketPath)) { setImmediate(poll); return; }
      const c = createConnection(socketPath);
      c.on('connect', () => { c.destroy(); resolveSight('connected'); });
      c.on('error', (e: NodeJS.ErrnoException) => resolveSight(e.code ?? 'error'));
    };
    poll();
  });
  const server = newServer();
  await server.listen();
  assert.is(await firstSight, 'connected');
  assert.equal(readdirSync(dir), ['api.sock'], 'no staging name left');
  await server.close();
  assert.not.ok(existsSync(socketPath), 'removed at close');
  // A socket that took the path after this one's listen is someone else's: close leaves it.
  const first = newServer();
  await first.listen();
  rmSync(socketPath);
  const second = newServer();
  await second.listen();
  await first.close();
  assert.ok(existsSync(socketPath), "the newer server's socket stays");
  await second.close();
  assert.not.ok(existsSync(socketPath));
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
