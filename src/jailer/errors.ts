/**
 * Firecracker's `JailerError` (src/jailer/src/main.rs): each variant's Display text, as the
 * jailer prints it. Paths are printed with `{:?}` and then every `"` removed, so they appear
 * bare; io errors are Rust's io::Error Display (src/util/io-error.ts).
 */
import { KindlingError } from '../errors.js';
import { HostIoError } from '../util/io-error.js';

/** One failed jailer step; `variant` is the JailerError variant's name. */
export class JailerError extends KindlingError {
  /** Rust's `{:?}` of the error, as `main` returning Err prints it. */
  readonly debug: string;
  constructor(readonly variant: string, message: string, debug?: string) {
    super('JAILER', message);
    this.debug = debug ?? `${variant}(${JSON.stringify(message)})`;
  }
}

/** An io::Error from an errno. */
export const errnoIoError = (errno: number): HostIoError => HostIoError.os(errno);

/** An io::Error from whatever a Node fs call threw (or its message, if not an OS error). */
export function ioError(e: unknown): string {
  return HostIoError.from(e)?.message ?? (e instanceof Error ? e.message : String(e));
}

type Io = HostIoError | string;
const t = (io: Io): string => (typeof io === 'string' ? io : io.message);

export const jailerErrors = {
  argumentParsing: (msg: string, debug: string) => new JailerError('ArgumentParsing', `Failed to parse arguments: ${msg}`, `ArgumentParsing(${debug})`),
  canonicalize: (path: string, io: Io) => new JailerError('Canonicalize', `Failed to canonicalize path ${path}: ${t(io)}`),
  cgroupInheritFromParent: (path: string, file: string) => new JailerError('CgroupInheritFromParent', `Failed to inherit cgroups configurations from file ${file} in path ${path}`),
  cgroupLineNotFound: (mounts: string, controller: string) => new JailerError('CgroupLineNotFound', `${controller} configurations not found in ${mounts}`),
  cgroupInvalidFile: (file: string) => new JailerError('CgroupInvalidFile', `Cgroup invalid file: ${file}`),
  cgroupFormat: (arg: string) => new JailerError('CgroupFormat', `Invalid format for cgroups: ${arg}`),
  cgroupHierarchyMissing: (arg: string) => new JailerError('CgroupHierarchyMissing', `Hierarchy not found: ${arg}`),
  cgroupControllerUnavailable: (c: string) => new JailerError('CgroupControllerUnavailable', `Controller ${c} is unavailable`),
  cgroupInvalidVersion: (v: string) => new JailerError('CgroupInvalidVersion', `${v} is an invalid cgroup version specifier`),
  cgroupInvalidParentPath: () => new JailerError('CgroupInvalidParentPath', 'Parent cgroup path is invalid. Path should not be absolute or contain \'..\' or \'.\''),
  cgroupWrite: (io: Io) => new JailerError('CgroupWrite', `Failed to write to cgroups file: ${t(io)}`),
  changeFileOwner: (path: string, io: Io) => new JailerError('ChangeFileOwner', `Failed to change owner for ${path}: ${t(io)}`),
  chdirNewRoot: (io: Io) => new JailerError('ChdirNewRoot', `Failed to chdir into chroot directory: ${t(io)}`),
  chmod: (path: string, io: Io) => new JailerError('Chmod', `Failed to change permissions on ${path}: ${t(io)}`),
  clone: (io: Io) => new JailerError('Clone', `Failed cloning into a new child process: ${t(io)}`),
  closeRange: (io: Io) => new JailerError('CloseRange', `Failed to call close range syscall: ${t(io)}`),
  copy: (from: string, to: string, io: Io) => new JailerError('Copy', `Failed to copy ${from} to ${to}: ${t(io)}`),
  createDir: (path: string, io: Io) => new JailerError('CreateDir', `Failed to create directory ${path}: ${t(io)}`),
  daemonize: (io: Io) => new JailerError('Daemonize', `Failed to daemonize: ${t(io)}`),
  dup2: (io: Io) => new JailerError('Dup2', `Failed to duplicate fd: ${t(io)}`),
  exec: (io: Io) => new JailerError('Exec', `Failed to exec into Firecracker: ${t(io)}`),
  execFileName: (name: string) => new JailerError('ExecFileName', `Invalid filename. The filename of \`--exec-file\` option must contain "firecracker": ${name}`),
  fileOpen: (path: string, io: Io) => new JailerError('FileOpen', `Failed to open file ${path}: ${t(io)}`),
  gid: (gid: string) => new JailerError('Gid', `Invalid gid: ${gid}`),
  invalidInstanceId: (why: string) => new JailerError('InvalidInstanceId', `Invalid instance ID: ${why}`),
  mkdirOldRoot: (io: Io) => new JailerError('MkdirOldRoot', `Failed to create the jail root directory before pivoting root: ${t(io)}`),
  mknodDev: (io: Io, dev: string) => new JailerError('MknodDev', `Failed to create ${dev} via mknod inside the jail: ${t(io)}`),
  mountBind: (io: Io) => new JailerError('MountBind', `Failed to bind mount the jail root directory: ${t(io)}`),
  mountPropagationSlave: (io: Io) => new JailerError('MountPropagationSlave', `Failed to change the propagation type to slave: ${t(io)}`),
  notAFile: (path: string) => new JailerError('NotAFile', `${path} is not a file`),
  notADirectory: (path: string) => new JailerError('NotADirectory', `${path} is not a directory`),
  openDevNull: (io: Io) => new JailerError('OpenDevNull', `Failed to open /dev/null: ${t(io)}`),
  pivotRoot: (io: Io) => new JailerError('PivotRoot', `Failed to pivot root: ${t(io)}`),
  readToString: (path: string, io: Io) => new JailerError('ReadToString', `Failed to read file ${path} into a string: ${t(io)}`),
  resLimitArgument: (arg: string) => new JailerError('ResLimitArgument', `Invalid resource argument: ${arg}`),
  resLimitFormat: (arg: string) => new JailerError('ResLimitFormat', `Invalid format for resources limits: ${arg}`),
  resLimitValue: (arg: string, err: string) => new JailerError('ResLimitValue', `Invalid limit value for resource: ${arg}: ${err}`),
  rmOldRootDir: (io: Io) => new JailerError('RmOldRootDir', `Failed to remove old jail root directory: ${t(io)}`),
  setCurrentDir: (io: Io) => new JailerError('SetCurrentDir', `Failed to change current directory: ${t(io)}`),
  setNetNs: (io: Io) => new JailerError('SetNetNs', `Failed to join network namespace: netns: ${t(io)}`),
  setrlimit: (err: string) => new JailerError('Setrlimit', `Failed to set limit for resource: ${err}`),
  setSid: (io: Io) => new JailerError('SetSid', `Failed to daemonize: setsid: ${t(io)}`),
  uid: (uid: string) => new JailerError('Uid', `Invalid uid: ${uid}`),
  umountOldRoot: (io: Io) => new JailerError('UmountOldRoot', `Failed to unmount the old jail root: ${t(io)}`),
  unshareNewNs: (io: Io) => new JailerError('UnshareNewNs', `Failed to unshare into new mount namespace: ${t(io)}`),
  write: (path: string, io: Io) => new JailerError('Write', `Failed to write to ${path}: ${t(io)}`),
  /** Kindling's own step: making the Node runtime visible inside the jail (docs/design.md, Jailer). */
  runtimeMount: (path: string, io: Io) => new JailerError('RuntimeMount', `Failed to bind mount ${path} into the jail: ${t(io)}`),
};
