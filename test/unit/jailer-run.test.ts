/**
 * `bin/jailer.js` for real on this host (root, no KVM needed: the VMM only serves its API):
 *  - in place: the jailer execs the VMM (same pid, named in the pid file), whose root is the
 *    jail folder (device and inode), uid/gid dropped, environment empty, every thread under
 *    the seccomp filter, the API answering on the socket inside the jail;
 *  - `--daemonize --new-pid-ns`: the jailer exits 0, the VMM runs on as a child in a new PID
 *    namespace (pid 1 there) and its own session, its host pid in the pid file.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FirecrackerClient } from '../../src/api/client.js';
import { pollUntil } from '../helpers/poll.js';

const base = mkdtempSync(join(tmpdir(), 'kindling-jailrun-'));
const UID = 4321;
const GID = 4322;
const args = (id: string, extra: string[] = []): string[] => [resolve('bin/jailer.js'), '--id', id, '--exec-file', resolve('bin/firecracker'), '--uid', String(UID), '--gid', String(GID), '--chroot-base-dir', base, ...extra, '--', '--api-sock', '/run/api.sock'];

async function answers(root: string): Promise<string> {
  const sock = join(root, 'run', 'api.sock');
  await pollUntil(() => existsSync(sock), 30_000, `no API socket in ${root}`, 20);
  const api = new FirecrackerClient(sock);
  try {
    for (let i = 0; ; i++) {
      try {
        return (await api.getInstanceInfo()).id;
      } catch (e) {
        if (i > 100) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } finally {
    await api.close();
  }
}

test('this test needs root (the jailer mounts, pivots and changes credentials)', () => {
  assert.is(process.getuid!(), 0, 'run the unit tier as root');
});

test('in place: the VMM is the jailer\'s pid, jailed, uid/gid dropped, empty environment, Seccomp 2 everywhere, API inside', async () => {
  const child = spawn(process.execPath, args('inplace'), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const root = join(base, 'firecracker', 'inplace', 'root');
  try {
    assert.is(await answers(root), 'inplace');
    const pid = child.pid!;
    assert.is(Number(readFileSync(join(root, 'firecracker.pid'), 'utf8')), pid);
    const a = statSync(`/proc/${pid}/root/`);
    const b = statSync(root);
    assert.equal([a.dev, a.ino], [b.dev, b.ino], 'root is the jail folder');
    assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), new RegExp(`^Uid:\\t${UID}\\t${UID}\\t${UID}\\t${UID}$`, 'm'));
    assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), new RegExp(`^Gid:\\t${GID}\\t${GID}\\t${GID}\\t${GID}$`, 'm'));
    assert.is(readFileSync(`/proc/${pid}/environ`).length, 0);
    // argv[0] is the exec file's jail path, as in Firecracker's jail; bin/firecracker is a sh
    // launcher and the jail has no shell, so node runs the startup snapshot itself and the
    // VMM's arguments follow `--` (src/jailer/jail.ts vmmCommand).
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
    assert.is(cmdline[0], '/firecracker', cmdline.join(' '));
    assert.equal(cmdline.slice(1, 4), ['--snapshot-blob', '/dist/bundle/kindling.blob', '--'], cmdline.join(' '));
    const argv = cmdline.slice(3);
    assert.equal(argv.filter((_, i) => ![4, 8].includes(i)), ['--', '--id', 'inplace', '--start-time-us', '--start-time-cpu-us', '0', '--parent-cpu-time-us', '--api-sock', '/run/api.sock'], argv.join(' '));
    assert.match(argv[4]!, /^\d+$/);
    assert.match(argv[8]!, /^\d+$/);
    for (const t of readdirSync(`/proc/${pid}/task`)) assert.match(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'), /^Seccomp:\t2$/m, `thread ${t}`);
    for (const dev of ['kvm', 'net/tun', 'urandom']) {
      const s = statSync(join(root, 'dev', dev));
      assert.ok(s.isCharacterDevice() && s.uid === UID && s.gid === GID, dev);
    }
    assert.equal(readdirSync(join(root, 'usr', 'lib', 'x86_64-linux-gnu')).length > 0, true, 'library mount points');
    assert.is(readFileSync(join(root, 'dist', '..', 'package.json'), 'utf8'), '', 'on the host the mount points stay empty');
  } finally {
    child.kill('SIGKILL');
  }
  void out;
});

test('--daemonize --new-pid-ns: the jailer exits 0, the VMM runs on as pid 1 of a new namespace, in its own session', async () => {
  const r = spawnSync(process.execPath, args('daemon', ['--daemonize', '--new-pid-ns']), { encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 0, r.stderr);
  const root = join(base, 'firecracker', 'daemon', 'root');
  assert.is(await answers(root), 'daemon');
  const pid = Number(readFileSync(join(root, 'firecracker.pid'), 'utf8'));
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^NSpid:\t\d+\t1$/m, 'pid 1 in its own PID namespace');
    assert.is.not(readlinkSync(`/proc/${pid}/ns/pid`), readlinkSync('/proc/self/ns/pid'));
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    assert.is(Number(stat[3]), pid, 'session leader (setsid)');
    assert.match(readlinkSync(`/proc/${pid}/fd/1`), /^\/dev\/null$|null/, 'stdio on /dev/null');
  } finally {
    process.kill(pid, 'SIGKILL');
  }
});

test.run();
