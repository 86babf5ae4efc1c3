/**
 * Helpers for tests that use the guest fixtures (scripts/fixtures.mjs finds them) and boot
 * real Linux guests through the MicroVm library: the boot arguments a test guest needs, and
 * waiting for console text.
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { fixturePath } from '../../scripts/fixtures.mjs';

/** The path of guest fixture `name`; throws when it is missing (run: npm run fixtures). */
export const fixture = (name: string): string => fixturePath(name);

/** The bytes of guest fixture `name` (kernel loader tests). */
export const fixtureBytes = (name: string): Uint8Array => new Uint8Array(readFileSync(fixturePath(name)));

/**
 * Kernel arguments for test guests: serial console, Firecracker's i8042 and reboot settings,
 * `quiet` (every console byte is a VM exit, and exits are slow in the nested sandbox), no PCI
 * probing. `run` becomes the init's `kindling-run` command.
 */
export function testBootArgs(run?: string, extra = ''): string {
  const base = `console=ttyS0 quiet reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd ${extra}`.trim();
  return run ? `${base} -- kindling-run ${run}` : base;
}

/**
 * The threads of process `pid` ('self' for this one) whose name `keep` accepts, one line each:
 * name, tid, state, kernel wait channel, current syscall and CPU time. For failure messages of
 * tests that wait on a guest or a backend: halted waiting (S) tells a lost wake-up from a spin (R).
 */
export function threadStates(pid: number | 'self', keep: (comm: string) => boolean = () => true): string[] {
  const base = `/proc/${pid}/task`;
  const rows: string[] = [];
  try {
    for (const t of readdirSync(base)) {
      const read = (f: string): string => { try { return readFileSync(`${base}/${t}/${f}`, 'utf8').trim(); } catch { return '?'; } };
      const comm = read('comm');
      if (!keep(comm)) continue;
      const f = read('stat').replace(/^.*\) /, '').split(' ');
      rows.push(`${comm} ${t}: state ${f[0]}, wchan ${read('wchan')}, syscall ${read('syscall').split(' ')[0]}, CPU ${((Number(f[11]) + Number(f[12])) / 100).toFixed(1)} s`);
    }
  } catch (e) {
    rows.push(`(threads of ${pid} unreadable: ${(e as Error).message})`);
  }
  return rows;
}

/** This process's vCPU threads (`fc_vcpu N`, the in-process VMM's), as threadStates gives them. */
export function vcpuThreads(): string {
  const rows = threadStates('self', (comm) => comm.startsWith('fc_vcpu'));
  return rows.length ? `vCPU threads of this process: ${rows.join('; ')}` : 'no vCPU thread in this process';
}

/** What a Linux guest's console shows when its kernel panics (kernel/panic.c `panic()`). */
export const GUEST_PANIC = 'Kernel panic - not syncing';
/** The first line of a guest kernel's crash report (the panic itself, or what led to it). */
const CRASH_REPORT = new RegExp(`^.*(${GUEST_PANIC}|BUG: |Oops: |general protection fault)`, 'm');

/**
 * The end of a guest's console for a failure message: from the first crash report in its
 * last 8000 characters ("Kernel panic - not syncing", "BUG:", "Oops:", "general protection
 * fault") when there is one, else the last `tailChars`. The report's header line says why
 * the guest died, and the stack dump after it can push that line out of a plain tail.
 */
export function consoleEnd(text: string, tailChars = 2000): string {
  const end = text.slice(-8000);
  const at = end.search(CRASH_REPORT);
  return at >= 0 ? end.slice(at) : text.slice(-tailChars);
}

/** Collects a stream's text and resolves when `pattern` appears (rejects after `ms`). */
export class ConsoleLog {
  text = '';
  private waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];

  constructor(stream: Readable, echo = process.env.KINDLING_ECHO_CONSOLE === '1') {
    stream.on('data', (b: Buffer) => {
      const s = b.toString('utf8');
      if (echo) process.stdout.write(s);
      this.text += s;
      this.waiters = this.waiters.filter((w) => {
        const m = this.text.match(w.re);
        if (m) w.resolve(m);
        return !m;
      });
    });
  }

  waitFor(re: RegExp, ms: number): Promise<RegExpMatchArray> {
    const m = this.text.match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`console did not show ${re} within ${ms / 1000} s; last output:\n${consoleEnd(this.text)}\n${vcpuThreads()}`)), ms);
      this.waiters.push({ re, resolve: (x) => { clearTimeout(timer); resolve(x); } });
    });
  }
}

/** The error `p` rejects with; fails when `p` resolves, or is still pending after `ms`. */
export async function rejectionOf<E = Error>(p: Promise<unknown>, ms: number): Promise<E> {
  const settled = await withTimeout(p.then(() => undefined, (e: E) => ({ e })), ms, `no reply within ${ms / 1000} s`);
  if (!settled) throw new Error('resolved where a rejection was expected');
  return settled.e;
}

/** Resolves like `p`, or rejects with `message` after `ms`; the timer never outlives `p`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, message: string | (() => string)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(typeof message === 'function' ? message() : message)), ms);
    })]);
  } finally {
    clearTimeout(timer);
  }
}
