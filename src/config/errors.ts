/**
 * Errors of the resource store (src/config). Each carries the Display text of the matching
 * Firecracker error enum (`DriveError`, `MachineConfigError`, ...) as `detail`; where it ends up
 * decides the prefix, because Firecracker wraps the same inner error differently:
 * `VmmActionError` for API replies ("Drive config error: ...", src/vmm/src/rpc_interface.rs) and
 * `ResourcesError` for `--config-file` failures ("Block device error: ...", src/vmm/src/resources.rs).
 */
import { ApiLayerError } from '../errors.js';

/** Which configuration an error is about; selects the wrapping prefix. */
export type ConfigKind =
  | 'balloon'
  | 'boot-source'
  | 'cpu'
  | 'drive'
  | 'entropy'
  | 'file'
  | 'fs'
  | 'logger'
  | 'machine-config'
  | 'memory-hotplug'
  | 'metrics'
  | 'mmds'
  | 'mmds-config'
  | 'mmds-limit'
  | 'net'
  | 'pmem'
  | 'vsock';

/** `VmmActionError` Display prefixes (rpc_interface.rs); note Firecracker's own "MMMDS" typo. */
export const VMM_ACTION_PREFIX: Record<ConfigKind, string> = {
  balloon: 'Balloon config error',
  'boot-source': 'Boot source error',
  cpu: 'Configure CPU error',
  drive: 'Drive config error',
  entropy: 'Entropy config error',
  file: 'File operation error',
  fs: 'Fs config error',
  logger: 'Logger error',
  'machine-config': 'Machine config error',
  'memory-hotplug': 'Memory hotplug config error',
  metrics: 'Metrics error',
  mmds: 'MMDS error',
  'mmds-config': 'MMMDS config error',
  'mmds-limit': 'MMDS limit exceeded error',
  net: 'Network config error',
  pmem: 'Pmem config error',
  vsock: 'Vsock config error',
};

/** `ResourcesError` Display prefixes (resources.rs), used for config-file failures. */
export const RESOURCES_PREFIX: Record<ConfigKind, string> = {
  balloon: 'Balloon device error',
  'boot-source': 'Boot source error',
  cpu: 'Invalid JSON',
  drive: 'Block device error',
  entropy: 'Entropy device error',
  file: 'File operation error',
  fs: 'Fs device error',
  logger: 'Logger error',
  'machine-config': 'VM config error',
  'memory-hotplug': 'Memory hotplug config error',
  metrics: 'Metrics error',
  mmds: 'MMDS error',
  'mmds-config': 'MMDS config error',
  'mmds-limit': 'MMDS error',
  net: 'Network device error',
  pmem: 'Pmem device error',
  vsock: 'Vsock device error',
};

/** A resource configuration was rejected; `detail` is the inner Firecracker error text. */
export class ConfigError extends ApiLayerError {
  readonly kind: ConfigKind;
  readonly detail: string;
  constructor(kind: ConfigKind, detail: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', detail, kind === 'mmds-limit' ? 413 : 400, options);
    this.kind = kind;
    this.detail = detail;
  }

  /** The text of the API fault_message (`VmmActionError` Display). */
  override get faultMessage(): string {
    return `${VMM_ACTION_PREFIX[this.kind]}: ${this.detail}`;
  }

  /** The text Firecracker prints when the same error comes from `--config-file`. */
  get resourcesMessage(): string {
    return `${RESOURCES_PREFIX[this.kind]}: ${this.detail}`;
  }
}

/**
 * Host I/O errors in Rust's `io::Error` words (`No such file or directory (os error 2)`, musl's
 * strerror texts); Firecracker's fault messages embed them. Kept importable from here, where
 * every resource formats its errors.
 */
export { HostIoError, ioErrorDebug, ioErrorText, unixSocketPathError } from '../util/io-error.js';
