/**
 * KVM's own statistics, read the same way for Kindling and for QEMU (neither VMM is asked):
 *
 *  - **exits to userspace**: the `kvm:kvm_userspace_exit` tracepoint fires each time KVM_RUN
 *    returns to the VMM. A tracefs histogram trigger keyed by (thread id, exit reason) counts
 *    them in the kernel without a trace buffer that could overflow; a run's count is the sum
 *    over the VMM process's threads at the moment of the marker, minus what those keys held
 *    before the process started.
 *  - **all VM exits** and friends: the per-VM debugfs folder `/sys/kernel/debug/kvm/<pid>-<fd>/`
 *    (`exits`, `io_exits`, `mmio_exits`, `halt_exits`, ...), which includes exits KVM handles
 *    in the kernel (in-kernel PIT/LAPIC/IOAPIC, HLT, NPT faults, ...).
 *
 * KVM_GET_STATS_FD would give the second set per VM fd too, but only to the process owning
 * the fd; debugfs reaches QEMU's VM as well. Both sources need root and debugfs/tracefs
 * mounted (the sandbox script mounts them); when unavailable, the metrics stay empty and the
 * report says so.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KVM_EXIT } from '../../src/kvm/constants.js';

/** Where the tracepoint may live (tracefs proper, or tracefs auto-mounted under debugfs). */
const EVENT_DIRS = ['/sys/kernel/tracing/events/kvm/kvm_userspace_exit', '/sys/kernel/debug/tracing/events/kvm/kvm_userspace_exit'];
const DEBUGFS_KVM = '/sys/kernel/debug/kvm';
const TRIGGER = 'hist:keys=common_pid,reason:vals=hitcount:size=16384';

/** KVM_EXIT_* number → short name (IO, MMIO, INTR, ...). */
const EXIT_NAMES = new Map<number, string>(Object.entries(KVM_EXIT).map(([k, v]) => [v, k.replace(/^KVM_EXIT_/, '')]));

/** Name for a KVM exit reason number. */
export function exitReasonName(reason: number): string {
  return EXIT_NAMES.get(reason) ?? `reason_${reason}`;
}

/** Userspace exits of one process: total and by KVM exit reason. */
export interface UserspaceExits {
  total: number;
  byReason: Record<string, number>;
}

/** Counts from the tracefs histogram, keyed `${tid},${reason}`. */
export type HistSnapshot = Map<string, number>;

/** Parses a tracefs `hist` file for keys common_pid,reason. */
export function parseHist(text: string): HistSnapshot {
  const out: HistSnapshot = new Map();
  for (const line of text.split('\n')) {
    const m = /common_pid:\s*(?:\S*?\[)?(\d+)\]?\s*,\s*reason:\s*(\d+)\s*\}\s*hitcount:\s*(\d+)/.exec(line);
    if (m) out.set(`${m[1]},${m[2]}`, Number(m[3]));
  }
  return out;
}

/** The thread ids of a live process. */
export function threadIds(pid: number): Set<number> {
  try {
    return new Set(readdirSync(`/proc/${pid}/task`).map(Number));
  } catch {
    return new Set();
  }
}

/** Access to KVM statistics for the whole benchmark (one per process). */
export class KvmStats {
  readonly debugfs: boolean;
  readonly tracefsHist: boolean;
  private readonly eventDir: string | undefined;

  private constructor(debugfs: boolean, eventDir: string | undefined) {
    this.debugfs = debugfs;
    this.eventDir = eventDir;
    this.tracefsHist = eventDir !== undefined;
  }

  /** Finds the sources and installs the histogram trigger; never throws. */
  static open(log: (m: string) => void): KvmStats {
    const debugfs = existsSync(DEBUGFS_KVM);
    if (!debugfs) log(`kvm stats: ${DEBUGFS_KVM} not found (debugfs not mounted or not root): all-exit counts unavailable`);
    let eventDir: string | undefined;
    for (const dir of EVENT_DIRS) {
      if (!existsSync(join(dir, 'trigger'))) continue;
      try {
        writeFileSync(join(dir, 'trigger'), TRIGGER);
        readFileSync(join(dir, 'hist'), 'utf8');
        eventDir = dir;
        break;
      } catch (e) {
        log(`kvm stats: cannot install the histogram trigger in ${dir}: ${(e as Error).message}`);
      }
    }
    if (!eventDir) log('kvm stats: kvm_userspace_exit tracepoint unavailable (tracefs not mounted, no HIST_TRIGGERS, or not root): userspace-exit counts unavailable');
    return new KvmStats(debugfs, eventDir);
  }

  /** Removes the histogram trigger (the kernel would keep counting otherwise). */
  close(): void {
    if (!this.eventDir) return;
    try {
      writeFileSync(join(this.eventDir, 'trigger'), `!${TRIGGER}`);
    } catch { /* already gone */ }
  }

  /** The histogram now (empty when unavailable). */
  snapshot(): HistSnapshot {
    if (!this.eventDir) return new Map();
    try {
      return parseHist(readFileSync(join(this.eventDir, 'hist'), 'utf8'));
    } catch {
      return new Map();
    }
  }

  /** Exits to userspace by the threads `tids` since `before`; undefined when unavailable. */
  userspaceExits(tids: ReadonlySet<number>, before: HistSnapshot): UserspaceExits | undefined {
    if (!this.eventDir) return undefined;
    const now = this.snapshot();
    const byReason: Record<string, number> = {};
    let total = 0;
    for (const [key, count] of now) {
      const [tid, reason] = key.split(',').map(Number) as [number, number];
      if (!tids.has(tid)) continue;
      const n = count - (before.get(key) ?? 0);
      if (n <= 0) continue;
      const name = exitReasonName(reason);
      byReason[name] = (byReason[name] ?? 0) + n;
      total += n;
    }
    return { total, byReason };
  }

  /** Every numeric statistic of the VM(s) created by `pid` (summed), or undefined. */
  vmStats(pid: number): Record<string, number> | undefined {
    if (!this.debugfs) return undefined;
    let dirs: string[];
    try {
      dirs = readdirSync(DEBUGFS_KVM).filter((d) => d.startsWith(`${pid}-`));
    } catch {
      return undefined;
    }
    if (dirs.length === 0) return undefined;
    const out: Record<string, number> = {};
    for (const d of dirs) {
      for (const f of readdirSync(join(DEBUGFS_KVM, d))) {
        try {
          const v = Number(readFileSync(join(DEBUGFS_KVM, d, f), 'utf8').trim());
          if (Number.isFinite(v)) out[f] = (out[f] ?? 0) + v;
        } catch { /* a folder (vcpuN) or an unreadable file */ }
      }
    }
    return out;
  }
}
