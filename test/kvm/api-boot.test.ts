/**
 * The Firecracker-compatible binary, tried as a new user would, under real KVM:
 *  - `kindling --api-sock <path>`: PUT /boot-source, PUT /machine-config, PUT /drives, PUT
 *    /actions InstanceStart through the undici client; GET / is answered (200, Running) all
 *    through the kernel's boot, between lines of its console output (the slowest answer is
 *    printed); the guest reads the drive; PATCH /drives/{id} to a bigger file over HTTP: the
 *    guest sees the new capacity and reads the new file past the old end; PATCH to a missing
 *    file: 400 in Firecracker's fault shape, the drive keeps its file and keeps serving
 *    reads; the guest's reboot ends the process with exit code 0;
 *  - `kindling --config-file vm.json --no-api` boots the same guest and exits 0.
 * Both use the minimal kernel (the fastest boot in the nested sandbox).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FirecrackerClient } from 'kindling/client';
import { consoleEnd, fixture, testBootArgs, withTimeout } from '../helpers/guest.js';
import { pollUntil } from '../helpers/poll.js';

const BIN = resolve('bin/kindling.js');
// The marker is computed by the guest shell, so the logged request body (which holds the
// command text) cannot match it.
const GUEST_CMD = '"echo API_GUEST_$((40+2))"';
const MARKER = 'API_GUEST_42';
const MiB = 1024 * 1024;
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

/** A sparse file of `size` bytes holding `text` at each given offset. */
function image(path: string, size: number, marks: [number, string][]): string {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const [off, text] of marks) writeSync(fd, text, off);
  } finally {
    closeSync(fd);
  }
  return path;
}

// The guest's side of the drive checks (vda: the only drive). After its marker the guest
// waits on the host's PATCH, so no GET / lands after the VM is gone. The script travels
// inside double quotes on the kernel command line, so it uses none. Reads that must see what
// the host just wrote use O_DIRECT, past the guest page cache.
const DRIVE_SCRIPT = [
  `echo API_GUEST_$((40+2))`,
  `echo DRV_BEFORE=$(cat /sys/block/vda/size):$(head -c 10 /dev/vda)`,
  `while [ $(cat /sys/block/vda/size) = 16384 ]; do sleep 1; done`,
  `echo DRV_AFTER=$(cat /sys/block/vda/size):$(dd if=/dev/vda bs=512 skip=32767 count=1 iflag=direct 2>/dev/null | head -c 10)`,
  `until dd if=/dev/vda bs=512 skip=1 count=1 iflag=direct 2>/dev/null | grep -q GO_ON; do sleep 1; done`,
  `echo DRV_STILL_$((6*7))`,
].join('; ');

test('kindling --api-sock: drive + boot over HTTP; GET / answered during the boot; PATCH /drives on the running guest', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-api-'));
  const sock = join(dir, 'api.sock');
  const logPath = join(dir, 'fc.log');
  const small = image(join(dir, 'small.img'), 8 * MiB, [[0, 'DRIVE_A_OK']]);
  const big = image(join(dir, 'big.img'), 16 * MiB, [[16 * MiB - 512, 'DRIVE_B_OK']]);
  // Logs to a file, so stdout is the serial console alone and its growth is the guest's.
  const p = startKindling(['--api-sock', sock, '--id', 'api-test', '--log-path', logPath]);
  const tail = (): string => `\nconsole:\n${consoleEnd(p.console.text, 1500)}\nstderr+log:\n${p.all.text.slice(-500)}${existsSync(logPath) ? readFileSync(logPath, 'utf8').slice(-1500) : ''}`;
  const waitConsole = async (re: RegExp, ms: number): Promise<RegExpMatchArray> => {
    await pollUntil(() => re.test(p.console.text), ms, () => `the console did not show ${re}${tail()}`, 50);
    return p.console.text.match(re)!;
  };
  try {
    await pollUntil(() => existsSync(sock), 30_000, () => `the API socket did not appear${tail()}`, 50);
    const api = new FirecrackerClient(sock);
    assert.equal(await api.getInstanceInfo(), { ...INFO, state: 'Not started' });
    await api.putBootSource({
      kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'),
      // Without `quiet` (loglevel=7 comes later and wins) the kernel logs its boot on the
      // console, which is what the GETs below interleave with.
      boot_args: testBootArgs(`"${DRIVE_SCRIPT}"`, 'loglevel=7'),
    });
    await api.putMachineConfig({ vcpu_count: 1, mem_size_mib: 128 });
    await api.putDrive({ drive_id: 'scratch', is_root_device: false, path_on_host: small });
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

    // The drive given by PUT /drives before InstanceStart: 8 MiB = 16384 sectors, readable.
    const before = await waitConsole(/DRV_BEFORE=(\d+):(\w*)\r?\n/, 120_000);
    assert.equal([Number(before[1]), before[2]], [16384, 'DRIVE_A_OK']);

    // PATCH to a 16 MiB file: the guest sees 32768 sectors and reads the new file's last one.
    await api.patchDrive({ drive_id: 'scratch', path_on_host: big });
    const after = await waitConsole(/DRV_AFTER=(\d+):(\w*)\r?\n/, 60_000);
    assert.equal([Number(after[1]), after[2]], [32768, 'DRIVE_B_OK']);

    // PATCH to a missing file: Firecracker's fault (400, a JSON object with fault_message
    // only, the cause wrapped as firecracker src/vmm/src/vmm_config/drive.rs
    // DriveError::DeviceUpdate words it) and the drive keeps big.img.
    const bad = await api.request('PATCH', '/drives/scratch', { drive_id: 'scratch', path_on_host: join(dir, 'missing.img') });
    assert.is(bad.status, 400, bad.body);
    assert.is(bad.headers['content-type'], 'application/json');
    const fault = JSON.parse(bad.body) as Record<string, unknown>;
    assert.equal(Object.keys(fault), ['fault_message'], bad.body);
    assert.match(String(fault.fault_message), /^Drive config error: Unable to patch the block device: Error manipulating the backing file: No such file or directory \(os error 2\) \S+missing\.img Please verify the request arguments\.$/);
    console.log(`    PATCH /drives to a missing file: 400 ${bad.body}`);
    const cfg = await api.getVmConfig() as { drives: { drive_id: string; path_on_host: string }[] };
    assert.equal(cfg.drives.map((d) => [d.drive_id, d.path_on_host]), [['scratch', big]], 'the failed PATCH left the drive on big.img');
    // Still serving big.img: the guest polls a sector the host writes only now, after the
    // failed PATCH answered, and reports once a read returns it.
    const fd = openSync(big, 'r+');
    writeSync(fd, 'GO_ON', 512);
    closeSync(fd);
    await waitConsole(/DRV_STILL_42/, 60_000);

    await api.close();
    assert.is(await withTimeout(p.exit, 60_000, () => `no exit after the guest script${tail()}`), 0, 'the guest reboot ends the process with 0');
  } catch (e) {
    // An API call that fails because the process is gone (EPIPE, ECONNRESET) says nothing of
    // why: add what the process and its guest printed (a guest triple fault there is what
    // the KVM tier reruns a file for).
    const err = e as Error;
    if (String(err.message).includes('\nconsole:\n')) throw err;
    throw new Error(`${err.message}${tail()}\nexit code: ${p.child.exitCode ?? 'still running'}`, { cause: err });
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
