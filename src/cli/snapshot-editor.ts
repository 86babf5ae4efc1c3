/**
 * `snapshot-editor` (bin/snapshot-editor.js): Firecracker's snapshot tool
 * (src/snapshot-editor/src/main.rs, edit_memory.rs), the `edit-memory rebase` command only
 * (src/snapshot/rebase.ts). Firecracker's tool parses with clap, not with the Firecracker
 * binary's own parser (arg-parser.ts), so this follows clap's behaviour:
 *  - `--memory-path`/`-m` and `--diff-path`/`-d` take a value as the next argument, after `=`,
 *    or (short form) joined (`-mPATH`); each once; both required; any other argument is an error;
 *  - a usage error prints `error: …`, the usage line and `For more information, try '--help'.`
 *    on stderr and exits 2 (clap's usage exit code); `--help`/`-h` prints help on stdout and
 *    `--version`/`-V` the version, exiting 0;
 *  - a failed command prints `Error during editing memory file: <error>` on stderr and exits 1
 *    (Rust `main` returning Err).
 * `info-vmstate` and the aarch64-only `edit-vmstate` read Firecracker's vmstate format, which
 * Kindling does not write; they are refused with exit 1.
 */
import { FIRECRACKER_VERSION } from '../vmm/actions.js';
import { rebaseMemoryFile } from '../snapshot/rebase.js';

/** clap's exit code for a usage error (clap::error::Error::exit, USAGE_CODE). */
export const EXIT_USAGE = 2;
/** Rust `main` returning `Err`. */
export const EXIT_FAILURE = 1;
export const EXIT_OK = 0;

export interface EditorIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const BIN = 'snapshot-editor';
const TOP_USAGE = `Usage: ${BIN} <COMMAND>`;
const EDIT_USAGE = `Usage: ${BIN} edit-memory <COMMAND>`;
const REBASE_USAGE = `Usage: ${BIN} edit-memory rebase --memory-path <MEMORY_PATH> --diff-path <DIFF_PATH>`;

const TOP_HELP = `${TOP_USAGE}

Commands:
  edit-memory   
  info-vmstate  
  help          Print this message or the help of the given subcommand(s)

Options:
  -h, --help     Print help
  -V, --version  Print version
`;
const EDIT_HELP = `${EDIT_USAGE}

Commands:
  rebase  Apply a diff snapshot on top of a base one
  help    Print this message or the help of the given subcommand(s)

Options:
  -h, --help  Print help
`;
const REBASE_HELP = `Apply a diff snapshot on top of a base one

${REBASE_USAGE}

Options:
  -m, --memory-path <MEMORY_PATH>  Path to the memory file
  -d, --diff-path <DIFF_PATH>      Path to the diff file
  -h, --help                       Print help
`;

/** The rebase options as clap names them in messages. */
const OPTIONS = [
  { key: 'memory', long: '--memory-path', short: '-m', shown: '--memory-path <MEMORY_PATH>' },
  { key: 'diff', long: '--diff-path', short: '-d', shown: '--diff-path <DIFF_PATH>' },
] as const;

/** A usage error, clap style. */
function usage(io: EditorIo, message: string, usageLine: string): number {
  io.stderr(`error: ${message}\n\n${usageLine}\n\nFor more information, try '--help'.\n`);
  return EXIT_USAGE;
}

/** `edit-memory rebase <args>`. */
function rebase(args: readonly string[], io: EditorIo): number {
  const values = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--help' || a === '-h') {
      io.stdout(REBASE_HELP);
      return EXIT_OK;
    }
    const opt = OPTIONS.find((o) => a === o.long || a === o.short || a.startsWith(`${o.long}=`) || (a.startsWith(o.short) && !a.startsWith('--')));
    if (!opt) return usage(io, `unexpected argument '${a}' found`, REBASE_USAGE);
    let value: string | undefined;
    if (a.startsWith(`${opt.long}=`)) value = a.slice(opt.long.length + 1);
    else if (a !== opt.long && a !== opt.short) value = a.slice(opt.short.length).replace(/^=/, '');
    else if (!OPTIONS.some((o) => args[i + 1] === o.long || args[i + 1] === o.short)) value = args[++i];
    if (value === undefined || value === '') return usage(io, `a value is required for '${opt.shown}' but none was supplied`, REBASE_USAGE);
    if (values.has(opt.key)) return usage(io, `the argument '${opt.shown}' cannot be used multiple times`, REBASE_USAGE);
    values.set(opt.key, value);
  }
  const missing = OPTIONS.filter((o) => !values.has(o.key));
  if (missing.length) {
    return usage(io, `the following required arguments were not provided:\n${missing.map((o) => `  ${o.shown}`).join('\n')}`, REBASE_USAGE);
  }
  try {
    rebaseMemoryFile(values.get('memory')!, values.get('diff')!);
    return EXIT_OK;
  } catch (e) {
    io.stderr(`Error during editing memory file: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_FAILURE;
  }
}

/** Runs `snapshot-editor <argv>`; returns the exit code. */
export function runSnapshotEditor(argv: readonly string[], io: EditorIo): number {
  const [cmd, sub, ...rest] = argv;
  if (cmd === undefined) {
    return usage(io, `'${BIN}' requires a subcommand but one was not provided\n  [subcommands: edit-memory, info-vmstate, help]`, TOP_USAGE);
  }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    io.stdout(TOP_HELP);
    return EXIT_OK;
  }
  if (cmd === '--version' || cmd === '-V') {
    io.stdout(`${BIN} v${FIRECRACKER_VERSION}\n`);
    return EXIT_OK;
  }
  if (cmd === 'info-vmstate' || cmd === 'edit-vmstate') {
    io.stderr(`Kindling's ${BIN} does not support ${cmd}: it reads Firecracker's vmstate format, which Kindling does not write. Supported: edit-memory rebase.\n`);
    return EXIT_FAILURE;
  }
  if (cmd !== 'edit-memory') return usage(io, `unrecognized subcommand '${cmd}'`, TOP_USAGE);
  if (sub === undefined) {
    return usage(io, `'${BIN} edit-memory' requires a subcommand but one was not provided\n  [subcommands: rebase, help]`, EDIT_USAGE);
  }
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout(EDIT_HELP);
    return EXIT_OK;
  }
  if (sub !== 'rebase') return usage(io, `unrecognized subcommand '${sub}'`, EDIT_USAGE);
  return rebase(rest, io);
}
