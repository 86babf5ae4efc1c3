/**
 * Starting virtiofsd for a virtio-fs device configured with `shared_dir` (src/config/fs.ts),
 * and connecting to a backend's socket either way.
 *
 * Which virtiofsd: $KINDLING_VIRTIOFSD (read when a VM starts, never at module load: the
 * startup snapshot, docs/design.md §2), else the Rust virtiofsd Debian ships as package
 * `virtiofsd` (/usr/libexec/virtiofsd, trixie and later), else QEMU's C virtiofsd that
 * bookworm ships in qemu-system-common (/usr/lib/qemu/virtiofsd). Their flags differ:
 * the Rust one takes `--shared-dir DIR --cache auto`, the C one `-o source=DIR -o cache=auto`.
 * Both default to --thread-pool-size=0: each queue served in order on one thread, which the
 * EIO fallback relies on (src/devices/virtio/fs/device.ts).
 *
 * virtiofsd serves exactly one connection and exits when it closes, so there is no probing
 * connect: the first connect that succeeds is the device's connection. Until the socket
 * listens (ENOENT, ECONNREFUSED) the connect is retried; a child that exits first fails the
 * start with its last stderr line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { VhostUserError } from '../../errors.js';
import { VhostUserSocket } from '../../kvm/vhost-user-socket.js';

/** Where Debian puts virtiofsd: the Rust package's, then qemu-system-common's. */
export const VIRTIOFSD_PATHS = ['/usr/libexec/virtiofsd', '/usr/lib/qemu/virtiofsd'] as const;
/** How long a backend may take to listen (virtiofsd starts in milliseconds; a nested sandbox is slow). */
export const VIRTIOFSD_START_TIMEOUT_MS = 20_000;
const RETRY_MS = 20;

/** The virtiofsd binary to start, or a VHOST_USER_BACKEND error naming where it looked. */
export function findVirtiofsd(): string {
  const fromEnv = process.env.KINDLING_VIRTIOFSD;
  const candidates = fromEnv ? [fromEnv] : [...VIRTIOFSD_PATHS];
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new VhostUserError('VHOST_USER_BACKEND', `virtiofsd not found (looked for ${candidates.join(', ')}): install Debian's virtiofsd or qemu-system-common, or set KINDLING_VIRTIOFSD`);
  }
  return found;
}

/** The command line for `binary` sharing `dir` at `socketPath` (module comment). */
export function virtiofsdArgs(binary: string, dir: string, socketPath: string): string[] {
  const cOne = binary.endsWith('/qemu/virtiofsd');
  return cOne
    ? [`--socket-path=${socketPath}`, '-o', `source=${dir}`, '-o', 'cache=auto']
    : ['--socket-path', socketPath, '--shared-dir', dir, '--cache', 'auto'];
}

/** A virtiofsd Kindling started, with the connection to it. */
export interface StartedBackend {
  socket: VhostUserSocket;
  socketPath: string;
  /** The virtiofsd Kindling started (its pid and last stderr), for diagnostics; absent for a user's socket. */
  child?: { pid: number | undefined; stderrTail: () => string };
  /** Kills the child (if any) and removes its socket folder; idempotent. */
  dispose(): void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether a connect failure means "not listening yet". */
function notYet(e: unknown): boolean {
  const m = (e as Error).message;
  return m.includes('ENOENT') || m.includes('ECONNREFUSED');
}

/** Starts virtiofsd sharing `dir` and connects to it; `label` names the device in errors. */
export async function startVirtiofsd(dir: string, label: string): Promise<StartedBackend> {
  const binary = findVirtiofsd();
  const folder = mkdtempSync(join(tmpdir(), 'kindling-virtiofs-'));
  const socketPath = join(folder, 'vhost-user.sock');
  const child: ChildProcess = spawn(binary, virtiofsdArgs(binary, dir, socketPath), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let exited: string | null = null;
  const dispose = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(folder, { recursive: true, force: true });
  };
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-2000); });
  child.on('error', (e) => { exited = e.message; });
  child.on('exit', (code, signal) => { exited = signal ? `killed by ${signal}` : `exit code ${code}`; });
  const deadline = Date.now() + VIRTIOFSD_START_TIMEOUT_MS;
  for (;;) {
    if (exited !== null) {
      dispose();
      const last = stderr.trim().split('\n').pop() ?? '';
      throw new VhostUserError('VHOST_USER_BACKEND', `${label}: ${basename(binary)} (${binary}) ended before listening (${exited})${last ? `: ${last}` : ''}`);
    }
    if (existsSync(socketPath)) {
      try {
        const socket = VhostUserSocket.connect(socketPath);
        return { socket, socketPath, dispose, child: { pid: child.pid, stderrTail: () => stderr } };
      } catch (e) {
        if (!notYet(e)) {
          dispose();
          throw e;
        }
      }
    }
    if (Date.now() > deadline) {
      dispose();
      throw new VhostUserError('VHOST_USER_BACKEND', `${label}: ${binary} did not listen on ${socketPath} within ${VIRTIOFSD_START_TIMEOUT_MS} ms`);
    }
    await sleep(RETRY_MS);
  }
}

/** Connects to a backend the user started at `socketPath`. */
export function connectBackend(socketPath: string): StartedBackend {
  return { socket: VhostUserSocket.connect(socketPath), socketPath, dispose: () => {} };
}
