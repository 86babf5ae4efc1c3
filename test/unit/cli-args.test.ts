/**
 * The `firecracker` command line (src/firecracker/src/main.rs): parser rules and `runCli` exit
 * codes/outputs, with a FakeBackend standing in for the VM. Tests wait for log lines, never for
 * time.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArgParseError, parseArgs } from '../../src/cli/arg-parser.js';
import { runCli } from '../../src/cli/main.js';
import { FIRECRACKER_ARGS, parseCommandLine } from '../../src/cli/options.js';
import { FirecrackerClient } from '../../src/api/client.js';
import { Logger } from '../../src/logger/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { FakeBackend } from '../helpers/api-fake-backend.js';

const parseErr = (args: string[]): string => {
  try {
    parseArgs(FIRECRACKER_ARGS, args);
  } catch (e) {
    assert.instance(e, ArgParseError);
    return (e as Error).message;
  }
  throw new Error('expected failure');
};

interface CliResult { code: number; out: string; err: string; logs: string }

/**
 * Starts the CLI with captured output and a private logger/metrics. `untilLogged` resolves once
 * a log line contains `text` (and rejects if the CLI ends first): the event tests wait on.
 */
function startCli(argv: string[], backend = new FakeBackend()): { done: Promise<CliResult>; untilLogged: (text: string) => Promise<void>; stop: () => void } {
  let stop!: () => void;
  const shutdown = new Promise<void>((r) => { stop = r; });
  let out = '';
  let err = '';
  const logs: string[] = [];
  const waiters: { text: string; resolve: () => void }[] = [];
  const logger = new Logger();
  logger.sink = (l) => {
    logs.push(l);
    for (const w of waiters) if (l.includes(w.text)) w.resolve();
  };
  const done = runCli(argv, {
    createFactory: () => backend, stdout: (s) => (out += s), stderr: (s) => (err += s), logger, metrics: createMetrics(), kindlingVersion: '9.9.9', shutdown,
  }).then((code) => ({ code, out, err, logs: logs.join('') }));
  const untilLogged = (text: string): Promise<void> => {
    if (logs.some((l) => l.includes(text))) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      waiters.push({ text, resolve });
      void done.then((r) => reject(new Error(`the CLI ended (exit ${r.code}) before logging ${JSON.stringify(text)}:\n${r.logs}`)));
    });
  };
  return { done, untilLogged, stop };
}

/** Runs the CLI to its end. */
function cli(argv: string[], backend = new FakeBackend()): Promise<CliResult> {
  return startCli(argv, backend).done;
}

test('parser: --name value only, duplicates, unknown, missing values, --', () => {
  assert.is(parseErr(['--api-sock=/x']), "Found argument 'api-sock=/x' which wasn't expected, or isn't valid in this context.");
  assert.is(parseErr(['--id', 'a', '--id', 'b']), "The argument 'id' was provided more than once.");
  assert.is(parseErr(['positional']), "Found argument 'positional' which wasn't expected, or isn't valid in this context.");
  assert.is(parseErr(['--api-sock', '--id']), "The argument 'api-sock' requires a value, but none was supplied.");
  assert.is(parseErr(['--api-sock']), "The argument 'api-sock' requires a value, but none was supplied.");
  assert.is(parseErr(['--no-api']), "Argument 'config-file' required, but not found.");
  assert.is(parseErr(['--no-seccomp', '--seccomp-filter', 'f']), "Argument 'seccomp-filter' cannot be used together with argument 'no-seccomp'.");
  const a = parseArgs(FIRECRACKER_ARGS, ['--id', 'vm1', '--', '--whatever', 'x']);
  assert.is(a.value('id'), 'vm1');
  assert.is(a.value('api-sock'), '/run/firecracker.socket');
  assert.equal(a.extra, ['--whatever', 'x']);
  assert.ok(parseArgs(FIRECRACKER_ARGS, ['--bogus', '--help']).flag('help'));
  assert.ok(parseArgs(FIRECRACKER_ARGS, ['--bogus', '--version']).flag('version'));
});

test('typed options: defaults, mmds limit follows the payload limit', () => {
  const o = parseCommandLine(['--http-api-max-payload-size', '1000', '--level', 'warning', '--show-level']);
  assert.is(o.kind, 'run');
  if (o.kind !== 'run') return;
  assert.is(o.httpApiMaxPayloadSize, 1000);
  assert.is(o.mmdsSizeLimit, 1000);
  assert.is(o.level, 'Warn');
  assert.ok(o.showLevel);
  assert.is(o.id, 'anonymous-instance');
});

test('runCli: --version, --help, --snapshot-version', async () => {
  const v = await cli(['--version']);
  assert.is(v.code, 0);
  assert.is(v.out, 'Firecracker v1.16.1\nKindling v9.9.9\n\n');
  const h = await cli(['-h']);
  assert.is(h.code, 0);
  assert.ok(h.out.startsWith('Firecracker v1.16.1\n\noptional arguments:\n  --api-sock <api-sock>'), h.out.slice(0, 120));
  assert.ok(h.out.includes('Path to unix domain socket used by the API. [default: "/run/firecracker.socket"]'));
  assert.is((await cli(['--snapshot-version'])).out, 'v1.0.0\n', 'the version of the state files this build writes');
});

test('runCli exit codes: 153 arguments, 152 level, 134 id panic, 1 describe-snapshot', async () => {
  const a = await cli(['--foo']);
  assert.is(a.code, 153);
  assert.is(a.err, 'Error: ParseArguments(UnexpectedArgument("foo"))\n');
  assert.ok(a.logs.includes("Arguments parsing error: Found argument 'foo' which wasn't expected, or isn't valid in this context. \n\nFor more information try --help."));
  assert.ok(a.logs.includes('Firecracker exiting with error. exit_code=153'));
  assert.is((await cli(['--no-api'])).code, 153);
  const l = await cli(['--level', 'loud']);
  assert.is(l.code, 152);
  assert.ok(l.logs.includes('Invalid value for logger level: Failed to parse string to level filter: loud.Possible values: [Error, Warning, Info, Debug]'));
  const i = await cli(['--id', 'bad_id']);
  assert.is(i.code, 134);
  assert.ok(i.err.includes("Invalid instance ID: InvalidChar('_', 3)"));
  const d = await cli(['--describe-snapshot', '/nonexistent/snap']);
  assert.is(d.code, 1);
  assert.ok(d.logs.includes('When printing Snapshot Data format: Unable to open snapshot state file: No such file or directory (os error 2)'));
});

test('runCli: API socket already in use → exit 1 with Firecracker text', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cli-'));
  const sock = join(dir, 'api.sock');
  writeFileSync(sock, '');
  const r = await cli(['--api-sock', sock]);
  assert.is(r.code, 1);
  assert.ok(r.logs.includes(`RunWithApiError error: Failed to open the API socket at: ${sock}. Check that it is not already used.`), r.logs);
});

test('runCli: --config-file boots at once; the API then only accepts post-boot requests', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cli-'));
  const kernel = join(dir, 'vmlinux');
  writeFileSync(kernel, 'k');
  const cfg = join(dir, 'vm.json');
  writeFileSync(cfg, JSON.stringify({ 'boot-source': { kernel_image_path: kernel }, drives: [], 'machine-config': { vcpu_count: 2, mem_size_mib: 256 } }));
  const sock = join(dir, 'api.sock');
  const backend = new FakeBackend();
  const run = startCli(['--api-sock', sock, '--config-file', cfg, '--id', 'vm-1'], backend);
  await run.untilLogged('Successfully started microvm that was configured from one single json');
  const client = new FirecrackerClient(sock);
  assert.is(backend.started?.machine.vcpu_count, 2);
  assert.is((await client.getInstanceInfo()).state, 'Running');
  const r = await client.request('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128 });
  assert.is(JSON.parse(r.body).fault_message, 'The requested operation is not supported after starting the microVM.');
  await client.close();
  backend.stopWith(0);
  const res = await run.done;
  assert.is(res.code, 0);
  assert.ok(res.logs.includes('Firecracker exiting successfully. exit_code=0'));
});

test('runCli: a VM that stops with an error ends as Firecracker\'s main does, with and without the API', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cli-'));
  const kernel = join(dir, 'vmlinux');
  writeFileSync(kernel, 'k');
  const cfg = join(dir, 'vm.json');
  writeFileSync(cfg, JSON.stringify({ 'boot-source': { kernel_image_path: kernel }, drives: [] }));
  for (const api of [true, false]) {
    const backend = new FakeBackend();
    const run = startCli([...(api ? ['--api-sock', join(dir, `api-${api}.sock`)] : ['--no-api']), '--config-file', cfg], backend);
    await run.untilLogged('Successfully started microvm that was configured from one single json');
    backend.stopWith(1);
    const r = await run.done;
    assert.is(r.code, 1);
    const [line, err] = api
      ? ['RunWithApiError error: MicroVM stopped with an error: GenericError', 'Error: RunWithApi(MicroVMStoppedWithError(GenericError))\n']
      : ['RunWithoutApiError error: MicroVMStopped without an error: GenericError', 'Error: RunWithoutApiError(Shutdown(GenericError))\n'];
    assert.ok(r.logs.includes(`${line}\n`), r.logs);
    assert.is(r.err, err);
    assert.ok(r.logs.includes('Firecracker exiting with error. exit_code=1'), r.logs);
  }
});

test('runCli: a bad config file fails with exit 1 and the ResourcesError text', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cli-'));
  const cfg = join(dir, 'vm.json');
  writeFileSync(cfg, JSON.stringify({ 'boot-source': { kernel_image_path: cfg }, drives: [], 'machine-config': { vcpu_count: 0, mem_size_mib: 128 } }));
  const r = await cli(['--no-api', '--config-file', cfg]);
  assert.is(r.code, 1);
  assert.ok(r.logs.includes('RunWithoutApiError error: Failed to build MicroVM from Json: Configuration for VMM from one single json failed: VM config error: The number of vCPUs must be greater than 0'), r.logs);
  const missing = await cli(['--no-api', '--config-file', join(dir, 'nope.json')]);
  assert.is(missing.code, 134);
});

/**
 * Runs the CLI with `--api-sock sock` and expects a bind failure as Firecracker's main reports
 * FailedToBindAndRunHttpServer: log, stderr, exit 1. A CLI that listens instead (at whatever
 * path Node made of `sock`) is stopped and fails the test rather than serving forever.
 */
async function expectBindFailure(sock: string, display: string, debug: string): Promise<CliResult> {
  const backend = new FakeBackend();
  const run = startCli(['--api-sock', sock], backend);
  const listening = run.untilLogged('Listening on API socket').then(() => true, () => false);
  if (await Promise.race([listening, run.done.then(() => false)])) {
    run.stop();
    assert.unreachable(`listened instead of refusing ${JSON.stringify(sock)}:\n${(await run.done).logs}`);
  }
  const r = await run.done;
  assert.is(r.code, 1, r.logs);
  assert.ok(r.logs.includes(`RunWithApiError error: Failed to bind and run the HTTP server: IO error: ${display}\n`), r.logs);
  assert.ok(r.logs.includes('Firecracker exiting with error. exit_code=1'), r.logs);
  assert.is(r.err, `Error: RunWithApi(FailedToBindAndRunHttpServer(IOError(${debug})))\n`);
  assert.not.match(r.logs + r.err, /EACCES|ENOENT|options\.port|listen |\n\s+at /);
  return r;
}

test('runCli: an --api-sock longer than sun_path is refused, not truncated (issue 12 defect 4)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cli-'));
  const sock = join(dir, 's'.repeat(120 - dir.length));
  assert.is(Buffer.byteLength(sock), 121);
  await expectBindFailure(sock, 'path must be shorter than SUN_LEN', 'Error { kind: InvalidInput, message: "path must be shorter than SUN_LEN" }');
  // Node would have bound the first 107 bytes of the path.
  assert.not.ok(existsSync(sock.slice(0, 107)));
  assert.not.ok(existsSync(sock));
});

test('runCli: an --api-sock of 107 bytes (the longest that fits) is served', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cli-'));
  const sock = join(dir, 's'.repeat(106 - dir.length));
  assert.is(Buffer.byteLength(sock), 107);
  const backend = new FakeBackend();
  const run = startCli(['--api-sock', sock], backend);
  await run.untilLogged(`Listening on API socket (${JSON.stringify(sock)}).`);
  const client = new FirecrackerClient(sock);
  assert.is((await client.getInstanceInfo()).state, 'Not started');
  await client.close();
  run.stop();
  assert.is((await run.done).code, 0);
});

test('runCli: empty, NUL-holding or unreachable --api-sock: Firecracker-style errors, no Node text (issue 12 defect 5)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cli-'));
  const ENOENT = ['No such file or directory (os error 2)', 'Os { code: 2, kind: NotFound, message: "No such file or directory" }'] as const;
  await expectBindFailure('', ...ENOENT);
  // libuv turns bind's ENOENT into EACCES; Firecracker prints the ENOENT.
  await expectBindFailure(join(dir, 'no', 'such', 'api.sock'), ...ENOENT);
  writeFileSync(join(dir, 'file'), '');
  await expectBindFailure(join(dir, 'file', 'api.sock'), 'Not a directory (os error 20)', 'Os { code: 20, kind: NotADirectory, message: "Not a directory" }');
  await expectBindFailure(join(dir, 'a\0b'), 'paths must not contain interior null bytes', 'Error { kind: InvalidInput, message: "paths must not contain interior null bytes" }');
  assert.not.ok(existsSync(join(dir, 'a')));
});

test('runCli: file arguments fail in Rust io::Error words (issue 12 defect 5)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cli-'));
  const nul = join(dir, 'x\0y');
  const NUL = 'file name contained an unexpected NUL byte';
  const cfg = await cli(['--no-api', '--config-file', join(dir, 'nope.json')]);
  assert.is(cfg.code, 134);
  assert.ok(cfg.err.includes('Unable to open or read from the configuration file: Os { code: 2, kind: NotFound, message: "No such file or directory" }'), cfg.err);
  const cfgNul = await cli(['--no-api', '--config-file', nul]);
  assert.ok(cfgNul.err.includes(`Unable to open or read from the configuration file: Error { kind: InvalidInput, message: "${NUL}" }`), cfgNul.err);
  const meta = await cli(['--metadata', dir]);
  assert.ok(meta.err.includes('Unable to open or read from the mmds content file: Os { code: 21, kind: IsADirectory, message: "Is a directory" }'), meta.err);
  const seccomp = await cli(['--seccomp-filter', join(dir, 'nope.bpf')]);
  assert.is(seccomp.code, 1);
  assert.ok(seccomp.logs.includes('Seccomp error: Filter file open error: No such file or directory (os error 2)'), seccomp.logs);
  assert.is(seccomp.err, 'Error: SeccompFilter(FileOpen(Os { code: 2, kind: NotFound, message: "No such file or directory" }))\n');
  const snap = await cli(['--describe-snapshot', nul]);
  assert.ok(snap.logs.includes(`When printing Snapshot Data format: Unable to open snapshot state file: ${NUL}`), snap.logs);
  assert.is(snap.err, `Error: PrintSnapshotDataFormat(OpenSnapshot(Error { kind: InvalidInput, message: "${NUL}" }))\n`);
  const log = await cli(['--log-path', nul]);
  assert.is(log.code, 1);
  assert.ok(log.err.includes(`Failed to open target file: ${NUL}`), log.err);
  const metrics = await cli(['--metrics-path', nul]);
  assert.ok(metrics.logs.includes(`Could not initialize metrics: Cannot initialize the metrics system due to bad user input: ${NUL}`), metrics.logs);
  for (const r of [cfg, cfgNul, meta, seccomp, snap, log, metrics]) assert.not.match(r.logs + r.err, /null bytes\. Received|ENOENT:|EISDIR:|\n\s+at /);
});

test.run();
