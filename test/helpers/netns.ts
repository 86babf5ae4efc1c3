/**
 * What the network KVM tests (test/kvm/net.test.ts, mmds.test.ts) share: a network namespace
 * holding TAPs with link-local /30 addresses (as the jailer puts Firecracker in one), child
 * processes run inside it whose output is collected, and waiting for a line in that output.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

/** `ip …`, its output as text; throws with ip's stderr on failure. */
export const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A child process whose stdout and stderr are collected into one text. */
export interface Proc { child: ChildProcess; text: () => string; exit: Promise<number | null> }

export function run(cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (b: Buffer) => { text += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { text += b.toString(); });
  // 'close', not 'exit': the output is complete only once both pipes have ended.
  return { child, text: () => text, exit: new Promise((r) => child.on('close', (code) => r(code))) };
}

/**
 * Resolves with the first match of `re` in `p`'s output; fails after `ms`, or as soon as `p`
 * has exited without printing it (nothing more can come), with the output.
 */
export async function waitFor(p: Proc, re: RegExp, ms: number, what: string): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  let exited = false;
  void p.exit.then(() => { exited = true; });
  for (;;) {
    const text = p.text();
    // The console's view first: in the raw text /TOKEN_LEN (\d+)/ can match a number a log
    // line cut short; log-line patterns match only in the raw text.
    const m = withoutLogLines(text).match(re) ?? text.match(re);
    if (m) return m;
    if (exited) throw new Error(`${what}: the process exited (code ${p.child.exitCode ?? p.child.signalCode}); output:\n${p.text().slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`${what} within ${ms / 1000} s; output:\n${p.text().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A VMM's stdout carries the guest's console and, as Firecracker's does without --log-path,
 * its log lines: a log line can land inside a console line ("N<log line>\nET_DONE" seen in
 * CI). This is the text with every log line (`<RFC 3339 time> [<id>:<thread>] ...\n`) taken
 * out, wherever it starts, so console markers match whole.
 */
export function withoutLogLines(text: string): string {
  return text.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+ \[[^\]\n]*\] [^\n]*\n/g, '');
}

/** A namespace named after the test and this process, so parallel runs never share one. */
export class NetNs {
  readonly name: string;
  constructor(prefix: string) {
    this.name = `${prefix}-${process.pid}`;
  }

  /** Creates the namespace (replacing a leftover) with `taps`: [name, host address] each, a /30, up. */
  create(taps: readonly (readonly [string, string])[]): void {
    try { ip('netns', 'del', this.name); } catch { /* none left over: the usual case */ }
    ip('netns', 'add', this.name);
    ip('-n', this.name, 'link', 'set', 'lo', 'up');
    for (const [tap, addr] of taps) this.addTap(tap, addr);
  }

  /** Adds a TAP with host address `addr` (a /30), up. */
  addTap(tap: string, addr: string): void {
    ip('-n', this.name, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    ip('-n', this.name, 'addr', 'add', `${addr}/30`, 'dev', tap);
    ip('-n', this.name, 'link', 'set', tap, 'up');
  }

  /** `ip netns exec` arguments that run `args` inside. */
  exec(...args: string[]): string[] {
    return ['netns', 'exec', this.name, ...args];
  }

  remove(): void {
    ip('netns', 'del', this.name);
  }
}
