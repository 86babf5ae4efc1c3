/**
 * One KVM sandbox at a time per machine. The sandbox is QEMU TCG running a nested hypervisor;
 * two of them on a 2-core host starve each other's vCPUs until their kernels report soft
 * lockups and guests miss every deadline (docs/design.md, Tests). Every sandbox start
 * (npm test, npm run bench, npm start) therefore takes an exclusive flock(1) on one file
 * first, and waits for it.
 *
 * People also wrap whole runs in `flock <same file> npm test …`; a second flock taken below
 * such a run would wait for itself forever, so a lock already held by one of this process's
 * ancestors (found in /proc/locks by the file's inode) counts as ours.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';

/** The lock file (KINDLING_SANDBOX_LOCK overrides it). */
export const SANDBOX_LOCK = process.env.KINDLING_SANDBOX_LOCK ?? '/tmp/kindling-sandbox.lock';

/** This process and its ancestors, by pid. */
function lineage(): Set<number> {
  const pids = new Set<number>();
  for (let pid = process.pid; pid > 1 && !pids.has(pid);) {
    pids.add(pid);
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return pids;
}

/** Pids holding a flock on the file with inode `ino` (/proc/locks: "1: FLOCK ADVISORY WRITE <pid> <maj:min:ino> 0 EOF"). */
export function flockHolders(ino: number, locks = readFileSync('/proc/locks', 'utf8')): number[] {
  const holders: number[] = [];
  for (const line of locks.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] !== 'FLOCK' || f[0]?.endsWith('->')) continue; // "->" lines are waiters
    if (Number(f[5]?.split(':')[2]) === ino) holders.push(Number(f[4]));
  }
  return holders;
}

/**
 * Waits for the sandbox lock; resolves with its release. `onWait` is told once when another
 * run holds it.
 */
export async function acquireSandboxLock(onWait: (msg: string) => void, path = SANDBOX_LOCK): Promise<() => void> {
  closeSync(openSync(path, 'a'));
  const mine = lineage();
  if (flockHolders(statSync(path).ino).some((pid) => mine.has(pid))) return () => undefined;
  // flock(1) holds the lock for as long as `cat` runs; closing its stdin releases it, and so
  // does this process dying (the pipe closes).
  const holder = spawn('flock', [path, 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const told = setTimeout(() => onWait(`sandbox: waiting for ${path} (another KVM sandbox is running on this machine)`), 1000);
  try {
    await new Promise<void>((resolve, reject) => {
      holder.once('error', (e) => reject(new Error(`sandbox lock: cannot run flock(1): ${e.message}`)));
      holder.once('exit', (code) => reject(new Error(`sandbox lock: flock exited (${code}) before taking ${path}`)));
      holder.stdout.once('data', () => resolve());
    });
  } finally {
    clearTimeout(told);
  }
  holder.removeAllListeners('exit');
  holder.unref();
  return () => { holder.stdin.end(); };
}
