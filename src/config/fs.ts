/**
 * PUT /fs/{id}: a virtio-fs device sharing a host directory with the guest through a
 * vhost-user backend (virtiofsd). Kindling's own resource — Firecracker v1.16.1 has no
 * virtio-fs — named as Firecracker names its newest resources: the path and body id as
 * /pmem/{id} (`id`), the backend's socket as its vhost-user drives' `socket`
 * (firecracker src/vmm/src/vmm_config/drive.rs `BlockDeviceConfig::socket`).
 *
 *   { "id": "work", "tag": "work", "socket": "/run/virtiofsd.sock" }   a backend the user started
 *   { "id": "work", "tag": "work", "shared_dir": "/srv/work" }         Kindling starts virtiofsd
 *
 * Checked here, at PUT time, as Firecracker checks a drive's file at PUT: the tag (1..36
 * UTF-8 bytes, §5.11.4, unique among the devices: the guest mounts by tag), exactly one of
 * `socket` / `shared_dir`, `shared_dir` an existing directory, and `shared_dir` only where
 * Kindling can start a process (not under a seccomp filter, which traps fork and would be
 * inherited by virtiofsd). A `socket` is connected at InstanceStart, when the backend is
 * expected to listen.
 */
import { statSync } from 'node:fs';
import { seccompFiltered } from '../seccomp/state.js';
import { ConfigError } from './errors.js';
import { Desc, deserialize, field, opt, path, str, struct } from './serde.js';

/** The PUT /fs body (`FsDeviceConfig`). */
export interface FsDeviceConfig {
  id: string;
  /** The name the guest mounts: `mount -t virtiofs <tag> /mnt`. */
  tag: string;
  /** A listening vhost-user backend's socket. */
  socket: string | null;
  /** A host directory Kindling shares by starting virtiofsd for it. */
  shared_dir: string | null;
}

/** serde description of `FsDeviceConfig` (deny_unknown_fields). */
export const FS: Desc = struct('FsDeviceConfig', [
  field('id', str),
  field('tag', str),
  field('socket', opt(path)),
  field('shared_dir', opt(path)),
]);

/** Most bytes of a tag (struct virtio_fs_config tag[36]). */
export const FS_TAG_MAX_BYTES = 36;

/** Parses a PUT /fs body. */
export function parseFs(body: Uint8Array | string): FsDeviceConfig {
  return deserialize<FsDeviceConfig>(body, FS);
}

/** FsConfigError texts (Kindling's, in Firecracker's sentence style). */
export const FS_ERRORS = {
  TagLength: (tag: string) => `The tag "${tag}" must be 1 to ${FS_TAG_MAX_BYTES} bytes long.`,
  TagInUse: (tag: string, id: string) => `The tag "${tag}" is already used by fs device ${id}.`,
  OneBackend: 'Exactly one of socket and shared_dir must be given.',
  SharedDir: (p: string, why: string) => `Cannot share ${p}: ${why}`,
  Seccomp: 'shared_dir needs Kindling to start virtiofsd, which the seccomp filter forbids: start virtiofsd yourself and give its socket, or run with --no-seccomp.',
} as const;

/** Validates `cfg` (module comment) and adds or replaces it by id in `list`. Mutates `list`. */
export function insertFs(list: FsDeviceConfig[], cfg: FsDeviceConfig): FsDeviceConfig[] {
  const tagBytes = Buffer.byteLength(cfg.tag, 'utf8');
  if (tagBytes === 0 || tagBytes > FS_TAG_MAX_BYTES || cfg.tag.includes('\0')) throw new ConfigError('fs', FS_ERRORS.TagLength(cfg.tag));
  const clash = list.find((f) => f.tag === cfg.tag && f.id !== cfg.id);
  if (clash) throw new ConfigError('fs', FS_ERRORS.TagInUse(cfg.tag, clash.id));
  if ((cfg.socket === null) === (cfg.shared_dir === null)) throw new ConfigError('fs', FS_ERRORS.OneBackend);
  if (cfg.shared_dir !== null) {
    let isDir: boolean;
    try {
      isDir = statSync(cfg.shared_dir).isDirectory();
    } catch (e) {
      throw new ConfigError('fs', FS_ERRORS.SharedDir(cfg.shared_dir, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (e as Error).message));
    }
    if (!isDir) throw new ConfigError('fs', FS_ERRORS.SharedDir(cfg.shared_dir, 'not a directory'));
    if (seccompFiltered()) throw new ConfigError('fs', FS_ERRORS.Seccomp);
  }
  const at = list.findIndex((f) => f.id === cfg.id);
  if (at === -1) list.push({ ...cfg });
  else list[at] = { ...cfg };
  return list;
}
