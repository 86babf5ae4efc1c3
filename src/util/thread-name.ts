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
