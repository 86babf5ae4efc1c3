/**
 * The jailer's steps after validation (src/jailer/src/env.rs `Env::run`, chroot.rs), in
 * Firecracker's order:
 *   1. create `<base>/<exec name>/<id>/root`, copy the exec file (and Kindling's launchers) in;
 *   2. join `--netns`; set the resource limits; write the cgroups and attach to them;
 *   3. open /dev/null (for --daemonize) while the host's is reachable;
 *   4. unshare(CLONE_NEWNS), make every mount a slave (nothing leaks back to the host), bind
 *      the jail folder on itself, bind Kindling's runtime read-only into it (runtime.ts),
 *      pivot_root into it, detach and remove the old root, chroot(".");
 *   5. /, /dev, /dev/net, /run owned by uid:gid, mode 0700; device nodes /dev/net/tun,
 *      /dev/kvm, /dev/urandom, /dev/userfaultfd (when the host has it), owned by uid:gid;
 *   6. exec the VMM as uid:gid with `--id --start-time-us --start-time-cpu-us
 *      --parent-cpu-time-us` and the arguments after `--`, in an empty environment.
 * Node cannot fork; --daemonize and --new-pid-ns therefore start the VMM as a child
 * (libuv forks from this main thread, so the child has its root, namespaces and limits) and
 * the jailer exits, where Firecracker forks or clones itself (docs/design.md, Jailer).
 * A failure before the pivot removes what this run created (folders, cgroups).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { applyCgroups, removeCreated } from './cgroup.js';
import { ioError, jailerErrors } from './errors.js';
import { type JailerOptions } from './options.js';
import { type RuntimeBind, runtimeBinds } from './runtime.js';
import * as sys from './sys.js';

/** Device nodes (major, minor) from Documentation/admin-guide/devices.txt, as env.rs. */
export const DEV_NET_TUN = { path: '/dev/net/tun', major: 10, minor: 200 };
export const DEV_KVM = { path: '/dev/kvm', major: 10, minor: 232 };
export const DEV_URANDOM = { path: '/dev/urandom', major: 1, minor: 9 };
/** userfaultfd is a misc device (major 10) with a dynamic minor, read from /proc/misc. */
export const DEV_UFFD_PATH = '/dev/userfaultfd';
export const MISC_MAJOR = 10;
/** Folders inside the jail owned by the VMM's uid:gid (env.rs FOLDER_HIERARCHY). */
export const FOLDER_HIERARCHY = ['/', '/dev', '/dev/net', '/run'];
export const FOLDER_PERMISSIONS = 0o700;
/** `<exec name>.pid` in the jail root holds the VMM's pid. */
export const PID_FILE_EXTENSION = '.pid';
const OLD_ROOT = 'old_root';

/** Clock readings the VMM's startup metrics are computed from (µs). */
export interface StartTimes {
  startUs: bigint;
  startCpuUs: bigint;
}

export const monotonicUs = (): bigint => process.hrtime.bigint() / 1000n;
export const cpuUs = (): bigint => {
  const c = process.cpuUsage();
  return BigInt(c.user + c.system);
};

function userfaultfdMinor(): number | null {
  try {
    for (const line of readFileSync('/proc/misc', 'utf8').split('\n')) {
      const [minor, name] = line.trim().split(/\s+/);
      if (name === 'userfaultfd') return Number(minor);
    }
  } catch {
    // no /proc/misc: no userfaultfd node, as Firecracker
  }
  return null;
}

/** Runs the jail; returns only when the VMM was started as a child (the jailer then exits 0). */
export function runJail(o: JailerOptions, times: StartTimes): void {
  const created: string[] = [];
  const cgroupsCreated: string[] = [];
  const instanceDir = dirname(o.chrootDir);
  const hadInstanceDir = existsSync(instanceDir);
  let pivoted = false;
  try {
    for (let p = o.chrootDir; !existsSync(p); p = dirname(p)) created.unshift(p);
    try {
      mkdirSync(o.chrootDir, { recursive: true });
    } catch (e) {
      throw jailerErrors.createDir(o.chrootDir, ioError(e));
    }
    const runtime = runtimeBinds(o.execFile, process.execPath);
    if (runtime === null) throw jailerErrors.notAFile(join(dirname(dirname(o.execFile)), 'package.json'));
    for (const f of runtime.launchers) {
      const to = join(o.chrootDir, basename(f));
      try {
        copyFileSync(f, to);
      } catch (e) {
        throw jailerErrors.copy(f, to, ioError(e));
      }
    }
    // Mount points for the runtime, made while the host path of the jail is still known.
    for (const b of runtime.binds) {
      const at = join(o.chrootDir, b.target);
      try {
        mkdirSync(b.dir ? at : dirname(at), { recursive: true });
        if (!b.dir && !existsSync(at)) writeFileSync(at, '');
      } catch (e) {
        throw jailerErrors.runtimeMount(b.target, ioError(e));
      }
    }
    for (const l of runtime.links) {
      const at = join(o.chrootDir, l.path);
      try {
        if (!existsSync(at)) symlinkSync(l.target, at);
      } catch (e) {
        throw jailerErrors.runtimeMount(l.path, ioError(e));
      }
    }
    if (o.netns !== null) joinNetns(o.netns);
    sys.setrlimit(sys.RLIMIT_NOFILE, o.noFile, (io) => jailerErrors.setrlimit(io.message));
    if (o.fsize !== null) sys.setrlimit(sys.RLIMIT_FSIZE, o.fsize, (io) => jailerErrors.setrlimit(io.message));
    applyCgroups({ version: o.cgroupVersion, settings: o.cgroups, parentOnly: o.cgroupParentOnly }, process.pid, cgroupsCreated);
    let devNull = -1;
    if (o.daemonize) {
      try {
        devNull = openSync('/dev/null', 'r+');
      } catch (e) {
        throw jailerErrors.openDevNull(ioError(e));
      }
    }
    const uffdMinor = userfaultfdMinor();
    enterJail(o.chrootDir, runtime.binds);
    pivoted = true;
    for (const f of FOLDER_HIERARCHY) setupFolder(f, o.uid, o.gid);
    makeDevice(DEV_NET_TUN, o);
    makeDevice(DEV_KVM, o);
    try {
      makeDevice(DEV_URANDOM, o);
    } catch (e) {
      process.stdout.write(`Warning! Could not create /dev/urandom device inside jailer: ${(e as Error).message}.\nMMDS version 2 will not be available to use.\n`);
    }
    if (uffdMinor !== null) makeDevice({ path: DEV_UFFD_PATH, major: MISC_MAJOR, minor: uffdMinor }, o);
    // Inherited descriptors must not reach the VMM (Firecracker closes them at start; Node's
    // own would break if closed under it, so they close at exec instead).
    sys.closeRangeCloexec(jailerErrors.closeRange);
    for (const fd of [0, 1, 2]) sys.keepAcrossExec(fd);
    const jailerCpu = cpuUs() - times.startCpuUs;
    const vmmArgs = ['--id', o.id, '--start-time-us', String(times.startUs), '--start-time-cpu-us', '0', '--parent-cpu-time-us', String(jailerCpu), ...o.extra];
    const cmd = vmmCommand(o.execName, vmmArgs);
    const pidFile = `/${o.execName}${PID_FILE_EXTENSION}`;
    if (o.daemonize || o.newPidNs) {
      startChild(o, cmd, pidFile, devNull);
      return;
    }
    writePidFile(pidFile, process.pid);
    sys.dropPrivileges(o.uid, o.gid, jailerErrors.exec);
    sys.execve(process.execPath, [cmd.argv0, ...cmd.args], [], jailerErrors.exec);
  } catch (e) {
    if (!pivoted) {
      removeCreated(cgroupsCreated);
      // The jail folder goes only if this run made it (another jail's folder stays).
      if (!hadInstanceDir) rmSync(instanceDir, { recursive: true, force: true });
      removeCreated(created);
    }
    throw e;
  }
}

function joinNetns(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw jailerErrors.fileOpen(path, ioError(e));
  }
  try {
    sys.setns(fd, sys.CLONE_NEWNET, jailerErrors.setNetNs);
  } finally {
    closeSync(fd);
  }
}

/** chroot.rs: a private mount namespace, the jail bound on itself, pivot_root, old root gone. */
function enterJail(root: string, binds: readonly RuntimeBind[]): void {
  sys.unshare(sys.CLONE_NEWNS, jailerErrors.unshareNewNs);
  sys.mount(null, '/', null, sys.MS_SLAVE | sys.MS_REC, jailerErrors.mountPropagationSlave);
  sys.mount(root, root, null, sys.MS_BIND | sys.MS_REC, jailerErrors.mountBind);
  for (const b of binds) {
    const at = join(root, b.target);
    const fail = (io: Parameters<typeof jailerErrors.runtimeMount>[1]) => jailerErrors.runtimeMount(b.source, io);
    sys.mount(b.source, at, null, sys.MS_BIND | sys.MS_REC, fail);
    sys.mount(null, at, null, sys.MS_BIND | sys.MS_REMOUNT | sys.MS_RDONLY | sys.MS_NOSUID | sys.MS_NODEV, fail);
  }
  sys.chdir(root, jailerErrors.chdirNewRoot);
  try {
    mkdirSync(OLD_ROOT);
  } catch (e) {
    throw jailerErrors.mkdirOldRoot(ioError(e));
  }
  sys.pivotRoot('.', OLD_ROOT, jailerErrors.pivotRoot);
  sys.chdir('/', jailerErrors.chdirNewRoot);
  sys.umount2(OLD_ROOT, sys.MNT_DETACH, jailerErrors.umountOldRoot);
  try {
    rmdirSync(OLD_ROOT);
  } catch (e) {
    throw jailerErrors.rmOldRootDir(ioError(e));
  }
  sys.chroot('.', jailerErrors.chdirNewRoot);
}

function setupFolder(path: string, uid: number, gid: number): void {
  try {
    mkdirSync(path, { recursive: true });
  } catch (e) {
    throw jailerErrors.createDir(path, ioError(e));
  }
  try {
    chmodSync(path, FOLDER_PERMISSIONS);
  } catch (e) {
    throw jailerErrors.chmod(path, ioError(e));
  }
  try {
    chownSync(path, uid, gid);
  } catch (e) {
    throw jailerErrors.changeFileOwner(path, ioError(e));
  }
}

function makeDevice(d: { path: string; major: number; minor: number }, o: JailerOptions): void {
  sys.mknod(d.path, sys.S_IFCHR | sys.S_IRUSR | sys.S_IWUSR, sys.makedev(d.major, d.minor), (io) => jailerErrors.mknodDev(io, d.path));
  try {
    chownSync(d.path, o.uid, o.gid);
  } catch (e) {
    throw jailerErrors.changeFileOwner(d.path, ioError(e));
  }
}

function writePidFile(path: string, pid: number): void {
  try {
    writeFileSync(path, String(pid), { flag: 'wx' });
  } catch (e) {
    throw jailerErrors.fileOpen(path, ioError(e));
  }
}

/**
 * --daemonize / --new-pid-ns: the VMM as a child. With --new-pid-ns this thread first
 * unshares CLONE_NEWPID, so the child is pid 1 of a new namespace; with --daemonize the child
 * starts a session (setsid) with /dev/null as stdio. The pid file holds the child's pid.
 */
/** The CLI's startup snapshot inside the jail (the package's dist/ is bound at its root). */
const JAIL_SNAPSHOT_BLOB = '/dist/bundle/kindling.blob';

/**
 * Whether V8 takes the startup snapshot `blob` on this machine (it refuses one made on a CPU
 * with other features, or by another Node): bin/firecracker's test, `--version` from it.
 */
function snapshotUsable(blob: string): boolean {
  if (!existsSync(blob)) return false;
  // Pipes, not 'ignore': the jail has no /dev/null.
  return spawnSync(process.execPath, ['--snapshot-blob', blob, '--', '--version'], { stdio: 'pipe', env: {} }).status === 0;
}

/**
 * How node runs the VMM inside the jail (already chrooted: paths are the jail's). The exec
 * file is copied to `/<exec name>`; a Node script (bin/kindling.js) is node's script argument.
 * bin/firecracker is a sh launcher and the jail has no shell, so the jailer does what it
 * would: node from the startup snapshot when V8 takes it here (docs/design.md, Start-up), else bin/kindling.js
 * (copied beside the exec file). argv[0] is `/<exec name>`, as in Firecracker's jail, and the
 * VMM names its process after it (src/util/thread-name.ts launchName). The environment stays
 * empty, as Firecracker's jailer leaves it.
 */
export function vmmCommand(execName: string, args: readonly string[], root = '/'): { argv0: string; args: string[] } {
  const argv0 = `/${execName}`;
  if (!readFileSync(join(root, execName), 'utf8').startsWith('#!/bin/sh')) return { argv0, args: [argv0, ...args] };
  if (snapshotUsable(join(root, JAIL_SNAPSHOT_BLOB))) return { argv0, args: ['--snapshot-blob', JAIL_SNAPSHOT_BLOB, '--', ...args] };
  return { argv0, args: ['/kindling.js', ...args] };
}

function startChild(o: JailerOptions, cmd: { argv0: string; args: string[] }, pidFile: string, devNull: number): void {
  if (o.newPidNs) sys.unshare(sys.CLONE_NEWPID, jailerErrors.clone);
  const stdio = devNull >= 0 ? [devNull, devNull, devNull] : 'inherit';
  const child = spawn(process.execPath, cmd.args, { argv0: cmd.argv0, env: {}, uid: o.uid, gid: o.gid, stdio: stdio as never, detached: o.daemonize });
  if (child.pid === undefined) throw jailerErrors.clone('spawn failed');
  writePidFile(pidFile, child.pid);
  child.unref();
}
