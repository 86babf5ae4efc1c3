/**
 * How the binaries end once runCli has returned its exit code (bin.ts, snapshot-entry.ts).
 *
 * The exit hooks run first, for at most EXIT_DRAIN_MS: the actor pool registers one that asks
 * its pre-started workers to quit (src/actors/actor-pool.ts). A worker still evaluating its
 * modules — koffi defining its structs — when process.exit tears the isolates down takes the
 * whole process with it (a native abort), so a VMM that ended with a code (a failed snapshot
 * load: 1) died by SIGABRT instead. Signal exits (signals.ts) stay immediate, as Firecracker's
 * `_exit`.
 */
import { runExitHooks } from '../util/exit-hooks.js';
import { EXIT } from './options.js';

/** Longest wait for the hooks before exiting anyway (a worker loads its modules in < 1 s). */
export const EXIT_DRAIN_MS = 3000;

/** Ends the process with `code` at once (EXIT.Abort, a panic: SIGABRT, as Firecracker aborts). */
export function exitNow(code: number): void {
  if (code === EXIT.Abort) process.kill(process.pid, 'SIGABRT');
  else process.exit(code);
}

let exiting = false;

/** Runs the exit hooks (bounded), then exitNow(code). */
export function exitAfterDrain(code: number): void {
  if (exiting) return;
  exiting = true;
  void runExitHooks(EXIT_DRAIN_MS).finally(() => exitNow(code));
}
