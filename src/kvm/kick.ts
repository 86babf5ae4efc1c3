/**
 * The vCPU kick: how another thread gets a vCPU worker out of KVM_RUN within milliseconds (and,
 * at the end of this file, the libc side of the process's signal handling: one-shot fault handlers, _exit).
 *
 * A worker blocked in a synchronous koffi call to ioctl(KVM_RUN) runs no JavaScript and sees
 * no messages until the ioctl returns, which for a guest spinning in `jmp $` is never. KVM
 * leaves KVM_RUN with EINTR (exit reason KVM_EXIT_INTR) when a signal is pending for the
 * thread, and refuses to enter when kvm_run.immediate_exit is 1
 * (https://docs.kernel.org/virt/kvm/api.html, "immediate_exit"). The kick uses both:
 *
 *   kicker thread                          vCPU worker thread
 *   1. Atomics.store(cmd slot, request)    loop:
 *   2. kvm_run.immediate_exit = 1            a. kvm_run.immediate_exit = 0
 *   3. pthread_kill(worker, KICK_SIGNAL)     b. full fence (Atomics RMW)
 *                                            c. read cmd slot → handle request
 *                                            d. KVM_RUN
 *
 * Invariant (no lost kick): if the worker's read (c) misses the request, then the kicker's
 * store (2) came after the worker's clear (a) — the kicker's stores are ordered 1 → 2, and the
 * fence (b) orders a → c — so immediate_exit is 1 at (d) and KVM_RUN returns at once. The
 * signal covers the other case, a worker already inside KVM_RUN. A signal that lands while the
 * worker runs JavaScript is harmless: its handler does nothing.
 *
 * The handler. A signal with the default disposition would kill the process (real-time
 * signals terminate), and SIG_IGN would discard it without interrupting KVM_RUN, so a handler
 * must be installed. It has to be native and async-signal-safe; calling into JavaScript from
 * a signal is not. libc's `getpid` is used as that no-op handler: it takes no arguments (the
 * signal number in %rdi is ignored), touches no memory and is async-signal-safe (signal-safety(7)).
 * SA_RESTART keeps other syscalls of the worker (epoll_wait, futex) from seeing EINTR;
 * KVM_RUN's EINTR is not restartable, so it still returns.
 *
 * The signal is SIGRTMIN (glibc's first free real-time signal), as in Firecracker
 * (vstate/vcpu.rs VCPU_RTSIG_OFFSET = 0). Firecracker's release builds use musl, whose
 * SIGRTMIN is glibc's SIGRTMIN+1 (35): that is the number its users send to a running VMM and
 * expect to be harmless (its test_signals.py sends 35). Under glibc 35 has no handler and would
 * terminate the process, so the same no-op handler is installed for it too; Kindling never
 * kicks with it, so such a signal from outside can only cost a vCPU one KVM_RUN re-entry.
 */
import * as libc from './libc.js';
import { KindlingError } from '../errors.js';

/** Musl's SIGRTMIN (Firecracker's kick number in its releases) is glibc's SIGRTMIN + this. */
export const MUSL_SIGRTMIN_OFFSET = 1;

let kickSignal = -1;

/**
 * The signal used for kicks; installs its no-op handler once per process (idempotent), and the
 * same for SIGRTMIN + MUSL_SIGRTMIN_OFFSET (see above).
 */
export function installKickHandler(): number {
  if (kickSignal > 0) return kickSignal;
  const sig = libc.libcSigRtMin();
  const handler = libc.dlsym(null, 'getpid') as bigint | null;
  if (!handler) throw new KindlingError('VCPU_KICK_FAILED', 'dlsym(getpid) failed: no native no-op handler');
  const act = Buffer.alloc(libc.SIGACTION_SIZE);
  act.writeBigUInt64LE(handler, libc.SIGACTION_HANDLER_OFFSET);
  act.writeInt32LE(libc.SA_RESTART, libc.SIGACTION_FLAGS_OFFSET);
  const old = Buffer.alloc(libc.SIGACTION_SIZE);
  libc.check('sigaction', libc.sigaction(sig, act, old));
  libc.check('sigaction', libc.sigaction(sig + MUSL_SIGRTMIN_OFFSET, act, old));
  kickSignal = sig;
  return sig;
}

/** The calling thread's pthread_t, which a kicker needs to signal it. */
export function currentThreadId(): bigint {
  return BigInt(libc.pthreadSelf());
}

/** Sends the kick signal to a thread (step 3 above). */
export function signalThread(thread: bigint): void {
  const sig = installKickHandler();
  const r = libc.pthreadKill(thread, sig);
  if (r !== 0) throw new KindlingError('VCPU_KICK_FAILED', `pthread_kill failed: ${libc.errnoName(r)}`);
}

// ---------------------------------------------------------------------------------------------
// The libc side of Firecracker's signal handling (src/vmm/src/signal_handler.rs) that Node
// cannot do itself (docs/design.md, Signals; the JavaScript side is src/cli/signals.ts):
//
// - `oneShot(signals)`: the handlers Node installs for `process.on('SIGSEGV')` and friends
//   (libuv's, which only queue the signal for the event loop) get SA_RESETHAND. A signal sent
//   with kill(2) is then handled by the JavaScript listener as Firecracker handles it (log,
//   metrics, exit code); a real fault — the faulting instruction runs again as soon as the
//   handler returns — meets the default action instead of a handler that would return into
//   the same fault forever, so the process dies of the signal, as it would with no handler.
// - `exitNow(code)`: `_exit`, as Firecracker's handlers end the process. process.exit() would
//   join every worker thread, and a device actor sleeping in poll() never joins.
// ---------------------------------------------------------------------------------------------

/** Adds SA_RESETHAND to the handler currently installed for each signal (by number). */
export function oneShot(signals: readonly number[]): void {
  for (const sig of signals) {
    const cur = Buffer.alloc(libc.SIGACTION_SIZE);
    libc.check('sigaction', libc.sigaction(sig, null, cur));
    const flags = cur.readUInt32LE(libc.SIGACTION_FLAGS_OFFSET);
    cur.writeUInt32LE((flags | libc.SA_RESETHAND) >>> 0, libc.SIGACTION_FLAGS_OFFSET);
    libc.check('sigaction', libc.sigaction(sig, cur, Buffer.alloc(libc.SIGACTION_SIZE)));
  }
}

/** Ends the process now with `code` (no exit hooks, no thread joins). */
export function exitNow(code: number): never {
  libc.exitImmediately(code);
  throw new Error('unreachable: _exit returned');
}
