/**
 * The libc side of Firecracker's signal handling (src/vmm/src/signal_handler.rs) that Node
 * cannot do itself (docs/design.md, Signals):
 *
 * - `oneShot(signals)`: the handlers Node installs for `process.on('SIGSEGV')` and friends
 *   (libuv's, which only queue the signal for the event loop) get SA_RESETHAND. A signal sent
 *   with kill(2) is then handled by the JavaScript listener as Firecracker handles it (log,
 *   metrics, exit code); a real fault — the faulting instruction runs again as soon as the
 *   handler returns — meets the default action instead of a handler that would return into
 *   the same fault forever, so the process dies of the signal, as it would with no handler.
 * - `exitNow(code)`: `_exit`, as Firecracker's handlers end the process. process.exit() would
 *   join every worker thread, and a device actor sleeping in poll() never joins.
 */
import * as libc from './libc.js';

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
