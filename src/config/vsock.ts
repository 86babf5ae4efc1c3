/**
 * PUT /vsock (src/vmm/src/vmm_config/vsock.rs). Firecracker binds the host Unix socket at PUT
 * time (`VsockUnixBackend::new`, devices/virtio/vsock/unix/muxer.rs); Kindling checks that the
 * bind can succeed (a valid socket path, free, in a directory that exists) and leaves the bind
 * to the backend at InstanceStart. `vsock_id` is deprecated and ignored.
 */
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, HostIoError, ioErrorText, unixSocketPathError } from './errors.js';
import { Desc, deserialize, field, int, opt, str, struct } from './serde.js';

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


/** Parses a PUT /vsock body. */
export function parseVsock(body: Uint8Array | string): VsockDeviceConfig {
  return deserialize<VsockDeviceConfig>(body, VSOCK);
}

function bindError(detail: string): ConfigError {
  return new ConfigError('vsock', `Cannot create backend for vsock device: Error binding to the host-side Unix socket: ${detail}`);
}

/**
 * The bind at InstanceStart failed (the path was taken after PUT /vsock, or its folder went
 * away): the same error, with the same text, Firecracker's PUT /vsock answers when its bind
 * fails (`VsockConfigError::CreateVsockBackend(UnixBind)`).
 */
export function vsockBindError(e: unknown): ConfigError {
  return bindError(ioErrorText(e));
}

/**
 * `VsockBuilder::insert`: a previous device's socket file is removed first (Firecracker unlinks
 * the socket it bound), then the new path must be bindable.
 */
export function buildVsock(cfg: VsockDeviceConfig, previous: VsockConfig | null): VsockConfig {
  if (previous && existsSync(previous.uds_path) && lstatSync(previous.uds_path).isSocket()) unlinkSync(previous.uds_path);
  const invalid = unixSocketPathError(cfg.uds_path);
  if (invalid) throw bindError(invalid.message);
  if (existsSync(cfg.uds_path)) throw bindError(HostIoError.os('EADDRINUSE').message);
  try {
    lstatSync(dirname(cfg.uds_path));
  } catch (e) {
    throw bindError(ioErrorText(e));
  }
  return { guest_cid: cfg.guest_cid, uds_path: cfg.uds_path };
}
