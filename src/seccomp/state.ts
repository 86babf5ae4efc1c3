/**
 * Whether this process runs under a seccomp filter, for code that would start a child process
 * (virtio-fs `shared_dir` starts virtiofsd, src/config/fs.ts): the child would inherit the
 * filter through fork and exec, and the filter traps fork itself. Free of koffi, so the
 * config layer can ask without loading the FFI (the startup snapshot, docs/design.md §2).
 */
import { readFileSync } from 'node:fs';

/** Set once install.ts installed the filter in this process. */
let installedHere = false;

/** Called by installProcessFilter after the filter is in place. */
export function markFilterInstalled(): void {
  installedHere = true;
}

/**
 * True when a filter is installed here or was inherited (the `Seccomp:` line of
 * /proc/self/status is 2, SECCOMP_MODE_FILTER).
 */
export function seccompFiltered(): boolean {
  if (installedHere) return true;
  try {
    return /^Seccomp:\s*2$/m.test(readFileSync('/proc/self/status', 'utf8'));
  } catch {
    return false;
  }
}
