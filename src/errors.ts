/**
 * Kindling's error classes. Every error carries a permanent `code` (messages may change,
 * codes never do); the table below is the single list of codes, and test/unit/errors.test.ts
 * fails when a class uses a code that is not in it.
 *
 * Errors cross worker boundaries as `{ code, message, detail }` (see `toWire`/`fromWire`),
 * because structured clone drops the prototype chain.
 */

/** Every code Kindling's errors may carry, with a one-line meaning. Codes are permanent. */
export const ERROR_CODES = {
  KVM_UNAVAILABLE: '/dev/kvm cannot be opened',
  KVM_API_VERSION: 'KVM_GET_API_VERSION is not 12',
  KVM_MISSING_CAPABILITY: 'a KVM capability the VMM needs is absent',
  KVM_IOCTL_FAILED: 'an ioctl on a KVM file descriptor failed',
  SYSCALL_FAILED: 'a libc call (mmap, memfd_create, eventfd, ...) failed',
  GUEST_MEMORY_OUT_OF_RANGE: 'a guest physical range is not backed by guest RAM',
  GUEST_MEMORY_LAYOUT: 'a guest memory size or region layout is invalid',
  VCPU_KICK_FAILED: 'a vCPU thread could not be signalled out of KVM_RUN',
  INTERNAL: 'an unexpected error inside Kindling (a bug)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Base class of all Kindling errors. */
export class KindlingError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** /dev/kvm is missing, unusable, or too old for Kindling. */
export class KvmUnavailableError extends KindlingError {
  constructor(code: 'KVM_UNAVAILABLE' | 'KVM_API_VERSION' | 'KVM_MISSING_CAPABILITY', message: string) {
    super(code, message);
  }
}

/** An ioctl failed; carries the ioctl's name and errno (like node's errnoException). */
export class KvmIoctlError extends KindlingError {
  readonly ioctl: string;
  readonly errno: number;
  constructor(ioctl: string, errno: number, errnoName: string) {
    super('KVM_IOCTL_FAILED', `${ioctl} failed: ${errnoName} (errno ${errno})`);
    this.ioctl = ioctl;
    this.errno = errno;
  }
}

/** A libc call other than a KVM ioctl failed. */
export class SyscallError extends KindlingError {
  readonly syscall: string;
  readonly errno: number;
  constructor(syscall: string, errno: number, errnoName: string) {
    super('SYSCALL_FAILED', `${syscall} failed: ${errnoName} (errno ${errno})`);
    this.syscall = syscall;
    this.errno = errno;
  }
}

/** A guest physical range falls (partly) outside guest RAM. Returned, not thrown, on hot paths. */
export class GuestMemoryError extends KindlingError {
  readonly gpa: number;
  readonly length: number;
  constructor(gpa: number, length: number) {
    const where = Number.isSafeInteger(gpa) && gpa >= 0 ? `0x${gpa.toString(16)}` : String(gpa);
    super('GUEST_MEMORY_OUT_OF_RANGE', `guest range ${where}+${length} is not guest RAM`);
    this.gpa = gpa;
    this.length = length;
  }
}

/** A memory size or layout request that cannot be honoured. */
export class GuestMemoryLayoutError extends KindlingError {
  constructor(message: string) {
    super('GUEST_MEMORY_LAYOUT', message);
  }
}

/** The shape in which errors travel between workers. */
export interface WireError {
  code: ErrorCode;
  message: string;
  name: string;
}

export function toWire(err: unknown): WireError {
  if (err instanceof KindlingError) return { code: err.code, message: err.message, name: err.name };
  const e = err instanceof Error ? err : new Error(String(err));
  return { code: 'INTERNAL', message: e.message, name: e.name };
}

export function fromWire(w: WireError): KindlingError {
  const e = new KindlingError(w.code, w.message);
  e.name = w.name;
  return e;
}
