/**
 * Process plumbing shared by the scenarios: spawning a VMM with its start time taken on the
 * system-wide monotonic clock, watching its output for a marker (the moment the data
 * arrives is the measurement), reading its memory from /proc, and killing it.
 *
 * `process.hrtime.bigint()` is CLOCK_MONOTONIC (libuv), the same clock in every process, so
 * timestamps a child prints (Kindling's InstanceStart) subtract directly from ours.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { kindlingCommand, type Runtime } from '../stage.js';

/** A spawned process whose stdout (and stderr) is collected and searched. */
export class Watched {
  readonly child: ChildProcess;
  /** Monotonic ns just before spawn(). */
  readonly startNs: bigint;
  /** Everything the process wrote to stdout so far. */
  text = '';
  /** The tail of stderr (for error messages). */
  stderr = '';
  /** Resolves when the process has exited. */
  readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: { re: RegExp; resolve: (r: { ns: bigint; match: RegExpMatchArray }) => void }[] = [];

  /** `stdin`: a file descriptor for the child's stdin (the snapshot scenario's console FIFO). */
  constructor(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, stdin: number | 'ignore' = 'ignore') {
    this.startNs = process.hrtime.bigint();
    this.child = spawn(cmd, args, { stdio: [stdin, 'pipe', 'pipe'], env });
    this.child.stdout!.on('data', (b: Buffer) => {
      const ns = process.hrtime.bigint();
      this.text += b.toString('utf8');
      this.waiters = this.waiters.filter((w) => {
        const m = this.text.match(w.re);
        if (m) w.resolve({ ns, match: m });
        return !m;
      });
    });
    this.child.stderr!.on('data', (b: Buffer) => { this.stderr = (this.stderr + b.toString('utf8')).slice(-4000); });
    this.closed = new Promise((resolve) => {
      this.child.on('close', (code, signal) => resolve({ code, signal }));
      this.child.on('error', (e) => {
        this.stderr += `\nspawn ${cmd}: ${e.message}`;
        resolve({ code: null, signal: null });
      });
    });
  }

  /** The process id (0 if spawning failed). */
  get pid(): number {
    return this.child.pid ?? 0;
  }

  /**
   * Resolves with the arrival time of the first stdout data matching `re`; rejects when the
   * process exits first or `ms` pass.
   */
  waitFor(re: RegExp, ms: number): Promise<{ ns: bigint; match: RegExpMatchArray }> {
    const m = this.text.match(re);
    if (m) return Promise.resolve({ ns: process.hrtime.bigint(), match: m });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms / 1000} s; last output: ${this.tail()}`)), ms);
      void this.closed.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`exited (${code ?? signal}) before ${re}; last output: ${this.tail()}`));
      });
      this.waiters.push({ re, resolve: (r) => { clearTimeout(timer); resolve(r); } });
    });
  }

  /** SIGKILL (the same for both VMMs) and wait for the exit. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      // A profiled child (KINDLING_BENCH_CPU_PROF) writes its profiles only when it exits by itself.
      if (process.env.KINDLING_BENCH_CPU_PROF) {
        this.child.kill('SIGTERM');
        await Promise.race([this.closed, new Promise((r) => setTimeout(r, 20_000))]);
      }
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    }
    await this.closed;
  }

  /** The last output, on one line, for error messages. */
  tail(): string {
    return `${this.text.slice(-600)} ${this.stderr.slice(-600)}`.replace(/\s+/g, ' ').trim();
  }
}

/** Memory of one process at one moment (KiB, as /proc reports). */
export interface ProcMemory {
  /** VmRSS: resident set, guest pages included. */
  rssKib: number;
  /** VmHWM: peak resident set so far. */
  hwmKib: number;
  rssAnonKib: number;
  rssFileKib: number;
  rssShmemKib: number;
  threads: number;
  /** Resident pages of the guest-RAM mapping(s): the guest pages touched. */
  guestKib: number;
  /** How many mappings were taken as guest RAM (expected: 1). */
  guestMappings: number;
}

/** One mapping from /proc/<pid>/smaps. */
export interface Mapping {
  name: string;
  sizeKib: number;
  rssKib: number;
}

/** Parses /proc/<pid>/smaps text into mappings. */
export function parseSmaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let cur: Mapping | undefined;
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+\s+\S+\s+\S+\s+\S+\s+\d+\s*(.*)$/.exec(line);
    if (head) {
      cur = { name: head[1]!.trim(), sizeKib: 0, rssKib: 0 };
      out.push(cur);
      continue;
    }
    const field = /^(Size|Rss):\s+(\d+) kB/.exec(line);
    if (field && cur) {
      if (field[1] === 'Size') cur.sizeKib = Number(field[2]);
      else cur.rssKib = Number(field[2]);
    }
  }
  return out;
}

/**
 * Which mappings hold guest RAM. Kindling's is its memfd (`/memfd:kindling-guest-ram`);
 * QEMU's is an anonymous mapping of the guest RAM size (qemu_ram_mmap adds at most an
 * alignment page or two, never megabytes).
 */
export function guestRamMatcher(side: 'kindling' | 'qemu', memMiB: number): (m: Mapping) => boolean {
  if (side === 'kindling') return (m) => m.name.startsWith('/memfd:kindling-guest-ram');
  const lo = memMiB * 1024;
  return (m) => m.name === '' && m.sizeKib >= lo && m.sizeKib <= lo + 4096;
}

const statusField = (status: string, name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN);

/** Reads a live process's memory; throws if it is gone. */
export function readProcMemory(pid: number, isGuest: (m: Mapping) => boolean): ProcMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const guest = parseSmaps(readFileSync(`/proc/${pid}/smaps`, 'utf8')).filter(isGuest);
  return {
    rssKib: statusField(status, 'VmRSS'),
    hwmKib: statusField(status, 'VmHWM'),
    rssAnonKib: statusField(status, 'RssAnon'),
    rssFileKib: statusField(status, 'RssFile'),
    rssShmemKib: statusField(status, 'RssShmem'),
    threads: statusField(status, 'Threads'),
    guestKib: guest.reduce((n, m) => n + m.rssKib, 0),
    guestMappings: guest.length,
  };
}

/** Sleeps `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The kindling binary (bin/firecracker, stage.ts kindlingCommand) with `args`, watched. */
export function watchKindling(rt: Runtime, args: readonly string[]): Watched {
  const k = kindlingCommand(rt, args);
  return new Watched(k.cmd, k.args, k.env);
}

/**
 * One /proc/<pid>[/task/<tid>]/stat: the thread's name, its CPU time (utime + stime), the
 * kernel's part of it (stime) and the part spent running a guest (guest_time, field 43), in ms
 * (clock ticks of 10 ms, USER_HZ 100). Throws once the process or thread is gone.
 */
export function readStat(path: string): { name: string; cpuMs: number; sysMs: number; guestMs: number } {
  const st = readFileSync(path, 'utf8');
  const f = st.replace(/^.*\) /s, '').split(' ');
  return { name: /\((.*)\)/s.exec(st)?.[1] ?? '?', cpuMs: (Number(f[11]) + Number(f[12])) * 10, sysMs: Number(f[12]) * 10, guestMs: Number(f[40]) * 10 };
}

/** Every thread of a process now (`tid` → readStat); empty once it is gone. */
export function threadStats(pid: number): Map<string, ReturnType<typeof readStat>> {
  const out = new Map<string, ReturnType<typeof readStat>>();
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) out.set(t, readStat(`/proc/${pid}/task/${t}/stat`));
  } catch {
    // gone
  }
  return out;
}

/** CPU ms per thread (`tid name` → ms, and `tid name sys` → its kernel part) of a process now; empty once it is gone. */
export function threadCpuMap(pid: number): Map<string, number> {
  return new Map([...threadStats(pid)].flatMap(([t, s]) => [[`${t} ${s.name}`, s.cpuMs], [`${t} ${s.name} sys`, s.sysMs]] as const));
}

/**
 * Which threads used CPU between two threadCpuMap readings (`name:ms`, 10 ms and up, with the
 * kernel's part as ` (sys ms)` once it is 100 ms or more: a device thread's CPU is mostly
 * the host kernel's packet or I/O work or mostly its own JS, and the two call for different
 * fixes). The process's main thread (tid = pid) is named `name (main)`: Node's helper threads
 * share its name, and which of them is busy is the question.
 */
export function cpuSince(before: Map<string, number>, pid: number): string {
  const now = threadCpuMap(pid);
  const since = (k: string): number => (now.get(k) ?? 0) - (before.get(k) ?? 0);
  const main = `${pid} `;
  return [...now.keys()].filter((k) => !k.endsWith(' sys')).map((k) => {
    const name = k.startsWith(main) ? `${k.slice(main.length)} (main)` : k.replace(/^\d+ /, '');
    const ms = since(k);
    const sys = since(`${k} sys`);
    return [`${name}:${ms}${sys >= 100 ? ` (sys ${sys})` : ''}`, ms] as const;
  }).filter(([, ms]) => ms >= 10).map(([text]) => text).join(' ');
}

/** The threads of a process that used 100 ms of CPU or more (`name:ms (guest ms)`), or 'gone'. */
export function threadCpu(pid: number): string {
  const stats = threadStats(pid);
  if (stats.size === 0) return 'gone';
  return [...stats.values()].filter((s) => s.cpuMs >= 100)
    .map((s) => `${s.name}:${s.cpuMs}${s.guestMs ? ` (guest ${s.guestMs})` : ''}`).join(' ');
}

/** CPU time (ms, user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuMs(pid: number): number {
  try {
    return readStat(`/proc/${pid}/stat`).cpuMs;
  } catch {
    return Number.NaN;
  }
}
