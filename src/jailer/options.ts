/**
 * The jailer's command line (src/jailer/src/main.rs `build_arg_parser`) and its validation
 * (src/jailer/src/env.rs `Env::new`), in Firecracker's order so the first bad argument is the
 * one reported. Validation only reads the host: nothing is created before every argument
 * passed (the cgroup controllers are checked here, written in jail.ts).
 */
import { realpathSync, statSync } from 'node:fs';
import { basename, isAbsolute, join } from 'node:path';
import { ArgParseError, type ArgSpec, parseArgs } from '../cli/arg-parser.js';
import { validateInstanceId } from '../cli/options.js';
import { type CgroupSetting, type CgroupVersion, planCgroups } from './cgroup.js';
import { ioError, jailerErrors } from './errors.js';

/** Firecracker's jailer version string (Kindling implements v1.16.1). */
export const JAILER_VERSION = '1.16.1';

export const JAILER_ARGS: readonly ArgSpec[] = [
  { name: 'id', takesValue: true, required: true, help: 'Jail ID.' },
  { name: 'exec-file', takesValue: true, required: true, help: 'File path to exec into.' },
  { name: 'uid', takesValue: true, required: true, help: 'The user identifier the jailer switches to after exec.' },
  { name: 'gid', takesValue: true, required: true, help: 'The group identifier the jailer switches to after exec.' },
  { name: 'chroot-base-dir', takesValue: true, defaultValue: '/srv/jailer', help: 'The base folder where chroot jails are located.' },
  { name: 'netns', takesValue: true, help: 'Path to the network namespace this microVM should join.' },
  { name: 'daemonize', takesValue: false, help: 'Daemonize the jailer before exec, by invoking setsid(), and redirecting the standard I/O file descriptors to /dev/null.' },
  { name: 'new-pid-ns', takesValue: false, help: 'Exec into a new PID namespace.' },
  { name: 'cgroup', takesValue: true, multiple: true, help: 'Cgroup and value to be set by the jailer. It must follow this format: <cgroup_file>=<value> (e.g cpu.shares=10). This argument can be used multiple times to add multiple cgroups.' },
  { name: 'resource-limit', takesValue: true, multiple: true, help: 'Resource limit values to be set by the jailer. It must follow this format: <resource>=<value> (e.g no-file=1024). This argument can be used multiple times to add multiple resource limits. Current available resource values are:\n\t\tfsize: The maximum size in bytes for files created by the process.\n\t\tno-file: Specifies a value one greater than the maximum file descriptor number that can be opened by this process.' },
  { name: 'cgroup-version', takesValue: true, defaultValue: '1', help: 'Select the cgroup version used by the jailer.' },
  { name: 'parent-cgroup', takesValue: true, help: 'Parent cgroup in which the cgroup of this microvm will be placed.' },
  { name: 'version', takesValue: false, help: 'Print the binary version number.' },
];

/** resource_limits.rs: the default RLIMIT_NOFILE the jailer sets, and the argument names. */
export const DEFAULT_NO_FILE = 2048n;
export const FSIZE_ARG = 'fsize';
export const NO_FILE_ARG = 'no-file';

export interface JailerOptions {
  id: string;
  /** The exec file, canonical. */
  execFile: string;
  execName: string;
  /** `<chroot-base-dir>/<exec name>/<id>/root`. */
  chrootDir: string;
  uid: number;
  gid: number;
  netns: string | null;
  daemonize: boolean;
  newPidNs: boolean;
  cgroupVersion: CgroupVersion;
  /** The cgroup folders and values to write, already checked against the host's hierarchies. */
  cgroups: CgroupSetting[];
  /** v2 with no --cgroup: the parent cgroup folder to move into, when it exists. */
  cgroupParentOnly: string | null;
  fsize: bigint | null;
  noFile: bigint;
  /** Arguments after `--`, for the VMM. */
  extra: readonly string[];
}

export type JailerCommand = { kind: 'help' } | { kind: 'version' } | ({ kind: 'run' } & JailerOptions);

/** Where the host's mounts are listed (cgroup hierarchies); tests point it at a fixture. */
export interface HostView {
  procMounts: string;
}

const U32_MAX = 0xffff_ffff;
const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** Rust's `str::parse::<u32>()`: optional '+', decimal digits, in range. */
function parseU32(s: string): number | null {
  if (!/^\+?[0-9]+$/.test(s)) return null;
  const n = Number(s.replace('+', ''));
  return n <= U32_MAX ? n : null;
}

/** `str::parse::<u64>()` with the ParseIntError Display for the failure. */
function parseU64(s: string): bigint | string {
  if (s === '') return 'cannot parse integer from empty string';
  if (!/^\+?[0-9]+$/.test(s)) return 'invalid digit found in string';
  const n = BigInt(s.replace('+', ''));
  return n <= U64_MAX ? n : 'number too large to fit in target type';
}

/** `Path::components()` holds `.`, `..` or the root. */
const hasDotOrRoot = (p: string): boolean => isAbsolute(p) || p.split('/').some((c) => c === '.' || c === '..');

/** Parses and validates argv (without node/script); throws JailerError. */
export function parseJailerArgs(argv: readonly string[], host: HostView = { procMounts: '/proc/mounts' }): JailerCommand {
  let args;
  try {
    args = parseArgs(JAILER_ARGS, argv);
  } catch (e) {
    if (e instanceof ArgParseError) throw jailerErrors.argumentParsing(e.message, e.debug);
    throw e;
  }
  if (args.flag('help')) return { kind: 'help' };
  if (args.flag('version')) return { kind: 'version' };

  const id = args.value('id')!;
  const badId = validateInstanceId(id);
  if (badId) throw jailerErrors.invalidInstanceId(badId);

  const execArg = args.value('exec-file')!;
  let execFile: string;
  try {
    execFile = realpathSync(execArg);
  } catch (e) {
    throw jailerErrors.canonicalize(execArg, ioError(e));
  }
  if (!statSync(execFile).isFile()) throw jailerErrors.notAFile(execFile);
  const execName = basename(execFile);
  if (!execName.includes('firecracker')) throw jailerErrors.execFileName(execName);

  const baseArg = args.value('chroot-base-dir')!;
  let base: string;
  try {
    base = realpathSync(baseArg);
  } catch (e) {
    throw jailerErrors.canonicalize(baseArg, ioError(e));
  }
  if (!statSync(base).isDirectory()) throw jailerErrors.notADirectory(base);
  const chrootDir = join(base, execName, id, 'root');

  const uidArg = args.value('uid')!;
  const uid = parseU32(uidArg);
  if (uid === null) throw jailerErrors.uid(uidArg);
  const gidArg = args.value('gid')!;
  const gid = parseU32(gidArg);
  if (gid === null) throw jailerErrors.gid(gidArg);

  const parent = args.value('parent-cgroup') ?? execName;
  if (hasDotOrRoot(parent)) throw jailerErrors.cgroupInvalidParentPath();
  const verArg = args.value('cgroup-version')!;
  const ver = /^\+?[0-9]+$/.test(verArg) && Number(verArg.replace('+', '')) <= 255 ? Number(verArg.replace('+', '')) : null;
  if (ver === null) throw jailerErrors.cgroupInvalidVersion(verArg);
  const cgroupArgs = args.all('cgroup');
  const plan = planCgroups({ version: ver, parent, id, settings: cgroupArgs, procMounts: host.procMounts });

  let fsize: bigint | null = null;
  let noFile = DEFAULT_NO_FILE;
  for (const arg of args.all('resource-limit')) {
    const eq = arg.indexOf('=');
    if (eq === -1) throw jailerErrors.resLimitFormat(arg);
    const [name, value] = [arg.slice(0, eq), arg.slice(eq + 1)];
    const n = parseU64(value);
    if (typeof n === 'string') throw jailerErrors.resLimitValue(value, n);
    if (name === FSIZE_ARG) fsize = n;
    else if (name === NO_FILE_ARG) noFile = n;
    else throw jailerErrors.resLimitArgument(name);
  }

  return {
    kind: 'run', id, execFile, execName, chrootDir, uid, gid,
    netns: args.value('netns') ?? null,
    daemonize: args.flag('daemonize'),
    newPidNs: args.flag('new-pid-ns'),
    cgroupVersion: plan.version,
    cgroups: plan.settings,
    cgroupParentOnly: plan.parentOnly,
    fsize, noFile,
    extra: args.extra,
  };
}
