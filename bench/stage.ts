/**
 * Staging for runs inside the sandbox. There the host root is a 9p mount without caching:
 * every open/stat/read of a file is a round trip through QEMU TCG costing milliseconds, so a
 * VMM's start-up would measure how many files it opens rather than the VMM (measured: Kindling
 * 30–40 s and QEMU 9–12 s to its API socket, bare `node -e 0` about 1 s). So before any
 * measurement, everything both VMMs load is copied onto the sandbox's tmpfs once, the same
 * way for both:
 *
 *   node/bin/node + node/lib/*       the Node binary and its shared libraries
 *   kindling/{package.json,bin,dist/src,dist/bench,dist/bundle,node_modules}   Kindling (JS, koffi.node)
 *   qemu/bin/qemu-system-x86_64 + qemu/lib/*    QEMU and its shared libraries
 *   qemu/lib/x86_64-linux-gnu/qemu/*, qemu/share/qemu/bios-microvm.bin   modules, firmware
 *   fixtures/*                       the guest kernels and initramfs
 *
 * Binaries run with LD_LIBRARY_PATH pointing at their staged libraries, so the dynamic loader
 * (itself mmapped once, then page-cached) finds every library on tmpfs. QEMU finds modules
 * and firmware relative to its binary (as Debian's relocatable build does) and through -L.
 */
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { basename, dirname, join } from 'node:path';

/** Where things are after staging (or in place, natively). */
export interface Runtime {
  /** Node binary for Kindling and the bare-node baseline. */
  node: string;
  /** Kindling's root (package.json, bin/, dist/). */
  kindlingRepo: string;
  qemu: string;
  /** Environment per program (LD_LIBRARY_PATH when staged). */
  nodeEnv: NodeJS.ProcessEnv;
  qemuEnv: NodeJS.ProcessEnv;
  /** Extra QEMU arguments (the staged firmware folder). */
  qemuExtraArgs: string[];
  /** Folder holding the guest fixtures. */
  fixtures: string;
  /** Seconds staging took (0 in place). */
  stagingSeconds: number;
}

/** The files a binary needs from `ldd` (name → resolved path), the loader excluded. */
export function sharedLibraries(binary: string): Map<string, string> {
  const r = spawnSync('ldd', [binary], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ldd ${binary} failed: ${r.stderr}`);
  const out = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*(\S+)\s+=>\s+(\/\S+)/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** Copies a binary and its libraries to <dest>/bin and <dest>/lib; returns the new binary. */
function stageBinary(binary: string, dest: string): string {
  const real = realpathSync(binary);
  mkdirSync(join(dest, 'bin'), { recursive: true });
  mkdirSync(join(dest, 'lib'), { recursive: true });
  const target = join(dest, 'bin', basename(binary));
  copyFileSync(real, target);
  chmodSync(target, 0o755);
  for (const [name, path] of sharedLibraries(real)) copyFileSync(realpathSync(path), join(dest, 'lib', name));
  return target;
}

/** Kindling's runtime files: no sources, maps, declarations or dev-only packages. */
function stageKindling(repo: string, dest: string): void {
  const skipModules = new Set(['typescript', '@types', 'uvu', '.bin', 'esbuild', '@esbuild']);
  const keep = (src: string): boolean => !/\.(map|ts|md)$/.test(src);
  mkdirSync(dest, { recursive: true });
  copyFileSync(join(repo, 'package.json'), join(dest, 'package.json'));
  cpSync(join(repo, 'bin'), join(dest, 'bin'), { recursive: true });
  for (const d of ['src', 'bench', 'bundle']) cpSync(join(repo, 'dist', d), join(dest, 'dist', d), { recursive: true, filter: keep });
  for (const name of readdirSync(join(repo, 'node_modules'))) {
    if (skipModules.has(name)) continue;
    cpSync(join(repo, 'node_modules', name), join(dest, 'node_modules', name), { recursive: true, filter: keep, dereference: true });
  }
}

/** QEMU's module folder and firmware, laid out relative to the staged binary. */
function stageQemuData(qemuReal: string, dest: string): string {
  const prefix = dirname(dirname(qemuReal)); // /usr
  const modules = join(prefix, 'lib', 'x86_64-linux-gnu', 'qemu');
  if (existsSync(modules)) cpSync(modules, join(dest, 'lib', 'x86_64-linux-gnu', 'qemu'), { recursive: true, dereference: true });
  const share = join(dest, 'share', 'qemu');
  mkdirSync(share, { recursive: true });
  copyFileSync(realpathSync(join(prefix, 'share', 'qemu', 'bios-microvm.bin')), join(share, 'bios-microvm.bin'));
  return share;
}

/** Uses everything where it is (native runs: the page cache already does the job). */
export function inPlace(repo: string, qemu: string, fixtures: string): Runtime {
  return {
    node: process.execPath, kindlingRepo: repo, qemu, nodeEnv: process.env, qemuEnv: process.env,
    qemuExtraArgs: [], fixtures, stagingSeconds: 0,
  };
}

/**
 * Makes the CLI's startup snapshot again with the staged node, here: V8 refuses a blob made
 * on a CPU with other features, and the sandbox's emulated CPU is not the host's, so the
 * build's blob would leave bin/firecracker on its fallback (docs/design.md, Startup snapshot).
 */
function snapshotHere(node: string, kindling: string, env: NodeJS.ProcessEnv): void {
  const bundle = join(kindling, 'dist', 'bundle');
  if (!existsSync(join(bundle, 'kindling-snapshot.cjs'))) return;
  const r = spawnSync(node, ['--snapshot-blob', join(bundle, 'kindling.blob'), '--build-snapshot', join(bundle, 'kindling-snapshot.cjs')], { cwd: bundle, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`staging: the startup snapshot did not build here: ${r.stderr}`);
  writeFileSync(join(bundle, 'kindling.blob.id'), `staged${Date.now().toString(36)}\n`);
}

/** Copies both VMMs, Node and the fixtures under `dest` (a tmpfs); see the module comment. */
export function stage(repo: string, qemu: string, fixtures: string, fixtureNames: readonly string[], dest: string): Runtime {
  const t = performance.now();
  const qemuPath = qemu.includes('/') ? qemu : spawnSync('sh', ['-c', `command -v ${qemu}`], { encoding: 'utf8' }).stdout.trim();
  if (!qemuPath) throw new Error(`${qemu} not found`);
  const node = stageBinary(process.execPath, join(dest, 'node'));
  const stagedQemu = stageBinary(qemuPath, join(dest, 'qemu'));
  const share = stageQemuData(realpathSync(qemuPath), join(dest, 'qemu'));
  stageKindling(repo, join(dest, 'kindling'));
  const nodeEnv = { ...process.env, LD_LIBRARY_PATH: join(dest, 'node', 'lib') };
  snapshotHere(node, join(dest, 'kindling'), nodeEnv);
  const fx = join(dest, 'fixtures');
  mkdirSync(fx, { recursive: true });
  for (const name of fixtureNames) copyFileSync(join(fixtures, name), join(fx, name));
  return {
    node,
    kindlingRepo: join(dest, 'kindling'),
    qemu: stagedQemu,
    nodeEnv,
    qemuEnv: { ...process.env, LD_LIBRARY_PATH: join(dest, 'qemu', 'lib') },
    qemuExtraArgs: ['-L', share],
    fixtures: fx,
    stagingSeconds: (performance.now() - t) / 1000,
  };
}

/**
 * How the bench starts the kindling binary: `bin/firecracker`, the launcher Firecracker's tools
 * exec (the CLI's startup snapshot, docs/design.md Start-up), on the runtime's node.
 */
export function kindlingCommand(rt: Runtime, args: readonly string[]): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  return { cmd: join(rt.kindlingRepo, 'bin', 'firecracker'), args: [...args], env: { ...rt.nodeEnv, KINDLING_NODE: rt.node } };
}
