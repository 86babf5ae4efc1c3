/**
 * Scenario 8, **Snapshot** (issue 16): snapshot create time, restore latency and host memory
 * per clone, Kindling against QEMU microvm in the same run.
 *
 * Guest: the minimal kernel and the standard initramfs, its console in a loop that answers
 * every line typed on it (`stty -echo; while read l; do echo ACK_$l; done`), so "the guest runs again"
 * is measured from outside as the first answer on the console. Console input is a FIFO on
 * the VMM's stdin for both (Kindling reads stdin into its UART when it is a pipe, as
 * Firecracker does; see test/helpers/kindling-proc.ts), and QEMU runs `-serial stdio`.
 *
 *   create   Kindling: `bin/kindling --api-sock`, booted over the API, PATCH /vm Paused, then
 *            the time of PUT /snapshot/create (Full, state + memory file).
 *            QEMU: QMP `stop`, then `migrate` to `exec:cat > FILE` (QEMU 7.2 has no `file:`
 *            URI) with max-bandwidth lifted, timed until query-migrate says completed
 *            (polled every 5 ms). QEMU's stream skips zero pages; Kindling's file holds all RAM.
 *   restore  Both: a fresh process, started ahead as a pool of VMMs would be: t0 comes once its
 *            control socket answers and it has then used no CPU for 300 ms. Kindling: t0 = PUT
 *            /snapshot/load (File backend, resume_vm true). QEMU: `-incoming defer`; t0 = `migrate-incoming` of `exec:cat FILE`, query-status polled every 5 ms
 *            and `cont` when it leaves `inmigrate`. From t0 both get the same probe,
 *            a line typed every 10 ms (bytes typed before the VM runs may be dropped), and
 *            the clock stops when the first `ACK_` arrives on the console.
 *   clones   ten restores of one 128 MiB snapshot running at once (each answered a probe),
 *            then PSS and RSS of every VMM process from /proc/<pid>/smaps_rollup, averaged
 *            per clone. Kindling maps the memory file MAP_PRIVATE, so clean guest pages are
 *            shared through the page cache; each QEMU reads the stream into its own RAM.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FirecrackerClient } from 'kindling/client';
import { Watched, cpuMs, cpuSince, sleep, threadCpu, threadCpuMap } from './process.js';
import { kindlingCommand } from '../stage.js';
import { GUEST_MARKER, qemuArgs, type RunContext, type VmSpec } from './vm-run.js';
import { nsToMs, type BenchResults, type ResultsCollector, type RunRecord, type Side } from '../results.js';

/** Guest sizes compared (MiB). */
const SIZES = [128, 2048] as const;
/** Clones at once (KINDLING_BENCH_SNAPSHOT_CLONES overrides: the sandbox kernel has died during this step). */
const CLONES = Number(process.env.KINDLING_BENCH_SNAPSHOT_CLONES ?? 10);
const ACK = /ACK_P\d+/;
/**
 * `stty -echo` first: with the tty echoing, every byte typed while the VMM was still loading
 * (a line per 10 ms) was echoed back ahead of the first answer, one UART exit per byte, so the
 * answer waited behind a backlog that grew with the load's own duration (seconds nested).
 */
const GUEST_CMD = '"stty -echo; while read l; do echo ACK_$l; done"';

/** Declares the snapshot metrics. */
export function defineSnapshotMetrics(c: ResultsCollector): void {
  for (const mib of SIZES) {
    c.define({ id: `snapshot.create.${mib}`, scenario: 'Snapshot', label: `snapshot create, ${mib} MiB guest`, unit: 'ms', better: 'lower', note: 'paused VM. Kindling: time of PUT /snapshot/create (Full; state file + memory file of all RAM). QEMU: QMP `migrate` to `exec:cat > FILE` (max-bandwidth lifted) until query-migrate reports completed, polled every 5 ms; its stream leaves out zero pages.' });
    c.define({ id: `snapshot.restore.${mib}`, scenario: 'Snapshot', label: `restore to console answer, ${mib} MiB guest`, unit: 'ms', better: 'lower', note: 'process already up, its control socket ready and the process idle (no CPU used for 300 ms, both sides; excluded). Kindling: from PUT /snapshot/load (File backend, resume_vm) to the guest\'s first answer to a console line; QEMU (`-incoming defer`): from QMP `migrate-incoming` of `exec:cat FILE` (then `cont` as soon as query-status, polled every 5 ms, leaves inmigrate) to the same answer. Lines are typed every 10 ms from t0. Targets: Kindling 2 GiB ≤ 1.2× its 128 MiB, and ≤ 0.5× QEMU\'s 2 GiB.' });
  }
  c.define({ id: 'snapshot.load.128', scenario: 'Snapshot', label: 'PUT /snapshot/load request, 128 MiB', unit: 'ms', better: 'lower', note: 'Kindling only: the load request alone (its 204 comes back with the vCPUs resumed).' });
  c.define({ id: 'snapshot.load.2048', scenario: 'Snapshot', label: 'PUT /snapshot/load request, 2048 MiB', unit: 'ms', better: 'lower' });
  c.define({ id: 'snapshot.socket', scenario: 'Snapshot', label: 'process start → control socket, restore side', unit: 'ms', better: 'lower', note: 'not part of the restore latency above. Kindling: spawn of `bin/kindling --api-sock` until the socket file exists; QEMU: spawn of `qemu -incoming defer` until QMP answers qmp_capabilities.' });
}

/** Declares the clone metrics (their own scenario group: ten nested VMs are the sandbox's heaviest load). */
export function defineCloneMetrics(c: ResultsCollector): void {
  c.define({ id: 'snapshot.clone_pss', scenario: 'Snapshot', label: `host memory per clone (PSS), ${CLONES} clones of 128 MiB`, unit: 'MiB', better: 'lower', note: `${CLONES} restores of one 128 MiB snapshot of the Debian kernel (tickless when idle) running at once, each having answered a console line; sum of /proc/<pid>/smaps_rollup Pss over the VMM processes ÷ ${CLONES}. Kindling maps the memory file MAP_PRIVATE (page cache shared between clones); each QEMU reads the migration stream into its own RAM.` });
  c.define({ id: 'snapshot.clone_rss', scenario: 'Snapshot', label: `host memory per clone (RSS), ${CLONES} clones of 128 MiB`, unit: 'MiB', better: 'lower', note: 'the same processes\' Rss, for contrast (shared pages counted in every clone).' });
}

/** A VMM process with its console on a FIFO stdin. */
class ConsoleVmm {
  readonly proc: Watched;
  private readonly stdinFd: number;
  private typed = 0;

  constructor(dir: string, name: string, cmd: string, args: readonly string[], env: NodeJS.ProcessEnv) {
    const fifo = join(dir, `${name}.stdin`);
    const made = spawnSync('mkfifo', [fifo], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`mkfifo ${fifo}: ${made.stderr}`);
    // O_RDWR never blocks on a FIFO and keeps a writer open, so the VMM never sees EOF.
    this.stdinFd = openSync(fifo, 'r+');
    this.proc = new Watched(cmd, args, env, this.stdinFd);
  }

  /** Types `P<n>` lines every 10 ms until the guest answers one; resolves at the answer's arrival (monotonic ns). */
  async probe(ms: number): Promise<bigint> {
    const answer = this.proc.waitFor(ACK, ms);
    let done = false;
    void answer.catch(() => undefined).then(() => { done = true; });
    const typing = (async () => {
      while (!done) {
        // At most ~40 KiB in all: a full FIFO would block this (synchronous) write.
        if (this.typed < 8000) writeSync(this.stdinFd, `P${++this.typed}\n`);
        await sleep(10);
      }
    })();
    const r = await answer;
    await typing;
    return r.ns;
  }

  /** SIGKILL, wait, close our end of the console FIFO. */
  async kill(): Promise<void> {
    await this.proc.kill();
    try {
      closeSync(this.stdinFd);
    } catch {
      // closed before
    }
  }
}

/** A minimal QMP client: one command at a time; events are skipped. */
class Qmp {
  private buf = '';
  private waiting: ((o: Record<string, unknown>) => void) | undefined;
  private constructor(private readonly sock: Socket) {
    sock.on('data', (b: Buffer) => {
      this.buf += b.toString('utf8');
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        const o = JSON.parse(line) as Record<string, unknown>;
        if ('event' in o || 'QMP' in o) continue;
        const w = this.waiting;
        this.waiting = undefined;
        w?.(o);
      }
    });
  }

  /** Connects (retrying until QEMU listens) and negotiates capabilities. */
  static async open(path: string, ms: number): Promise<Qmp> {
    const until = performance.now() + ms;
    for (;;) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = createConnection(path, () => resolve(s));
          s.once('error', reject);
        });
        const q = new Qmp(sock);
        await q.cmd('qmp_capabilities');
        return q;
      } catch (e) {
        if (performance.now() > until) throw new Error(`QMP at ${path}: ${(e as Error).message}`);
        await sleep(5);
      }
    }
  }

  /** Runs one command; throws on a QMP error. */
  cmd(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.waiting = (o) => (o.error ? reject(new Error(`QMP ${execute}: ${JSON.stringify(o.error)}`)) : resolve(o.return));
      this.sock.write(`${JSON.stringify({ execute, ...(args ? { arguments: args } : {}) })}\n`);
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/** A fresh `bin/kindling --api-sock` process (restore side or create side). */
function kindling(ctx: RunContext, dir: string, name: string): { vmm: ConsoleVmm; sock: string } {
  const rt = ctx.runtime;
  const sock = join(dir, `${name}.sock`);
  const k = kindlingCommand(rt, ['--api-sock', sock, '--id', name, '--log-path', join(dir, `${name}.log`)]);
  const vmm = new ConsoleVmm(dir, name, k.cmd, k.args, k.env);
  return { vmm, sock };
}

/** Where the VMM says a load's time went (src/vmm/restore.ts, src/vmm/controller.ts), from its log. */
function restorePhases(path: string): string | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    const phases = /snapshot restore \(cumulative\): ([^\n"]*)/.exec(text)?.[1];
    const resumed = /vCPUs resumed (\d+) ms after the request began/.exec(text)?.[1];
    return phases ? `${phases}${resumed ? `, vCPUs resumed ${resumed} ms` : ''}` : undefined;
  } catch {
    return undefined;
  }
}

/** The last lines of a log file, or why there are none. */
function logTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-12).join('\n');
  } catch (e) {
    return `(${(e as Error).message})`;
  }
}

/**
 * Waits until a process has used no CPU for 300 ms (at most 20 s): "already up" means what
 * a pool of VMMs started ahead has, for both sides — QEMU has built its machine by the time
 * QMP answers, Kindling still loads its builder and starts its pre-warmed vCPU actor after its
 * socket accepts (src/vmm/kvm-factory.ts warmUp).
 */
async function settled(pid: number): Promise<void> {
  let last = cpuMs(pid);
  let quiet = 0;
  for (const until = performance.now() + 20_000; quiet < 3 && performance.now() < until;) {
    await sleep(100);
    const now = cpuMs(pid);
    quiet = now === last ? quiet + 1 : 0;
    last = now;
  }
}

/** Waits for a file to exist (polled every 5 ms); returns the monotonic ns when seen. */
async function appears(path: string, vmm: ConsoleVmm, ms: number): Promise<bigint> {
  const until = performance.now() + ms;
  while (!existsSync(path)) {
    if (performance.now() > until || vmm.proc.child.exitCode !== null) throw new Error(`${path} did not appear: ${vmm.proc.tail()}`);
    await sleep(5);
  }
  return process.hrtime.bigint();
}

async function ok(api: FirecrackerClient, method: 'PUT' | 'PATCH', path: string, body: unknown): Promise<void> {
  const r = await api.request(method, path, body);
  if (r.status !== 204) throw new Error(`${method} ${path} → ${r.status} ${r.body}`);
}

/** Snapshot files of one side and size. */
interface Saved { state: string; mem: string }

/** Boots, pauses and snapshots one VM; returns the create time and the files. */
async function create(side: Side, spec: VmSpec, ctx: RunContext, dir: string, run: RunRecord): Promise<Saved> {
  const rt = ctx.runtime;
  const saved = { state: join(dir, `${side}.state`), mem: join(dir, `${side}.mem`) };
  if (side === 'kindling') {
    const { vmm, sock } = kindling(ctx, dir, 'src');
    try {
      await appears(sock, vmm, 60_000);
      const api = new FirecrackerClient(sock, { bodyTimeout: ctx.timeoutMs, headersTimeout: ctx.timeoutMs });
      await ok(api, 'PUT', '/boot-source', { kernel_image_path: spec.kernel, initrd_path: spec.initrd, boot_args: spec.bootArgs });
      await ok(api, 'PUT', '/machine-config', { vcpu_count: spec.vcpus, mem_size_mib: spec.memMiB });
      await ok(api, 'PUT', '/actions', { action_type: 'InstanceStart' });
      await vmm.proc.waitFor(new RegExp(GUEST_MARKER), ctx.timeoutMs);
      await vmm.probe(ctx.timeoutMs);
      await ok(api, 'PATCH', '/vm', { state: 'Paused' });
      const t0 = process.hrtime.bigint();
      await ok(api, 'PUT', '/snapshot/create', { snapshot_type: 'Full', snapshot_path: saved.state, mem_file_path: saved.mem });
      run.data.createMs = nsToMs(process.hrtime.bigint() - t0);
    } finally {
      await vmm.kill();
    }
  } else {
    const qmpPath = join(dir, 'src.qmp');
    const vmm = new ConsoleVmm(dir, 'src', rt.qemu, qemuArgs(spec, [...rt.qemuExtraArgs, '-qmp', `unix:${qmpPath},server=on,wait=off`]), rt.qemuEnv);
    let qmp: Qmp | undefined;
    try {
      await vmm.proc.waitFor(new RegExp(GUEST_MARKER), ctx.timeoutMs);
      await vmm.probe(ctx.timeoutMs);
      qmp = await Qmp.open(qmpPath, 30_000);
      await qmp.cmd('stop');
      // The default 128 MiB/s cap would time the throttle, not the save (libvirt lifts it too).
      await qmp.cmd('migrate-set-parameters', { 'max-bandwidth': 2 ** 40 });
      const t0 = process.hrtime.bigint();
      await qmp.cmd('migrate', { uri: `exec:cat > ${saved.mem}` });
      for (const until = performance.now() + ctx.timeoutMs; ;) {
        if (performance.now() > until) throw new Error('QEMU migrate did not complete in time');
        const s = (await qmp.cmd('query-migrate')) as { status?: string; 'error-desc'?: string };
        if (s.status === 'completed') break;
        if (s.status === 'failed' || s.status === 'cancelled') throw new Error(`QEMU migrate ${s.status}: ${s['error-desc'] ?? ''}`);
        await sleep(5);
      }
      run.data.createMs = nsToMs(process.hrtime.bigint() - t0);
    } finally {
      qmp?.close();
      await vmm.kill();
    }
  }
  run.data.memFileBytes = statSync(saved.mem).size;
  run.data.memFileAllocatedBytes = statSync(saved.mem).blocks * 512;
  return saved;
}

/** A restored VM that has answered on its console (still running). */
interface Restored {
  vmm: ConsoleVmm; socketMs: number; loadMs?: number; restoreMs: number; close: () => void; phases?: string;
  /** CPU each thread of the VMM used from t0 to the answer (`name:ms`). */
  cpu?: string;
}

/** Starts a fresh VMM, restores `saved` into it and waits for the guest's console answer. */
async function restore(side: Side, spec: VmSpec, saved: Saved, ctx: RunContext, dir: string, name: string): Promise<Restored> {
  const rt = ctx.runtime;
  if (side === 'kindling') {
    const { vmm, sock } = kindling(ctx, dir, name);
    try {
      const up = await appears(sock, vmm, 60_000);
      await settled(vmm.proc.pid);
      const api = new FirecrackerClient(sock, { bodyTimeout: ctx.timeoutMs, headersTimeout: ctx.timeoutMs });
      const cpu0 = threadCpuMap(vmm.proc.pid);
      const t0 = process.hrtime.bigint();
      const answered = vmm.probe(ctx.timeoutMs);
      await ok(api, 'PUT', '/snapshot/load', { snapshot_path: saved.state, mem_backend: { backend_type: 'File', backend_path: saved.mem }, resume_vm: true });
      const loadMs = nsToMs(process.hrtime.bigint() - t0);
      const at = await answered;
      const cpu = cpuSince(cpu0, vmm.proc.pid);
      return { vmm, socketMs: nsToMs(up - vmm.proc.startNs), loadMs, restoreMs: nsToMs(at - t0), close: () => undefined, phases: restorePhases(join(dir, `${name}.log`)), cpu };
    } catch (e) {
      await vmm.kill();
      // The VMM's own log says why a restore failed (the bench log keeps it with the error).
      throw new Error(`${(e as Error).message}; the end of ${name}.log: ${logTail(join(dir, `${name}.log`))}`);
    }
  }
  const qmpPath = join(dir, `${name}.qmp`);
  const vmm = new ConsoleVmm(dir, name, rt.qemu, qemuArgs(spec, [...rt.qemuExtraArgs, '-qmp', `unix:${qmpPath},server=on,wait=off`, '-incoming', 'defer']), rt.qemuEnv);
  let qmp: Qmp | undefined;
  try {
    qmp = await Qmp.open(qmpPath, 60_000);
    const up = process.hrtime.bigint();
    await settled(vmm.proc.pid);
    const cpu0 = threadCpuMap(vmm.proc.pid);
    const t0 = process.hrtime.bigint();
    const answered = vmm.probe(ctx.timeoutMs);
    await qmp.cmd('migrate-incoming', { uri: `exec:cat ${saved.mem}` });
    // The source was stopped, and QEMU carries that run state over (global state): like
    // libvirt, `cont` once the incoming side has left `inmigrate` (resume_vm on Kindling's).
    for (const until = performance.now() + ctx.timeoutMs; ;) {
      if (performance.now() > until) throw new Error('QEMU stayed inmigrate');
      const st = ((await qmp.cmd('query-status')) as { status?: string }).status;
      if (st === 'running') break;
      if (st !== 'inmigrate') {
        await qmp.cmd('cont');
        break;
      }
      await sleep(5);
    }
    const at = await answered;
    const cpu = cpuSince(cpu0, vmm.proc.pid);
    const q = qmp;
    return { vmm, socketMs: nsToMs(up - vmm.proc.startNs), restoreMs: nsToMs(at - t0), close: () => q.close(), cpu };
  } catch (e) {
    qmp?.close();
    await vmm.kill();
    throw e;
  }
}

/** Pss and Rss (KiB) of a process, from /proc/<pid>/smaps_rollup. */
function rollup(pid: number): { pssKib: number; rssKib: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kib = (f: string): number => Number(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { pssKib: kib('Pss'), rssKib: kib('Rss') };
}

/** The guest of every snapshot run: its console answers each line typed on it. */
function answeringSpec(base: VmSpec, memMiB: number): VmSpec {
  return { ...base, memMiB, bootArgs: `${base.bootArgs.replace(/ -- kindling-run .*$/, '')} -- kindling-run ${GUEST_CMD}` };
}

/** Runs the snapshot rounds: per round and size, Kindling then QEMU. */
export async function runSnapshot(c: ResultsCollector, base: VmSpec, ctx: RunContext, rounds: number, log: (m: string) => void): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (const mib of SIZES) {
      for (const side of ['kindling', 'qemu'] as const) {
        const run: RunRecord = { scenario: 'snapshot', variant: `mini-1vcpu-${mib}mib`, side, round, warmup: false, ok: false, startedAt: new Date().toISOString(), data: {} };
        c.runs.push(run);
        const spec = answeringSpec(base, mib);
        const dir = mkdtempSync(join(tmpdir(), 'kindling-bench-snap-'));
        try {
          const saved = await create(side, spec, ctx, dir, run);
          const r = await restore(side, spec, saved, { ...ctx, timeoutMs: Math.min(ctx.timeoutMs, 180_000) }, dir, 'dst');
          r.close();
          await r.vmm.kill();
          Object.assign(run.data, { restoreMs: r.restoreMs, loadMs: r.loadMs, socketMs: r.socketMs, phases: r.phases, cpu: r.cpu });
          run.ok = true;
          c.add(`snapshot.create.${mib}`, side, run.data.createMs as number);
          c.add(`snapshot.restore.${mib}`, side, r.restoreMs);
          if (r.loadMs !== undefined) c.add(`snapshot.load.${mib}`, side, r.loadMs);
          c.add('snapshot.socket', side, r.socketMs);
          log(`snapshot ${side} ${mib} MiB round ${round + 1}/${rounds}: create ${(run.data.createMs as number).toFixed(0)} ms, restore → answer ${r.restoreMs.toFixed(0)} ms${r.loadMs !== undefined ? ` (load request ${r.loadMs.toFixed(0)} ms)` : ''}, socket ${r.socketMs.toFixed(0)} ms${r.phases ? `; phases from the request: ${r.phases}` : ''}; CPU by thread until the answer: ${r.cpu ?? '?'}`);
        } catch (e) {
          run.error = (e as Error).message;
          log(`snapshot ${side} ${mib} MiB round ${round + 1} FAILED: ${run.error}`);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  }
}

/**
 * The clones group: per side, one 128 MiB snapshot, then CLONES restores of it at once. The
 * caller passes the Debian kernel (tickless when idle): the minimal kernel ticks at 250 Hz
 * even idle (HZ_PERIODIC), so ten idle nested clones of it kept the sandbox's two CPUs at
 * about 80 % each, for both VMMs alike, and the sandbox kernel died under that load.
 */
export async function runSnapshotClones(c: ResultsCollector, base: VmSpec, ctx: RunContext, log: (m: string) => void): Promise<void> {
  const spec = answeringSpec(base, 128);
  for (const side of ['kindling', 'qemu'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'kindling-bench-clones-'));
    const run: RunRecord = { scenario: 'snapshot', variant: 'clones-source-128mib', side, round: 0, warmup: false, ok: false, startedAt: new Date().toISOString(), data: {} };
    try {
      const saved = await create(side, spec, ctx, dir, run);
      await clones(c, side, spec, saved, ctx, dir, log);
    } catch (e) {
      run.error = (e as Error).message;
      c.runs.push(run);
      log(`snapshot ${side} clones: the source snapshot FAILED: ${run.error}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** Ten restores of one 128 MiB snapshot at once; records PSS/RSS per clone (one sample per side). */
async function clones(c: ResultsCollector, side: Side, spec: VmSpec, saved: Saved, ctx: RunContext, dir: string, log: (m: string) => void): Promise<void> {
  const run: RunRecord = { scenario: 'snapshot', variant: `clones-${CLONES}x128mib`, side, round: 0, warmup: false, ok: false, startedAt: new Date().toISOString(), data: {} };
  c.runs.push(run);
  const up: Restored[] = [];
  try {
    // One after another: ten VMMs starting at once on two cores would time the scheduler.
    // Each clone's restore and the CPU the running ones burn meanwhile go to the log: an idle
    // restored guest should cost next to nothing, and a busy one would slow every later clone.
    const shortCtx = { ...ctx, timeoutMs: Math.min(ctx.timeoutMs, 120_000) };
    const steps: { restoreMs: number; othersCpuMs: number }[] = [];
    for (let i = 0; i < CLONES; i++) {
      const before = up.reduce((n, r) => n + cpuMs(r.vmm.proc.pid), 0);
      const r = await restore(side, spec, saved, shortCtx, dir, `clone${i}`);
      const othersCpuMs = up.reduce((n, x) => n + cpuMs(x.vmm.proc.pid), 0) - before;
      up.push(r);
      steps.push({ restoreMs: r.restoreMs, othersCpuMs });
      run.data.steps = steps;
      log(`snapshot ${side} clone ${i + 1}/${CLONES}: restore → answer ${r.restoreMs.toFixed(0)} ms; the ${i} running clones used ${othersCpuMs.toFixed(0)} ms CPU meanwhile${i ? `; clone 1 by thread: ${threadCpu(up[0]!.vmm.proc.pid)}` : ''}`);
      // A clone that stopped on its own: say how, with its console and log, and stop here.
      const gone = up.findIndex((x) => x.vmm.proc.child.exitCode !== null || x.vmm.proc.child.signalCode !== null);
      if (gone >= 0) {
        const g = up[gone]!.vmm.proc;
        throw new Error(`clone ${gone + 1} exited (${g.child.exitCode ?? g.child.signalCode}) while ${up.length} ran; console and stderr: ${g.tail()}; the end of clone${gone}.log: ${logTail(join(dir, `clone${gone}.log`))}`);
      }
    }
    await sleep(1000);
    const mem = up.map((r) => rollup(r.vmm.proc.pid));
    const pss = mem.reduce((n, m) => n + m.pssKib, 0) / CLONES / 1024;
    const rss = mem.reduce((n, m) => n + m.rssKib, 0) / CLONES / 1024;
    run.data = { perClone: mem, steps };
    run.ok = true;
    c.add('snapshot.clone_pss', side, pss);
    c.add('snapshot.clone_rss', side, rss);
    log(`snapshot ${side} ${CLONES} clones of 128 MiB: PSS ${pss.toFixed(1)} MiB per clone, RSS ${rss.toFixed(1)} MiB per clone`);
  } catch (e) {
    run.error = (e as Error).message;
    log(`snapshot ${side} clones FAILED: ${run.error}`);
  } finally {
    up.forEach((r) => r.close());
    await Promise.all(up.map((r) => r.vmm.kill()));
  }
}

/** The issue's targets, checked against a results file's medians (report and bench log). */
export function snapshotTargets(r: Pick<BenchResults, 'metrics'>): string[] {
  const med = (id: string, side: Side): number | undefined => {
    const s = [...(r.metrics.find((m) => m.id === id)?.samples[side] ?? [])].sort((a, b) => a - b);
    return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : undefined;
  };
  const k128 = med('snapshot.restore.128', 'kindling');
  const k2g = med('snapshot.restore.2048', 'kindling');
  const q2g = med('snapshot.restore.2048', 'qemu');
  if (k2g === undefined) return [];
  const line = (what: string, ratio: number | undefined, limit: number): string =>
    ratio === undefined ? `- ${what}: not measured` : `- ${what}: ${ratio.toFixed(2)}× (target ≤ ${limit}×) — ${ratio <= limit ? 'met' : 'NOT met'}`;
  return [
    line('Kindling restore, 2 GiB ÷ 128 MiB', k128 ? k2g / k128 : undefined, 1.2),
    line('Kindling ÷ QEMU restore, 2 GiB', q2g ? k2g / q2g : undefined, 0.5),
  ];
}
