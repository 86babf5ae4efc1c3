/**
 * Scenario 4, **Startup**: process start → API socket accepting a connection.
 *
 *   Kindling: `bin/firecracker --api-sock <sock>` (Firecracker's API socket, no VM yet; the
 *             launcher starts node from the CLI's startup snapshot)
 *   QEMU:     the boot command line plus `-S -qmp unix:<sock>,server=on,wait=off` (QMP is
 *             QEMU's API; with -S it has created the VM and loaded the kernel, paused)
 *   baseline: bare `node -e 0`, start to exit, in the same rounds — how much of Kindling's
 *             start-up is Node itself.
 *
 * "Accepting" = the first connect() that succeeds; the harness retries every 2 ms, the same
 * for both. Each round runs Kindling, QEMU, then the baseline.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Watched, readProcMemory, sleep, watchKindling } from './process.js';
import { qemuArgs, type RunContext, type VmSpec } from './vm-run.js';
import { kibToMib, nsToMs, type ResultsCollector, type RunRecord } from '../results.js';

/** The metric this scenario feeds (with the bare-node reference series). */
export const STARTUP_METRIC = 'startup.api';

/** The same for `node bin/kindling.js` (the ESM bundle, no startup snapshot); Kindling only. */
export const STARTUP_ESM_METRIC = 'startup.api.esm';

/** Declares the startup metrics. */
export function defineStartupMetrics(c: ResultsCollector): void {
  c.define({
    id: STARTUP_ESM_METRIC, scenario: 'Startup', label: 'process start → API socket accepting, `node bin/kindling.js` (no startup snapshot)', unit: 'ms', better: 'lower',
    note: 'the ESM bundle without the startup snapshot, in the same rounds as bin/firecracker: what the snapshot saves.',
  });
  c.define({
    id: STARTUP_METRIC, scenario: 'Startup', label: 'process start → API socket accepting', unit: 'ms', better: 'lower',
    note: 'Kindling: `bin/firecracker --api-sock` (node from the CLI startup snapshot) until connect() to the socket succeeds; QEMU: the same VM command line with `-S -qmp unix:…` until connect() to QMP succeeds (QEMU has then also created the VM and loaded the kernel); polled every 2 ms.',
  });
  c.define({
    id: 'startup.rss', scenario: 'Startup', label: 'RSS when the API socket accepts', unit: 'MiB', better: 'lower',
    note: 'VmRSS at that moment (Kindling: no VM yet; QEMU: VM created, paused before the first instruction).',
  });
}

/** Resolves once connect(path) succeeds; rejects when `proc` exits or `ms` pass. */
async function waitAccepting(path: string, proc: Watched, ms: number): Promise<bigint> {
  const deadline = performance.now() + ms;
  let exited = false;
  void proc.closed.then(() => { exited = true; });
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(path);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return process.hrtime.bigint();
    if (exited) throw new Error(`exited before its socket accepted: ${proc.tail()}`);
    if (performance.now() > deadline) throw new Error(`socket ${path} not accepting within ${ms / 1000} s`);
    await sleep(2);
  }
}

/** One start-up of a VMM; returns ms to accepting and the RSS then. */
async function startOnce(side: 'kindling' | 'qemu' | 'esm', spec: VmSpec, ctx: RunContext): Promise<{ ms: number; rssKib: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-bench-'));
  const sock = join(dir, `${side}.sock`);
  const rt = ctx.runtime;
  const proc = side === 'esm'
    ? new Watched(rt.node, [join(rt.kindlingRepo, 'bin', 'kindling.js'), '--api-sock', sock, '--id', 'bench'], rt.nodeEnv)
    : side === 'kindling'
    ? watchKindling(rt, ['--api-sock', sock, '--id', 'bench'])
    : new Watched(rt.qemu, qemuArgs(spec, [...rt.qemuExtraArgs, '-S', '-qmp', `unix:${sock},server=on,wait=off`]), rt.qemuEnv);
  try {
    const at = await waitAccepting(sock, proc, 60_000);
    const mem = readProcMemory(proc.pid, () => false);
    return { ms: nsToMs(at - proc.startNs), rssKib: mem.rssKib };
  } finally {
    await proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Bare `node -e 0` (the same Node binary Kindling runs on): spawn to exit, ms. */
async function nodeBaseline(ctx: RunContext): Promise<number> {
  const proc = new Watched(ctx.runtime.node, ['-e', '0'], ctx.runtime.nodeEnv);
  const { code } = await proc.closed;
  if (code !== 0) throw new Error(`node -e 0 exited ${code}`);
  return nsToMs(process.hrtime.bigint() - proc.startNs);
}

/** Runs `rounds` rounds of Kindling, QEMU, baseline (after `warmups` unmeasured ones). */
export async function runStartup(
  c: ResultsCollector, spec: VmSpec, ctx: RunContext, rounds: number, warmups: number, log: (m: string) => void,
): Promise<void> {
  for (let round = -warmups; round < rounds; round++) {
    const warmup = round < 0;
    // 'esm': `node bin/kindling.js`, the ESM bundle without the startup snapshot, as a reference
    // series beside bin/firecracker (does the snapshot pay off here?).
    for (const side of ['kindling', 'qemu', 'baseline', 'esm'] as const) {
      const run: RunRecord = { scenario: 'startup', variant: side === 'esm' ? 'api-esm' : 'api', side: side === 'esm' ? 'kindling' : side, round: Math.max(round, 0), warmup, ok: false, startedAt: new Date().toISOString(), data: {} };
      c.runs.push(run);
      try {
        if (side === 'baseline') {
          const ms = await nodeBaseline(ctx);
          run.data = { ms };
          if (!warmup) c.addReference(STARTUP_METRIC, 'bare `node -e 0` (start to exit)', ms);
        } else if (side === 'esm') {
          const r = await startOnce(side, spec, ctx);
          run.data = r;
          if (!warmup) c.add(STARTUP_ESM_METRIC, 'kindling', r.ms);
        } else {
          const r = await startOnce(side, spec, ctx);
          run.data = r;
          if (!warmup) {
            c.add(STARTUP_METRIC, side, r.ms);
            c.add('startup.rss', side, kibToMib(r.rssKib));
          }
        }
        run.ok = true;
        log(`startup ${side} ${warmup ? 'warm-up' : `round ${round + 1}/${rounds}`}: ${JSON.stringify(run.data)}`);
      } catch (e) {
        run.error = (e as Error).message;
        log(`startup ${side} round ${round + 1} FAILED: ${run.error}`);
      }
    }
  }
}
