/**
 * PUT/PATCH /pmem/{id} (firecracker src/vmm/src/vmm_config/ Pmem, vmm_config/pmem.rs). v1.16.1 stores the config
 * at PUT (the file is mapped at boot); a root pmem device and a root block device exclude each
 * other.
 */
import { ConfigError } from './errors.js';
import { RATE_LIMITER, RateLimiterConfig, effectiveRateLimiter } from './rate-limiter.js';
import { Desc, bool, deserialize, field, opt, str, struct } from './serde.js';

/** The PUT /pmem body (`PmemConfig`). */
export interface PmemConfig {
  id: string;
  path_on_host: string;
  root_device: boolean;
  read_only: boolean;
  rate_limiter: RateLimiterConfig | null;
}

/** The PATCH /pmem body: only the rate limiter changes. */
export interface PmemDeviceUpdateConfig {
  id: string;
  rate_limiter: RateLimiterConfig | null;
}

/** serde description of `PmemConfig` (deny_unknown_fields). */
export const PMEM: Desc = struct('PmemConfig', [
  field('id', str),
  field('path_on_host', str),
  field('root_device', bool, () => false),
  field('read_only', bool, () => false),
  field('rate_limiter', opt(RATE_LIMITER)),
]);

/** serde description of `PmemDeviceUpdateConfig` (deny_unknown_fields). */
const PMEM_UPDATE: Desc = struct('PmemDeviceUpdateConfig', [field('id', str), field('rate_limiter', opt(RATE_LIMITER))]);


/** Parses a PUT /pmem body. */
export function parsePmem(body: Uint8Array | string): PmemConfig {
  return deserialize<PmemConfig>(body, PMEM);
}

/** Parses a PATCH /pmem body. */
export function parsePmemUpdate(body: Uint8Array | string): PmemDeviceUpdateConfig {
  return deserialize<PmemDeviceUpdateConfig>(body, PMEM_UPDATE);
}

/** PmemConfigError texts. */
export const PMEM_ERRORS = {
  AddingSecondRootDevice: 'Attempt to add pmem as a root device while the root device defined as a block device',
  RootPmemDeviceAlreadyExist: 'A root pmem device already exist',
} as const;

/** `PmemBuilder::build`: add or replace by id, one root device overall. Mutates `list`. */
export function insertPmem(list: PmemConfig[], cfg: PmemConfig, hasBlockRoot: boolean): PmemConfig[] {
  if (cfg.root_device && hasBlockRoot) throw new ConfigError('pmem', PMEM_ERRORS.AddingSecondRootDevice);
  const hasRoot = list.some((p) => p.root_device);
  const at = list.findIndex((p) => p.id === cfg.id);
  if (at !== -1) {
    if (!list[at]!.root_device && cfg.root_device && hasRoot) throw new ConfigError('pmem', PMEM_ERRORS.RootPmemDeviceAlreadyExist);
    list[at] = { ...cfg };
  } else {
    if (cfg.root_device && hasRoot) throw new ConfigError('pmem', PMEM_ERRORS.RootPmemDeviceAlreadyExist);
    list.push({ ...cfg });
  }
  return list;
}

/** A pmem device as GET /vm/config reports it. */
export function pmemJson(p: PmemConfig): PmemConfig {
  return { ...p, rate_limiter: effectiveRateLimiter(p.rate_limiter) };
}
