/**
 * Host-side disk faults for the KVM tier (issue 12 item 4), made with the kernel's own tools
 * so the VMM meets them exactly as it would in production:
 *
 * - SmallFs: a size-limited tmpfs. Backing files on it are sparse, so guest writes allocate
 *   pages until the filesystem is full and pwrite / io_uring writes fail with ENOSPC. A
 *   ballast file holds some space back; deleting it frees room again.
 * - FaultyDisk: a device-mapper device over a loop device over a plain file, used directly as
 *   a drive's path_on_host (a block device, as with LVM-backed Firecracker drives). `fail()`
 *   swaps its table for the `error` target (every read, write and flush then fails with EIO,
 *   drivers/md/dm-target.c io_err_map), and drops the host page cache of the device so reads
 *   really reach the target; `heal()` swaps the linear table back. The loop's backing file is
 *   where data acknowledged before the fault must be found.
 *
 * Needs root and the loop and dm-mod modules (the KVM sandbox loads them, scripts/sandbox/init);
 * anything missing is a DiskFaultError naming it — the test then fails, it never skips.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Permanent codes of DiskFaultError. */
export const DISK_FAULT_CODES = {
  DISK_FAULT_NEEDS_ROOT: 'mounting a tmpfs and creating loop and device-mapper devices needs root',
  DISK_FAULT_COMMAND: 'a host command (mount, losetup, dmsetup, blockdev) failed',
} as const;

export class DiskFaultError extends Error {
  override name = 'DiskFaultError';
  constructor(readonly code: keyof typeof DISK_FAULT_CODES, message: string) {
    super(message);
  }
}

const SECTOR = 512;

/** Runs a host tool; DISK_FAULT_COMMAND with its stderr when it fails. */
function sh(cmd: string, args: string[]): string {
  try {
    // DM_DISABLE_UDEV: no udev runs in the sandbox; libdevmapper then makes /dev/mapper nodes itself.
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DM_DISABLE_UDEV: '1' } }).trim();
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new DiskFaultError('DISK_FAULT_COMMAND', `${cmd} ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new DiskFaultError('DISK_FAULT_NEEDS_ROOT', `${what} needs root (the KVM sandbox runs the tier as root)`);
}

/** A tmpfs of `bytes` mounted on `dir` (created). */
export class SmallFs {
  private ballastPath: string | undefined;

  private constructor(readonly dir: string) {}

  static mount(dir: string, bytes: number): SmallFs {
    requireRoot('a size-limited tmpfs');
    mkdirSync(dir, { recursive: true });
    sh('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'kindling-small', dir]);
    return new SmallFs(dir);
  }

  /** A sparse file of `bytes` holding `head` at offset 0 (its pages are allocated). */
  file(name: string, bytes: number, head: Uint8Array): string {
    const p = join(this.dir, name);
    writeFileSync(p, head);
    truncateSync(p, bytes);
    return p;
  }

  /** A file whose pages take `bytes` of the filesystem until `freeBallast()`. */
  ballast(bytes: number): void {
    this.ballastPath = join(this.dir, 'ballast');
    writeFileSync(this.ballastPath, Buffer.alloc(bytes, 0x5a));
  }

  freeBallast(): void {
    if (this.ballastPath) rmSync(this.ballastPath);
    this.ballastPath = undefined;
  }

  unmount(): void {
    sh('umount', [this.dir]);
  }
}

/** A device-mapper device `name` over a loop device over `backing` (a file of `bytes`). */
export class FaultyDisk {
  /** Times the disk was switched to the error target and back, for the test's report. */
  failures = 0;
  heals = 0;

  private constructor(readonly name: string, readonly backing: string, readonly loop: string, readonly sectors: number) {}

  /** The block device node to give a drive as path_on_host. */
  get path(): string {
    return `/dev/mapper/${this.name}`;
  }

  static create(name: string, backing: string, bytes: number): FaultyDisk {
    requireRoot('a device-mapper disk');
    writeFileSync(backing, '');
    truncateSync(backing, bytes);
    const loop = sh('losetup', ['--find', '--show', backing]);
    const d = new FaultyDisk(name, backing, loop, bytes / SECTOR);
    try {
      sh('dmsetup', ['create', name, '--noudevsync', '--table', d.linear()]);
    } catch (e) {
      sh('losetup', ['--detach', loop]);
      throw e;
    }
    return d;
  }

  private linear(): string {
    return `0 ${this.sectors} linear ${this.loop} 0`;
  }

  private load(table: string): void {
    sh('dmsetup', ['suspend', '--noudevsync', this.name]);
    sh('dmsetup', ['reload', '--noudevsync', this.name, '--table', table]);
    sh('dmsetup', ['resume', '--noudevsync', this.name]);
  }

  /** Every sector fails from now on; cached pages of the device are written back and dropped. */
  fail(): void {
    sh('blockdev', ['--flushbufs', this.path]);
    this.load(`0 ${this.sectors} error`);
    sh('blockdev', ['--flushbufs', this.path]);
    this.failures++;
  }

  /** Back to the linear mapping of the loop device. */
  heal(): void {
    this.load(this.linear());
    this.heals++;
  }

  /** Bytes of the backing file (what reached the "disk"). */
  read(offset: number, len: number): Buffer {
    return readFileSync(this.backing).subarray(offset, offset + len);
  }

  remove(): void {
    sh('dmsetup', ['remove', '--noudevsync', this.name]);
    sh('losetup', ['--detach', this.loop]);
  }
}
