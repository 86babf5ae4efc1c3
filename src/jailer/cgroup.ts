/**
 * The jailer's cgroups (src/jailer/src/cgroup.rs): `--cgroup <file>=<value>` settings placed in
 * `<hierarchy>/<parent cgroup>/<id>` for the controller named by the file's prefix
 * (`cpu.max` → `cpu`), then the jailer's pid attached (it becomes the VMM's at exec).
 *
 * - v1: each controller has its own hierarchy, found in /proc/mounts (fstype `cgroup`, the
 *   controller among the mount options); the pid goes into `tasks`. cpuset's `cpuset.cpus` and
 *   `cpuset.mems` start empty in a new folder and must be filled before a task may join, so
 *   they are inherited from the nearest ancestor that has them (`inherit_from_parent`).
 * - v2: one unified hierarchy (fstype `cgroup2`); the controller must be listed in its
 *   `cgroup.controllers`, and is enabled in `cgroup.subtree_control` of every folder from the
 *   root down to the parent of the VM's folder; the pid goes into `cgroup.procs`. With no
 *   `--cgroup`, the jailer only moves into the parent cgroup when that folder exists.
 *
 * `planCgroups` only reads (argument validation, before anything exists); `applyCgroups`
 * writes, and records every folder it created so a failed start can remove them again.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { ioError, jailerErrors } from './errors.js';

export type CgroupVersion = 1 | 2;

export interface CgroupSetting {
  file: string;
  value: string;
  controller: string;
  /** The VM's folder for this controller: `<hierarchy>/<parent>/<id>`. */
  location: string;
  /** The hierarchy's mount point. */
  hierarchy: string;
}

export interface CgroupPlan {
  version: CgroupVersion;
  settings: CgroupSetting[];
  /** v2 without settings: `<hierarchy>/<parent>` to move into if it exists. */
  parentOnly: string | null;
}

interface Mount { dir: string; fstype: string; options: string[] }

/** /proc/mounts lines: `<source> <dir> <fstype> <options> 0 0` (octal escapes in dir). */
export function parseMounts(text: string): Mount[] {
  return text.split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    return { dir: (f[1] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))), fstype: f[2] ?? '', options: (f[3] ?? '').split(',') };
  });
}

function readMounts(path: string): Mount[] {
  try {
    return parseMounts(readFileSync(path, 'utf8'));
  } catch (e) {
    throw jailerErrors.fileOpen(path, ioError(e));
  }
}

/** Validates `--cgroup` settings against the host's hierarchies; nothing is written. */
export function planCgroups(o: { version: number; parent: string; id: string; settings: readonly string[]; procMounts: string }): CgroupPlan {
  if (o.version !== 1 && o.version !== 2) throw jailerErrors.cgroupInvalidVersion(String(o.version));
  const version = o.version;
  if (version === 1 && o.settings.length === 0) return { version, settings: [], parentOnly: null };
  const mounts = readMounts(o.procMounts);
  const v2 = version === 2 ? mounts.find((m) => m.fstype === 'cgroup2')?.dir : undefined;
  if (version === 2 && v2 === undefined) throw jailerErrors.cgroupHierarchyMissing('cgroup2');
  if (version === 2 && o.settings.length === 0) return { version, settings: [], parentOnly: join(v2!, o.parent) };
  let available: string[] | null = null;
  const settings = o.settings.map((arg): CgroupSetting => {
    const parts = arg.split('=');
    if (parts.length !== 2 || parts[1] === '') throw jailerErrors.cgroupFormat(arg);
    const [file, value] = parts as [string, string];
    if (file.startsWith('/') || file.split('/').some((c) => c === '.' || c === '..')) throw jailerErrors.cgroupInvalidFile(arg);
    const dot = file.indexOf('.');
    if (dot <= 0) throw jailerErrors.cgroupInvalidFile(file);
    const controller = file.slice(0, dot);
    if (version === 2) {
      if (available === null) {
        try {
          available = readFileSync(join(v2!, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
        } catch (e) {
          throw jailerErrors.readToString(join(v2!, 'cgroup.controllers'), ioError(e));
        }
      }
      if (!available.includes(controller)) throw jailerErrors.cgroupControllerUnavailable(controller);
      return { file, value, controller, hierarchy: v2!, location: join(v2!, o.parent, o.id) };
    }
    const m = mounts.find((x) => x.fstype === 'cgroup' && x.options.includes(controller));
    if (!m) throw jailerErrors.cgroupLineNotFound(o.procMounts, controller);
    return { file, value, controller, hierarchy: m.dir, location: join(m.dir, o.parent, o.id) };
  });
  return { version, settings, parentOnly: null };
}

/** `writeln_special`: the value and a newline in one write. */
function writeLine(path: string, value: string): void {
  try {
    writeFileSync(path, `${value}\n`);
  } catch (e) {
    throw jailerErrors.write(path, ioError(e));
  }
}

/** `mkdir -p`, remembering the folders this call made (outermost first). */
function makeDirs(path: string, created: string[]): void {
  const missing: string[] = [];
  for (let p = path; !existsSync(p); p = dirname(p)) missing.unshift(p);
  try {
    for (const p of missing) {
      mkdirSync(p);
      created.push(p);
    }
  } catch (e) {
    throw jailerErrors.createDir(path, ioError(e));
  }
}

/** cgroup v1 cpuset files that must be non-empty before a task joins. */
const CPUSET_INHERITED = ['cpuset.cpus', 'cpuset.mems'];

function inheritFromParent(dir: string, file: string, hierarchy: string): void {
  const chain: string[] = [];
  for (let p = dir; relative(hierarchy, p) !== '' && !relative(hierarchy, p).startsWith('..'); p = dirname(p)) chain.unshift(p);
  // From the top: each empty folder takes its parent's value.
  for (const p of chain) {
    const own = readFileSync(join(p, file), 'utf8').trim();
    if (own !== '') continue;
    const up = readFileSync(join(dirname(p), file), 'utf8').trim();
    if (up === '') throw jailerErrors.cgroupInheritFromParent(p, file);
    writeLine(join(p, file), up);
  }
}

/**
 * Writes the settings and attaches `pid` (the jailer, soon the VMM). Folders made are pushed to
 * `created`; on failure the caller removes them (`removeCreated`).
 */
export function applyCgroups(plan: CgroupPlan, pid: number, created: string[]): void {
  if (plan.parentOnly !== null) {
    if (existsSync(plan.parentOnly)) writeProcs(join(plan.parentOnly, 'cgroup.procs'), pid);
    return;
  }
  // All values first, then the attach: cpuset needs cpus and mems before a task joins.
  for (const s of plan.settings) {
    makeDirs(s.location, created);
    if (plan.version === 2) {
      // From the root down: a folder may enable only what its parent enabled for it.
      const chain: string[] = [];
      for (let p = dirname(s.location); ; p = dirname(p)) {
        chain.unshift(p);
        if (p === s.hierarchy || p === '/') break;
      }
      for (const p of chain) enableController(p, s.controller);
    } else if (s.controller === 'cpuset') {
      for (const f of CPUSET_INHERITED) inheritFromParent(s.location, f, s.hierarchy);
    }
    writeLine(join(s.location, s.file), s.value);
  }
  for (const loc of new Set(plan.settings.map((s) => s.location))) writeProcs(join(loc, plan.version === 2 ? 'cgroup.procs' : 'tasks'), pid);
}

/** Enables `controller` for the children of `dir` (v2), unless it already is. */
function enableController(dir: string, controller: string): void {
  const path = join(dir, 'cgroup.subtree_control');
  let current = '';
  try {
    current = readFileSync(path, 'utf8');
  } catch (e) {
    throw jailerErrors.readToString(path, ioError(e));
  }
  if (current.trim().split(/\s+/).includes(controller)) return;
  writeLine(path, `+${controller}`);
}

function writeProcs(path: string, pid: number): void {
  try {
    writeFileSync(path, `${pid}\n`);
  } catch (e) {
    throw jailerErrors.cgroupWrite(ioError(e));
  }
}

/** Removes folders `applyCgroups` created (innermost first); best effort. */
export function removeCreated(created: readonly string[]): void {
  for (const p of [...created].reverse()) {
    try {
      rmdirSync(p);
    } catch {
      // a process still in it, or already gone: nothing more the jailer can do
    }
  }
}
