/**
 * The jailer under real KVM, as production runs Firecracker: `kindling-jailer` starts the VMM
 * with a uid/gid drop, a pivot_root'd chroot, cgroup v2 limits and a network namespace, and
 * the Debian-kernel guest boots in it, reads its drive and pings the TAP. From outside the
 * test checks the VMM's root (the jail folder's device and inode), uid/gid, cgroup (and the
 * limit written there), network namespace, the pid file, an empty environment, and
 * `Seccomp: 2` on every thread once the vCPU and device threads exist.
 * Then a second jailed VMM gets a filter that allows everything the default does except the
 * TUN ioctls: PUT /network-interfaces (which opens the TAP) traps, and the VMM ends with 148,
 * the bad-syscall line and seccomp.num_faults in its metrics.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FirecrackerClient } from 'kindling/client';
import { DEFAULT_FILTER } from '../../src/seccomp/default-filter.js';
import { fixture, testBootArgs } from '../helpers/guest.js';
import { NetNs, type Proc, waitFor } from '../helpers/netns.js';
import { pollUntil } from '../helpers/poll.js';

const ns = new NetNs('kindling-jail');
const TAP_ADDR = '169.254.40.1';
const GUEST_ADDR = '169.254.40.2';
const UID = 1234;
const GID = 1235;
const MAGIC = 'KINDLING_JAILED_DISK_7';
const CGROUP2 = '/sys/fs/cgroup';
let mountedCgroup = false;
const base = mkdtempSync(join(tmpdir(), 'kindling-jail-'));

/** The jailer as a child process, output collected (it execs the VMM in place). */
function jailer(id: string, vmmArgs: string[], extra: string[] = []): Proc {
  const args = [resolve('bin/jailer.js'), '--id', id, '--exec-file', resolve('bin/firecracker'), '--uid', String(UID), '--gid', String(GID),
    '--chroot-base-dir', base, '--netns', `/var/run/netns/${ns.name}`, ...extra, '--', '--api-sock', '/run/api.sock', ...vmmArgs];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (b: Buffer) => { text += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { text += b.toString(); });
  return { child, text: () => text, exit: new Promise((r) => child.on('exit', (code, sig) => r(code ?? (sig ? -1 : null)))) };
}

/** A file the jailed VMM reads, placed in its jail before it starts (as an orchestrator does). */
function place(root: string, name: string, from: string | Buffer): void {
  const to = join(root, name);
  if (typeof from === 'string') copyFileSync(from, to);
  else writeFileSync(to, from);
  chownSync(to, UID, GID);
}

async function apiOf(root: string, p: Proc): Promise<FirecrackerClient> {
  const sock = join(root, 'run', 'api.sock');
  await pollUntil(() => existsSync(sock), 60_000, () => `no API socket in the jail; output:\n${p.text()}`, 100);
  const api = new FirecrackerClient(sock, { headersTimeout: 180_000, bodyTimeout: 180_000 });
  // The socket file appears at bind(), a moment before listen().
  for (const deadline = Date.now() + 30_000; ;) {
    try {
      await api.request('GET', '/');
      return api;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`API not answering: ${(e as Error).message}\n${p.text()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

test.before(() => {
  ns.create([['tap0', TAP_ADDR]]);
  ns.addTap('tap1', '169.254.41.1');
  if (!readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[2] === 'cgroup2')) {
    execFileSync('mount', ['-t', 'cgroup2', 'none', CGROUP2]);
    mountedCgroup = true;
  }
});
test.after(() => {
  ns.remove();
  try { rmdirSync(join(CGROUP2, 'firecracker', 'jailed')); rmdirSync(join(CGROUP2, 'firecracker')); } catch { /* still busy or absent */ }
  if (mountedCgroup) execFileSync('umount', [CGROUP2]);
});

test('a guest boots through kindling-jailer: chroot, uid/gid, cgroup v2, netns, Seccomp 2 on every thread; drive and network work', async () => {
  const root = join(base, 'firecracker', 'jailed', 'root');
  mkdirSync(root, { recursive: true });
  place(root, 'vmlinuz', fixture('vmlinuz'));
  place(root, 'initrd', fixture('guest-initrd.cpio.gz'));
  place(root, 'disk.img', Buffer.concat([Buffer.from(`${MAGIC}\n`), Buffer.alloc(1 << 20)]));
  place(root, 'metrics.json', Buffer.alloc(0));
  const vmm = jailer('jailed', ['--metrics-path', '/metrics.json'], ['--cgroup-version', '2', '--cgroup', 'pids.max=300', '--resource-limit', 'no-file=4096']);
  try {
    const api = await apiOf(root, vmm);
    const cmd = `ip link set eth0 up; ip addr add ${GUEST_ADDR}/30 dev eth0; ping -c 2 -W 10 ${TAP_ADDR} >/dev/null && echo PING_OK; echo DISK=$(head -c ${MAGIC.length} /dev/vda); echo GUEST_DONE; sleep 20; reboot -f`;
    await api.putBootSource({ kernel_image_path: '/vmlinuz', initrd_path: '/initrd', boot_args: testBootArgs(`"${cmd}"`) });
    await api.putMachineConfig({ vcpu_count: 2, mem_size_mib: 256 });
    await api.putDrive({ drive_id: 'disk', path_on_host: '/disk.img', is_root_device: false, is_read_only: true } as never);
    await api.putNetworkInterface({ iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: '06:00:a9:fe:28:02' });
    await api.instanceStart();

    const pid = Number(readFileSync(join(root, 'firecracker.pid'), 'utf8'));
    assert.is(pid, vmm.child.pid, 'the pid file names the exec\'d VMM (the jailer\'s own pid)');
    const jailStat = statSync(root);
    const vmmRoot = statSync(`/proc/${pid}/root/`);
    assert.equal([vmmRoot.dev, vmmRoot.ino], [jailStat.dev, jailStat.ino], 'the VMM\'s root is the jail folder');
    assert.not.ok(existsSync(`/proc/${pid}/root/etc`), 'the host\'s /etc is not visible inside');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\t${UID}\\t${UID}\\t${UID}\\t${UID}$`, 'm'));
    assert.match(status, new RegExp(`^Gid:\\t${GID}\\t${GID}\\t${GID}\\t${GID}$`, 'm'));
    assert.match(status, /^Groups:[\t ]*$/m, 'no supplementary groups');
    assert.is(readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim(), '0::/firecracker/jailed');
    assert.is(readFileSync(join(CGROUP2, 'firecracker', 'jailed', 'pids.max'), 'utf8').trim(), '300');
    assert.is.not(readlinkSync(`/proc/${pid}/ns/net`), readlinkSync('/proc/self/ns/net'), 'not the test\'s own namespace');
    assert.is(statSync(`/proc/${pid}/ns/net`).ino, statSync(`/var/run/netns/${ns.name}`).ino, 'the VMM is in the --netns namespace');
    assert.is(readFileSync(`/proc/${pid}/environ`).length, 0, 'an empty environment');
    assert.match(readFileSync(`/proc/${pid}/limits`, 'utf8'), /^Max open files\s+4096\s+4096/m);

    // Anchored: the command line (in the API log and the kernel's banner) holds these words too.
    // The newline is part of the match: `$` with /m also matches at the end of a line still
    // arriving, and a read mid-line saw half the drive's word.
    const out = await waitFor(vmm, /^DISK=(\w*)\r?\n/m, 300_000, 'the guest did not read its drive');
    assert.is(out[1], MAGIC, 'the guest read the drive inside the jail');
    await waitFor(vmm, /^PING_OK\r?$/m, 60_000, 'the guest did not reach the TAP');
    await waitFor(vmm, /^GUEST_DONE\r?$/m, 60_000, 'the guest did not finish');
    // Every thread of the VMM, the vCPU and device workers included, is filtered.
    const tasks = readdirSync(`/proc/${pid}/task`);
    assert.ok(tasks.length >= 8, `${tasks.length} threads`);
    const unfiltered = tasks.filter((t) => !/^Seccomp:\t2$/m.test(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8')));
    assert.equal(unfiltered, [], `threads without the filter: ${unfiltered.map((t) => readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim()).join(', ')}`);
    console.log(`    jailed VMM pid ${pid}: ${tasks.length} threads, all Seccomp 2; cgroup /firecracker/jailed`);
    await api.request('PUT', '/actions', { action_type: 'FlushMetrics' });
    await api.close();
    assert.is(await vmm.exit, 0, `the VMM ends with the guest's reboot:\n${vmm.text().slice(-2000)}`);
  } finally {
    vmm.child.kill('SIGKILL');
  }
});

test('a filter without the TUN ioctls: PUT /network-interfaces traps, the VMM exits 148 with the bad-syscall line and seccomp.num_faults', async () => {
  const root = join(base, 'firecracker', 'trapped', 'root');
  mkdirSync(root, { recursive: true });
  // The default list, with type-'T' ioctls narrowed to the terminal requests Node makes at start.
  const TERMINAL = [0x5401 /* TCGETS */, 0x5413 /* TIOCGWINSZ */, 0x541b /* FIONREAD */, 0x5421 /* FIONBIO */, 0x5450 /* FIONCLEX */, 0x5451 /* FIOCLEX */];
  const filter = DEFAULT_FILTER.filter.filter((r) => !(r.syscall === 'ioctl' && r.args?.[0]?.val === 0x54 << 8));
  const spec = { vmm: { ...DEFAULT_FILTER, filter: [...filter, ...TERMINAL.map((v) => ({ syscall: 'ioctl', args: [{ index: 1, type: 'dword', op: 'eq', val: v }] }))] } };
  assert.is(filter.length, DEFAULT_FILTER.filter.length - 1, 'exactly the type-T rule was taken out');
  place(root, 'filter.json', Buffer.from(JSON.stringify(spec)));
  place(root, 'metrics.json', Buffer.alloc(0));
  const vmm = jailer('trapped', ['--metrics-path', '/metrics.json', '--seccomp-filter', '/filter.json']);
  try {
    const api = await apiOf(root, vmm);
    await api.putMachineConfig({ vcpu_count: 1, mem_size_mib: 128 });
    void api.putNetworkInterface({ iface_id: 'eth0', host_dev_name: 'tap1' }).catch(() => undefined);
    assert.is(await vmm.exit, 148, vmm.text());
    assert.match(vmm.text(), /\[trapped:main\] Shutting down VM after intercepting a bad syscall\./);
    const last = JSON.parse(readFileSync(join(root, 'metrics.json'), 'utf8').trim().split('\n').pop()!) as Record<string, Record<string, number>>;
    assert.is(last.seccomp!.num_faults, 1);
    await api.close().catch(() => undefined);
  } finally {
    vmm.child.kill('SIGKILL');
  }
});

test.run();
