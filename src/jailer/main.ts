/**
 * `kindling-jailer` / `jailer` (src/jailer/src/main.rs `main`): parse, validate, jail, exec.
 * What Firecracker's jailer prints and how it ends:
 * - `--help`: `Jailer v<version>`, the arguments, the `--` note; `--version`: the version; 0.
 * - an argument the parser refuses: `Failed to parse arguments: <error>` on stderr, then
 *   Rust's `Error: ArgumentParsing(<debug>)` for main's Err, exit 1.
 * - any later error (validation or a jail step): a panic, `Jailer error: <error>`, which
 *   aborts the process (SIGABRT; the binary reports 134 as kindling.js does).
 * Validation runs before anything is created, so a bad argument leaves no jail behind.
 */
import { formattedHelp } from '../cli/arg-parser.js';
import { JailerError } from './errors.js';
import { cpuUs, monotonicUs, runJail } from './jail.js';
import { JAILER_ARGS, JAILER_VERSION, parseJailerArgs, type HostView } from './options.js';

/** Exit code the binary turns into SIGABRT (a Rust panic with panic = "abort"). */
export const EXIT_ABORT = 134;

export interface JailerDeps {
  stdout?: (s: string) => void;
  stderr?: (s: string) => void;
  host?: HostView;
  /** Runs the jail (tests of the argument errors leave it out of reach). */
  run?: typeof runJail;
}

/** Runs the jailer; resolves with the exit code when it does not exec. */
export function runJailer(argv: readonly string[], deps: JailerDeps = {}): number {
  const times = { startUs: monotonicUs(), startCpuUs: cpuUs() };
  const out = deps.stdout ?? ((s: string) => void process.stdout.write(s));
  const err = deps.stderr ?? ((s: string) => void process.stderr.write(s));
  let cmd;
  try {
    cmd = parseJailerArgs(argv, deps.host);
  } catch (e) {
    return report(e, err);
  }
  if (cmd.kind === 'help') {
    out(`Jailer v${JAILER_VERSION}\n\n${formattedHelp(JAILER_ARGS)}\n\nAny arguments after the -- separator will be supplied to the jailed binary.\n\n`);
    return 0;
  }
  if (cmd.kind === 'version') {
    out(`Jailer v${JAILER_VERSION}\n\n`);
    return 0;
  }
  try {
    (deps.run ?? runJail)(cmd, times);
    return 0;
  } catch (e) {
    return report(e, err);
  }
}

function report(e: unknown, err: (s: string) => void): number {
  if (!(e instanceof JailerError)) throw e;
  if (e.variant === 'ArgumentParsing') {
    err(`${e.message}\nError: ${e.debug}\n`);
    return 1;
  }
  err(`thread 'main' panicked at src/jailer/src/main.rs:\nJailer error: ${e.message}\n`);
  return EXIT_ABORT;
}
