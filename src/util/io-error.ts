/**
 * Host I/O errors worded as Firecracker words them. Firecracker is a Rust binary whose release
 * build links musl (rust-toolchain.toml targets x86_64-unknown-linux-musl), so an OS error
 * reads `<musl strerror> (os error N)` (Rust std `io::Error` Display over musl's
 * src/errno/__strerror.h), and its `{:?}` reads `Os { code: N, kind: K, message: "..." }`.
 * Some failures std raises itself before any syscall, as constant messages: a path holding a
 * NUL byte, a Unix socket path that does not fit `sun_path`.
 *
 * Node reports the same failures in its own words ("ENOENT: no such file or directory, open
 * '…'", "The argument 'path' must be … without null bytes", libuv's EACCES for a missing
 * socket directory); `HostIoError.from` turns them into the Rust form, so no Node text reaches
 * a fault_message, a log line or stderr.
 */
import { constants } from 'node:os';
import { KindlingError, SyscallError } from '../errors.js';

const ERRNO = constants.errno as Readonly<Record<string, number>>;

/** musl 1.2.5 strerror texts (src/errno/__strerror.h), for the errno names Node knows. */
const MUSL_STRERROR: Readonly<Record<string, string>> = {
  EILSEQ: 'Illegal byte sequence', EDOM: 'Domain error', ERANGE: 'Result not representable',
  ENOTTY: 'Not a tty', EACCES: 'Permission denied', EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory', ESRCH: 'No such process', EEXIST: 'File exists',
  EOVERFLOW: 'Value too large for data type', ENOSPC: 'No space left on device', ENOMEM: 'Out of memory',
  EBUSY: 'Resource busy', EINTR: 'Interrupted system call', EAGAIN: 'Resource temporarily unavailable',
  ESPIPE: 'Invalid seek', EXDEV: 'Cross-device link', EROFS: 'Read-only file system',
  ENOTEMPTY: 'Directory not empty', ECONNRESET: 'Connection reset by peer', ETIMEDOUT: 'Operation timed out',
  ECONNREFUSED: 'Connection refused', EHOSTUNREACH: 'Host is unreachable', EADDRINUSE: 'Address in use',
  EPIPE: 'Broken pipe', EIO: 'I/O error', ENXIO: 'No such device or address', ENODEV: 'No such device',
  ENOTDIR: 'Not a directory', EISDIR: 'Is a directory', ETXTBSY: 'Text file busy',
  ENOEXEC: 'Exec format error', EINVAL: 'Invalid argument', E2BIG: 'Argument list too long',
  ELOOP: 'Symbolic link loop', ENAMETOOLONG: 'Filename too long', ENFILE: 'Too many open files in system',
  EMFILE: 'No file descriptors available', EBADF: 'Bad file descriptor', ECHILD: 'No child process',
  EFAULT: 'Bad address', EFBIG: 'File too large', EMLINK: 'Too many links', ENOLCK: 'No locks available',
  EDEADLK: 'Resource deadlock would occur', ECANCELED: 'Operation canceled', ENOSYS: 'Function not implemented',
  ENOMSG: 'No message of desired type', EIDRM: 'Identifier removed', ENOSTR: 'Device not a stream',
  ENODATA: 'No data available', ETIME: 'Device timeout', ENOSR: 'Out of streams resources',
  ENOLINK: 'Link has been severed', EPROTO: 'Protocol error', EBADMSG: 'Bad message',
  ENOTSOCK: 'Not a socket', EDESTADDRREQ: 'Destination address required', EMSGSIZE: 'Message too large',
  EPROTOTYPE: 'Protocol wrong type for socket', ENOPROTOOPT: 'Protocol not available',
  EPROTONOSUPPORT: 'Protocol not supported', ENOTSUP: 'Not supported',
  EAFNOSUPPORT: 'Address family not supported by protocol', EADDRNOTAVAIL: 'Address not available',
  ENETDOWN: 'Network is down', ENETUNREACH: 'Network unreachable', ENETRESET: 'Connection reset by network',
  ECONNABORTED: 'Connection aborted', ENOBUFS: 'No buffer space available', EISCONN: 'Socket is connected',
  ENOTCONN: 'Socket not connected', EALREADY: 'Operation already in progress', EINPROGRESS: 'Operation in progress',
  ESTALE: 'Stale file handle', EDQUOT: 'Quota exceeded', EMULTIHOP: 'Multihop attempted',
};

/** Rust std `decode_error_kind` (library/std/src/sys/pal/unix/mod.rs): errno → `ErrorKind`. */
const RUST_KIND: Readonly<Record<string, string>> = {
  E2BIG: 'ArgumentListTooLong', EADDRINUSE: 'AddrInUse', EADDRNOTAVAIL: 'AddrNotAvailable', EBUSY: 'ResourceBusy',
  ECONNABORTED: 'ConnectionAborted', ECONNREFUSED: 'ConnectionRefused', ECONNRESET: 'ConnectionReset',
  EDEADLK: 'Deadlock', EDQUOT: 'QuotaExceeded', EEXIST: 'AlreadyExists', EFBIG: 'FileTooLarge',
  EHOSTUNREACH: 'HostUnreachable', EINTR: 'Interrupted', EINVAL: 'InvalidInput', EISDIR: 'IsADirectory',
  ELOOP: 'FilesystemLoop', ENOENT: 'NotFound', ENOMEM: 'OutOfMemory', ENOSPC: 'StorageFull', ENOSYS: 'Unsupported',
  EMLINK: 'TooManyLinks', ENAMETOOLONG: 'InvalidFilename', ENETDOWN: 'NetworkDown', ENETUNREACH: 'NetworkUnreachable',
  ENOTCONN: 'NotConnected', ENOTDIR: 'NotADirectory', ENOTEMPTY: 'DirectoryNotEmpty', EPIPE: 'BrokenPipe',
  EROFS: 'ReadOnlyFilesystem', ESPIPE: 'NotSeekable', ESTALE: 'StaleNetworkFileHandle', ETIMEDOUT: 'TimedOut',
  ETXTBSY: 'ExecutableFileBusy', EXDEV: 'CrossesDevices', EINPROGRESS: 'InProgress', EMFILE: 'TooManyOpenFiles',
  ENFILE: 'TooManyOpenFiles', ENOTSUP: 'Unsupported', EIO: 'InputOutputError', EACCES: 'PermissionDenied',
  EPERM: 'PermissionDenied', EAGAIN: 'WouldBlock',
};

/** Both tables keyed by errno number (EWOULDBLOCK and EOPNOTSUPP share EAGAIN's and ENOTSUP's). */
const BY_NUMBER = new Map<number, { text: string; kind: string }>(
  Object.keys(MUSL_STRERROR).flatMap((name) => {
    const n = ERRNO[name];
    return n === undefined ? [] : [[n, { text: MUSL_STRERROR[name]!, kind: RUST_KIND[name] ?? 'Uncategorized' }] as const];
  }),
);

/** std's text for a path with a NUL byte given to open/stat/… (sys/pal/common/small_c_string.rs). */
export const NUL_IN_FILE_NAME = 'file name contained an unexpected NUL byte';
/** std's texts for a Unix socket path that cannot become a `sockaddr_un` (os/unix/net/addr.rs). */
export const SOCKET_PATH_NUL = 'paths must not contain interior null bytes';
export const SOCKET_PATH_TOO_LONG = 'path must be shorter than SUN_LEN';
/** `sun_path` capacity on Linux, including the terminating NUL (unix(7)). */
export const SUN_PATH_MAX = 108;

/**
 * A Rust `std::io::Error`: an OS errno (`message` is its Display, `<strerror> (os error N)`) or a
 * constant std message with its kind. `debug` is its `{:?}`, the form Firecracker prints to
 * stderr and in panics.
 */
export class HostIoError extends KindlingError {
  /** The errno, or null for a std constant message. */
  readonly errno: number | null;
  /** The Rust `ErrorKind` name. */
  readonly kind: string;
  private readonly detail: string;

  private constructor(errno: number | null, kind: string, detail: string, cause?: unknown) {
    super('HOST_IO', errno === null ? detail : `${detail} (os error ${errno})`, { cause });
    this.errno = errno;
    this.kind = kind;
    this.detail = detail;
  }

  /** An OS error by errno name (`'ENOENT'`) or number. */
  static os(errno: string | number, cause?: unknown): HostIoError {
    const n = typeof errno === 'number' ? errno : ERRNO[errno] ?? 0;
    const known = BY_NUMBER.get(n);
    return new HostIoError(n, known?.kind ?? 'Uncategorized', known?.text ?? 'No error information', cause);
  }

  /** An error std raises itself (`io::const_error!`), e.g. `InvalidInput` for a NUL byte. */
  static std(kind: string, message: string, cause?: unknown): HostIoError {
    return new HostIoError(null, kind, message, cause);
  }

  /**
   * The Rust form of an error a Node fs/net call (or a libc call through koffi) threw, or null
   * when `e` is no host I/O error at all (a bug, which callers then report as they see fit).
   */
  static from(e: unknown): HostIoError | null {
    if (e instanceof HostIoError) return e;
    if (e instanceof SyscallError) return HostIoError.os(e.errno, e);
    const code = (e as NodeJS.ErrnoException | null)?.code;
    if (typeof code !== 'string') return null;
    if (ERRNO[code] !== undefined) return HostIoError.os(code, e);
    // Node validates paths before the syscall; a string path fails only for a NUL byte.
    if (code === 'ERR_INVALID_ARG_VALUE' && /null bytes/.test((e as Error).message)) return HostIoError.std('InvalidInput', NUL_IN_FILE_NAME, e);
    // readFileSync refuses files over 2 GiB; the closest OS wording is EFBIG.
    if (code === 'ERR_FS_FILE_TOO_LARGE') return HostIoError.os('EFBIG', e);
    return null;
  }

  /** The `{:?}` form: `Os { code: 2, kind: NotFound, message: "…" }` or `Error { kind: …, message: "…" }`. */
  get debug(): string {
    return this.errno === null
      ? `Error { kind: ${this.kind}, message: ${JSON.stringify(this.detail)} }`
      : `Os { code: ${this.errno}, kind: ${this.kind}, message: ${JSON.stringify(this.detail)} }`;
  }
}

/** `io::Error` Display of a host error; other errors keep their own message. */
export function ioErrorText(e: unknown): string {
  return HostIoError.from(e)?.message ?? (e instanceof Error ? e.message : String(e));
}

/** `io::Error` `{:?}` of a host error; other errors are quoted as a Rust string would be. */
export function ioErrorDebug(e: unknown): string {
  return HostIoError.from(e)?.debug ?? JSON.stringify(e instanceof Error ? e.message : String(e));
}

/**
 * What binding a Unix socket at `path` fails with before any syscall: std's checks in
 * `sockaddr_un` (a NUL byte; `path` + NUL longer than `sun_path`). Node would silently cut such
 * a path at the NUL or at 107 bytes and listen somewhere else. An empty path, which std passes
 * to bind(2) as an autobind request (an abstract socket no path reaches), is refused with the
 * ENOENT that binding the empty pathname gives.
 */
export function unixSocketPathError(path: string): HostIoError | null {
  if (path.includes('\0')) return HostIoError.std('InvalidInput', SOCKET_PATH_NUL);
  if (Buffer.byteLength(path) >= SUN_PATH_MAX) return HostIoError.std('InvalidInput', SOCKET_PATH_TOO_LONG);
  if (path === '') return HostIoError.os('ENOENT');
  return null;
}
