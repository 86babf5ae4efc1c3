/**
 * Thread names as Firecracker gives them (`firecracker` for the process, `fc_vcpu N` for vCPU
 * threads), which tools read from /proc: `ps -T`, `top -H`, psutil's name(), `pgrep -x` and
 * `killall` (docs/design.md, Process and thread names).
 *
 * A thread's name is its `comm` (15 bytes at most). Writing /proc/thread-self/comm renames the
 * calling thread, as prctl(PR_SET_NAME) does, without loading koffi; for the main thread that
 * is also /proc/<pid>/comm, the process name. The command line (/proc/<pid>/cmdline, which tools
 * search for `--api-sock`) is left alone: Node's process.title would overwrite it.
 */
import { writeFileSync } from 'node:fs';

/** TASK_COMM_LEN − 1: the kernel keeps the first 15 bytes of a name. */
export const THREAD_NAME_MAX = 15;

/**
 * Names the calling thread; false when /proc is not there to take it (a chroot without /proc).
 * Never throws: a name is for tools, and a VM must not fail for want of one.
 */
export function setThreadName(name: string): boolean {
  try {
    writeFileSync('/proc/thread-self/comm', Buffer.from(name).subarray(0, THREAD_NAME_MAX));
    return true;
  } catch {
    return false;
  }
}

/**
 * The process name a launcher asked for: KINDLING_COMM (bin/firecracker sets it; removed here
 * so actors do not inherit it), else argv[0] when it is not node itself (the jailer runs node
 * as `/firecracker`, Firecracker's argv[0] in a jail). Null when nobody asked.
 */
export function launchName(): string | null {
  const env = process.env.KINDLING_COMM;
  if (env) {
    delete process.env.KINDLING_COMM;
    return env;
  }
  const base = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
  const argv0 = base(process.argv0);
  return argv0 && argv0 !== base(process.execPath) && argv0 !== 'node' ? argv0 : null;
}
