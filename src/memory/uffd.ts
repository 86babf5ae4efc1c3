/**
 * userfaultfd(2) for the Uffd snapshot memory backend (PUT /snapshot/load with
 * `mem_backend.backend_type = "Uffd"`), as Firecracker does it (src/vmm/src/persist.rs
 * `guest_memory_from_uffd`; docs/snapshotting/handling-page-faults-on-snapshot-resume.md):
 *
 *   VMM:     maps guest RAM anonymous private, `Userfaultfd.open()`, `register()` each region
 *            (UFFDIO_REGISTER_MODE_MISSING), then `sendUffdHandshake()`: one message to the
 *            handler listening at `backend_path`, the region table as JSON with the uffd
 *            attached (SCM_RIGHTS, src/kvm/fd-passing.ts).
 *   handler: a separate process owning the memory file; it reads fault messages from the
 *            uffd (`readEvents()`) and fills each missing page with `copyPage()` (UFFDIO_COPY)
 *            or `zeroPage()` (UFFDIO_ZEROPAGE). examples/uffd/handler.ts is one.
 *
 * A thread touching a missing page sleeps in the kernel until the handler resolves it, so the
 * handler must never be a thread of the VMM that may itself fault (docs/design.md, "Snapshot
 * memory backends: Uffd"). Kernel guide: Documentation/admin-guide/mm/userfaultfd.rst.
 */
import koffi from 'koffi';
import * as libc from '../kvm/libc.js';
import { sendWithFd } from '../kvm/fd-passing.js';
import { SyscallError, UffdError } from '../errors.js';
import {
  SYS_userfaultfd, UFFDIO_API, UFFDIO_COPY, UFFDIO_REGISTER, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_ZEROPAGE,
  UFFD_API, UFFD_EVENT_PAGEFAULT, UFFD_EVENT_REMOVE, UFFD_FEATURE_EVENT_REMOVE, UFFD_MSG_OFFSETS, UFFD_MSG_SIZE,
  uffdio_api, uffdio_copy, uffdio_register, uffdio_zeropage,
} from './uffd-abi.js';

const EPERM = 1;
const ENOSYS = 38;
const EAGAIN = 11;
const EINTR = 4;
/** Results of UFFDIO_COPY / UFFDIO_ZEROPAGE a handler expects and acts on; others throw. */
const EEXIST = 17;
const ENOENT = 2;
const ESRCH = 3;
const EXPECTED = new Set([EEXIST, EAGAIN, ENOENT, ESRCH]);

/** What an errno from userfaultfd(2) means for the operator (kernel docs: admin-guide/sysctl/vm.rst, admin-guide/mm/userfaultfd.rst). */
function openHint(e: number): string | undefined {
  if (e === EPERM) {
    return 'vm.unprivileged_userfaultfd is 0, so a userfaultfd that also handles kernel-mode faults (as KVM and the '
      + 'VMM\'s own syscalls raise) needs CAP_SYS_PTRACE (root has it unless a container runtime or setpriv dropped it); '
      + 'grant CAP_SYS_PTRACE or set vm.unprivileged_userfaultfd=1 (Documentation/admin-guide/mm/userfaultfd.rst); '
      + 'a seccomp filter (e.g. a container runtime\'s default) can also refuse the syscall';
  }
  if (e === ENOSYS) return 'the kernel was built without CONFIG_USERFAULTFD';
  return undefined;
}

function uffdFail(op: string, hint?: string): never {
  const e = libc.errno();
  throw new UffdError(op, e, libc.errnoName(e), hint);
}

/** userfaultfd(2) + UFFDIO_API asking for `features`: the fd and what UFFDIO_API returned. */
function openWith(flags: number, features: number): { fd: number; features: number; ioctls: bigint } {
  const fd = Number(libc.syscall(SYS_userfaultfd, 'int', flags));
  if (fd < 0) {
    const e = libc.errno();
    throw new UffdError('userfaultfd', e, libc.errnoName(e), openHint(e));
  }
  const api = Buffer.alloc(koffi.sizeof(uffdio_api));
  koffi.encode(api, uffdio_api, { api: UFFD_API, features, ioctls: 0 });
  if (libc.ioctlPtr(fd, UFFDIO_API, api) < 0) {
    const e = libc.errno();
    libc.close(fd);
    throw new UffdError('UFFDIO_API', e, libc.errnoName(e));
  }
  const got = koffi.decode(api, uffdio_api) as { features: number | bigint; ioctls: number | bigint };
  return { fd, features: Number(got.features), ioctls: BigInt(got.ioctls) };
}

/** One message read from a userfaultfd. */
export type UffdEvent =
  | { kind: 'pagefault'; address: bigint; flags: number }
  | { kind: 'remove'; start: bigint; end: bigint }
  | { kind: 'other'; event: number };

/** A userfaultfd: the VMM side (open, register) and the handler side (read, copy, zero). */
export class Userfaultfd {
  readonly fd: number;
  /** The UFFD_FEATURE_* bits enabled by UFFDIO_API (0 on the handler side: it did not ask). */
  readonly features: number;
  private readonly msgs = Buffer.alloc(64 * UFFD_MSG_SIZE);
  private readonly copyArg = Buffer.alloc(koffi.sizeof(uffdio_copy));
  private readonly zeroArg = Buffer.alloc(koffi.sizeof(uffdio_zeropage));

  private constructor(fd: number, features: number) {
    this.fd = fd;
    this.features = features;
  }

  /**
   * A new userfaultfd, non-blocking and close-on-exec by default, after the UFFDIO_API
   * handshake. `wantFeatures` are asked for as far as the kernel offers them: a first fd learns
   * the supported set (UFFDIO_API with no features reports it; the call may be made once per
   * fd), a second asks for the intersection. Firecracker requires UFFD_FEATURE_EVENT_REMOVE
   * (persist.rs); here it is used when present (Linux 4.11+) and `features` says whether it is.
   */
  static open(flags = libc.O_CLOEXEC | libc.O_NONBLOCK, wantFeatures = UFFD_FEATURE_EVENT_REMOVE): Userfaultfd {
    const probe = openWith(flags, 0);
    libc.close(probe.fd);
    const { fd, features } = openWith(flags, wantFeatures & probe.features);
    return new Userfaultfd(fd, features);
  }

  /** The handler's side: a userfaultfd received from the VMM (the VMM already made the UFFDIO_API call). */
  static fromFd(fd: number): Userfaultfd {
    return new Userfaultfd(fd, 0);
  }

  /** UFFDIO_REGISTER [addr, addr + len) in MISSING mode: a fault on a page not present goes to the handler. */
  register(addr: bigint, len: number): void {
    const arg = Buffer.alloc(koffi.sizeof(uffdio_register));
    koffi.encode(arg, uffdio_register, { range: { start: addr, len }, mode: UFFDIO_REGISTER_MODE_MISSING, ioctls: 0 });
    if (libc.ioctlPtr(this.fd, UFFDIO_REGISTER, arg) < 0) uffdFail(`UFFDIO_REGISTER(0x${addr.toString(16)}+0x${len.toString(16)})`);
  }

  /**
   * UFFDIO_COPY `len` bytes from `src` (this process) to the registered page at `dst` (the
   * VMM's address space), waking the faulting threads. Returns the bytes copied, or -errno for
   * what a handler must act on: -EEXIST (the page is already there: another fault or event
   * won the race; nothing to do), -EAGAIN (the address space changed, e.g. a REMOVE event is
   * queued: read events, then retry), -ENOENT (the range is no longer registered/mapped),
   * -ESRCH (the VMM's address space is gone: it exited). Throws UffdError otherwise.
   */
  copyPage(dst: bigint, src: bigint, len: number): number {
    koffi.encode(this.copyArg, uffdio_copy, { dst, src, len, mode: 0, copy: 0 });
    return this.resolve('UFFDIO_COPY', UFFDIO_COPY, this.copyArg, dst);
  }

  /** UFFDIO_ZEROPAGE [dst, dst + len): maps zeroes. Same results as `copyPage`. */
  zeroPage(dst: bigint, len: number): number {
    koffi.encode(this.zeroArg, uffdio_zeropage, { range: { start: dst, len }, mode: 0, zeropage: 0 });
    return this.resolve('UFFDIO_ZEROPAGE', UFFDIO_ZEROPAGE, this.zeroArg, dst);
  }

  /**
   * Every message queued now, decoded (never blocks: the fd is non-blocking; [] when none).
   * PAGEFAULT carries the faulting address (not page-aligned with UFFD_FEATURE_EXACT_ADDRESS,
   * page-aligned otherwise); REMOVE the [start, end) an madvise dropped; any other event (fork,
   * remap, unmap: features Kindling does not ask for) comes back as `other`.
   */
  readEvents(): UffdEvent[] {
    const out: UffdEvent[] = [];
    const view = new DataView(this.msgs.buffer, this.msgs.byteOffset, this.msgs.length);
    for (;;) {
      const n = Number(libc.read(this.fd, this.msgs, this.msgs.length));
      if (n < 0) {
        const e = libc.errno();
        if (e === EINTR) continue;
        if (e === EAGAIN) return out;
        throw new UffdError('read(userfaultfd)', e, libc.errnoName(e));
      }
      for (let at = 0; at + UFFD_MSG_SIZE <= n; at += UFFD_MSG_SIZE) {
        const event = view.getUint8(at + UFFD_MSG_OFFSETS.event);
        if (event === UFFD_EVENT_PAGEFAULT) {
          out.push({
            kind: 'pagefault',
            address: view.getBigUint64(at + UFFD_MSG_OFFSETS.pagefaultAddress, true),
            flags: Number(view.getBigUint64(at + UFFD_MSG_OFFSETS.pagefaultFlags, true)),
          });
        } else if (event === UFFD_EVENT_REMOVE) {
          out.push({
            kind: 'remove',
            start: view.getBigUint64(at + UFFD_MSG_OFFSETS.removeStart, true),
            end: view.getBigUint64(at + UFFD_MSG_OFFSETS.removeEnd, true),
          });
        } else {
          out.push({ kind: 'other', event });
        }
      }
      if (n < this.msgs.length) return out;
    }
  }

  close(): void {
    libc.close(this.fd);
  }

  private resolve(op: string, req: number, arg: Buffer, dst: bigint): number {
    for (;;) {
      const r = libc.ioctlPtr(this.fd, req, arg);
      // The kernel also writes the count (or -errno) into the struct's last field.
      const done = Number(arg.readBigInt64LE(arg.length - 8));
      if (r >= 0) return done;
      const e = libc.errno();
      if (e === EINTR) continue;
      if (EXPECTED.has(e)) return -e;
      throw new UffdError(`${op}(0x${dst.toString(16)})`, e, libc.errnoName(e));
    }
  }
}

/** One guest RAM region as the handler must know it. */
export interface UffdRegion {
  /** Host virtual address of the region in the VMM (what faults report). */
  readonly baseHostVirtAddr: bigint;
  readonly size: number;
  /** Where the region's bytes start in the memory file. */
  readonly offset: number;
  /** The page size the region is mapped with (4 KiB for anonymous memory). */
  readonly pageSize: number;
}

/** The page size of anonymous guest memory. */
export const UFFD_DEFAULT_PAGE_SIZE = 4096;

/**
 * The regions of a memory file as Kindling (and Firecracker, for Full snapshots) writes it:
 * guest RAM regions concatenated in guest-physical order, so region i starts at the sum of
 * the sizes before it. `regions` must be in guest-physical order.
 */
export function memoryFileRegions(regions: readonly { hostAddr: bigint; size: number }[], pageSize = UFFD_DEFAULT_PAGE_SIZE): UffdRegion[] {
  let offset = 0;
  return regions.map((r) => {
    const out = { baseHostVirtAddr: r.hostAddr, size: r.size, offset, pageSize };
    offset += r.size;
    return out;
  });
}

/**
 * The handshake text: a JSON array with one object per region in Firecracker v1.16's field
 * names and order (src/vmm/src/persist.rs `GuestRegionUffdMapping`, serialized by serde):
 * `base_host_virt_addr`, `size`, `offset`, `page_size` and the deprecated `page_size_kib`.
 * Despite its name, `page_size_kib` holds the page size in **bytes**, the same value as
 * `page_size`: Firecracker fills both with `huge_pages.page_size()` and documents the name as
 * wrong but kept for the API's sake, so handlers written for older releases, which read only
 * `page_size_kib`, get bytes. Addresses go as JSON numbers, exact below 2^53 (x86_64 user
 * addresses are below 2^47).
 */
export function uffdHandshakeJson(regions: readonly UffdRegion[]): string {
  return JSON.stringify(regions.map((r) => {
    if (r.baseHostVirtAddr >= 2n ** 53n) throw new RangeError(`host address 0x${r.baseHostVirtAddr.toString(16)} is not exact as a JSON number`);
    return {
      base_host_virt_addr: Number(r.baseHostVirtAddr),
      size: r.size,
      offset: r.offset,
      page_size: r.pageSize,
      page_size_kib: r.pageSize,
    };
  }));
}

/** Parses a handshake (the handler's side); throws a TypeError naming the first bad field. */
export function parseUffdHandshake(text: string): UffdRegion[] {
  const v: unknown = JSON.parse(text);
  if (!Array.isArray(v) || v.length === 0) throw new TypeError('uffd handshake is not a non-empty JSON array');
  return v.map((r: Record<string, unknown>, i) => {
    const num = (k: string): number => {
      const x = r?.[k];
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw new TypeError(`uffd handshake region ${i}: ${k} is not a u64 number`);
      return x;
    };
    const baseHostVirtAddr = BigInt(num('base_host_virt_addr'));
    const size = num('size');
    const offset = num('offset');
    // v1.16 sends both; older releases only page_size_kib, which holds bytes all the same.
    const pageSize = typeof r?.page_size === 'number' ? num('page_size') : num('page_size_kib');
    return { baseHostVirtAddr, size, offset, pageSize };
  });
}

/**
 * Sends the region table and the uffd to the page-fault handler listening at `backendPath`
 * (the snapshot load's `mem_backend.backend_path`) and returns the connection's fd, which the
 * VMM keeps open for as long as the VM lives: Firecracker never closes it (persist.rs
 * `send_uffd_handshake` forgets the socket), so a handler that polls the connection never sees
 * a hang-up before it has read the regions. The VMM keeps its own copy of the uffd as well:
 * if the handler dies, faults then wait (the guest freezes) instead of silently reading
 * zero-filled anonymous memory. Throws UffdError naming the path when no handler listens
 * there (ENOENT: no socket file; ECONNREFUSED: nobody accepts).
 */
export function sendUffdHandshake(backendPath: string, regions: readonly UffdRegion[], uffdFd: number): number {
  try {
    return sendWithFd(backendPath, Buffer.from(uffdHandshakeJson(regions)), uffdFd);
  } catch (e) {
    if (!(e instanceof SyscallError)) throw e;
    throw new UffdError(e.syscall, e.errno, libc.errnoName(e.errno),
      `cannot send the guest memory's userfaultfd to the page-fault handler at backend_path ${JSON.stringify(backendPath)}`,
      { cause: e });
  }
}
