/**
 * CPU templates and huge pages under real KVM, through `bin/kindling`'s API, with one guest
 * boot (the minimal kernel, 2 vCPUs, 128 MiB). The host here is the KVM sandbox's emulated CPU
 * (QEMU TCG `-cpu max`: AuthenticAMD, family 6 model 6, with SVM).
 *
 * Before the boot, each failing InstanceStart leaves the process pre-boot (not fatal), as in
 * Firecracker, and the next one is tried:
 *  - every static template whose vendor or CPU model is not this host's fails with Firecracker's
 *    `Failed to get CPU template: ...` text (C3/T2/T2S/T2CL on AMD: vendor mismatch; T2A on an
 *    AMD that is not Milan: CPU model), computed from this host's vendor and model;
 *  - custom templates KVM cannot honour: a KVM capability it lacks, a CPUID leaf it does not
 *    offer, an MSR it cannot read — Firecracker's texts;
 *  - huge_pages "2M" with the host's pool emptied: a clear error naming the pool, no SIGBUS.
 * Then the pool gets the guest's 64 pages and the guest boots with Firecracker's own T2A.json
 * as a custom template (PUT /cpu-config):
 *  - the pool's available pages (free − reserved) fell by exactly 64 at InstanceStart, and the
 *    VMM's guest RAM mapping is 128 MiB of 2 MiB kernel pages;
 *  - both vCPUs show one flag set; features T2A hides that this host has and KVM offers (SVM,
 *    ADX, ...) are gone from the guest's /proc/cpuinfo, features it leaves (sse2, pni) are
 *    there, and the family/model/stepping are T2A's (6/63/2);
 *  - a snapshot of the huge-page guest cannot load from its file (File backend) in a fresh
 *    process: Firecracker's HugetlbfsSnapshot text; through Uffd (the example handler, told
 *    2 MiB pages) it loads, takes the guest's pages from the pool again and runs on (its
 *    counter goes on).
 * /proc/sys/vm/nr_hugepages is put back as it was.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pollUntil } from '../helpers/poll.js';
import { fixture, testBootArgs, withTimeout } from '../helpers/guest.js';
import { KindlingProc } from '../helpers/kindling-proc.js';
import { FirecrackerClient } from 'kindling/client';
import { T2A_JSON } from '../helpers/cpu-template-json.js';
import { Kvm, type CpuidEntry } from '../../src/kvm/kvm.js';
import { cpuVendor } from '../../src/arch/x86_64/cpuid.js';
import { STATIC_TEMPLATE_HOSTS, cpuModelOf, type StaticTemplateName } from '../../src/arch/x86_64/cpu-template.js';
import { hugePagePool } from '../../src/memory/huge-pages.js';

const dir = mkdtempSync(join(tmpdir(), 'kindling-cpu-'));
const MEM_MIB = 128;
const GUEST_PAGES = MEM_MIB / 2;
const NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages';

// One line each; the script travels in double quotes on the kernel command line (none inside).
const SCRIPT = [
  'echo NCPU=$(grep -c ^processor /proc/cpuinfo)',
  'echo FLAGSETS=$(grep ^flags /proc/cpuinfo | sort -u | wc -l)',
  'grep -m1 ^flags /proc/cpuinfo | sed s/^flags/GFLAGS/',
  "echo GFMS=$(grep -m1 ^cpu.family /proc/cpuinfo | cut -d: -f2)/$(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2)/$(grep -m1 ^stepping /proc/cpuinfo | cut -d: -f2)",
  'echo GUEST_DONE',
  'i=0; while true; do i=$((i+1)); echo TICK $i; sleep 1; done',
].join('; ');

/**
 * Features T2A hides (bits its modifiers force to 0), by Linux's /proc/cpuinfo name. Not
 * 3dnowprefetch: Linux sets it itself on any 64-bit AMD CPU (arch/x86/kernel/cpu/amd.c).
 */
const T2A_HIDES: [leaf: number, reg: 'ebx' | 'ecx' | 'edx', bit: number, flag: string][] = [
  [0x80000001, 'ecx', 2, 'svm'], [0x80000001, 'ecx', 6, 'sse4a'], [0x80000001, 'ecx', 7, 'misalignsse'],
  [0x80000001, 'edx', 22, 'mmxext'], [0x80000001, 'edx', 26, 'pdpe1gb'],
  [7, 'ebx', 18, 'rdseed'], [7, 'ebx', 19, 'adx'], [7, 'ebx', 23, 'clflushopt'], [7, 'ebx', 24, 'clwb'], [7, 'ebx', 29, 'sha_ni'],
  [7, 'ecx', 3, 'pku'], [7, 'ecx', 22, 'rdpid'], [7, 'ecx', 8, 'gfni'],
];
/** Features T2A leaves alone. */
const T2A_KEEPS = ['sse2', 'pni', 'fpu'];

const hostFlags = (): Set<string> => new Set(readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:\s*(.*)$/m)![1]!.split(/\s+/));

/** The VMM's mapping of `bytes` in 2 MiB kernel pages, from its smaps. */
function hugeMapping(pid: number, bytes: number): boolean {
  const blocks = readFileSync(`/proc/${pid}/smaps`, 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  return blocks.some((b) => new RegExp(`^Size:\\s+${bytes / 1024} kB`, 'm').test(b) && /^KernelPageSize:\s+2048 kB/m.test(b));
}

test('static templates refused on a host they do not fit; custom template errors; huge pages from the pool; Firecracker\'s T2A.json masks the guest\'s CPU', async () => {
  const kvm = Kvm.open();
  let supported: CpuidEntry[];
  try {
    supported = kvm.getSupportedCpuid();
  } finally {
    kvm.close();
  }
  const vendor = cpuVendor(supported);
  const fms = supported.find((e) => e.function === 1 && e.index === 0)!.eax;
  const model = cpuModelOf(fms);
  console.log(`\n    host: ${vendor}, leaf 1 EAX 0x${fms.toString(16)} (family ${model.family}+${model.extendedFamily}, model ${model.extendedModel}:${model.model}, stepping ${model.stepping})`);
  const nrBefore = readFileSync(NR_HUGEPAGES, 'utf8').trim();
  const p = new KindlingProc(dir, 'cpu');
  const fault = async (what: string, want: string): Promise<void> => {
    const r = await api.request('PUT', '/actions', { action_type: 'InstanceStart' });
    assert.is(r.status, 400, `${what}: ${r.body}${p.tail()}`);
    assert.is((JSON.parse(r.body) as { fault_message: string }).fault_message, want, what);
  };
  const api = await p.api();
  const t0 = performance.now();
  const step = (what: string): void => console.log(`    [${((performance.now() - t0) / 1000).toFixed(1)} s] ${what}`);
  // Every VMM's console and log, for a failure (the sandbox's /tmp goes with it).
  const tails: (() => string)[] = [() => `VMM cpu:${p.tail()}`];
  try {
    await api.putBootSource({ kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs(`"${SCRIPT}"`, 'loglevel=3') });

    step('static templates');
    // --- Static templates that do not fit this host ---
    for (const name of ['C3', 'T2', 'T2S', 'T2CL', 'T2A'] as StaticTemplateName[]) {
      const want = STATIC_TEMPLATE_HOSTS[name];
      const modelFits = want.models.some((m) => JSON.stringify(cpuModelOf(m)) === JSON.stringify(model));
      if (want.vendor === vendor && modelFits) {
        console.log(`    ${name} applies to this host: not tried (it would boot)`);
        continue;
      }
      await api.putMachineConfig({ vcpu_count: 2, mem_size_mib: MEM_MIB, cpu_template: name });
      const reason = want.vendor !== vendor ? 'CPU vendor mismatched between actual CPU and CPU template.' : 'The current CPU model is not permitted to apply the CPU template.';
      await fault(name, `Start microvm error: Failed to get CPU template: ${reason}`);
    }

    // --- Custom templates KVM cannot honour (a PUT /cpu-config replaces the static template) ---
    await api.putCpuConfig({ kvm_capabilities: ['1000'] });
    await fault('a missing KVM capability', 'Start microvm error: Kvm error: Missing KVM capabilities: 0x3e8');
    await api.putCpuConfig({ cpuid_modifiers: [{ leaf: '0x4fffffff', subleaf: '0x0', flags: 0, modifiers: [{ register: 'eax', bitmap: '0b1' }] }] });
    await fault('a CPUID leaf KVM lacks', 'Start microvm error: System configuration error: Failed to create guest config: Template changes a CPUID entry not supported by KVM: Leaf: 4fffffff, Subleaf: 0');
    await api.putCpuConfig({ msr_modifiers: [{ addr: '0xdeadbeef', bitmap: '0b1' }] });
    await fault('an MSR KVM cannot read', 'Start microvm error: System configuration error: Failed to create guest config: KVM vcpu ioctl failed: Failed to get KVM vcpu msr: 0xdeadbeef');

    // --- Huge pages: an empty pool is an error at InstanceStart ---
    await api.putCpuConfig(T2A_JSON);
    await api.putMachineConfig({ vcpu_count: 2, mem_size_mib: MEM_MIB, huge_pages: '2M' });
    writeFileSync(NR_HUGEPAGES, '0');
    const empty = hugePagePool();
    await fault('an empty huge page pool', `Start microvm error: Invalid Memory Configuration: Cannot create mmap region: Out of memory (os error 12): guest memory needs ${GUEST_PAGES} free 2 MiB huge pages and the host's pool has ${empty.free! - empty.reserved!} (${empty.total} in total; reserve more through /proc/sys/vm/nr_hugepages)`);

    step('boot with T2A.json over huge pages');
    // --- The guest's pages in the pool, and the boot ---
    writeFileSync(NR_HUGEPAGES, String(GUEST_PAGES));
    const pool = hugePagePool();
    assert.is(pool.total, GUEST_PAGES, 'the sandbox gave the pool the guest\'s pages');
    const r = await api.request('PUT', '/actions', { action_type: 'InstanceStart' });
    assert.is(r.status, 204, `InstanceStart: ${r.body}${p.tail()}`);
    const after = hugePagePool();
    console.log(`    pool before: total ${pool.total}, free ${pool.free}, reserved ${pool.reserved}; after InstanceStart: free ${after.free}, reserved ${after.reserved}`);
    assert.is((pool.free! - pool.reserved!) - (after.free! - after.reserved!), GUEST_PAGES, 'the guest\'s RAM took exactly its pages from the pool');
    assert.ok(hugeMapping(p.vmmPid(), MEM_MIB * 1024 * 1024), 'the VMM maps guest RAM in 2 MiB pages');
    const mc = await api.request('GET', '/machine-config');
    assert.equal(JSON.parse(mc.body), { vcpu_count: 2, mem_size_mib: MEM_MIB, smt: false, track_dirty_pages: false, huge_pages: '2M' }, 'a custom template is not shown');

    await p.waitConsole(/GUEST_DONE/, 300_000);
    step('guest done');
    const touched = hugePagePool();
    console.log(`    after the boot: free ${touched.free}, reserved ${touched.reserved} (${pool.free! - touched.free!} pages touched by the guest)`);
    assert.ok(touched.free! < pool.free!, 'the guest\'s pages come from the pool as it touches them');
    assert.is(p.console.match(/NCPU=(\d+)/)?.[1], '2');
    assert.is(p.console.match(/FLAGSETS=(\d+)/)?.[1], '1', 'every vCPU has the same flags');
    const guest = new Set(p.console.match(/GFLAGS\s*:\s*(.*?)\r?\n/)![1]!.split(/\s+/));
    const host = hostFlags();
    const leaf = (fn: number): CpuidEntry | undefined => supported.find((e) => e.function === fn && e.index === 0);
    const masked: string[] = [];
    for (const [fn, reg, bit, flag] of T2A_HIDES) {
      assert.not.ok(guest.has(flag), `T2A hides ${flag}`);
      const offered = ((leaf(fn)?.[reg] ?? 0) >>> bit) & 1;
      if (offered && host.has(flag)) masked.push(flag);
    }
    console.log(`    hidden by the template though the host has them and KVM offers them: ${masked.join(' ')}`);
    assert.ok(masked.length > 0, 'at least one feature the host has is gone in the guest');
    for (const flag of T2A_KEEPS) assert.ok(guest.has(flag), `the guest keeps ${flag}`);
    const gfms = p.console.match(/GFMS=\s*(\d+)\/\s*(\d+)\/\s*(\d+)/);
    assert.equal(gfms?.slice(1).map(Number), [6, 63, 2], 'T2A\'s family 6, model 0x3f, stepping 2');

    // --- A huge-page snapshot loads through Uffd only ---
    await pollUntil(() => /TICK 2\r?\n/.test(p.console), 60_000, () => `the guest's counter did not run${p.tail()}`, 50);
    step('pause');
    // Shorter waits than the client's 180 s from here on: a stuck request shows its VMM's log sooner.
    const quick = new FirecrackerClient(p.sock, { headersTimeout: 90_000, bodyTimeout: 90_000 });
    const paused = await quick.request('PATCH', '/vm', { state: 'Paused' });
    assert.is(paused.status, 204, paused.body);
    const lastTick = Math.max(...[...p.console.matchAll(/TICK (\d+)\r?\n/g)].map((m) => Number(m[1])));
    const snap = { snapshot_path: join(dir, 'vm.state'), mem_file_path: join(dir, 'vm.mem') };
    step('snapshot/create');
    const created = await quick.request('PUT', '/snapshot/create', snap);
    await quick.close();
    assert.is(created.status, 204, `snapshot: ${created.body}`);
    const q = new KindlingProc(dir, 'load');
    tails.push(() => `VMM load:${q.tail()}`);
    try {
      step('snapshot/load, File backend');
      const api2 = await q.api();
      const load = await api2.request('PUT', '/snapshot/load', { snapshot_path: snap.snapshot_path, mem_backend: { backend_type: 'File', backend_path: snap.mem_file_path } });
      assert.is(load.status, 400, load.body);
      assert.is((JSON.parse(load.body) as { fault_message: string }).fault_message,
        'Load snapshot error: Failed to restore from snapshot: Failed to load guest memory: Error creating guest memory from file: Cannot restore hugetlbfs backed snapshot by mapping the memory file. Please use uffd.');
      assert.is(await q.exit, 1, 'a failed load ends the process');
    } finally {
      await q.kill();
    }
    // The first VM goes, and its pages with it; the restored one reserves them again.
    await p.kill();
    const freed = hugePagePool();
    assert.is(freed.free, GUEST_PAGES, `the first VM's pages went back to the pool (${JSON.stringify(freed)})`);
    // Not `uffd.sock`: KindlingProc 'uffd' binds its API socket there.
    const uffdSock = join(dir, 'page-faults.sock');
    const handler = spawn(process.execPath, [resolve('dist/examples/uffd/handler.js'), uffdSock, snap.mem_file_path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let handlerOut = '';
    handler.stdout!.on('data', (x: Buffer) => { handlerOut += x.toString(); });
    handler.stderr!.on('data', (x: Buffer) => { handlerOut += x.toString(); });
    const handlerExit = new Promise<number | null>((r) => handler.on('exit', (code) => r(code)));
    const u = new KindlingProc(dir, 'uffd');
    tails.push(() => `VMM uffd:${u.tail()}\nhandler:\n${handlerOut.slice(-1500)}`);
    try {
      step('snapshot/load, Uffd backend');
      await pollUntil(() => existsSync(uffdSock), 30_000, () => `the uffd handler did not listen: ${handlerOut}`, 50);
      const api3 = await u.api();
      const load = await api3.request('PUT', '/snapshot/load', { snapshot_path: snap.snapshot_path, mem_backend: { backend_type: 'Uffd', backend_path: uffdSock }, resume_vm: true });
      assert.is(load.status, 204, `Uffd load: ${load.body}${u.tail()}\nhandler: ${handlerOut}`);
      assert.match(handlerOut, /uffd handler: ready/);
      const restored = hugePagePool();
      assert.is(restored.free! - restored.reserved!, 0, `the restored guest reserved its ${GUEST_PAGES} pages again (${JSON.stringify(restored)})`);
      assert.ok(hugeMapping(u.vmmPid(), MEM_MIB * 1024 * 1024), 'the restored VMM maps guest RAM in 2 MiB pages');
      step('resumed; waiting for the counter');
      await u.waitConsole(new RegExp(`TICK ${lastTick + 2}\\r?\\n`), 120_000);
      await u.kill();
      const code = await withTimeout(handlerExit, 30_000, `the handler did not exit after the VMM: ${handlerOut}`);
      assert.is(code, 0, handlerOut);
      console.log(`    Uffd restore of the huge-page guest ran on past TICK ${lastTick}; handler: ${handlerOut.trim().split('\n').pop()}`);
    } finally {
      await u.kill();
      if (handler.exitCode === null) handler.kill('SIGKILL');
    }
  } catch (e) {
    step(`failed: ${(e as Error).message}`);
    for (const t of tails) console.log(t());
    throw e;
  } finally {
    await p.kill();
    writeFileSync(NR_HUGEPAGES, nrBefore);
  }
  assert.is(hugePagePool().reserved, 0, 'the VMM\'s exit gave its pages back');
});

test.run();
