/**
 * Scenarios 1–3 from one set of boots: **Boot** (time to the guest's userspace marker),
 * **Exits** (KVM exits to userspace during that boot) and **Memory** (VMM RSS overhead =
 * RSS − guest pages touched). Each round boots the same VM under Kindling, then QEMU
 * (A B A B ...), one process per boot, and records every measurement of both.
 *
 * Variants: the minimal kernel at 1 vCPU / 128 MiB (all three scenarios), the Debian kernel
 * at 1 vCPU / 128 MiB (boot, exits, memory), and the minimal kernel at 2 vCPUs (memory only:
 * the difference to 1 vCPU, paired by round, is the cost of one more vCPU — for Kindling one
 * more vCPU actor, a worker_thread with its own V8 isolate).
 */
import { bootOnce, type BootSample, type RunContext, type VmSpec } from './vm-run.js';
import { kibToMib, type ResultsCollector, type RunRecord, type Side } from '../results.js';
import { pairedDifference } from '../stats.js';

/** A boot variant: which VM, and which metrics its samples feed. */
export interface BootVariant {
  /** e.g. `mini-1vcpu`. */
  id: string;
  /** Metric id infix and label prefix: `mini` / `Minimal kernel`. */
  key: string;
  title: string;
  spec: VmSpec;
  /** Record boot time and exits (false for the 2-vCPU memory variant). */
  bootAndExits: boolean;
}

/** Per-variant samples kept for derived metrics (index = round; undefined = failed run). */
export type OverheadByRound = Record<Side, (number | undefined)[]>;

/** Declares the metrics a variant feeds, in report order. */
export function defineBootMetrics(c: ResultsCollector, v: BootVariant): void {
  const t = v.title;
  if (v.bootAndExits) {
    c.define({
      id: `boot.${v.key}.instance_to_ready`, scenario: 'Boot', label: `${t}: InstanceStart → userspace`, unit: 'ms', better: 'lower',
      note: 'Kindling: from vm.start() (InstanceStart: builds the VM, then runs it) to the guest init\'s KINDLING_GUEST_READY line arriving on the host; QEMU: from process start (it has no InstanceStart) to the same line.',
    });
    c.define({
      id: `boot.${v.key}.process_to_ready`, scenario: 'Boot', label: `${t}: process start → userspace`, unit: 'ms', better: 'lower',
      note: 'both: from spawn() of the VMM process to the marker line arriving on the host (includes Node/QEMU start-up).',
    });
    c.define({
      id: `exits.${v.key}.userspace`, scenario: 'Exits', label: `${t}: exits to userspace (KVM)`, unit: 'exits', better: 'lower',
      note: 'returns from KVM_RUN to the VMM until the marker, counted by KVM itself: the kvm:kvm_userspace_exit tracepoint with a tracefs histogram keyed by thread id, summed over the VMM\'s threads (includes KVM_EXIT_INTR from signals).',
    });
    c.define({
      id: `exits.${v.key}.all`, scenario: 'Exits', label: `${t}: all VM exits (KVM debugfs)`, unit: 'exits', better: 'lower',
      note: 'the per-VM debugfs counter `exits` at the marker: every VM exit, including those KVM handles in the kernel.',
    });
    c.define({
      id: `exits.${v.key}.self`, scenario: 'Exits', label: `${t}: exits Kindling counted itself`, unit: 'exits', better: 'lower',
      note: 'Kindling\'s vCPU actors\' own counters (IO in/out, MMIO read/write, other) at the marker; KVM_EXIT_INTR is not counted there.',
    });
  }
  if (v.spec.vcpus === 1) {
    c.define({
      id: `mem.${v.key}.overhead`, scenario: 'Memory', label: `${t}: VMM overhead (RSS − guest)`, unit: 'MiB', better: 'lower',
      note: `VmRSS of the VMM process at the marker minus the resident pages of its guest-RAM mapping (Kindling: its guest-RAM mapping; QEMU: the ${v.spec.memMiB} MiB anonymous RAM block); ${v.spec.vcpus} vCPU, ${v.spec.memMiB} MiB.`,
    });
    c.define({ id: `mem.${v.key}.rss`, scenario: 'Memory', label: `${t}: VMM RSS`, unit: 'MiB', better: 'lower', note: 'VmRSS at the marker, guest pages included.' });
    c.define({ id: `mem.${v.key}.guest`, scenario: 'Memory', label: `${t}: guest pages touched`, unit: 'MiB', better: 'lower', note: 'resident pages of the guest-RAM mapping at the marker (depends on the guest, not the VMM, but THP or pre-faulting would show here).' });
  }
}

/** Declares the derived per-vCPU metric (after the 1- and 2-vCPU variants). */
export function definePerVcpuMetric(c: ResultsCollector): void {
  c.define({
    id: 'mem.per_vcpu', scenario: 'Memory', label: 'Cost of one more vCPU (actor)', unit: 'MiB', better: 'lower',
    note: 'VMM overhead with 2 vCPUs minus with 1 vCPU (minimal kernel, 128 MiB), paired by round. For Kindling this is one more vCPU actor: a worker_thread with its own V8 isolate; for QEMU one more vCPU thread.',
  });
}

/** Records one sample into the variant's metrics. */
function record(c: ResultsCollector, v: BootVariant, s: BootSample): number {
  const overhead = kibToMib(s.memory.rssKib - s.memory.guestKib);
  if (v.bootAndExits) {
    c.add(`boot.${v.key}.instance_to_ready`, s.side, s.instanceToReadyMs);
    c.add(`boot.${v.key}.process_to_ready`, s.side, s.processToReadyMs);
    c.add(`exits.${v.key}.userspace`, s.side, s.userspaceExits?.total);
    c.add(`exits.${v.key}.all`, s.side, s.kvm?.exits);
    if (s.side === 'kindling') c.add(`exits.${v.key}.self`, s.side, s.selfExits);
  }
  if (v.spec.vcpus === 1) {
    c.add(`mem.${v.key}.overhead`, s.side, overhead);
    c.add(`mem.${v.key}.rss`, s.side, kibToMib(s.memory.rssKib));
    c.add(`mem.${v.key}.guest`, s.side, kibToMib(s.memory.guestKib));
  }
  return overhead;
}

/** One line of progress for a sample. */
function describe(s: BootSample): string {
  const ue = s.userspaceExits ? `, ${s.userspaceExits.total} userspace exits` : '';
  const phases = s.phases ? `; InstanceStart → guest uptime ${s.guestUptimeS ?? '?'} s at the marker, ${(s.instanceToReadyMs / 1000).toFixed(2)} s in all; ${s.phases}` : '';
  return `${(s.processToReadyMs / 1000).toFixed(1)} s to userspace${ue}, RSS ${kibToMib(s.memory.rssKib).toFixed(1)} MiB (guest ${kibToMib(s.memory.guestKib).toFixed(1)})${phases}`;
}

/**
 * Runs `warmups` unmeasured and `rounds` measured rounds of the variant (Kindling then QEMU
 * in each); returns the VMM overhead per round and side for derived metrics.
 */
export async function runBootVariant(
  c: ResultsCollector, v: BootVariant, ctx: RunContext, rounds: number, warmups: number, log: (m: string) => void,
): Promise<OverheadByRound> {
  const overhead: OverheadByRound = { kindling: [], qemu: [] };
  for (let round = -warmups; round < rounds; round++) {
    for (const side of ['kindling', 'qemu'] as const) {
      const warmup = round < 0;
      const run: RunRecord = { scenario: 'boot', variant: v.id, side, round: Math.max(round, 0), warmup, ok: false, startedAt: new Date().toISOString(), data: {} };
      c.runs.push(run);
      try {
        const s = await bootOnce(side, v.spec, ctx);
        run.ok = true;
        const { console: _console, ...data } = s;
        run.data = data as unknown as Record<string, unknown>;
        if (!warmup) overhead[side][round] = record(c, v, s);
        log(`${v.id} ${side} ${warmup ? 'warm-up' : `round ${round + 1}/${rounds}`}: ${describe(s)}`);
      } catch (e) {
        run.error = (e as Error).message;
        if (!warmup) overhead[side][round] = undefined;
        log(`${v.id} ${side} ${warmup ? 'warm-up' : `round ${round + 1}`} FAILED: ${run.error}`);
      }
    }
  }
  return overhead;
}

/** Fills mem.per_vcpu from paired 2-vCPU and 1-vCPU overheads. */
export function recordPerVcpu(c: ResultsCollector, one: OverheadByRound, two: OverheadByRound): void {
  for (const side of ['kindling', 'qemu'] as const) {
    const a = two[side].map((x) => x ?? Number.NaN);
    const b = one[side].map((x) => x ?? Number.NaN);
    for (const d of pairedDifference(a, b)) c.add('mem.per_vcpu', side, d);
  }
}
