/**
 * Errors of the resource store (src/config). Each carries the Display text of the matching
 * Firecracker error enum (`DriveError`, `MachineConfigError`, ...) as `detail`; where it ends up
 * decides the prefix, because Firecracker wraps the same inner error differently:
 * `VmmActionError` for API replies ("Drive config error: ...", facts §1.2) and `ResourcesError`
 * for `--config-file` failures ("Block device error: ...", facts §1.5).
 */
import { constants as osConstants } from 'node:os';
import { ApiLayerError } from '../errors.js';

/** Which configuration an error is about; selects the wrapping prefix. */
export type ConfigKind =
  | 'balloon'
  | 'boot-source'
  | 'cpu'
  | 'drive'
  | 'entropy'
  | 'file'
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

/** Linux strerror texts as Rust's `io::Error` Display prints them, by errno name. */
const STRERROR: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  EMFILE: 'Too many open files',
  ETXTBSY: 'Text file busy',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  ENAMETOOLONG: 'File name too long',
  ELOOP: 'Too many levels of symbolic links',
  EADDRINUSE: 'Address already in use',
  ECONNREFUSED: 'Connection refused',
  ENOTSOCK: 'Socket operation on non-socket',
};

/**
 * Formats a Node system error like Rust's `io::Error` Display: `No such file or directory
 * (os error 2)`. Firecracker's fault messages embed this text.
 */
export function ioErrorText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code;
  const errno = code ? (osConstants.errno as Record<string, number>)[code] : undefined;
  if (code && errno !== undefined) return `${STRERROR[code] ?? code} (os error ${errno})`;
  return err instanceof Error ? err.message : String(e);
}
