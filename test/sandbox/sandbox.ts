/**
 * The KVM sandbox: real /dev/kvm on machines that have none.
 *
 * QEMU's software CPU (TCG) with `-cpu max` emulates AMD SVM with nested paging; Debian's
 * kernel inside that QEMU loads kvm-amd, and KVM then runs for real (measured recipe:
 * ../shared/reference/kvm-sandbox.md). The sandbox guest mounts this machine's root
 * read-only over 9p, plus one writable run folder, and runs a command chrooted into the host
 * tree — the host's own node, node_modules and dist/ — so one boot serves a whole test tier.
 *
 * It never skips: a missing QEMU, kernel or initramfs, a guest that does not come up, or a
 * run past the deadline is a SandboxError with a message saying which.
 */
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync, accessSync, constants } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { cacheDir } from '../../scripts/fixtures.mjs';
import { acquireSandboxLock } from './sandbox-lock.js';

export class SandboxError extends Error {
  override name = 'SandboxError';
  /**
   * `outDir`: the run folder when the sandbox got that far (what the run inside left there
   * survives). `stalled`: the sandbox stopped refreshing its heartbeat file and was killed.
   */
  constructor(message: string, readonly outDir?: string, readonly stalled = false) {
    super(message);
  }
}

export interface SandboxOptions {
  /** Shell script body to run inside (chrooted into the host root). */
  script: string;
  /** Guest fixtures directory (scripts/guest-fixtures.sh output). */
  fixtures: string;
  /** Total deadline for the sandbox, boot included. */
  timeoutMs: number;
  /** Sandbox RAM in MiB (nested guests live inside it). */
  memMiB?: number;
  /** Connect the sandbox's serial console to this process's stdin (interactive use). */
  interactive?: boolean;
  /** Where each console line goes (default: stdout). */
  onLine?: (line: string) => void;
  /**
   * A file in the run folder that the script inside rewrites every few seconds: once the
   * sandbox is up, if it is missing or older than `staleMs`, the sandbox's kernel has stopped
   * (both emulated CPUs idle and nothing scheduled) and QEMU is killed at once instead of at
   * the deadline; the SandboxError says `stalled`.
   */
  heartbeat?: { file: string; staleMs: number };
}

export interface SandboxResult {
  /** Exit status of the script inside. */
  status: number;
  /** The run folder, writable inside the sandbox at the same path. */
  outDir: string;
  /** Seconds from QEMU start to the sandbox's userspace being ready (its overhead). */
  bootSeconds: number;
  totalSeconds: number;
}

function findInPath(cmd: string): string | undefined {
  if (cmd.includes('/')) return existsSync(cmd) ? cmd : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

/** This checkout (the compiled file is dist/test/sandbox/sandbox.js). */
const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
/** Host folders the sandbox covers with its own tmpfs (scripts/sandbox/init). */
const MASKED = ['/tmp/', '/run/', '/dev/shm/'];
/**
 * kvm-amd module parameters for the sandbox (`a=b,c=d`; KINDLING_SANDBOX_KVM_AMD overrides).
 * vgif=0: the nested KVM does not use QEMU's emulated virtual GIF. With it (kvm-amd's default
 * where the CPU model offers VGIF, as `-cpu max` does), guests inside crashed with a triple
 * fault in 2 of 3 runs of the vsock and net tests and in 1 of 15 plain boots; with vgif=0 in
 * none of 4 such runs, 15 boots and two full tiers. Long streams (the bench's 1 GiB) still
 * kill guests of both VMMs (design.md §9).
 */
const KVM_AMD_PARAMS = process.env.KINDLING_SANDBOX_KVM_AMD ?? 'vgif=0';
/** QEMU's accelerator and CPU count (KINDLING_SANDBOX_ACCEL, KINDLING_SANDBOX_SMP override). */
const ACCEL = process.env.KINDLING_SANDBOX_ACCEL ?? 'tcg';
const SMP = process.env.KINDLING_SANDBOX_SMP ?? '2';

/** Boots the sandbox, runs `script` inside it, and returns its exit status. */
export async function runInSandbox(opts: SandboxOptions): Promise<SandboxResult> {
  const qemu = findInPath(process.env.KINDLING_QEMU ?? 'qemu-system-x86_64');
  if (!qemu) throw new SandboxError('KVM sandbox: qemu-system-x86_64 not found (apt-get install -y qemu-system-x86)');
  const kernel = process.env.KINDLING_SANDBOX_KERNEL ?? join(opts.fixtures, 'vmlinuz');
  const initrd = join(opts.fixtures, 'sandbox-initrd.cpio.gz');
  if (!existsSync(kernel)) throw new SandboxError(`KVM sandbox: kernel ${kernel} is missing (run: npm run fixtures)`);
  if (!existsSync(initrd)) throw new SandboxError(`KVM sandbox: initramfs ${initrd} is missing (run: npm run fixtures)`);

  const runs = join(cacheDir(), 'sandbox');
  mkdirSync(runs, { recursive: true });
  const outDir = mkdtempSync(join(runs, 'run-'));
  writeFileSync(join(outDir, 'run.sh'), `${opts.script}\n`);
  const onLine = opts.onLine ?? ((l: string) => process.stdout.write(`${l}\n`));

  // The sandbox mounts fresh tmpfs over /tmp, /run and /dev/shm of the host tree, so a
  // checkout below one of them (a CI clone in /tmp) is shared on its own, at the same path.
  const repoShare = MASKED.some((m) => REPO.startsWith(m))
    ? ['-virtfs', `local,path=${REPO},mount_tag=repo,security_model=none,readonly=on,multidevs=remap`]
    : [];
  const args = [
    '-M', 'q35', '-accel', ACCEL, '-cpu', 'max', '-smp', SMP, '-m', String(opts.memMiB ?? 6144),
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-nic', 'none', '-no-reboot',
    '-kernel', kernel, '-initrd', initrd,
    '-append', `console=ttyS0 quiet panic=-1 kindling.out=${outDir}${repoShare.length ? ` kindling.repo=${REPO}` : ''}${KVM_AMD_PARAMS ? ` kindling.kvm_amd=${KVM_AMD_PARAMS}` : ''}`,
    '-virtfs', 'local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${outDir},mount_tag=out,security_model=none,multidevs=remap`,
    ...repoShare,
  ];
  const release = await acquireSandboxLock(onLine);
  const started = performance.now();
  let bootSeconds = -1;
  let failure = '';
  return new Promise((resolvePromise, reject) => {
    const child = spawn(qemu, args, { stdio: [opts.interactive ? 'inherit' : 'ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => {
      failure = `KVM sandbox: deadline of ${Math.round(opts.timeoutMs / 1000)} s passed; killed QEMU`;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    let stalled = false;
    const beat = opts.heartbeat;
    const beatTimer = beat && setInterval(() => {
      if (bootSeconds < 0 || failure) return;
      const upFor = performance.now() - started - bootSeconds * 1000;
      let age: number;
      try {
        age = Date.now() - statSync(join(outDir, beat.file)).mtimeMs;
      } catch {
        age = upFor;
      }
      if (age > beat.staleMs && upFor > beat.staleMs) {
        stalled = true;
        failure = `KVM sandbox: its kernel stopped: ${beat.file} not refreshed for ${Math.round(age / 1000)} s; killed QEMU`;
        child.kill('SIGKILL');
      }
    }, Math.min(5_000, Math.max(100, (beat?.staleMs ?? 0) / 2)));
    let pending = '';
    const onData = (chunk: Buffer): void => {
      if (opts.interactive) process.stdout.write(chunk);
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        // Strip terminal control sequences SeaBIOS and the kernel emit, and CRs.
        const line = pending.slice(0, nl).replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc|\r/g, '');
        pending = pending.slice(nl + 1);
        if (line.startsWith('KINDLING_SANDBOX_UP')) {
          bootSeconds = (performance.now() - started) / 1000;
          if (!opts.interactive) onLine(`sandbox: up after ${bootSeconds.toFixed(1)} s (QEMU TCG, real /dev/kvm inside)`);
        } else if (line.startsWith('KINDLING_SANDBOX_EXIT')) {
          if (!opts.interactive) onLine(`sandbox: run inside ended after ${((performance.now() - started) / 1000).toFixed(1)} s (${line})`);
        } else if (line.startsWith('KINDLING_SANDBOX_FAIL')) {
          failure = `KVM sandbox: ${line.slice('KINDLING_SANDBOX_FAIL: '.length)}`;
        } else if (!opts.interactive && !/^(SeaBIOS|Booting from|iPXE|\s*$)/.test(line)) {
          onLine(line);
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (c: Buffer) => process.stderr.write(c));
    child.on('error', (e) => {
      clearTimeout(timer);
      if (beatTimer) clearInterval(beatTimer);
      release();
      reject(new SandboxError(`KVM sandbox: cannot start ${qemu}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (beatTimer) clearInterval(beatTimer);
      release();
      const totalSeconds = (performance.now() - started) / 1000;
      const statusFile = join(outDir, 'status');
      if (failure) return reject(new SandboxError(failure, outDir, stalled));
      if (bootSeconds < 0) return reject(new SandboxError(`KVM sandbox: the sandbox guest never came up (QEMU exit ${code ?? signal})`, outDir));
      if (!existsSync(statusFile)) return reject(new SandboxError(`KVM sandbox: the run inside ended without a status (QEMU exit ${code ?? signal})`, outDir));
      const status = Number(readFileSync(statusFile, 'utf8').trim());
      resolvePromise({ status, outDir, bootSeconds, totalSeconds });
    });
  });
}
