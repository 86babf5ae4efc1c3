/**
 * An example page-fault handler for snapshots loaded with the Uffd memory backend
 * (PUT /snapshot/load, `"mem_backend": { "backend_type": "Uffd", "backend_path": <socket> }`).
 * It plays the part of Firecracker's example handlers (firecracker
 * src/firecracker/examples/uffd/, the "valid" handler) for Kindling and for Firecracker alike:
 *
 *   node dist/examples/uffd/handler.js <socket_path> <mem_file_path>
 *
 * 1. Listens on <socket_path> (a stale socket file is removed first) and accepts one
 *    connection: the VMM, during the snapshot load.
 * 2. Receives the handshake (src/memory/uffd.ts `sendUffdHandshake`): a JSON array of
 *    `{ base_host_virt_addr, size, offset, page_size, page_size_kib }`, one per guest RAM
 *    region, with the VMM's userfaultfd attached (SCM_RIGHTS). Prints `uffd handler: ready`.
 * 3. Maps <mem_file_path> (the snapshot's memory file) read-only and serves faults until the
 *    VMM exits: a PAGEFAULT at address A in region R is answered with UFFDIO_COPY of one page
 *    from file offset `R.offset + (A - R.base_host_virt_addr)`, rounded down to a page. A
 *    REMOVE event (the guest's balloon inflated, so the VMM dropped those pages with
 *    madvise(MADV_DONTNEED)) marks its pages: a later fault there gets UFFDIO_ZEROPAGE, since
 *    the file's copy of a page the guest gave away is stale and the guest expects zeroes.
 * 4. Exits 0 with a summary line when the VMM process is gone (a pidfd of the socket peer,
 *    from SO_PEERCRED, becomes readable; or UFFDIO_COPY answers ESRCH) or on SIGTERM/SIGINT.
 *
 * The handler must be its own process (or at least never a thread of the VMM): a VMM thread
 * touching a missing page sleeps until the handler answers.
 */
import { rmSync, openSync, fstatSync, closeSync } from 'node:fs';
import * as libc from '../../src/kvm/libc.js';
import { peerPid, recvWithFd } from '../../src/kvm/fd-passing.js';
import { PollSet, POLLIN } from '../../src/kvm/poll.js';
import { SOCK_CLOEXEC } from '../../src/kvm/socket-abi.js';
import { UnixSocketIo } from '../../src/kvm/unix-socket.js';
import { Userfaultfd, parseUffdHandshake, type UffdRegion } from '../../src/memory/uffd.js';

/** pidfd_open(2) (Linux 5.3+) on x86_64: an fd that polls readable once the process exits. */
const SYS_pidfd_open = 434;
const HANDSHAKE_MAX = 64 * 1024;
/** How long one poll may sleep before the event loop gets a turn (SIGTERM handlers run there). */
const POLL_SLICE_MS = 250;
const EEXIST = 17;
const EAGAIN = 11;
const ENOENT = 2;
const ESRCH = 3;

const [socketPath, memFilePath] = process.argv.slice(2);
if (!socketPath || !memFilePath) {
  console.error('usage: node dist/examples/uffd/handler.js <socket_path> <mem_file_path>');
  process.exit(2);
}

const stats = { copied: 0, zeroed: 0, present: 0, gone: 0, removes: 0, other: 0 };
function finish(why: string): never {
  console.log(`uffd handler: exiting (${why}); faults served: ${stats.copied} copied, ${stats.zeroed} zeroed, `
    + `${stats.present} already present, ${stats.gone} unmapped; ${stats.removes} remove events, ${stats.other} other events`);
  process.exit(0);
}
process.on('SIGTERM', () => finish('SIGTERM'));
process.on('SIGINT', () => finish('SIGINT'));

// 1. One connection from the VMM.
rmSync(socketPath, { force: true });
const listenFd = UnixSocketIo.listen(socketPath, 1);
const polls = new PollSet();
polls.add(listenFd, POLLIN);
while (polls.wait(-1) === 0);
const conn = libc.check('accept4', libc.accept4(listenFd, null, null, SOCK_CLOEXEC));

// 2. The handshake: read until the JSON is whole (the descriptor rides on the first bytes).
let text = '';
let uffdFd: number | null = null;
let regions: UffdRegion[] | null = null;
while (!regions) {
  const { data, fd } = recvWithFd(conn, HANDSHAKE_MAX);
  if (fd !== null) uffdFd = fd;
  if (data.length === 0) throw new Error(`the VMM closed the connection before a whole handshake (got ${JSON.stringify(text)})`);
  text += Buffer.from(data).toString('utf8');
  try {
    regions = parseUffdHandshake(text);
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e; // incomplete JSON: read on
  }
}
if (uffdFd === null) throw new Error('the handshake carried no userfaultfd (SCM_RIGHTS)');
const uffd = Userfaultfd.fromFd(uffdFd);
const vmm = Number(libc.syscall(SYS_pidfd_open, 'int', peerPid(conn), 'unsigned int', 0));
libc.close(conn);
libc.close(listenFd);

// 3. The memory file, mapped once; UFFDIO_COPY reads its pages from this process's memory.
const file = openSync(memFilePath, 'r');
const fileSize = fstatSync(file).size;
const fileBase = libc.mmapChecked(null, fileSize, libc.PROT_READ, libc.MAP_PRIVATE, file, 0);
closeSync(file);
for (const r of regions) {
  if (r.offset + r.size > fileSize) throw new Error(`region at 0x${r.baseHostVirtAddr.toString(16)} needs file bytes up to ${r.offset + r.size}; ${memFilePath} has ${fileSize}`);
}
console.log('uffd handler: ready');

/** Pages (by host address) the VMM removed: they come back as zeroes. */
const removed = new Set<bigint>();

/** Resolves one fault; false when it must be retried after reading events (EAGAIN). */
function serve(address: bigint): boolean {
  const r = regions!.find((x) => address >= x.baseHostVirtAddr && address < x.baseHostVirtAddr + BigInt(x.size));
  if (!r) throw new Error(`fault at 0x${address.toString(16)} is in no region of the handshake`);
  const size = BigInt(r.pageSize);
  const page = address - (address - r.baseHostVirtAddr) % size;
  const res = removed.has(page)
    ? uffd.zeroPage(page, r.pageSize)
    : uffd.copyPage(page, fileBase + BigInt(r.offset) + (page - r.baseHostVirtAddr), r.pageSize);
  if (res === -EAGAIN) return false;
  if (res === -ESRCH) finish('the VMM address space is gone');
  if (res === -EEXIST) stats.present++;
  else if (res === -ENOENT) stats.gone++;
  else if (removed.has(page)) stats.zeroed++;
  else stats.copied++;
  return true;
}

// 4. The loop: wait for messages (or the VMM's exit), read them all, then answer the faults.
polls.clear();
polls.add(uffd.fd, POLLIN);
if (vmm >= 0) polls.add(vmm, POLLIN);
let pending: bigint[] = [];
for (;;) {
  const ready = polls.wait(pending.length ? 0 : POLL_SLICE_MS);
  if (vmm >= 0 && polls.revents(1) & POLLIN) finish('the VMM exited');
  for (const ev of uffd.readEvents()) {
    if (ev.kind === 'pagefault') pending.push(ev.address);
    else if (ev.kind === 'remove') {
      stats.removes++;
      for (const r of regions) {
        const size = BigInt(r.pageSize);
        const lo = ev.start > r.baseHostVirtAddr ? ev.start : r.baseHostVirtAddr;
        const end = r.baseHostVirtAddr + BigInt(r.size);
        const hi = ev.end < end ? ev.end : end;
        for (let p = lo - (lo - r.baseHostVirtAddr) % size; p < hi; p += size) removed.add(p);
      }
    } else stats.other++;
  }
  pending = pending.filter((a) => !serve(a));
  // Give the event loop a turn when idle, so signal handlers can run.
  if (ready === 0) await new Promise((resolve) => setImmediate(resolve));
}
