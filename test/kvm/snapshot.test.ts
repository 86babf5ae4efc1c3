/**
 * Snapshots under real KVM, as Firecracker's users take them (issue 16): `bin/kindling`
 * processes driven over their API sockets, one boot of Firecracker's CI kernel for everything.
 * That kernel idles tickless (CONFIG_NO_HZ_IDLE): the minimal kernel's 250 Hz periodic tick
 * kept ten idle nested clones busy, and under that load the nested rig's guests died now and
 * then of a triple fault (docs/design.md, "a triple fault out of nowhere").
 *
 * The guest (script on a read-only drive) keeps a random secret in a tmpfs, then counts on its
 * console once a second (a background loop) and runs any line typed on the console (a
 * blocking `read`: busybox's `read -t` drops what it read of a line when its timeout ends). Process A boots it with
 * track_dirty_pages, is paused, takes a Full snapshot (base), runs on, writes a change into
 * the tmpfs, is paused again and takes a Diff; then A is killed. Fresh processes then load:
 *  - B: base, File backend, resume_vm, its network interface moved to another TAP
 *    (network_overrides): the counter goes on from where A was (no reboot), the secret reads
 *    back, the change is not there, a write to the data drive lands in the image file, and the
 *    guest pings the host through the new TAP;
 *  - C: the Diff rebased onto a copy of the base with bin/snapshot-editor, restored by the
 *    library in this process (MicroVm.loadSnapshot): the change is there;
 *  - D: base through the Uffd backend and the example page-fault handler;
 *  - ten clones of the base at once, each resumed on its own copy of the data drive: all run,
 *    and the guest RAM pages they read from the memory file stay shared (their proportional
 *    share of that mapping, summed, is far below the sum of what each maps) — printed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, readdirSync, mkdtempSync, openSync, closeSync, ftruncateSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConsoleLog, fixture, testBootArgs, withTimeout } from '../helpers/guest.js';
import { MicroVm } from 'kindling';
import { KindlingProc } from '../helpers/kindling-proc.js';
import { pollUntil } from '../helpers/poll.js';
import { NetNs, ip } from '../helpers/netns.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'kindling-snap-'));
const HOST = '169.254.0.1';
const GUEST = '169.254.0.2';
const SCRIPT = `
ip link set eth0 up; ip addr add ${GUEST}/30 dev eth0
mkdir -p /mnt/s && mount -t tmpfs tmpfs /mnt/s
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /mnt/s/secret
echo "SECRET $(cat /mnt/s/secret)"
(i=0; while true; do echo "COUNT $i"; i=$((i+1)); sleep 1; done) &
while read -r cmd; do eval "$cmd"; done
`;
const image = join(dir, 'data.img');
const script = join(dir, 'script.img');
const files = {
  base: { state: join(dir, 'base.state'), mem: join(dir, 'base.mem') },
  diff: { state: join(dir, 'diff.state'), mem: join(dir, 'diff.mem') },
  rebased: join(dir, 'rebased.mem'),
};
const ns = new NetNs('kindling-snap');
const procs: KindlingProc[] = [];
/** A VMM in the test's network namespace, where its TAPs are. */
const proc = (name: string): KindlingProc => {
  const p = new KindlingProc(dir, name, [], ['ip', ...ns.exec()]);
  procs.push(p);
  return p;
};

/** The COUNT values on a console, in order. */
const counts = (text: string): number[] => [...text.matchAll(/COUNT (\d+)\r?\n/g)].map((m) => Number(m[1]));

/** PUT /snapshot/load; asserts 204. */
async function load(p: KindlingProc, body: Record<string, unknown>): Promise<number> {
  const api = await p.api();
  const t0 = performance.now();
  const r = await api.request('PUT', '/snapshot/load', body);
  assert.is(r.status, 204, `load: ${r.body}${p.tail()}`);
  return performance.now() - t0;
}

/** What the checks below need of a restored guest: a `bin/kindling` process or a library VM. */
interface Guest {
  readonly console: string;
  type(line: string): void;
  waitConsole(re: RegExp, ms: number): Promise<RegExpMatchArray>;
  tail(): string;
}

/** A guest restored by the library in this process (`MicroVm.loadSnapshot`). */
class LibGuest implements Guest {
  private readonly log: ConsoleLog;
  constructor(readonly vm: MicroVm) {
    this.log = new ConsoleLog(vm.console);
  }
  get console(): string {
    return this.log.text;
  }
  type(line: string): void {
    this.vm.writeConsole(`${line}\n`);
  }
  waitConsole(re: RegExp, ms: number): Promise<RegExpMatchArray> {
    return this.log.waitFor(re, ms);
  }
  tail(): string {
    return `\nconsole:\n${this.log.text.slice(-1200)}`;
  }
}

/** Waits for the restored guest's counter to pass `after` and checks it never restarted. */
async function countsOn(p: Guest, after: number): Promise<number[]> {
  await pollUntil(() => counts(p.console).some((c) => c > after), 60_000, () => `the restored counter did not pass ${after}${p.tail()}`, 50);
  const seen = counts(p.console);
  assert.ok(Math.min(...seen) >= after, `the counter went on from ${after}, it did not restart (saw ${seen.join(',')})`);
  assert.not.match(p.console, /SECRET [0-9a-f]/, 'no second boot: the init did not run again');
  return seen;
}

/** Asks the guest for a value and returns it. */
async function ask(p: Guest, label: string, shell: string): Promise<string> {
  p.type(`echo "${label}_$((1+1)) ${shell}"`);
  return (await p.waitConsole(new RegExp(`${label}_2 (\\S+)\\r?\\n`), 60_000))[1]!;
}

test('Full, Diff + rebase, Uffd and ten clones, each restored in a fresh process', async () => {
  writeFileSync(script, Buffer.from(SCRIPT.padEnd(Math.ceil(SCRIPT.length / 512) * 512 + 512, '\n')));
  const fd = openSync(image, 'w');
  ftruncateSync(fd, 4 * MiB);
  closeSync(fd);
  ns.create([['tapa', HOST]]);
  try {
    // --- A: boot, Full, change, Diff ---
    const a = proc('a');
    const api = await a.api();
    await api.putBootSource({ kernel_image_path: fixture('vmlinux-6.1-fc'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs('"sh /dev/vdb"', 'loglevel=3') });
    await api.putMachineConfig({ vcpu_count: 1, mem_size_mib: 128, track_dirty_pages: true });
    await api.putDrive({ drive_id: 'data', is_root_device: false, path_on_host: image });
    await api.putDrive({ drive_id: 'script', is_root_device: false, path_on_host: script, is_read_only: true });
    await api.putNetworkInterface({ iface_id: 'eth0', host_dev_name: 'tapa', guest_mac: '06:00:a9:fe:00:02' });
    await api.instanceStart();
    const secret = (await a.waitConsole(/SECRET ([0-9a-f]{32})\r?\n/, 240_000))[1]!;
    await pollUntil(() => counts(a.console).length >= 3, 60_000, () => `A's counter did not run${a.tail()}`, 50);

    const running = await api.request('PUT', '/snapshot/create', { snapshot_path: files.base.state, mem_file_path: files.base.mem });
    assert.is(running.status, 400);
    assert.is(JSON.parse(running.body).fault_message, 'Create snapshot error: Cannot save the microVM state: Operation not allowed: save/restore unavailable while running');

    console.log(`\n    CPU of the booted VMM, idle guest, over 3 s: ${await cpuOver(a, 3000)}`);
    await api.request('PATCH', '/vm', { state: 'Paused' });
    const beforeFull = Math.max(...counts(a.console));
    let t0 = performance.now();
    const full = await api.request('PUT', '/snapshot/create', { snapshot_type: 'Full', snapshot_path: files.base.state, mem_file_path: files.base.mem });
    const fullMs = performance.now() - t0;
    assert.is(full.status, 204, full.body);
    assert.is(statSync(files.base.mem).size, 128 * MiB, 'the memory file holds all guest RAM');
    await api.request('PATCH', '/vm', { state: 'Resumed' });
    await pollUntil(() => Math.max(...counts(a.console)) > beforeFull, 30_000, () => `A did not run on after the Full snapshot${a.tail()}`, 50);
    assert.is(await ask(a, 'CHANGED', '$(echo CHANGE_C1 > /mnt/s/change; cat /mnt/s/change)'), 'CHANGE_C1');
    await api.request('PATCH', '/vm', { state: 'Paused' });
    const beforeDiff = Math.max(...counts(a.console));
    t0 = performance.now();
    const diff = await api.request('PUT', '/snapshot/create', { snapshot_type: 'Diff', snapshot_path: files.diff.state, mem_file_path: files.diff.mem });
    const diffMs = performance.now() - t0;
    assert.is(diff.status, 204, diff.body);
    const diffBlocks = statSync(files.diff.mem).blocks * 512;
    assert.ok(diffBlocks < 64 * MiB, `the Diff holds only dirty pages (${diffBlocks} bytes allocated of 128 MiB)`);
    await a.kill();
    // B gets the network on another TAP (network_overrides) with the same host address.
    ip('-n', ns.name, 'link', 'del', 'tapa');
    ns.addTap('tapb', HOST);
    console.log(`    snapshot create: Full ${fullMs.toFixed(0)} ms, Diff ${diffMs.toFixed(0)} ms (${(diffBlocks / MiB).toFixed(1)} MiB of dirty pages)`);

    // --- B: base, File backend ---
    const b = proc('b');
    const loadMs = await load(b, {
      snapshot_path: files.base.state, mem_backend: { backend_type: 'File', backend_path: files.base.mem }, resume_vm: true,
      network_overrides: [{ iface_id: 'eth0', host_dev_name: 'tapb' }],
    });
    await countsOn(b, beforeFull);
    console.log(`    CPU of the restored VMM, idle guest, over 3 s: ${await cpuOver(b, 3000)}`);
    assert.is(await ask(b, 'SECRET_AFTER', '$(cat /mnt/s/secret)'), secret, 'the tmpfs secret survived the snapshot');
    assert.is(await ask(b, 'CHANGE_B', '$(cat /mnt/s/change 2>/dev/null || echo none)'), 'none', 'the base predates the change');
    assert.is(await ask(b, 'WROTE', '$(echo RESTORED_WRITE_OK | dd of=/dev/vda bs=512 count=1 conv=sync oflag=direct 2>/dev/null; echo $?)'), '0');
    assert.is(readFileSync(image).subarray(0, 18).toString(), 'RESTORED_WRITE_OK\n', 'the write after restore is in the image');
    assert.is(await ask(b, 'PING', `$(ping -c 2 -W 5 ${HOST} >/dev/null 2>&1; echo $?)`), '0', 'the restored virtio-net reaches the host through the overriding TAP');
    b.type('reboot -f');
    assert.is(await withTimeout(b.exit, 60_000, `B did not exit on the guest's reboot${b.tail()}`), 0);
    console.log(`    restore (File): load ${loadMs.toFixed(0)} ms; counter went on from ${beforeFull}; secret and drive write checked`);
    const bLog = readFileSync(b.logPath, 'utf8');
    const phases = /snapshot restore \(cumulative\): ([^\n]*)/.exec(bLog);
    assert.ok(phases, 'the VMM logs where the load\'s time went');
    const resumed = /vCPUs resumed (\d+) ms after the request began/.exec(bLog);
    assert.ok(resumed, 'the VMM logs when the vCPUs ran again');
    console.log(`    restore phases (cumulative, from the request): ${phases[1]}, vCPUs resumed ${resumed[1]} ms`);

    // --- C: the Diff rebased onto a copy of the base ---
    copyFileSync(files.base.mem, files.rebased);
    const rebase = spawnSync(process.execPath, [resolve('bin/snapshot-editor.js'), 'edit-memory', 'rebase', '--memory-path', files.rebased, '--diff-path', files.diff.mem], { encoding: 'utf8' });
    assert.is(rebase.status, 0, `snapshot-editor: ${rebase.stderr}`);
    // C through the library, in this process (its TAP is made when the device opens it).
    const lib = await MicroVm.loadSnapshot({
      snapshot_path: files.diff.state, mem_backend: { backend_type: 'File', backend_path: files.rebased }, resume_vm: true,
      network_overrides: [{ iface_id: 'eth0', host_dev_name: 'tapc' }],
    }, { log: () => {}, id: 'c' });
    try {
      const c = new LibGuest(lib);
      assert.is(lib.state, 'Running');
      await countsOn(c, beforeDiff);
      assert.is(await ask(c, 'CHANGE_C', '$(cat /mnt/s/change)'), 'CHANGE_C1', 'the change made between Full and Diff is in the rebased memory');
      assert.is(await ask(c, 'SECRET_C', '$(cat /mnt/s/secret)'), secret);
    } finally {
      await lib.stop();
    }

    // --- D: Uffd backend with the example handler ---
    const uffdSock = join(dir, 'uffd.sock');
    const handler = spawn(process.execPath, [resolve('dist/examples/uffd/handler.js'), uffdSock, files.base.mem], { stdio: ['ignore', 'pipe', 'pipe'] });
    let handlerOut = '';
    handler.stdout!.on('data', (x: Buffer) => { handlerOut += x.toString(); });
    handler.stderr!.on('data', (x: Buffer) => { handlerOut += x.toString(); });
    const handlerExit = new Promise<number | null>((r) => handler.on('exit', (code) => r(code)));
    try {
      await pollUntil(() => handlerOut.includes('listening') || statSafe(uffdSock), 30_000, () => `the uffd handler did not listen: ${handlerOut}`, 50);
      const d = proc('d');
      const uffdMs = await load(d, { snapshot_path: files.base.state, mem_backend: { backend_type: 'Uffd', backend_path: uffdSock }, resume_vm: true, network_overrides: [{ iface_id: 'eth0', host_dev_name: 'tapd' }] });
      await countsOn(d, beforeFull);
      assert.is(await ask(d, 'SECRET_D', '$(cat /mnt/s/secret)'), secret, 'the secret, paged in by the handler');
      await d.kill();
      const code = await withTimeout(handlerExit, 30_000, `the handler did not exit after the VMM: ${handlerOut}`);
      assert.is(code, 0, handlerOut);
      console.log(`    restore (Uffd): load ${uffdMs.toFixed(0)} ms; handler: ${handlerOut.trim().split('\n').pop()}`);
    } finally {
      if (handler.exitCode === null) handler.kill('SIGKILL');
    }

    // --- ten clones of the base ---
    const N = Number(process.env.KINDLING_SNAPSHOT_CLONES ?? 10);
    const clones = Array.from({ length: N }, (_, i) => proc(`clone${i}`));
    await Promise.all(clones.map(async (p, i) => {
      const copy = join(dir, `clone${i}.img`);
      copyFileSync(image, copy);
      await load(p, { snapshot_path: files.base.state, mem_backend: { backend_type: 'File', backend_path: files.base.mem }, resume_vm: false, network_overrides: [{ iface_id: 'eth0', host_dev_name: `tapk${i}` }] });
      const cApi = await p.api();
      const patch = await cApi.request('PATCH', '/drives/data', { drive_id: 'data', path_on_host: copy });
      assert.is(patch.status, 204, patch.body);
      const resumed = await cApi.request('PATCH', '/vm', { state: 'Resumed' });
      assert.is(resumed.status, 204, resumed.body);
    }));
    await Promise.all(clones.map((p) => countsOn(p, beforeFull)));
    await Promise.all(clones.map(async (p, i) => {
      assert.is(await ask(p, 'CLONE', `$(echo CLONE_${i} | dd of=/dev/vda bs=512 count=1 conv=sync oflag=direct 2>/dev/null; echo ok)`), 'ok');
    }));
    clones.forEach((_, i) => assert.is(readFileSync(join(dir, `clone${i}.img`)).subarray(0, 8).toString(), `CLONE_${i}\n`.slice(0, 8), `clone ${i} wrote its own drive copy`));
    const maps = clones.map((p) => mappingUsage(p.vmmPid(), files.base.mem));
    const rss = maps.reduce((n, m) => n + m.rss, 0);
    const pss = maps.reduce((n, m) => n + m.pss, 0);
    const priv = maps.reduce((n, m) => n + m.privateDirty, 0);
    console.log(`    ${N} clones of a 128 MiB guest: guest RAM mapped from the memory file ${(rss / MiB).toFixed(1)} MiB resident summed over the clones, ` +
      `${(pss / MiB).toFixed(1)} MiB proportional (shared pages counted once), ${(priv / MiB).toFixed(1)} MiB copied on write; ` +
      `one clone maps ${(maps[0]!.rss / MiB).toFixed(1)} MiB`);
    assert.ok(rss > 0, 'the clones read guest RAM from the memory file');
    // Pages read from the file are shared: each clone's proportional share of them is about
    // 1/N of what it maps. Without sharing (each clone its own copy) shared = mapped.
    const shared = pss - priv;
    const mapped = rss - priv;
    assert.ok(shared < (mapped * 2) / N, `the clones share the pages they read (proportional ${shared} vs mapped ${mapped} bytes of clean pages over ${N} clones)`);
    assert.ok(pss + priv < N * 128 * MiB / 4, 'ten clones take far less than ten guests\' RAM');
  } finally {
    await Promise.all(procs.map((p) => p.kill()));
    ns.remove();
  }
});

/** CPU time (ms) per thread name of process `pid` (/proc/pid/task/*: comm, utime + stime). */
function threadCpuMs(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      out.set(comm, (out.get(comm) ?? 0) + (Number(f[11]) + Number(f[12])) * 10); // clock ticks of 10 ms (USER_HZ 100)
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** CPU each thread of the VMM used over `ms` of wall time, as text ("fc_vcpu 0 12%, ..."). */
async function cpuOver(p: KindlingProc, ms: number): Promise<string> {
  const pid = p.vmmPid();
  const a = threadCpuMs(pid);
  await new Promise((r) => setTimeout(r, ms));
  const b = threadCpuMs(pid);
  return [...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const).filter(([, v]) => v > 0)
    .sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${Math.round((100 * v) / ms)}%`).join(', ') || 'idle';
}

function statSafe(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Rss, Pss and Private_Dirty (bytes) of the mappings of file `path` in process `pid`
 * (/proc/pid/smaps), found by inode: `ip netns exec` gives the VMM its own mount namespace,
 * where smaps shows the path relative to the tmpfs, not as this process names it.
 */
function mappingUsage(pid: number, path: string): { rss: number; pss: number; privateDirty: number } {
  const out = { rss: 0, pss: 0, privateDirty: 0 };
  const ino = String(statSync(path).ino);
  let inside = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)/.exec(line);
    if (head) {
      inside = head[1] === ino;
      continue;
    }
    if (!inside) continue;
    const kb = (name: string): number => { const m = new RegExp(`^${name}:\\s+(\\d+) kB`).exec(line); return m ? Number(m[1]) * 1024 : 0; };
    out.rss += kb('Rss');
    out.pss += kb('Pss');
    out.privateDirty += kb('Private_Dirty');
  }
  return out;
}

test.run();
