/**
 * Scenario **Density**: what a host that packs microVMs pays. Ten identical VMs (the boot
 * scenario's minimal kernel, 1 vCPU, 128 MiB) are started at once as ten processes, and when
 * every guest has reached userspace the scenario reads each process's
 * /proc/<pid>/smaps_rollup and reports, per VM (sum ÷ 10):
 *
 *   PSS   proportional set size: a page shared by k processes counts 1/k in each, so the
 *         node/QEMU binary's and shared libraries' code pages count once across the ten
 *   USS   Private_Clean + Private_Dirty: what killing one of the ten would give back
 *
 * and the time from the first spawn until the tenth marker arrived.
 *
 *   Kindling: ten `bin/firecracker --config-file vm.json --no-api` (the product's own
 *             entry point, not the bench's library harness, so its start-up path is measured)
 *   QEMU:     ten `qemu-system-x86_64 -M microvm ...` (the boot scenario's command line)
 *
 * Each round starts the ten Kindling VMs, measures, kills them, then the ten QEMU VMs. In the
 * nested sandbox (2 vCPUs, every exit ~1 ms) ten guests booting together take minutes, so the
 * timeout is generous (run-inside.ts).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Watched, guestRamMatcher, readProcMemory, watchKindling } from './process.js';
import { GUEST_MARKER, qemuArgs, type RunContext, type VmSpec } from './vm-run.js';
import { kibToMib, nsToMs, type ResultsCollector, type RunRecord, type Side } from '../results.js';

/** VMs started at once per side (the number). */
export const DENSITY_VMS = 10;

/** smaps_rollup fields of one process, KiB. */
export interface Rollup {
  rssKib: number;
  pssKib: number;
  ussKib: number;
  /** Where the PSS is (run data only, for finding what to shrink): anonymous, file-backed, shmem (guest RAM memfd). */
  pssAnonKib: number;
  pssFileKib: number;
  pssShmemKib: number;
}

/** The fields of a Rollup, for sums. */
const ROLLUP_KEYS = ['rssKib', 'pssKib', 'ussKib', 'pssAnonKib', 'pssFileKib', 'pssShmemKib'] as const;

/** Parses /proc/<pid>/smaps_rollup text (Rss, Pss and its split, USS = Private_Clean + Private_Dirty). */
export function parseRollup(text: string): Rollup {
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`smaps_rollup has no ${name} line`);
    return Number(m[1]);
  };
  return {
    rssKib: field('Rss'), pssKib: field('Pss'), ussKib: field('Private_Clean') + field('Private_Dirty'),
    pssAnonKib: field('Pss_Anon'), pssFileKib: field('Pss_File'), pssShmemKib: field('Pss_Shmem'),
  };
}

/** Element-wise sum of rollups divided by `div`. */
function sumRollups(rs: readonly Rollup[], div = 1): Rollup {
  return Object.fromEntries(ROLLUP_KEYS.map((k) => [k, rs.reduce((n, r) => n + r[k], 0) / div])) as unknown as Rollup;
}

/** `pid` and its descendants (a VMM that forks helpers pays for them too). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue; // gone
    }
    for (const tid of tasks) {
      try {
        for (const c of readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').split(/\s+/).filter(Boolean)) out.push(Number(c));
      } catch {
        // the thread exited meanwhile
      }
    }
  }
  return out;
}

/** The summed rollup of a process tree. */
function treeRollup(pid: number): Rollup {
  return sumRollups(processTree(pid).map((p) => parseRollup(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'))));
}

/** Declares the density metrics. */
export function defineDensityMetrics(c: ResultsCollector): void {
  const n = DENSITY_VMS;
  c.define({
    id: 'density.pss_per_vm', scenario: 'Density', label: `host memory per VM, ${n} running (PSS)`, unit: 'MiB', better: 'lower',
    note: `${n} minimal-kernel VMs (1 vCPU, 128 MiB) started at once; when all reached userspace, the sum of Pss from each VMM's /proc/<pid>/smaps_rollup ÷ ${n}. Shared pages (the node or QEMU binary, shared libraries) count once across the ${n}; guest pages touched are included. Kindling: \`bin/firecracker --config-file --no-api\`.`,
  });
  c.define({
    id: 'density.uss_per_vm', scenario: 'Density', label: `private memory per VM, ${n} running (USS)`, unit: 'MiB', better: 'lower',
    note: 'Private_Clean + Private_Dirty from smaps_rollup, summed and divided likewise: what stopping one VM gives back.',
  });
  c.define({
    id: 'density.overhead_per_vm', scenario: 'Density', label: `VMM memory per VM, ${n} running (PSS − guest)`, unit: 'MiB', better: 'lower',
    note: 'PSS per VM minus the resident guest-RAM pages per VM (those are private to one process, so their PSS is their RSS): the VMM\'s own share, independent of how much RAM the guests touched.',
  });
  c.define({
    id: 'density.all_up', scenario: 'Density', label: `${n} VMs started at once: time until all in userspace`, unit: 'ms', better: 'lower',
    note: `from the first of ${n} spawns to the last guest's KINDLING_GUEST_READY line arriving on the host.`,
  });
}

/** The Firecracker-style config file bin/firecracker boots from. */
function kindlingConfig(spec: VmSpec): string {
  return JSON.stringify({
    'boot-source': { kernel_image_path: spec.kernel, initrd_path: spec.initrd, boot_args: spec.bootArgs },
    'machine-config': { vcpu_count: spec.vcpus, mem_size_mib: spec.memMiB },
    drives: [],
  });
}

/** What one round of one side measured. */
interface DensitySample {
  allUpMs: number;
  perVm: Rollup & { guestKib: number };
  vms: (Rollup & { pid: number; upMs: number; guestKib: number })[];
}

/** Starts DENSITY_VMS VMs of `side`, waits for all markers, measures, kills them all. */
async function densityOnce(side: Side, spec: VmSpec, ctx: RunContext, log: (m: string) => void): Promise<DensitySample> {
  const rt = ctx.runtime;
  const dir = mkdtempSync(join(tmpdir(), 'kindling-bench-density-'));
  const procs: Watched[] = [];
  try {
    let cfg = '';
    if (side === 'kindling') {
      cfg = join(dir, 'vm.json');
      writeFileSync(cfg, kindlingConfig(spec));
    }
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < DENSITY_VMS; i++) {
      procs.push(side === 'kindling'
        ? watchKindling(rt, ['--config-file', cfg, '--no-api', '--id', `density-${i}`])
        : new Watched(rt.qemu, qemuArgs(spec, rt.qemuExtraArgs), rt.qemuEnv));
    }
    let up = 0;
    const markers = await Promise.all(procs.map(async (p) => {
      const m = await p.waitFor(new RegExp(GUEST_MARKER), ctx.timeoutMs);
      // A line per VM: scripts/bench.mjs stops a sandbox that prints nothing for 10 minutes.
      log(`density ${side}: ${++up}/${DENSITY_VMS} in userspace after ${(nsToMs(m.ns - t0) / 1000).toFixed(1)} s`);
      return m;
    }));
    const allUpNs = markers.reduce((m, x) => (x.ns > m ? x.ns : m), t0);
    // Measure all ten while all ten run: PSS divides a shared page by the processes mapping it now.
    const isGuest = guestRamMatcher(side, spec.memMiB);
    const vms = procs.map((p, i) => ({ pid: p.pid, upMs: nsToMs(markers[i]!.ns - t0), guestKib: readProcMemory(p.pid, isGuest).guestKib, ...treeRollup(p.pid) }));
    const perVm = { ...sumRollups(vms, DENSITY_VMS), guestKib: vms.reduce((n, v) => n + v.guestKib, 0) / DENSITY_VMS };
    return { allUpMs: nsToMs(allUpNs - t0), perVm, vms };
  } finally {
    await Promise.all(procs.map((p) => p.kill()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the density rounds (ten Kindling VMs, then ten QEMU VMs, in each). */
export async function runDensity(
  c: ResultsCollector, base: VmSpec, ctx: RunContext, rounds: number, log: (m: string) => void,
): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (const side of ['kindling', 'qemu'] as const) {
      const run: RunRecord = { scenario: 'density', variant: `mini-1vcpu-x${DENSITY_VMS}`, side, round, warmup: false, ok: false, startedAt: new Date().toISOString(), data: {} };
      c.runs.push(run);
      try {
        const s = await densityOnce(side, base, ctx, log);
        run.data = s as unknown as Record<string, unknown>;
        run.ok = true;
        c.add('density.pss_per_vm', side, kibToMib(s.perVm.pssKib));
        c.add('density.uss_per_vm', side, kibToMib(s.perVm.ussKib));
        c.add('density.overhead_per_vm', side, kibToMib(s.perVm.pssKib - s.perVm.guestKib));
        c.add('density.all_up', side, s.allUpMs);
        log(`density ${side} round ${round + 1}/${rounds}: all ${DENSITY_VMS} up after ${(s.allUpMs / 1000).toFixed(1)} s; per VM PSS ${kibToMib(s.perVm.pssKib).toFixed(1)} MiB, USS ${kibToMib(s.perVm.ussKib).toFixed(1)} MiB, RSS ${kibToMib(s.perVm.rssKib).toFixed(1)} MiB, guest ${kibToMib(s.perVm.guestKib).toFixed(1)} MiB; PSS anon/file/shmem ${[s.perVm.pssAnonKib, s.perVm.pssFileKib, s.perVm.pssShmemKib].map((k) => kibToMib(k).toFixed(1)).join('/')} MiB`);
      } catch (e) {
        run.error = (e as Error).message;
        log(`density ${side} round ${round + 1} FAILED: ${run.error}`);
      }
    }
  }
}
