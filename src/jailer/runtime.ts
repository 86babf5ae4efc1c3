/**
 * What a Node VMM needs inside the jail besides the exec file (docs/design.md, Jailer).
 * Firecracker is one static binary; Kindling is a Node program, so the jail also gets, bind
 * mounted read-only in the jail's own mount namespace (they vanish with it, and the host's
 * jail folder keeps only the empty mount points):
 *   - the node binary, at its host path;
 *   - the shared libraries node has loaded (read from the jailer's own /proc/self/maps: the
 *     jailer IS that node, so these are exactly the libraries it needs), at their host paths,
 *     plus the ELF interpreter (PT_INTERP) at the path the kernel asks for; the maps name the
 *     files (libstdc++.so.6.0.30), the loader looks for sonames (libstdc++.so.6), so the
 *     symbolic links beside each library that lead to it are recreated in the jail;
 *   - the Kindling package's `dist/`, `node_modules/` (koffi's native module is in there) and
 *     `package.json` (its `"type": "module"` makes the extensionless launcher ESM), at the
 *     jail's root, so the launcher's `../dist/...` imports resolve from `/<exec name>`.
 * The launchers in the exec file's folder (bin/: `firecracker` imports `./kindling.js`) are
 * copied next to the exec file, as Firecracker copies its binary.
 */
import { closeSync, lstatSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** A host path to make visible in the jail at `target` (a path inside the jail). */
export interface RuntimeBind {
  source: string;
  target: string;
  dir: boolean;
}

/** ELF program header type of the interpreter path (elf.h PT_INTERP). */
export const PT_INTERP = 3;
const ELF_MAGIC = 0x464c457f;

/** The PT_INTERP path of a 64-bit little-endian ELF executable, or null. */
export function elfInterpreter(path: string): string | null {
  const fd = openSync(path, 'r');
  try {
    const eh = Buffer.alloc(64);
    readSync(fd, eh, 0, 64, 0);
    if (eh.readUInt32LE(0) !== ELF_MAGIC) return null;
    const phoff = Number(eh.readBigUInt64LE(32));
    const phentsize = eh.readUInt16LE(54);
    const phnum = eh.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      if (ph.readUInt32LE(o) !== PT_INTERP) continue;
      const off = Number(ph.readBigUInt64LE(o + 8));
      const size = Number(ph.readBigUInt64LE(o + 32));
      const s = Buffer.alloc(size);
      readSync(fd, s, 0, size, off);
      return s.toString('latin1').replace(/\0.*$/s, '');
    }
    return null;
  } finally {
    closeSync(fd);
  }
}

/** Shared objects mapped in `mapsText` (a /proc/<pid>/maps), outside `exclude`. */
export function mappedLibraries(mapsText: string, exclude: string): string[] {
  const out = new Set<string>();
  for (const line of mapsText.split('\n')) {
    const path = line.split(/\s+/).slice(5).join(' ');
    if (!path.startsWith('/') || path.startsWith(`${exclude}/`)) continue;
    if (/\.so(\.[0-9]+)*$/.test(path)) out.add(path);
  }
  return [...out].sort();
}

/** The Kindling package an exec file belongs to: `<package>/bin/<exec>`. */
export function packageRoot(execFile: string): string | null {
  const root = dirname(dirname(execFile));
  try {
    return statSync(join(root, 'package.json')).isFile() && statSync(join(root, 'dist')).isDirectory() ? root : null;
  } catch {
    return null;
  }
}

/** A symbolic link to recreate in the jail: `path` → `target` (as the host has it). */
export interface RuntimeLink {
  path: string;
  target: string;
}

/** The symbolic links in each library's folder that resolve to that library. */
export function libraryLinks(libs: readonly string[]): RuntimeLink[] {
  const wanted = new Set(libs);
  const out: RuntimeLink[] = [];
  for (const dir of new Set(libs.map((l) => dirname(l)))) {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      try {
        if (lstatSync(path).isSymbolicLink() && wanted.has(realpathSync(path))) out.push({ path, target: readlinkSync(path) });
      } catch {
        // a dangling link: not one the loader can use
      }
    }
  }
  return out;
}

/** Everything to bind into the jail for `execFile` run by `nodePath`. */
export function runtimeBinds(execFile: string, nodePath: string, maps = readFileSync('/proc/self/maps', 'utf8')): { binds: RuntimeBind[]; links: RuntimeLink[]; launchers: string[] } | null {
  const pkg = packageRoot(execFile);
  if (pkg === null) return null;
  const binds: RuntimeBind[] = [
    { source: join(pkg, 'dist'), target: '/dist', dir: true },
    { source: join(pkg, 'node_modules'), target: '/node_modules', dir: true },
    { source: join(pkg, 'package.json'), target: '/package.json', dir: false },
    { source: nodePath, target: nodePath, dir: false },
  ];
  const seen = new Set(binds.map((b) => b.target));
  const add = (p: string, target = p): void => {
    if (!seen.has(target)) binds.push({ source: p, target, dir: false });
    seen.add(target);
  };
  const libs = mappedLibraries(maps, pkg);
  for (const lib of libs) add(lib);
  const interp = elfInterpreter(nodePath);
  if (interp !== null) add(realpathSync(interp), interp);
  const links = libraryLinks(libs).filter((l) => !seen.has(l.path));
  const bin = dirname(execFile);
  const launchers = readdirSync(bin).filter((f) => statSync(join(bin, f)).isFile()).map((f) => join(bin, f));
  return { binds, links, launchers };
}
