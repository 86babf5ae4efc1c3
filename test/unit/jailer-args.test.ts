/**
 * The jailer's argument parser and validation (src/jailer/options.ts, cgroup.ts, main.ts):
 * each bad argument gives Firecracker's message and exit code (1 for a parse error, a panic —
 * 134, SIGABRT in the binary — for a validation error), one defect at a time, and leaves the
 * chroot base untouched. Then the pieces that touch the host without namespaces: cgroup
 * writing on a folder tree laid out like cgroupfs, the runtime list (libraries, interpreter,
 * soname links), and a real `bin/jailer.js` whose netns does not exist, which must remove the
 * jail folder it had made.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { applyCgroups, planCgroups, removeCreated } from '../../src/jailer/cgroup.js';
import { EXIT_ABORT, runJailer } from '../../src/jailer/main.js';
import { DEFAULT_NO_FILE, parseJailerArgs } from '../../src/jailer/options.js';
import { elfInterpreter, libraryLinks, mappedLibraries, runtimeBinds } from '../../src/jailer/runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'kindling-jailer-'));
const base = join(dir, 'base');
mkdirSync(base);
const EXEC = resolve('bin/firecracker');
/** /proc/mounts fixtures: a cgroup2 tree under dir/cg2 with three controllers; a v1 cpu hierarchy. */
const cg2 = join(dir, 'cg2');
mkdirSync(cg2);
writeFileSync(join(cg2, 'cgroup.controllers'), 'cpu memory pids\n');
writeFileSync(join(cg2, 'cgroup.subtree_control'), '\n');
const mountsV2 = join(dir, 'mounts-v2');
writeFileSync(mountsV2, `proc /proc proc rw 0 0\ncgroup2 ${cg2} cgroup2 rw,nosuid 0 0\n`);
const mountsV1 = join(dir, 'mounts-v1');
writeFileSync(mountsV1, `cgroup ${join(dir, 'cg1cpu')} cgroup rw,cpu,cpuacct 0 0\n`);
const mountsNone = join(dir, 'mounts-none');
writeFileSync(mountsNone, 'proc /proc proc rw 0 0\n');

const good = ['--id', 'vm-1', '--exec-file', EXEC, '--uid', '1000', '--gid', '1000', '--chroot-base-dir', base];

function jail(argv: string[], procMounts = mountsV2): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = runJailer(argv, { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, host: { procMounts }, run: () => assert.unreachable('a bad argument reached the jail') });
  return { code, out, err };
}

test('parse errors: "Failed to parse arguments: …", main\'s Error: line, exit 1', () => {
  const cases: [string[], string, string][] = [
    [[], "Argument 'exec-file' required, but not found.", 'MissingArgument("exec-file")'],
    [['--exec-file', EXEC, '--gid', '1', '--uid', '1'], "Argument 'id' required, but not found.", 'MissingArgument("id")'],
    [[...good, '--id', 'b'], "The argument 'id' was provided more than once.", 'DuplicateArgument("id")'],
    [[...good, '--bogus'], "Found argument 'bogus' which wasn't expected, or isn't valid in this context.", 'UnexpectedArgument("bogus")'],
    [[...good, '--netns'], "The argument 'netns' requires a value, but none was supplied.", 'MissingValue("netns")'],
    [[...good, '--cgroup'], "The argument 'cgroup' requires a value, but none was supplied.", 'MissingValue("cgroup")'],
  ];
  for (const [argv, msg, debug] of cases) {
    const r = jail(argv);
    assert.is(r.code, 1, argv.join(' '));
    assert.is(r.err, `Failed to parse arguments: ${msg}\nError: ArgumentParsing(${debug})\n`);
  }
});

test('validation errors panic with "Jailer error: …" (exit 134), in Firecracker\'s order', () => {
  const file = join(dir, 'not-fc');
  writeFileSync(file, '');
  const notDir = join(dir, 'plain-file');
  writeFileSync(notDir, '');
  const with_ = (name: string, v: string): string[] => { const a = [...good]; a[a.indexOf(`--${name}`) + 1] = v; return a; };
  const cases: [string[], string, string?][] = [
    [with_('id', 'bad_id'), "Invalid instance ID: InvalidChar('_', 3)"],
    [with_('id', 'x'.repeat(65)), 'Invalid instance ID: InvalidLen(65, 1, 64)'],
    [with_('exec-file', '/nope/firecracker'), 'Failed to canonicalize path /nope/firecracker: No such file or directory (os error 2)'],
    [with_('exec-file', dir), `${dir} is not a file`],
    [with_('exec-file', file), 'Invalid filename. The filename of `--exec-file` option must contain "firecracker": not-fc'],
    [with_('chroot-base-dir', notDir), `${notDir} is not a directory`],
    [with_('uid', 'abc'), 'Invalid uid: abc'],
    [with_('uid', '4294967296'), 'Invalid uid: 4294967296'],
    [with_('gid', '-1'), 'Invalid gid: -1'],
    [[...good, '--parent-cgroup', '../up'], "Parent cgroup path is invalid. Path should not be absolute or contain '..' or '.'"],
    [[...good, '--parent-cgroup', '/abs'], "Parent cgroup path is invalid. Path should not be absolute or contain '..' or '.'"],
    [[...good, '--cgroup-version', '3'], '3 is an invalid cgroup version specifier'],
    [[...good, '--cgroup-version', 'two'], 'two is an invalid cgroup version specifier'],
    [[...good, '--cgroup-version', '2', '--cgroup', 'cpu.max'], 'Invalid format for cgroups: cpu.max'],
    [[...good, '--cgroup-version', '2', '--cgroup', 'cpu.max='], 'Invalid format for cgroups: cpu.max='],
    [[...good, '--cgroup-version', '2', '--cgroup', 'a=b=c'], 'Invalid format for cgroups: a=b=c'],
    [[...good, '--cgroup-version', '2', '--cgroup', '../cpu.max=1'], 'Cgroup invalid file: ../cpu.max=1'],
    [[...good, '--cgroup-version', '2', '--cgroup', 'cpumax=1'], 'Cgroup invalid file: cpumax'],
    [[...good, '--cgroup-version', '2', '--cgroup', 'io.max=1'], 'Controller io is unavailable'],
    [[...good, '--cgroup-version', '2'], 'Hierarchy not found: cgroup2', mountsNone],
    [[...good, '--cgroup', 'cpuset.cpus=0'], `cpuset configurations not found in ${mountsV1}`, mountsV1],
    [[...good, '--resource-limit', 'fsize'], 'Invalid format for resources limits: fsize'],
    [[...good, '--resource-limit', 'fsize=abc'], 'Invalid limit value for resource: abc: invalid digit found in string'],
    [[...good, '--resource-limit', 'fsize=18446744073709551616'], 'Invalid limit value for resource: 18446744073709551616: number too large to fit in target type'],
    [[...good, '--resource-limit', 'cores=1'], 'Invalid resource argument: cores'],
  ];
  for (const [argv, msg, mounts] of cases) {
    const r = jail(argv, mounts);
    assert.is(r.code, EXIT_ABORT, `${argv.join(' ')}: ${r.err}`);
    assert.is(r.err, `thread 'main' panicked at src/jailer/src/main.rs:\nJailer error: ${msg}\n`);
  }
  assert.equal(readdirSync(base), [], 'no bad argument left anything in the chroot base');
});

test('a valid command line: the jail path, defaults, repeated --cgroup and --resource-limit, extra args', () => {
  const cmd = parseJailerArgs([...good, '--cgroup-version', '2', '--cgroup', 'cpu.max=50000 100000', '--cgroup', 'pids.max=64', '--resource-limit', 'fsize=1024', '--resource-limit', 'no-file=99', '--', '--api-sock', '/a.sock'], { procMounts: mountsV2 });
  if (cmd.kind !== 'run') throw new Error(cmd.kind);
  assert.is(cmd.chrootDir, join(base, 'firecracker', 'vm-1', 'root'));
  assert.is(cmd.execName, 'firecracker');
  assert.equal([cmd.uid, cmd.gid, cmd.fsize, cmd.noFile], [1000, 1000, 1024n, 99n]);
  assert.equal(cmd.cgroups.map((c) => [c.controller, c.file, c.value, c.location]), [
    ['cpu', 'cpu.max', '50000 100000', join(cg2, 'firecracker', 'vm-1')],
    ['pids', 'pids.max', '64', join(cg2, 'firecracker', 'vm-1')],
  ]);
  assert.equal(cmd.extra, ['--api-sock', '/a.sock']);
  const plain = parseJailerArgs(good, { procMounts: mountsNone });
  if (plain.kind !== 'run') throw new Error(plain.kind);
  assert.equal([plain.noFile, plain.fsize, plain.netns, plain.daemonize, plain.newPidNs, plain.cgroupVersion], [DEFAULT_NO_FILE, null, null, false, false, 1]);
  const v2parent = parseJailerArgs([...good, '--cgroup-version', '2', '--parent-cgroup', 'a/b'], { procMounts: mountsV2 });
  assert.is(v2parent.kind === 'run' && v2parent.cgroupParentOnly, join(cg2, 'a/b'));
});

test('--help and --version print Firecracker\'s jailer text, exit 0', () => {
  const h = jail(['--help']);
  assert.is(h.code, 0);
  assert.ok(h.out.startsWith('Jailer v1.16.1\n\nrequired arguments:\n  --exec-file <exec-file>'), h.out);
  assert.match(h.out, /--cgroup <cgroup>\s+Cgroup and value/);
  assert.ok(h.out.endsWith('\n\nAny arguments after the -- separator will be supplied to the jailed binary.\n\n'));
  assert.is(jail(['--version', '--bogus']).out, 'Jailer v1.16.1\n\n');
});

test('cgroup v2 writing: controllers enabled down the tree, the value, the pid; folders removable', () => {
  const plan = planCgroups({ version: 2, parent: 'fc', id: 'vm', settings: ['pids.max=7'], procMounts: mountsV2 });
  // cgroupfs makes these files in a new folder; here the test does.
  mkdirSync(join(cg2, 'fc', 'vm'), { recursive: true });
  writeFileSync(join(cg2, 'fc', 'cgroup.subtree_control'), '');
  const created: string[] = [];
  applyCgroups(plan, 4242, created);
  assert.is(readFileSync(join(cg2, 'cgroup.subtree_control'), 'utf8'), '+pids\n');
  assert.is(readFileSync(join(cg2, 'fc', 'cgroup.subtree_control'), 'utf8'), '+pids\n');
  assert.is(readFileSync(join(cg2, 'fc', 'vm', 'pids.max'), 'utf8'), '7\n');
  assert.is(readFileSync(join(cg2, 'fc', 'vm', 'cgroup.procs'), 'utf8'), '4242\n');
  assert.equal(created, [], 'the folders existed: nothing to remove');
  const fresh: string[] = [];
  const plan2 = planCgroups({ version: 2, parent: 'new/deep', id: 'x', settings: ['cpu.weight=50'], procMounts: mountsV2 });
  try {
    applyCgroups(plan2, 1, fresh);
    assert.unreachable('cgroup.subtree_control is missing in a plain folder');
  } catch (e) {
    assert.match((e as Error).message, /Failed to read file .*new\/cgroup.subtree_control into a string/);
  }
  assert.equal(fresh, [join(cg2, 'new'), join(cg2, 'new', 'deep'), join(cg2, 'new', 'deep', 'x')]);
  removeCreated(fresh);
  assert.not.ok(existsSync(join(cg2, 'new')));
});

test('cgroup v1: cpuset.cpus/mems inherited from the nearest ancestor, then the value, then tasks', () => {
  const h = join(dir, 'cg1set');
  mkdirSync(join(h, 'fc', 'vm'), { recursive: true });
  writeFileSync(join(h, 'cpuset.cpus'), '0-3\n');
  writeFileSync(join(h, 'cpuset.mems'), '0\n');
  for (const d of [join(h, 'fc'), join(h, 'fc', 'vm')]) for (const f of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(d, f), '\n');
  const mounts = join(dir, 'mounts-cpuset');
  writeFileSync(mounts, `cgroup ${h} cgroup rw,cpuset 0 0\n`);
  const plan = planCgroups({ version: 1, parent: 'fc', id: 'vm', settings: ['cpuset.cpus=1'], procMounts: mounts });
  applyCgroups(plan, 77, []);
  assert.is(readFileSync(join(h, 'fc', 'cpuset.mems'), 'utf8'), '0\n');
  assert.is(readFileSync(join(h, 'fc', 'vm', 'cpuset.mems'), 'utf8'), '0\n');
  assert.is(readFileSync(join(h, 'fc', 'vm', 'cpuset.cpus'), 'utf8'), '1\n');
  assert.is(readFileSync(join(h, 'fc', 'vm', 'tasks'), 'utf8'), '77\n');
});

test('runtime: the libraries this node mapped, its ELF interpreter, soname links, the package pieces', () => {
  const maps = readFileSync('/proc/self/maps', 'utf8');
  const libs = mappedLibraries(maps, resolve('.'));
  assert.ok(libs.some((l) => /\/libc\.so\.6$/.test(l)), libs.join(' '));
  assert.ok(libs.every((l) => !l.startsWith(resolve('node_modules'))), 'koffi\'s module comes with node_modules, not as a library');
  assert.match(elfInterpreter(process.execPath) ?? '', /^\/lib64\/ld-linux-x86-64\.so\.2$/);
  const links = libraryLinks(libs);
  for (const l of links) assert.ok(libs.some((x) => x.endsWith(l.target.split('/').pop()!)) || libs.length > 0);
  const r = runtimeBinds(EXEC, process.execPath, maps)!;
  assert.equal(r.binds.slice(0, 3).map((b) => b.target), ['/dist', '/node_modules', '/package.json']);
  assert.ok(r.binds.some((b) => b.target === process.execPath));
  assert.ok(r.launchers.includes(EXEC) && r.launchers.includes(resolve('bin/kindling.js')));
  assert.is(runtimeBinds('/usr/bin/env', process.execPath, maps), null, 'not inside a Kindling package');
});

test('bin/jailer.js: a step failing before the pivot (a --netns that does not exist) removes the jail it made', () => {
  const b = join(dir, 'base-run');
  mkdirSync(b);
  const r = spawnSync(process.execPath, [resolve('bin/jailer.js'), '--id', 'gone', '--exec-file', EXEC, '--uid', '1000', '--gid', '1000', '--chroot-base-dir', b, '--netns', join(dir, 'no-such-ns')], { encoding: 'utf8' });
  assert.is(r.signal, 'SIGABRT', `${r.status} ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`Jailer error: Failed to open file ${join(dir, 'no-such-ns')}: No such file or directory \\(os error 2\\)`));
  assert.equal(readdirSync(b), [], 'no half-made jail');
});

test.run();
