/**
 * The benchmark run itself, where real KVM is: inside the QEMU sandbox (one sandbox boot per
 * scenario group, see scripts/bench.mjs) or natively. scripts/bench.mjs starts it; it needs the guest fixtures
 * (scripts/fixtures.mjs: $KINDLING_FIXTURES, else the cache's current build), the build (dist/) and, for KVM's statistics, root with debugfs and
 * tracefs mounted. Every scenario runs each side N times, alternating Kindling, QEMU,
 * Kindling, QEMU, ...; it writes the results JSON (bench/results.ts) and nothing else.
 *
 *   node dist/bench/run-inside.js --out results.json [--runs 5] [--only startup,mini,...,fs,...,density]
 *
 * Scenario order: startup, minimal kernel 1 vCPU (boot, exits, memory), minimal kernel
 * 2 vCPUs (per-vCPU cost), Debian kernel 1 vCPU, block, net, vsock, snapshot, density.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ResultsCollector, inScenarioOrder, type BenchResults } from './results.js';
import { KvmStats } from './scenarios/kvm-stats.js';
import { QEMU_MACHINE, type RunContext, type VmSpec } from './scenarios/vm-run.js';
import { defineBootMetrics, definePerVcpuMetric, recordPerVcpu, runBootVariant, type BootVariant } from './scenarios/boot.js';
import { defineStartupMetrics, runStartup } from './scenarios/startup.js';
import { defineBlockMetrics, defineBlockTransportMetrics, runBlock, runBlockTransports } from './scenarios/block.js';
import { defineNetMetrics, runNet } from './scenarios/net.js';
import { defineVsockMetrics, runVsock } from './scenarios/vsock.js';
import { defineFsMetrics, runFs } from './scenarios/fs.js';
import { defineCloneMetrics, defineSnapshotMetrics, runSnapshot, runSnapshotClones, snapshotTargets } from './scenarios/snapshot.js';
import { defineDensityMetrics, runDensity } from './scenarios/density.js';
import { inPlace, stage, type Runtime } from './stage.js';
import { fixturePath, fixturesDir } from '../scripts/fixtures.mjs';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Guest kernel command line (test/helpers/guest.ts testBootArgs); the guest then idles. */
export const BENCH_BOOT_ARGS = 'console=ttyS0 quiet reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd -- kindling-run "sleep 3600"';
/** Guest RAM for every scenario (Firecracker's default). */
export const GUEST_MEM_MIB = 128;

/** Command-line options. */
interface Options {
  out: string;
  runs: number;
  only: Set<string> | undefined;
}

function parseArgs(argv: readonly string[]): Options {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const out = get('out');
  if (!out) throw new Error('usage: run-inside.js --out <results.json> [--runs N] [--only startup,mini,mini2,debian,block,pci,fs,net,vsock,snapshot,clones,density]');
  const only = get('only');
  return { out: resolve(out), runs: Number(get('runs') ?? 5), only: only ? new Set(only.split(',')) : undefined };
}

const log = (m: string): void => console.log(`bench: ${m}`);

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n')[0]?.trim() || `${cmd}: unknown`;
}

function gitCommit(): string {
  if (process.env.KINDLING_BENCH_COMMIT) return process.env.KINDLING_BENCH_COMMIT;
  const r = spawnSync('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

/** Guest fixtures the scenarios boot. */
const FIXTURES = ['bzImage-6.1-mini', 'vmlinuz', 'guest-initrd.cpio.gz', 'guest-vsock-initrd.cpio.gz', 'guest-net-initrd.cpio.gz'];

/** In the sandbox: stage onto tmpfs (bench/stage.ts); natively: use things where they are. */
function runtimeFor(sandbox: boolean, qemu: string, fixtures: string): Runtime {
  for (const name of FIXTURES) fixturePath(name, fixtures); // throws, naming the fix, when one is missing
  if (!sandbox) return inPlace(repo, qemu, fixtures);
  const rt = stage(repo, qemu, fixtures, FIXTURES, join(tmpdir(), 'kindling-bench-stage'));
  log(`staged Node, Kindling, QEMU and the fixtures onto tmpfs in ${rt.stagingSeconds.toFixed(1)} s`);
  return rt;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  // KINDLING_BENCH_CPU_PROF (any value): Kindling children write V8 CPU profiles into prof/
  // beside the results file, the one folder the sandbox can write back to the host.
  if (process.env.KINDLING_BENCH_CPU_PROF) {
    process.env.KINDLING_BENCH_CPU_PROF = join(dirname(opts.out), 'prof');
    mkdirSync(process.env.KINDLING_BENCH_CPU_PROF, { recursive: true });
  }
  const want = (s: string): boolean => !opts.only || opts.only.has(s);
  const fixtures = fixturesDir();
  const sandbox = process.env.KINDLING_IN_SANDBOX === '1';
  const qemu = process.env.KINDLING_QEMU ?? 'qemu-system-x86_64';
  const startedAt = new Date().toISOString();
  const runtime = runtimeFor(sandbox, qemu, fixtures);
  const fx = (name: string): string => join(runtime.fixtures, name);
  const stats = KvmStats.open(log);
  const c = new ResultsCollector();
  const base: VmSpec = { kernel: fx('bzImage-6.1-mini'), initrd: fx('guest-initrd.cpio.gz'), bootArgs: BENCH_BOOT_ARGS, vcpus: 1, memMiB: GUEST_MEM_MIB };
  const ctx = (timeoutMs: number): RunContext => ({ runtime, stats, timeoutMs });
  const mini: BootVariant = { id: 'mini-1vcpu', key: 'mini', title: 'Minimal kernel', spec: base, bootAndExits: true };
  const mini2: BootVariant = { id: 'mini-2vcpu', key: 'mini2', title: 'Minimal kernel, 2 vCPUs', spec: { ...base, vcpus: 2 }, bootAndExits: false };
  const debian: BootVariant = { id: 'debian-1vcpu', key: 'debian', title: 'Debian kernel', spec: { ...base, kernel: fx('vmlinuz') }, bootAndExits: true };

  // Metric catalogue first, so the report's order does not depend on which runs succeed.
  if (want('mini')) defineBootMetrics(c, mini);
  if (want('debian')) defineBootMetrics(c, debian);
  if (want('mini') && want('mini2')) definePerVcpuMetric(c);
  if (want('startup')) defineStartupMetrics(c);
  if (want('block')) defineBlockMetrics(c);
  if (want('pci')) defineBlockTransportMetrics(c);
  if (want('net')) defineNetMetrics(c);
  if (want('vsock')) defineVsockMetrics(c);
  if (want('fs')) defineFsMetrics(c);
  if (want('snapshot')) defineSnapshotMetrics(c);
  if (want('clones')) defineCloneMetrics(c);
  if (want('density')) defineDensityMetrics(c);

  try {
    if (want('startup')) await runStartup(c, base, ctx(60_000), opts.runs, 1, log);
    let one;
    if (want('mini')) one = await runBootVariant(c, mini, ctx(240_000), opts.runs, 1, log);
    if (want('mini2') && one) recordPerVcpu(c, one, await runBootVariant(c, mini2, ctx(240_000), opts.runs, 0, log));
    if (want('debian')) await runBootVariant(c, debian, ctx(420_000), opts.runs, 0, log);
    if (want('block')) await runBlock(c, base, ctx(420_000), opts.runs, log);
    if (want('pci')) await runBlockTransports(c, debian.spec, ctx(420_000), opts.runs, log);
    if (want('net')) await runNet(c, base, fx('guest-net-initrd.cpio.gz'), ctx(900_000), opts.runs, log);
    if (want('fs')) await runFs(c, debian.spec, ctx(900_000), opts.runs, log);
    if (want('vsock')) await runVsock(c, base, fx('guest-vsock-initrd.cpio.gz'), ctx(900_000), opts.runs, log);
    if (want('snapshot')) {
      await runSnapshot(c, base, ctx(600_000), opts.runs, log);
      for (const line of snapshotTargets({ metrics: c.metrics() })) log(`snapshot target ${line.slice(2)}`);
    }
    if (want('clones')) await runSnapshotClones(c, debian.spec, ctx(600_000), log);
    // Ten nested guests booting at once on the sandbox's 2 vCPUs take minutes: 15 per side.
    if (want('density')) await runDensity(c, base, ctx(900_000), opts.runs, log);
  } finally {
    stats.close();
  }

  const metrics = inScenarioOrder(c.metrics());
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
  const results: BenchResults = {
    schema: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    environment: {
      mode: sandbox ? 'sandbox' : 'native',
      caveat: sandbox
        ? 'Both VMMs run as nested hypervisor users inside the project\'s KVM sandbox (QEMU TCG emulating AMD SVM on a machine without VMX/SVM); every exit to userspace costs on the order of a millisecond there, so exit-heavy work dominates. Node, Kindling, QEMU (with their shared libraries) and the guest images were first copied onto the sandbox\'s tmpfs, because its host-root 9p mount is uncached and would otherwise make start-up measure file round trips.'
        : 'Both VMMs run on this host\'s /dev/kvm.',
      kernel: release(),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cpus: cpus().length,
      memMiB: Math.round(totalmem() / 2 ** 20),
      node: process.version,
      qemu: firstLine(qemu, ['--version']),
      kindlingVersion: pkg.version,
      gitCommit: gitCommit(),
      stagedOnTmpfs: sandbox,
      kvmStats: { debugfs: stats.debugfs, tracefsHist: stats.tracefsHist },
    },
    settings: {
      runsPerSide: opts.runs, warmupRuns: 1, guestMemMiB: GUEST_MEM_MIB, bootArgs: BENCH_BOOT_ARGS,
      qemuMachine: `qemu-system-x86_64 -M ${QEMU_MACHINE} -enable-kvm -cpu host -nodefaults -no-user-config -nographic -serial stdio`,
    },
    metrics,
    skipped: c.skipped,
    runs: c.runs,
  };
  writeFileSync(opts.out, `${JSON.stringify(results, null, 1)}\n`);
  const failed = c.runs.filter((r) => !r.ok).length;
  log(`wrote ${opts.out}: ${c.runs.length} runs, ${failed} failed`);
}

main().catch((e: Error) => {
  console.error(`bench: ${e.stack ?? e.message}`);
  process.exit(1);
});
