/**
 * PUT /vsock (facts §1.4 Vsock, §4.7, vmm_config/vsock.rs). Firecracker binds the host Unix
 * socket at PUT time; Kindling checks that the bind can succeed (path free, directory present)
 * and leaves the bind to the backend at InstanceStart. `vsock_id` is deprecated and ignored.
 */
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, ioErrorText } from './errors.js';
import { Desc, deserialize, field, int, opt, str, struct, toJsonSchema } from './serde.js';

/** The PUT /vsock body. */
export interface VsockDeviceConfig {
  vsock_id: string | null;
  guest_cid: number;
  uds_path: string;
}

/** The vsock device as the backend receives it. */
export interface VsockConfig {
  guest_cid: number;
  uds_path: string;
}

/** serde description of `VsockDeviceConfig` (deny_unknown_fields). */
export const VSOCK: Desc = struct('VsockDeviceConfig', [field('vsock_id', opt(str)), field('guest_cid', int('u32')), field('uds_path', str)]);

/** JSON Schema of the body. */
export const VSOCK_SCHEMA = toJsonSchema(VSOCK);

/** Parses a PUT /vsock body. */
export function parseVsock(body: Uint8Array | string): VsockDeviceConfig {
  return deserialize<VsockDeviceConfig>(body, VSOCK);
}

/** sockaddr_un.sun_path capacity (including the NUL). */
const SUN_PATH_MAX = 108;

function bindError(detail: string): ConfigError {
  return new ConfigError('vsock', `Cannot create backend for vsock device: Error binding to the host-side Unix socket: ${detail}`);
}

/**
 * `VsockBuilder::insert`: a previous device's socket file is removed first (Firecracker unlinks
 * the socket it bound), then the new path must be bindable.
 */
export function buildVsock(cfg: VsockDeviceConfig, previous: VsockConfig | null): VsockConfig {
  if (previous && existsSync(previous.uds_path) && lstatSync(previous.uds_path).isSocket()) unlinkSync(previous.uds_path);
  if (Buffer.byteLength(cfg.uds_path) >= SUN_PATH_MAX) throw bindError('path must be shorter than SUN_LEN');
  if (existsSync(cfg.uds_path)) throw bindError('Address already in use (os error 98)');
  try {
    lstatSync(dirname(cfg.uds_path));
  } catch (e) {
    throw bindError(ioErrorText(e));
  }
  return { guest_cid: cfg.guest_cid, uds_path: cfg.uds_path };
}
