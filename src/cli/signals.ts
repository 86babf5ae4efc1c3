/**
 * Firecracker's signal handling (src/vmm/src/signal_handler.rs, main.rs's panic hook) for the
 * `firecracker` binary, as far as Node allows (docs/design.md, Signals):
 *
 * | signal  | counted                   | then                                      |
 * |---------|---------------------------|-------------------------------------------|
 * | SIGBUS  | signals.sigbus = 1        | exit 149                                  |
 * | SIGSEGV | signals.sigsegv = 1       | exit 150                                  |
 * | SIGXFSZ | signals.sigxfsz = 1       | exit 151                                  |
 * | SIGXCPU | signals.sigxcpu = 1       | exit 154                                  |
 * | SIGHUP  | signals.sighup = 1        | exit 156                                  |
 * | SIGILL  | signals.sigill = 1        | exit 157                                  |
 * | SIGSYS  | seccomp.num_faults = 1    | exit 148 with a filter installed, else 2  |
 * | SIGPIPE | signals.sigpipe += 1      | logged, the VMM goes on                   |
 *
 * Each fatal one logs "Shutting down VM after intercepting signal N, code C.", writes the
 * metrics and ends the process at once (`_exit`, as Firecracker's `exit_with_code`).
 *
 * What Node does not allow, and what Kindling does instead:
 * - Node runs these listeners on the main thread's event loop, after libuv's native handler
 *   queued the signal, and does not pass the siginfo. The code printed is always 0 (SI_USER,
 *   what kill(2) sends), and a SIGSYS cannot be told from a seccomp trap (si_code SYS_SECCOMP).
 *   With a seccomp filter installed (src/seccomp/process.ts) every SIGSYS is taken for a trap:
 *   "Shutting down VM after intercepting a bad syscall." and exit 148 (BadSyscall), without
 *   the syscall number Firecracker prints (it is in the siginfo). Without a filter
 *   (--no-seccomp) no trap can happen, and a SIGSYS exits 2 (UnexpectedError) as Firecracker
 *   handles one whose si_code is not SYS_SECCOMP.
 * - A real fault (SIGSEGV/SIGBUS/SIGILL raised by an instruction) cannot run JavaScript: the
 *   handlers are made one-shot (src/kvm/kick.ts `oneShot`), so a real fault kills the process
 *   with the signal, as it would without a handler, instead of looping on the faulting
 *   instruction; a signal sent from outside gets Firecracker's handling.
 * - SIGXFSZ raised by a write past RLIMIT_FSIZE is delivered like a sent one (the write fails
 *   with EFBIG and returns), so it is handled as in Firecracker.
 * - SIGRTMIN+1, the kick signal of Firecracker's musl builds, is ignored like the kick
 *   (src/kvm/kick.ts).
 * - A panic is an uncaught exception: "Firecracker panicked at ...", `vmm.panic_count` = 1, the
 *   metrics written, then abort (SIGABRT), as Firecracker's panic hook and panic = "abort".
 */
import { writeSync } from 'node:fs';
import { constants } from 'node:os';
import type { Logger } from '../logger/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { EXIT } from './options.js';

const MAIN = { thread: 'main', module: 'vmm::signal_handler' } as const;

/** What one handled signal does. */
interface HandledSignal {
  name: NodeJS.Signals;
  /** The metric it sets (or increments, for SIGPIPE). */
  count: (m: Metrics) => void;
  /** Exit code; null: the VMM goes on (SIGPIPE). */
  exit: number | null;
}

/** The signals Firecracker handles (signal_handler.rs `register_signal_handlers`). */
export const HANDLED_SIGNALS: readonly HandledSignal[] = [
  { name: 'SIGSYS', count: (m) => m.seccomp.num_faults.store(1), exit: EXIT.UnexpectedError },
  { name: 'SIGBUS', count: (m) => m.signals.sigbus.store(1), exit: EXIT.SIGBUS },
  { name: 'SIGSEGV', count: (m) => m.signals.sigsegv.store(1), exit: EXIT.SIGSEGV },
  { name: 'SIGXFSZ', count: (m) => m.signals.sigxfsz.store(1), exit: EXIT.SIGXFSZ },
  { name: 'SIGXCPU', count: (m) => m.signals.sigxcpu.store(1), exit: EXIT.SIGXCPU },
  { name: 'SIGPIPE', count: (m) => m.signals.sigpipe.inc(), exit: null },
  { name: 'SIGHUP', count: (m) => m.signals.sighup.store(1), exit: EXIT.SIGHUP },
  { name: 'SIGILL', count: (m) => m.signals.sigill.store(1), exit: EXIT.SIGILL },
];

/** Signals a faulting instruction raises: their handlers become one-shot. */
export const FAULT_SIGNALS: readonly NodeJS.Signals[] = ['SIGSEGV', 'SIGBUS', 'SIGILL'];

/** si_code Node cannot read; kill(2) sends SI_USER = 0. */
const SI_USER = 0;

let seccompInstalled = false;

/** A seccomp filter now guards the process: a SIGSYS is a trapped syscall (exit 148). */
export function markSeccompInstalled(): void {
  seccompInstalled = true;
}

export interface SignalDeps {
  logger: Logger;
  metrics: Metrics;
  /** Ends the process with a code, at once (the binary: `_exit`). */
  exit: (code: number) => void;
}

/** Firecracker's `exit_with_code`: the metrics first, then the exit. */
function exitWithCode(d: SignalDeps, code: number, what: 'stopping' | 'panicking'): void {
  try {
    d.metrics.write();
  } catch (e) {
    d.logger.error(`Failed to write metrics while ${what}: ${(e as Error).message}`, MAIN);
  }
  d.exit(code);
}

/**
 * Registers the handlers (`register_signal_handlers`) and the panic hook. Returns a function
 * that removes them (tests).
 */
export function installSignalHandlers(d: SignalDeps): () => void {
  const listeners: [NodeJS.Signals, () => void][] = HANDLED_SIGNALS.map((s) => {
    const signo = constants.signals[s.name];
    return [s.name, () => {
      s.count(d.metrics);
      if (s.name === 'SIGSYS' && seccompInstalled) {
        // signal_handler.rs sigsys_handler: the metrics, then _exit(BadSyscall).
        d.logger.error('Shutting down VM after intercepting a bad syscall.', MAIN);
        exitWithCode(d, EXIT.BadSyscall, 'stopping');
        return;
      }
      if (s.exit === null) {
        d.logger.error(`Received signal ${signo}, code ${SI_USER}.`, MAIN);
        return;
      }
      d.logger.error(`Shutting down VM after intercepting signal ${signo}, code ${SI_USER}.`, MAIN);
      exitWithCode(d, s.exit, 'stopping');
    }];
  });
  for (const [name, f] of listeners) process.on(name, f);
  const panic = (e: unknown): void => {
    const err = e instanceof Error ? e : new Error(String(e));
    const at = err.stack?.split('\n').find((l) => /^\s+at /.test(l))?.trim().replace(/^at /, '') ?? 'unknown location';
    d.logger.error(`Firecracker panicked at ${at}:\n${err.message}`, MAIN);
    // Firecracker's hook prints nothing else; the stack is for whoever debugs Kindling.
    try {
      writeSync(2, `${err.stack ?? err.message}\n`); // synchronous: the abort follows
    } catch {
      // stderr closed: the log line above is the record
    }
    d.metrics.vmm.panic_count.store(1);
    exitWithCode(d, EXIT.Abort, 'panicking');
  };
  process.on('uncaughtException', panic);
  return () => {
    for (const [name, f] of listeners) process.off(name, f);
    process.off('uncaughtException', panic);
  };
}

/**
 * The part that needs libc (loaded with the VM machinery, off the start-up path): one-shot fault
 * handlers, the no-op handler for SIGRTMIN+1, and `_exit`. Resolves with the exit function.
 */
export async function hardenSignalHandlers(): Promise<(code: number) => never> {
  const { oneShot, exitNow, installKickHandler } = await import('../kvm/kick.js');
  oneShot(FAULT_SIGNALS.map((s) => constants.signals[s]));
  installKickHandler();
  return exitNow;
}
