/**
 * The `firecracker` command line (src/firecracker/src/main.rs): parser rules and `runCli` exit
 * codes/outputs, with a FakeBackend standing in for the VM. Tests wait for log lines, never for
 * time.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
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
function startCli(argv: string[], backend = new FakeBackend()): { done: Promise<CliResult>; untilLogged: (text: string) => Promise<void> } {
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
    createBackend: () => backend, stdout: (s) => (out += s), stderr: (s) => (err += s), logger, metrics: createMetrics(), kindlingVersion: '9.9.9',
  }).then((code) => ({ code, out, err, logs: logs.join('') }));
  const untilLogged = (text: string): Promise<void> => {
    if (logs.some((l) => l.includes(text))) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      waiters.push({ text, resolve });
      void done.then((r) => reject(new Error(`the CLI ended (exit ${r.code}) before logging ${JSON.stringify(text)}:\n${r.logs}`)));
    });
  };
  return { done, untilLogged };
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
  assert.is((await cli(['--snapshot-version'])).out, 'v11.0.0\n');
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
  backend.exit(0);
  const res = await run.done;
  assert.is(res.code, 0);
  assert.ok(res.logs.includes('Firecracker exiting successfully. exit_code=0'));
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

test.run();
