/**
 * PUT/PATCH /drives/{id} (firecracker src/vmm/src/vmm_config/ Drive/PartialDrive, vmm_config/drive.rs, block/device.rs).
 * A drive is virtio-block iff `path_on_host` is set and `socket` is not; with `socket` it is
 * vhost-user-blk. The backing file is opened at PUT time (read-write unless read-only). The
 * store keeps at most one root device, always first in the list (→ /dev/vda).
 */
import { closeSync, constants, openSync } from 'node:fs';
import { ConfigError, ioErrorText } from './errors.js';
import { RATE_LIMITER, RateLimiterConfig, effectiveRateLimiter } from './rate-limiter.js';
import { Desc, bool, deserialize, enumOf, field, opt, str, struct } from './serde.js';

import type { CacheType, FileEngineType } from '../devices/virtio/block/device.js';

export type { CacheType, FileEngineType };

/** The PUT /drives body (`BlockDeviceConfig`), nulls for absent options. */
export interface BlockDeviceConfig {
  drive_id: string;
  partuuid: string | null;
  is_root_device: boolean;
  cache_type: CacheType;
  is_read_only: boolean | null;
  path_on_host: string | null;
  rate_limiter: RateLimiterConfig | null;
  io_engine: FileEngineType | null;
  socket: string | null;
}

/** The PATCH /drives body (`BlockDeviceUpdateConfig`). */
export interface BlockDeviceUpdateConfig {
  drive_id: string;
  path_on_host: string | null;
  rate_limiter: RateLimiterConfig | null;
}

/** A configured virtio-block drive: a backing file on the host. */
export interface VirtioBlockDrive {
  kind: 'virtio-block';
  drive_id: string;
  partuuid: string | null;
  is_root_device: boolean;
  cache_type: CacheType;
  is_read_only: boolean;
  path_on_host: string;
  rate_limiter: RateLimiterConfig | null;
  io_engine: FileEngineType;
}

/** A configured vhost-user-block drive: a backend process behind a Unix socket. */
export interface VhostUserBlockDrive {
  kind: 'vhost-user-block';
  drive_id: string;
  partuuid: string | null;
  is_root_device: boolean;
  cache_type: CacheType;
  socket: string;
}

/** A configured drive, validated at PUT time; what the VM is built from. */
export type DriveConfig = VirtioBlockDrive | VhostUserBlockDrive;

/** serde description of `BlockDeviceConfig` (deny_unknown_fields). */
export const BLOCK_DEVICE: Desc = struct('BlockDeviceConfig', [
  field('drive_id', str),
  field('partuuid', opt(str)),
  field('is_root_device', bool),
  field('cache_type', enumOf('Unsafe', 'Writeback'), () => 'Unsafe'),
  field('is_read_only', opt(bool)),
  field('path_on_host', opt(str)),
  field('rate_limiter', opt(RATE_LIMITER)),
  field('io_engine', opt(enumOf('Async', 'Sync'))),
  field('socket', opt(str)),
]);

/** serde description of `BlockDeviceUpdateConfig` (deny_unknown_fields). */
const BLOCK_DEVICE_UPDATE: Desc = struct('BlockDeviceUpdateConfig', [
  field('drive_id', str),
  field('path_on_host', opt(str)),
  field('rate_limiter', opt(RATE_LIMITER)),
]);


/** Parses a PUT /drives body. */
export function parseDrive(body: Uint8Array | string): BlockDeviceConfig {
  return deserialize<BlockDeviceConfig>(body, BLOCK_DEVICE);
}

/** Parses a PATCH /drives body. */
export function parseDriveUpdate(body: Uint8Array | string): BlockDeviceUpdateConfig {
  return deserialize<BlockDeviceUpdateConfig>(body, BLOCK_DEVICE_UPDATE);
}

/** DriveError texts (vmm_config/drive.rs). */
export const DRIVE_ERRORS = {
  AddingSecondRootDevice: 'Attempt to add block as a root device while the root device defined as a pmem device',
  RootBlockDeviceAlreadyAdded: 'A root block device already exists!',
} as const;

/** Opens a backing file as the virtio-block device would (O_RDWR unless read-only). */
export function openBackingFile(path: string, readOnly: boolean): void {
  try {
    closeSync(openSync(path, readOnly ? constants.O_RDONLY : constants.O_RDWR));
  } catch (e) {
    throw new ConfigError(
      'drive',
      `Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: ${ioErrorText(e)} ${path}`,
      { cause: e },
    );
  }
}

/** `Block::new`: picks the backend type and opens the backing file (firecracker src/vmm/src/vmm_config/). */
export function buildDrive(cfg: BlockDeviceConfig): DriveConfig {
  if (cfg.path_on_host !== null && cfg.socket === null) {
    const readOnly = cfg.is_read_only ?? false;
    openBackingFile(cfg.path_on_host, readOnly);
    return {
      kind: 'virtio-block',
      drive_id: cfg.drive_id,
      partuuid: cfg.partuuid,
      is_root_device: cfg.is_root_device,
      cache_type: cfg.cache_type,
      is_read_only: readOnly,
      path_on_host: cfg.path_on_host,
      rate_limiter: cfg.rate_limiter,
      io_engine: cfg.io_engine ?? 'Sync',
    };
  }
  if (cfg.socket !== null) {
    return { kind: 'vhost-user-block', drive_id: cfg.drive_id, partuuid: cfg.partuuid, is_root_device: cfg.is_root_device, cache_type: cfg.cache_type, socket: cfg.socket };
  }
  throw new ConfigError('drive', 'Unable to create the virtio block device: Invalid block config.');
}

/** A drive as GET /vm/config reports it: all nine keys, nulls included (firecracker src/vmm/src/vmm_config/). */
export function driveJson(d: DriveConfig): BlockDeviceConfig {
  if (d.kind === 'vhost-user-block') {
    return { drive_id: d.drive_id, partuuid: d.partuuid, is_root_device: d.is_root_device, cache_type: d.cache_type, is_read_only: null, path_on_host: null, rate_limiter: null, io_engine: null, socket: d.socket };
  }
  return {
    drive_id: d.drive_id,
    partuuid: d.partuuid,
    is_root_device: d.is_root_device,
    cache_type: d.cache_type,
    is_read_only: d.is_read_only,
    path_on_host: d.path_on_host,
    rate_limiter: effectiveRateLimiter(d.rate_limiter),
    io_engine: d.io_engine,
    socket: null,
  };
}

/**
 * `BlockBuilder::insert`: same id replaces in place; a root device goes (and stays) first; a
 * second root (block or pmem) is refused. Mutates and returns `list`.
 */
export function insertDrive(list: DriveConfig[], cfg: BlockDeviceConfig, hasPmemRoot: boolean): DriveConfig[] {
  const position = list.findIndex((d) => d.drive_id === cfg.drive_id);
  const hasRoot = list.length > 0 && list[0]!.is_root_device;
  if (cfg.is_root_device && hasPmemRoot) throw new ConfigError('drive', DRIVE_ERRORS.AddingSecondRootDevice);
  if (cfg.is_root_device && hasRoot && position !== 0) throw new ConfigError('drive', DRIVE_ERRORS.RootBlockDeviceAlreadyAdded);
  const dev = buildDrive(cfg);
  if (position === -1) {
    if (cfg.is_root_device) list.unshift(dev);
    else list.push(dev);
  } else {
    list[position] = dev;
    if (position !== 0 && cfg.is_root_device) {
      list[position] = list[0]!;
      list[0] = dev;
    }
  }
  return list;
}
