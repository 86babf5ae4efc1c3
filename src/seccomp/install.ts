/**
 * Installs a compiled filter on every thread of the process (docs/design.md, Seccomp):
 * prctl(PR_SET_NO_NEW_PRIVS) — required to install a filter without CAP_SYS_ADMIN, and what
 * keeps an exec from regaining privileges — then seccomp(SECCOMP_SET_MODE_FILTER,
 * SECCOMP_FILTER_FLAG_TSYNC): the kernel puts the filter on every existing thread of the
 * process at once, or on none (seccomp(2)); threads created later inherit their creator's
 * filter (clone copies it), so every libuv, V8 and worker thread started after this runs
 * under it too.
 */
import koffi from 'koffi';
import { namedStruct } from '../kvm/koffi-types.js';
import { KindlingError } from '../errors.js';
import { markFilterInstalled } from './state.js';
import * as libc from '../kvm/libc.js';
import { SOCK_FILTER_SIZE, type SockFilter, encode } from './bpf.js';
import { syscallNumber } from './filter.js';

/** prctl option (linux/prctl.h). */
export const PR_SET_NO_NEW_PRIVS = 38;
/** seccomp(2) operation and flag (linux/seccomp.h). */
export const SECCOMP_SET_MODE_FILTER = 1;
export const SECCOMP_FILTER_FLAG_TSYNC = 1;

/** struct sock_fprog { unsigned short len; struct sock_filter *filter; } (linux/filter.h). */
export const sock_fprog = namedStruct('sock_fprog', { len: 'uint16_t', filter: 'void *' });

/** The filter could not be installed. */
export class SeccompInstallError extends KindlingError {
  constructor(message: string) {
    super('SECCOMP_INSTALL', message);
  }
}

const prctl = (): number => Number(libc.syscall(syscallNumber('prctl'), 'int', PR_SET_NO_NEW_PRIVS, 'unsigned long', 1, 'unsigned long', 0, 'unsigned long', 0, 'unsigned long', 0));

/** Installs `program` on all threads of this process; throws SeccompInstallError. */
export function installProcessFilter(program: readonly SockFilter[]): void {
  if (Number(prctl()) !== 0) {
    const e = libc.errno();
    throw new SeccompInstallError(`prctl(PR_SET_NO_NEW_PRIVS) failed: ${libc.errnoName(e)}`);
  }
  const insns = encode(program);
  const fprog = Buffer.alloc(koffi.sizeof(sock_fprog));
  fprog.writeUInt16LE(insns.length / SOCK_FILTER_SIZE, koffi.offsetof(sock_fprog, 'len'));
  fprog.writeBigUInt64LE(libc.addressOf(insns), koffi.offsetof(sock_fprog, 'filter'));
  // `insns` stays referenced until the call returns; the kernel copies the program.
  const r = Number(libc.syscall(syscallNumber('seccomp'), 'unsigned int', SECCOMP_SET_MODE_FILTER, 'unsigned int', SECCOMP_FILTER_FLAG_TSYNC, 'void *', fprog));
  if (r < 0) {
    const e = libc.errno();
    throw new SeccompInstallError(`seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC) failed: ${libc.errnoName(e)}`);
  }
  // With TSYNC a positive result is the id of a thread that could not take the filter.
  if (r > 0) throw new SeccompInstallError(`seccomp TSYNC: thread ${r} has a filter that is not an ancestor of this one`);
  void insns;
  markFilterInstalled();
}
