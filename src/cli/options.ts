/**
 * The `firecracker` command line (src/firecracker/src/main.rs), parsed into typed
 * options. Failures carry the exit code Firecracker uses: 153 for argument errors, 152 for an
 * invalid --level, 134 (SIGABRT) where Firecracker panics (bad --id, unparsable numbers).
 */
import { parseLevel, type LogLevel } from '../config/logger.js';
import { ApiLayerError } from '../errors.js';
import { ArgParseError, ArgSpec, ParsedArgs, parseArgs } from './arg-parser.js';

/** DEFAULT_API_SOCK_PATH. */
export const DEFAULT_API_SOCK_PATH = '/run/firecracker.socket';
/**
 * Exit codes (FcExitCode, src/vmm/src/lib.rs), plus Abort: the 134 a panic's SIGABRT gives.
 * The key is the variant's name, which Firecracker's error lines print (`{:?}`).
 */
export const EXIT = {
  Ok: 0, GenericError: 1, UnexpectedError: 2, BadSyscall: 148, SIGBUS: 149, SIGSEGV: 150, SIGXFSZ: 151,
  BadConfiguration: 152, ArgParsing: 153, SIGXCPU: 154, SIGPIPE: 155, SIGHUP: 156, SIGILL: 157, Abort: 134,
} as const;

/** FcExitCode's Debug text for a code (`GenericError`), or the number when it is none of them. */
export function exitCodeName(code: number): string {
  return Object.entries(EXIT).find(([name, c]) => c === code && name !== 'Abort')?.[0] ?? String(code);
}

/** Firecracker's argument table (help texts verbatim). */
export const FIRECRACKER_ARGS: readonly ArgSpec[] = [
  { name: 'api-sock', takesValue: true, defaultValue: DEFAULT_API_SOCK_PATH, help: 'Path to unix domain socket used by the API.' },
  { name: 'id', takesValue: true, defaultValue: 'anonymous-instance', help: 'MicroVM unique identifier.' },
  { name: 'seccomp-filter', takesValue: true, forbids: ['no-seccomp'], help: 'Optional parameter which allows specifying the path to a custom seccomp filter. For advanced users.' },
  { name: 'no-seccomp', takesValue: false, forbids: ['seccomp-filter'], help: 'Optional parameter which allows starting and using a microVM without seccomp filtering. Not recommended.' },
  { name: 'start-time-us', takesValue: true, help: 'Process start time (wall clock, microseconds). This parameter is optional.' },
  { name: 'start-time-cpu-us', takesValue: true, help: 'Process start CPU time (wall clock, microseconds). This parameter is optional.' },
  { name: 'parent-cpu-time-us', takesValue: true, help: 'Parent process CPU time (wall clock, microseconds). This parameter is optional.' },
  { name: 'config-file', takesValue: true, help: 'Path to a file that contains the microVM configuration in JSON format.' },
  { name: 'metadata', takesValue: true, help: 'Path to a file that contains metadata in JSON format to add to the mmds.' },
  { name: 'no-api', takesValue: false, requires: 'config-file', help: 'Optional parameter which allows starting and using a microVM without an active API socket.' },
  { name: 'log-path', takesValue: true, help: 'Path to a fifo or a file used for configuring the logger on startup.' },
  { name: 'level', takesValue: true, help: 'Set the logger level.' },
  { name: 'module', takesValue: true, help: 'Set the logger module filter.' },
  { name: 'show-level', takesValue: false, help: 'Whether or not to output the level in the logs.' },
  { name: 'show-log-origin', takesValue: false, help: "Whether or not to include the file path and line number of the log's origin." },
  { name: 'metrics-path', takesValue: true, help: 'Path to a fifo or a file used for configuring the metrics on startup.' },
  { name: 'boot-timer', takesValue: false, help: 'Whether or not to load boot timer device for logging elapsed time since InstanceStart command.' },
  { name: 'version', takesValue: false, help: 'Print the binary version number.' },
  { name: 'snapshot-version', takesValue: false, help: 'Print the supported data format version.' },
  { name: 'describe-snapshot', takesValue: true, help: 'Print the data format version of the provided snapshot state file.' },
  { name: 'http-api-max-payload-size', takesValue: true, defaultValue: '51200', help: 'Http API request payload max size, in bytes.' },
  { name: 'mmds-size-limit', takesValue: true, help: 'Mmds data store limit, in bytes.' },
  { name: 'enable-pci', takesValue: false, help: 'Enables PCIe support.' },
];

/** A startup failure: the text Firecracker logs/prints and the exit code. */
export class CliError extends ApiLayerError {
  constructor(message: string, readonly exitCode: number, readonly debug: string) {
    super('CLI_ARGUMENT', message);
  }
}

/** Typed options for a normal run. */
export interface CliOptions {
  kind: 'run';
  apiSock: string;
  id: string;
  configFile: string | null;
  metadata: string | null;
  noApi: boolean;
  logPath: string | null;
  level: LogLevel | null;
  module: string | null;
  showLevel: boolean;
  showLogOrigin: boolean;
  metricsPath: string | null;
  bootTimer: boolean;
  seccompFilter: string | null;
  noSeccomp: boolean;
  httpApiMaxPayloadSize: number;
  mmdsSizeLimit: number;
  startTimeUs: number | null;
  startTimeCpuUs: number | null;
  parentCpuTimeUs: number | null;
  enablePci: boolean;
  extra: readonly string[];
}

/** What the command line asks for. */
export type CliCommand =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'snapshot-version' }
  | { kind: 'describe-snapshot'; path: string }
  | CliOptions;

/** `validate_instance_id`: 1–64 chars, alphanumeric or `-`; else Firecracker panics. */
export function validateInstanceId(id: string): string | null {
  const chars = [...id];
  if (id.length < 1 || id.length > 64) return `InvalidLen(${id.length}, 1, 64)`;
  for (const [i, c] of chars.entries()) if (!(c === '-' || /^[\p{Alphabetic}\p{Nd}\p{Nl}\p{No}]$/u.test(c))) return `InvalidChar('${c}', ${i})`;
  return null;
}

function panic(msg: string): CliError {
  return new CliError(msg, EXIT.Abort, `panic: ${msg}`);
}

function parseNum(args: ParsedArgs, name: string, type: 'usize' | 'u64'): number | null {
  const v = args.value(name);
  if (v === undefined) return null;
  if (!/^\+?[0-9]+$/.test(v)) {
    const kind = v === '' ? 'Empty' : 'InvalidDigit';
    throw panic(`'${name}' parameter expected to be of '${type}' type.: ParseIntError { kind: ${kind} }`);
  }
  return Number(v.replace('+', ''));
}

/** Parses argv (without node/script) into a command; throws `CliError`. */
export function parseCommandLine(argv: readonly string[]): CliCommand {
  let args: ParsedArgs;
  try {
    args = parseArgs(FIRECRACKER_ARGS, argv);
  } catch (e) {
    if (!(e instanceof ArgParseError)) throw e;
    throw new CliError(`Arguments parsing error: ${e.message} \n\nFor more information try --help.`, EXIT.ArgParsing, `ParseArguments(${e.debug})`);
  }
  if (args.flag('help')) return { kind: 'help' };
  if (args.flag('version')) return { kind: 'version' };
  if (args.flag('snapshot-version')) return { kind: 'snapshot-version' };
  const describe = args.value('describe-snapshot');
  if (describe !== undefined) return { kind: 'describe-snapshot', path: describe };
  const id = args.value('id')!;
  const bad = validateInstanceId(id);
  if (bad) throw panic(`Invalid instance ID: ${bad}`);
  const levelStr = args.value('level');
  let level: LogLevel | null = null;
  if (levelStr !== undefined) {
    level = parseLevel(levelStr);
    if (!level) {
      throw new CliError(
        `Invalid value for logger level: Failed to parse string to level filter: ${levelStr}.Possible values: [Error, Warning, Info, Debug]`,
        EXIT.BadConfiguration,
        `InvalidLogLevel(LevelFilterFromStrError(${JSON.stringify(levelStr)}))`,
      );
    }
  }
  const payload = parseNum(args, 'http-api-max-payload-size', 'usize')!;
  return {
    kind: 'run',
    apiSock: args.value('api-sock')!,
    id,
    configFile: args.value('config-file') ?? null,
    metadata: args.value('metadata') ?? null,
    noApi: args.flag('no-api'),
    logPath: args.value('log-path') ?? null,
    level,
    module: args.value('module') ?? null,
    showLevel: args.flag('show-level'),
    showLogOrigin: args.flag('show-log-origin'),
    metricsPath: args.value('metrics-path') ?? null,
    bootTimer: args.flag('boot-timer'),
    seccompFilter: args.value('seccomp-filter') ?? null,
    noSeccomp: args.flag('no-seccomp'),
    httpApiMaxPayloadSize: payload,
    mmdsSizeLimit: parseNum(args, 'mmds-size-limit', 'usize') ?? payload,
    startTimeUs: parseNum(args, 'start-time-us', 'u64'),
    startTimeCpuUs: parseNum(args, 'start-time-cpu-us', 'u64'),
    parentCpuTimeUs: parseNum(args, 'parent-cpu-time-us', 'u64'),
    enablePci: args.flag('enable-pci'),
    extra: args.extra,
  };
}
