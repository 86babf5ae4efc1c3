/**
 * Setup shared by `npm test` and `npm start` on a fresh clone: Debian packages, npm ci,
 * the TypeScript build and the guest fixtures; plus the check that decides between native
 * KVM and the QEMU sandbox. Plain JavaScript: it runs before anything is compiled.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, readFileSync, openSync, closeSync, constants } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
export const secs = (from) => ((performance.now() - from) / 1000).toFixed(1);

/** Thrown for a setup step that failed; the message says what to do. */
export class SetupError extends Error {}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: repo, ...opts });
  if (r.error) throw new SetupError(`${cmd} could not start: ${r.error.message}`);
  return r.status ?? 1;
}

/** Command → Debian package, for everything the tests, the sandbox and the fixtures use. */
const NEEDED = {
  'qemu-system-x86_64': 'qemu-system-x86', cpio: 'cpio', mke2fs: 'e2fsprogs', debugfs: 'e2fsprogs',
  depmod: 'kmod', modprobe: 'kmod', curl: 'curl', ip: 'iproute2',
  // Disk fault tests (test/helpers/disk-faults.ts): device-mapper disks over loop devices.
  dmsetup: 'dmsetup', losetup: 'mount', blockdev: 'util-linux',
  // The vsock bench's QEMU side (bench/scenarios/vsock.ts): AF_VSOCK listeners, which Node lacks.
  socat: 'socat',
  // The net bench's host side (bench/scenarios/net.ts): iperf3 -s, the guest's peer.
  iperf3: 'iperf3',
};

/** Installs missing Debian packages when root; otherwise throws with the exact apt-get line. */
export function ensureDebianPackages(log = console.log) {
  const has = (c) => spawnSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }).status === 0;
  const missing = new Set(Object.entries(NEEDED).filter(([c]) => !has(c)).map(([, p]) => p));
  const bb = existsSync('/bin/busybox') ? spawnSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).stdout ?? '' : '';
  if (!bb.split('\n').includes('insmod')) missing.add('busybox-static');
  if (!missing.size) return;
  const line = `apt-get install -y ${[...missing].sort().join(' ')}`;
  if (process.getuid?.() !== 0) throw new SetupError(`missing Debian packages; run as root:\n  apt-get update && ${line}`);
  log(`setup: installing ${[...missing].join(' ')}`);
  if (run('apt-get', ['update', '-qq']) !== 0 || run('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${line} -qq`]) !== 0) {
    throw new SetupError(`apt-get failed; try: apt-get update && ${line}`);
  }
}

/** `npm ci` when node_modules is missing or older than package-lock.json. */
export function ensureNodeModules(log = console.log) {
  const installed = join(repo, 'node_modules', '.package-lock.json');
  if (existsSync(installed) && statSync(installed).mtimeMs >= statSync(join(repo, 'package-lock.json')).mtimeMs) return;
  log('setup: npm ci');
  if (run('npm', ['ci', '--no-audit', '--no-fund']) !== 0) throw new SetupError('npm ci failed');
}

/** tsc → dist/ (incremental), then the esbuild bundle → dist/bundle/ (scripts/bundle.mjs). */
export function build(log = console.log) {
  const t = performance.now();
  if (run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']) !== 0) throw new SetupError('tsc failed');
  if (run(process.execPath, [join(repo, 'scripts', 'bundle.mjs')]) !== 0) throw new SetupError('bundle failed');
  log(`setup: build ${secs(t)} s`);
}

/** Builds (or finds cached) guest fixtures; returns their folder and exports KINDLING_FIXTURES. */
export function guestFixtures(log = console.log) {
  const t = performance.now();
  const fx = spawnSync('bash', [join(repo, 'scripts', 'guest-fixtures.sh')], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (fx.status !== 0) throw new SetupError('guest fixtures could not be built (scripts/guest-fixtures.sh)');
  const dir = fx.stdout.trim().split('\n').pop();
  log(`setup: guest fixtures ${dir} (${secs(t)} s)`);
  process.env.KINDLING_FIXTURES = dir;
  return dir;
}

/** All of the above, in order. */
export function setupAll(log = console.log) {
  ensureDebianPackages(log);
  ensureNodeModules(log);
  build(log);
  return guestFixtures(log);
}

/**
 * Why native KVM cannot be used here ('' when it can). Native KVM counts only with hardware
 * virtualization (vmx/svm in /proc/cpuinfo), which Firecracker-class VMMs need. Some machines
 * expose a /dev/kvm backed by kvm_pvm (PVM, page-table based virtualization without VMX/SVM):
 * it runs tiny real-mode code but not stock Linux guests, so those use the sandbox too.
 */
export function kvmUnusableReason() {
  try {
    closeSync(openSync('/dev/kvm', constants.O_RDWR));
  } catch (e) {
    return `/dev/kvm cannot be opened (${e.code})`;
  }
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  if (!/^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo)) {
    const pvm = existsSync('/sys/module/kvm_pvm') ? ' (it is kvm_pvm)' : '';
    return `/dev/kvm exists${pvm} but the CPU offers no VMX/SVM`;
  }
  return '';
}

/** The shell lines that recreate this process's relevant environment inside the sandbox. */
export function sandboxEnvScript(fixtures, extra = {}) {
  const env = {
    HOME: process.env.HOME ?? '/root', PATH: process.env.PATH, KINDLING_FIXTURES: fixtures,
    KINDLING_IN_SANDBOX: '1', KINDLING_CACHE: process.env.KINDLING_CACHE ?? '', ...extra,
  };
  return Object.entries(env).filter(([, v]) => v).map(([k, v]) => `export ${k}='${String(v).replace(/'/g, `'\\''`)}'`).join('\n');
}
