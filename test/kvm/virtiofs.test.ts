/**
 * virtio-fs under real KVM with Debian's stock kernel (the device found through the ACPI DSDT,
 * fuse + virtiofs modules loaded by the initramfs) and Debian's virtiofsd as the backend:
 *  1. start errors leave nothing behind: a socket that is not vhost-user, a socket nobody
 *     listens on, virtiofsd missing — each fails start() with its reason, and the next test
 *     boots in the same process;
 *  2. `shared_dir` (Kindling starts virtiofsd): the guest mounts the tag with
 *     `mount -t virtiofs`, reads a file the host wrote, writes one the host reads, and a
 *     64 MiB random file keeps its SHA-256 both read by the guest and copied through the mount;
 *     a snapshot of the running VM is refused with a clear error and the VM goes on;
 *  3. `socket` (virtiofsd started by the test, as a user would): SIGKILL it mid-run; the guest's
 *     next accesses fail with I/O errors, the device worker reports the backend gone, and the
 *     guest goes on to reboot normally (exit code 0).
 * The guest script travels on the kernel command line inside double quotes, so it uses none.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, writeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MicroVm } from 'kindling';
import { fixture, testBootArgs, ConsoleLog, rejectionOf, threadStates, withTimeout } from '../helpers/guest.js';
import { findVirtiofsd, virtiofsdArgs } from '../../src/actors/virtio/virtiofsd.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'kindling-virtiofs-'));

/** What a hang looks like from the host: the device's counters and ring positions twice, 2 s apart, and virtiofsd's threads. */
async function fsDiagnosis(vm: MicroVm): Promise<string> {
  const first = await vm.fsStatus();
  await new Promise((r) => setTimeout(r, 2000));
  const second = await vm.fsStatus();
  const lines = [`fs status: ${JSON.stringify(first)}`, `2 s later: ${JSON.stringify(second)}`];
  for (const st of Object.values(second)) {
    if (st.backendPid !== null) lines.push(...threadStates(st.backendPid).map((row) => `virtiofsd ${row}`));
  }
  return lines.join('\n');
}

/** con.waitFor, and on a timeout the virtio-fs state besides the console (fsDiagnosis). */
async function waitOrDiagnose(con: ConsoleLog, vm: MicroVm, re: RegExp, ms: number): Promise<RegExpMatchArray> {
  try {
    return await con.waitFor(re, ms);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await fsDiagnosis(vm)}`);
  }
}

const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

function vmWith(fs: { id: string; tag: string; socket?: string; shared_dir?: string }, script: string): MicroVm {
  return new MicroVm({
    'boot-source': { kernel_image_path: fixture('vmlinuz'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs(`"${script}"`) },
    'machine-config': { vcpu_count: 1, mem_size_mib: 256 },
    fs: [fs],
  }, { log: () => {} });
}

/** A child node process listening at `path` and answering anything with HTTP (not vhost-user). */
async function httpPeer(path: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, ['-e', `require('net').createServer((c) => c.on('data', () => c.write('HTTP/1.1 400 Bad Request\\r\\n\\r\\n'))).listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r) => p.stdout!.once('data', () => r()));
  return p;
}

test('start errors: not a vhost-user socket, nobody listening, virtiofsd missing', async () => {
  const share = join(dir, 'errors');
  mkdirSync(share);
  const peer = await httpPeer(join(dir, 'http.sock'));
  try {
    const a = vmWith({ id: 'work', tag: 'work', socket: join(dir, 'http.sock') }, 'true');
    const ea = await rejectionOf(a.start(), 120_000);
    assert.match(ea.message, /is this a vhost-user socket/);
    assert.is(a.state, 'Not started');
  } finally {
    peer.kill();
  }
  const b = vmWith({ id: 'work', tag: 'work', socket: join(dir, 'nobody.sock') }, 'true');
  assert.match((await rejectionOf(b.start(), 120_000)).message, /cannot connect to the vhost-user socket .*nobody\.sock.*ENOENT/);
  const saved = process.env.KINDLING_VIRTIOFSD;
  process.env.KINDLING_VIRTIOFSD = join(dir, 'no-virtiofsd');
  try {
    const c = vmWith({ id: 'work', tag: 'work', shared_dir: share }, 'true');
    assert.match((await rejectionOf(c.start(), 120_000)).message, /virtiofsd not found/);
  } finally {
    if (saved === undefined) delete process.env.KINDLING_VIRTIOFSD;
    else process.env.KINDLING_VIRTIOFSD = saved;
  }
});

test('shared_dir: mount, host→guest and guest→host files, a 64 MiB file keeps its SHA-256, snapshots refused', async () => {
  const share = join(dir, 'share');
  mkdirSync(share);
  writeFileSync(join(share, 'from-host.txt'), 'HOST_HELLO_42\n');
  const big = join(share, 'big.bin');
  const fd = openSync(big, 'w');
  for (let i = 0; i < 64; i++) writeSync(fd, randomBytes(MiB));
  closeSync(fd);
  const bigSum = sha(big);
  const script = [
    'mkdir -p /mnt',
    'mount -t virtiofs work /mnt && echo MOUNTED || dmesg | grep -i -e virtio -e fuse | tail -n 20',
    'echo HOST_SAYS=$(cat /mnt/from-host.txt)',
    'echo GUEST_$((40+2)) > /mnt/from-guest.txt && sync && echo WROTE_OK',
    'echo GUEST_SHA=$(sha256sum /mnt/big.bin | cut -c1-64)',
    'cp /mnt/big.bin /mnt/copy.bin && sync && echo COPIED',
  ].join('; ');
  const vm = vmWith({ id: 'work', tag: 'work', shared_dir: share }, script);
  const con = new ConsoleLog(vm.console);
  await vm.start();
  try {
    await con.waitFor(/MOUNTED|KINDLING_EXIT=/, 300_000);
    assert.match(con.text, /MOUNTED/, `the guest could not mount the share:\n${con.text.slice(-3000)}`);
    const st = (await vm.fsStatus()).work!;
    assert.ok(st.backendUp && st.backendPid !== null, JSON.stringify(st));
    assert.ok(st.callsRelayed[1]! > 0, `FUSE_INIT's reply came back as a relayed call: ${JSON.stringify(st)}`);
    assert.ok(st.rings[1] !== null && st.rings[1]!.usedIdx > 0, `the request ring shows completed requests: ${JSON.stringify(st)}`);
    await vm.pause();
    const refused = await rejectionOf(vm.createSnapshot({ snapshot_path: join(dir, 'snap'), mem_file_path: join(dir, 'mem') }), 60_000);
    assert.match(refused.message, /snapshots of a microVM with virtio-fs devices \(\/fs\) are not supported/);
    assert.not.ok(existsSync(join(dir, 'snap')), 'no state file was written');
    await vm.resume();
    const host = await con.waitFor(/HOST_SAYS=(\S*)\s/, 300_000);
    assert.is(host[1], 'HOST_HELLO_42');
    await con.waitFor(/WROTE_OK/, 300_000);
    assert.is(readFileSync(join(share, 'from-guest.txt'), 'utf8'), 'GUEST_42\n');
    const guestSum = await waitOrDiagnose(con, vm, /GUEST_SHA=([0-9a-f]{64})/, 420_000);
    assert.is(guestSum[1], bigSum, 'the guest read the 64 MiB file intact');
    await waitOrDiagnose(con, vm, /COPIED/, 420_000);
    assert.is(sha(join(share, 'copy.bin')), bigSum, 'the copy the guest wrote has the same SHA-256');
    const exit = await withTimeout(vm.exit, 120_000, () => `no reboot; console:\n${con.text.slice(-2000)}`);
    assert.is(exit.code, 0, exit.reason);
    assert.match(con.text, /KINDLING_EXIT=0/);
  } finally {
    if (vm.state !== 'Exited') await vm.stop();
  }
});

test('socket: killing virtiofsd mid-run gives the guest I/O errors on the mount and nothing worse', async () => {
  const share = join(dir, 'killed');
  mkdirSync(share);
  writeFileSync(join(share, 'f.txt'), 'BEFORE_KILL\n');
  const sock = join(dir, 'user-virtiofsd.sock');
  const binary = findVirtiofsd();
  const backend = spawn(binary, virtiofsdArgs(binary, share, sock), { stdio: ['ignore', 'ignore', 'pipe'] });
  let backendErr = '';
  backend.stderr!.on('data', (d: Buffer) => { backendErr += d.toString(); });
  const backendExit = new Promise<string>((r) => backend.once('exit', (code, sig) => r(sig ?? String(code))));
  for (let i = 0; i < 500 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
  const script = [
    'mkdir -p /mnt',
    'mount -t virtiofs work /mnt && echo FIRST=$(cat /mnt/f.txt) && echo KILL_NOW || dmesg | grep -i -e virtio -e fuse | tail -n 20',
    'i=0; while cat /mnt/f.txt >/dev/null 2>&1 && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done; echo CAT_FAILED_AFTER=$i',
    'cat /mnt/f.txt; echo CAT_RC=$?',
    'echo x > /mnt/new.txt; echo WRITE_RC=$?',
    'echo GUEST_ALIVE',
  ].join('; ');
  const vm = vmWith({ id: 'work', tag: 'work', socket: sock }, script);
  const con = new ConsoleLog(vm.console);
  await vm.start();
  try {
    await con.waitFor(/KILL_NOW|KINDLING_EXIT=/, 300_000);
    assert.match(con.text, /FIRST=BEFORE_KILL\s+KILL_NOW/, `the guest could not mount the share:\n${con.text.slice(-3000)}`);
    assert.equal(await vm.fsBackendsGone(), { work: false });
    backend.kill('SIGKILL');
    assert.is(await backendExit, 'SIGKILL', backendErr);
    let gone = false;
    for (let i = 0; i < 300 && !gone; i++) {
      gone = (await vm.fsBackendsGone()).work === true;
      if (!gone) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(gone, 'the device worker saw the backend hang up');
    const after = await con.waitFor(/CAT_FAILED_AFTER=(\d+)\s/, 600_000);
    assert.ok(Number(after[1]) < 300, 'cat failed once the backend was gone');
    await con.waitFor(/GUEST_ALIVE/, 300_000);
    assert.match(con.text, /CAT_RC=[1-9]/);
    assert.match(con.text, /WRITE_RC=[1-9]/);
    assert.match(con.text, /Input\/output error/, 'the guest saw EIO');
    assert.not.ok(existsSync(join(share, 'new.txt')), 'nothing was written after the kill');
    const exit = await withTimeout(vm.exit, 120_000, () => `no reboot; console:\n${con.text.slice(-2000)}`);
    assert.is(exit.code, 0, exit.reason);
  } finally {
    if (vm.state !== 'Exited') await vm.stop();
    backend.kill('SIGKILL');
  }
});

test.run();
