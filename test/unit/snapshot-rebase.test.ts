/**
 * `snapshot-editor edit-memory rebase` (src/snapshot/rebase.ts, src/cli/snapshot-editor.ts,
 * bin/snapshot-editor.js), with real files: base (Full at t0) + Diff (t0 → t1) equals the Full
 * snapshot at t1; holes in the diff leave the base alone while written zero pages are copied;
 * bad inputs fail with the file named; the binary's exit codes follow Firecracker's clap-based
 * tool (usage errors 2, a failed rebase 1, success and --help 0).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runSnapshotEditor } from '../../src/cli/snapshot-editor.js';
import { SnapshotMemoryError } from '../../src/errors.js';
import { HostGuestMemory } from '../../src/memory/host-memory.js';
import { closeMemoryWriter, snapshotMemory } from '../../src/snapshot/memory-file.js';
import { rebaseMemoryFile } from '../../src/snapshot/rebase.js';
import { PAGE, dataExtents, fillPages } from '../helpers/sparse-file.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'kindling-rebase-'));
const EDITOR = resolve('bin/snapshot-editor.js');

/** A sparse file of `size` with `extents` written as [offset, bytes]. */
function sparse(path: string, size: number, extents: [number, Buffer][]): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  for (const [off, data] of extents) writeSync(fd, data, 0, data.length, off);
  closeSync(fd);
}

test('base (Full at t0) rebased with the Diff t0 → t1 equals the Full snapshot at t1', async () => {
  const mem = HostGuestMemory.create([{ gpa: 0, size: 2 * MiB }, { gpa: 8 * MiB, size: MiB }], 'rebase-test', { trackDirty: true });
  fillPages(mem, 7);
  const base = join(dir, 'base.mem');
  const diff = join(dir, 'diff.mem');
  const full = join(dir, 'full-t1.mem');
  await snapshotMemory(base, 'Full', null, mem);
  // t0 → t1: guest-style writes, a device write of a run of pages, a page written to zeros.
  for (const p of [1, 2, 300, 511]) mem.writeU32(p * PAGE + 8, 0xc0ffee00 + p);
  mem.regions[1]!.bytes.fill(0x5a, 10 * PAGE, 14 * PAGE);
  mem.markDirty(8 * MiB + 10 * PAGE, 4 * PAGE);
  mem.write(40 * PAGE, new Uint8Array(PAGE));
  await snapshotMemory(diff, 'Diff', null, mem);
  await snapshotMemory(full, 'Full', null, mem);
  assert.ok(!readFileSync(base).equals(readFileSync(full)), 'the states differ before the rebase');
  const r = rebaseMemoryFile(base, diff);
  assert.is(r.bytesCopied, 9 * PAGE, 'pages 1-2, 40, 300, 511 and four in region 1');
  assert.ok(readFileSync(base).equals(readFileSync(full)), 'base + diff = full at t1');
  mem.close();
  await closeMemoryWriter();
});

test('holes leave the base alone, written zeros and a trailing extent are copied (Firecracker edit_memory.rs cases)', () => {
  const base = join(dir, 'cases-base.mem');
  const diff = join(dir, 'cases-diff.mem');
  writeFileSync(base, Buffer.alloc(5 * PAGE, 0x62));
  sparse(diff, 4 * PAGE, [[0, Buffer.alloc(PAGE, 0x64)], [2 * PAGE, Buffer.alloc(PAGE, 0)], [3 * PAGE, Buffer.alloc(PAGE, 0x65)]]);
  assert.equal(dataExtents(diff), [[0, PAGE], [2 * PAGE, 4 * PAGE]]);
  assert.equal(rebaseMemoryFile(base, diff), { bytesCopied: 3 * PAGE });
  const got = readFileSync(base);
  const expect = Buffer.concat([Buffer.alloc(PAGE, 0x64), Buffer.alloc(PAGE, 0x62), Buffer.alloc(PAGE, 0), Buffer.alloc(PAGE, 0x65), Buffer.alloc(PAGE, 0x62)]);
  assert.ok(got.equals(expect));
  const holes = join(dir, 'only-holes.mem');
  sparse(holes, 5 * PAGE, []);
  assert.equal(rebaseMemoryFile(base, holes), { bytesCopied: 0 });
  assert.ok(readFileSync(base).equals(expect));
});

test('bad inputs: a missing base or diff and a diff larger than its base fail naming the file; the base is untouched', () => {
  const base = join(dir, 'bad-base.mem');
  const diff = join(dir, 'bad-diff.mem');
  writeFileSync(base, Buffer.alloc(2 * PAGE, 1));
  sparse(diff, 3 * PAGE, [[0, Buffer.alloc(PAGE, 2)]]);
  const fail = (f: () => unknown): SnapshotMemoryError => {
    try {
      f();
    } catch (e) {
      assert.instance(e, SnapshotMemoryError);
      assert.is((e as SnapshotMemoryError).code, 'SNAPSHOT_REBASE');
      return e as SnapshotMemoryError;
    }
    throw new Error('expected a SnapshotMemoryError');
  };
  const nope = join(dir, 'nope.mem');
  assert.is(fail(() => rebaseMemoryFile(nope, diff)).message, `Could not open memory file ${nope}: No such file or directory (os error 2)`);
  assert.is(fail(() => rebaseMemoryFile(base, nope)).message, `Could not open diff file ${nope}: No such file or directory (os error 2)`);
  assert.is(fail(() => rebaseMemoryFile(base, diff)).message,
    `The diff file ${diff} (${3 * PAGE} bytes) is larger than the memory file ${base} (${2 * PAGE} bytes): it is not a diff of that snapshot`);
  assert.match(fail(() => rebaseMemoryFile(dir, diff)).message, 'Is a directory (os error 21)');
  assert.ok(readFileSync(base).equals(Buffer.alloc(2 * PAGE, 1)));
});

/** Runs the CLI in-process. */
function cli(...argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = runSnapshotEditor(argv, { stdout: (s) => { out += s; }, stderr: (s) => { err += s; } });
  return { code, out, err };
}

test('CLI usage errors exit 2 with clap\'s message, usage line and hint; help and version exit 0', () => {
  const rebaseUsage = 'Usage: snapshot-editor edit-memory rebase --memory-path <MEMORY_PATH> --diff-path <DIFF_PATH>';
  const missing = cli('edit-memory', 'rebase', '--memory-path', 'a');
  assert.is(missing.code, 2);
  assert.is(missing.err, `error: the following required arguments were not provided:\n  --diff-path <DIFF_PATH>\n\n${rebaseUsage}\n\nFor more information, try '--help'.\n`);
  assert.is(cli('edit-memory', 'rebase').err.split('\n').slice(1, 3).join('|'), '  --memory-path <MEMORY_PATH>|  --diff-path <DIFF_PATH>');
  for (const [argv, text] of [
    [['edit-memory', 'rebase', '-m', 'a', '-d', 'b', '--frob'], "error: unexpected argument '--frob' found"],
    [['edit-memory', 'rebase', '-m', 'a', '-d'], "error: a value is required for '--diff-path <DIFF_PATH>' but none was supplied"],
    [['edit-memory', 'rebase', '-m', '--diff-path', 'b'], "error: a value is required for '--memory-path <MEMORY_PATH>' but none was supplied"],
    [['edit-memory', 'rebase', '-m', 'a', '--memory-path=b', '-d', 'c'], "error: the argument '--memory-path <MEMORY_PATH>' cannot be used multiple times"],
    [['edit-memory', 'squash'], "error: unrecognized subcommand 'squash'"],
    [['edit-memory'], "error: 'snapshot-editor edit-memory' requires a subcommand but one was not provided"],
    [['frob'], "error: unrecognized subcommand 'frob'"],
    [[], "error: 'snapshot-editor' requires a subcommand but one was not provided"],
  ] as const) {
    const r = cli(...argv);
    assert.is(r.code, 2, argv.join(' '));
    assert.ok(r.err.startsWith(text), `${argv.join(' ')}: ${r.err}`);
    assert.ok(r.err.endsWith("\n\nFor more information, try '--help'.\n"));
    assert.is(r.out, '');
  }
  const help = cli('edit-memory', 'rebase', '--help');
  assert.is(help.code, 0);
  assert.match(help.out, '-m, --memory-path <MEMORY_PATH>  Path to the memory file');
  assert.equal(cli('--version'), { code: 0, out: 'snapshot-editor v1.16.1\n', err: '' });
  const vmstate = cli('info-vmstate', 'vm-state', '--vmstate-path', 'x');
  assert.is(vmstate.code, 1);
  assert.match(vmstate.err, 'does not support info-vmstate');
});

test('bin/snapshot-editor.js: a rebase exits 0 and merges (both option spellings), a failed one exits 1 with Firecracker\'s prefix, bad args exit 2', () => {
  const base = join(dir, 'bin-base.mem');
  const diff = join(dir, 'bin-diff.mem');
  writeFileSync(base, Buffer.alloc(2 * PAGE, 1));
  sparse(diff, 2 * PAGE, [[PAGE, Buffer.alloc(PAGE, 9)]]);
  const run = (...args: string[]) => spawnSync(process.execPath, [EDITOR, ...args], { encoding: 'utf8' });
  const ok = run('edit-memory', 'rebase', '--memory-path', base, '--diff-path', diff);
  assert.is(ok.status, 0, ok.stderr);
  assert.ok(readFileSync(base).equals(Buffer.concat([Buffer.alloc(PAGE, 1), Buffer.alloc(PAGE, 9)])));
  assert.is(run('edit-memory', 'rebase', `-m${base}`, `--diff-path=${diff}`).status, 0);
  const bad = run('edit-memory', 'rebase', '-m', join(dir, 'nope'), '-d', diff);
  assert.is(bad.status, 1);
  assert.is(bad.stderr, `Error during editing memory file: Could not open memory file ${join(dir, 'nope')}: No such file or directory (os error 2)\n`);
  const usage = run('edit-memory', 'rebase', '-m', base);
  assert.is(usage.status, 2);
  assert.match(usage.stderr, 'the following required arguments were not provided');
  rmSync(dir, { recursive: true, force: true });
});

test.run();
