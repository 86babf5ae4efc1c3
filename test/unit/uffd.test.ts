/**
 * The Uffd memory backend pieces (src/memory/uffd.ts, uffd-abi.ts, src/kvm/fd-passing.ts) and
 * the example handler (examples/uffd/handler.ts) on this host's real userfaultfd: ABI layout
 * and ioctl numbers, the handshake text, fd passing, and end to end: memory registered here
 * is filled page by page from a memory file by the handler running as its own process.
 *
 * Needs userfaultfd(2) for kernel-mode faults: root or CAP_SYS_PTRACE when
 * vm.unprivileged_userfaultfd is 0. When it is refused, the end-to-end tests fail with the
 * UffdError text (which says why); they are not skipped.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import koffi, { type TypeObject } from 'koffi';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as libc from '../../src/kvm/libc.js';
import * as abi from '../../src/memory/uffd-abi.js';
import {
  CMSG_LEN, CMSG_SPACE, CMSGHDR_SIZE, MSGHDR_SIZE, UCRED_SIZE, cmsghdr, msghdr, ucred,
} from '../../src/kvm/socket-abi.js';
import { peerPid, recvWithFd, sendWithFd } from '../../src/kvm/fd-passing.js';
import { UnixSocketIo } from '../../src/kvm/unix-socket.js';
import {
  Userfaultfd, memoryFileRegions, parseUffdHandshake, sendUffdHandshake, uffdHandshakeJson, type UffdRegion,
} from '../../src/memory/uffd.js';
import { UffdError } from '../../src/errors.js';

const here = dirname(fileURLToPath(import.meta.url));
const HANDLER = resolve(here, '..', '..', 'examples', 'uffd', 'handler.js');
const dir = mkdtempSync(join(tmpdir(), 'kindling-uffd-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const PAGE = 4096;
const MIB = 1024 * 1024;
/** A handler still running after this is killed, so a broken handler fails the test instead of hanging it. */
const HANDLER_WATCHDOG_S = 60;

const layouts: [string, TypeObject, number][] = [
  ['uffdio_api', abi.uffdio_api, 24],
  ['uffdio_range', abi.uffdio_range, 16],
  ['uffdio_register', abi.uffdio_register, 32],
  ['uffdio_copy', abi.uffdio_copy, 40],
  ['uffdio_zeropage', abi.uffdio_zeropage, 32],
  ['uffd_msg', abi.uffd_msg, abi.UFFD_MSG_SIZE],
  ['msghdr', msghdr, MSGHDR_SIZE],
  ['cmsghdr', cmsghdr, CMSGHDR_SIZE],
  ['ucred', ucred, UCRED_SIZE],
];
for (const [name, type, size] of layouts) {
  test(`sizeof(struct ${name}) = ${size}`, () => assert.is(koffi.sizeof(type), size));
}

test('field offsets the kernel fills or reads', () => {
  assert.is(abi.UFFD_MSG_SIZE, 32);
  assert.is(koffi.offsetof(abi.uffdio_copy, 'copy'), 32);
  assert.is(koffi.offsetof(abi.uffdio_zeropage, 'zeropage'), 24);
  assert.is(koffi.offsetof(abi.uffd_msg, 'arg'), 8);
  assert.equal(abi.UFFD_MSG_OFFSETS, { event: 0, pagefaultFlags: 8, pagefaultAddress: 16, removeStart: 8, removeEnd: 16 });
  assert.is(koffi.offsetof(msghdr, 'msg_iov'), 16);
  assert.is(koffi.offsetof(msghdr, 'msg_control'), 32);
  assert.is(koffi.offsetof(msghdr, 'msg_controllen'), 40);
  assert.is(koffi.offsetof(msghdr, 'msg_flags'), 48);
  assert.is(CMSG_LEN(4), 20);
  assert.is(CMSG_SPACE(4), 24);
});

test('UFFDIO_* ioctl numbers match the kernel headers', () => {
  // As _IOWR/_IOR expand them in include/uapi/linux/userfaultfd.h (e.g. strace output).
  assert.is(abi.UFFDIO_API, 0xc018aa3f);
  assert.is(abi.UFFDIO_REGISTER, 0xc020aa00);
  assert.is(abi.UFFDIO_UNREGISTER, 0x8010aa01);
  assert.is(abi.UFFDIO_WAKE, 0x8010aa02);
  assert.is(abi.UFFDIO_COPY, 0xc028aa03);
  assert.is(abi.UFFDIO_ZEROPAGE, 0xc020aa04);
});

test('handshake: Firecracker v1.16 field names, memory-file offsets in region order', () => {
  const regions = memoryFileRegions([{ hostAddr: 0x7f00_0000_0000n, size: 2 * MIB }, { hostAddr: 0x7f10_0000_0000n, size: MIB }]);
  assert.equal(regions.map((r) => r.offset), [0, 2 * MIB]);
  const json = uffdHandshakeJson(regions);
  assert.is(json, JSON.stringify([
    // page_size_kib holds bytes, as Firecracker fills it (persist.rs: "The name is wrong").
    { base_host_virt_addr: 0x7f00_0000_0000, size: 2 * MIB, offset: 0, page_size: PAGE, page_size_kib: PAGE },
    { base_host_virt_addr: 0x7f10_0000_0000, size: MIB, offset: 2 * MIB, page_size: PAGE, page_size_kib: PAGE },
  ]));
  assert.equal(parseUffdHandshake(json), regions);
  // Older Firecracker releases send only page_size_kib (bytes too).
  assert.is(parseUffdHandshake('[{"base_host_virt_addr":4096,"size":4096,"offset":0,"page_size_kib":4096}]')[0]!.pageSize, PAGE);
  assert.throws(() => parseUffdHandshake('[{"size":1}]'), /base_host_virt_addr/);
  assert.throws(() => uffdHandshakeJson([{ baseHostVirtAddr: 2n ** 53n, size: PAGE, offset: 0, pageSize: PAGE }]), /JSON number/);
});

test('a missing backend_path is a UffdError that names the path and the errno', () => {
  const path = join(dir, 'no-handler.sock');
  try {
    sendUffdHandshake(path, [{ baseHostVirtAddr: 0x1000n, size: PAGE, offset: 0, pageSize: PAGE }], 0);
    assert.unreachable('sent to a socket that does not exist');
  } catch (e) {
    assert.instance(e, UffdError);
    assert.is((e as UffdError).code, 'UFFD');
    assert.ok((e as Error).message.includes(path), (e as Error).message);
    assert.match((e as Error).message, /ENOENT/);
  }
});

test('sendWithFd / recvWithFd pass a descriptor for the same open file, and the peer pid', () => {
  const path = join(dir, 'pass.sock');
  const listenFd = UnixSocketIo.listen(path, 1);
  const file = join(dir, 'passed.txt');
  writeFileSync(file, 'x');
  const fd = openSync(file, 'r');
  try {
    // A Unix connect completes against the listen queue before accept, so one thread can do both ends.
    const sent = sendWithFd(path, Buffer.from('hello'), fd);
    const conn = new UnixSocketIo().accept(listenFd);
    assert.ok(conn >= 0, `accept: ${conn}`);
    assert.is(peerPid(conn), process.pid);
    const got = recvWithFd(conn, 64);
    assert.is(Buffer.from(got.data).toString(), 'hello');
    assert.ok(got.fd !== null && got.fd !== fd);
    assert.is(fstatSync(got.fd!).ino, statSync(file).ino);
    libc.close(sent);
    assert.is(recvWithFd(conn, 64).data.length, 0, 'end of stream once the sender closes');
    closeSync(got.fd!);
    libc.close(conn);
  } finally {
    closeSync(fd);
    libc.close(listenFd);
  }
});

test('Userfaultfd.open: the UFFDIO_API handshake succeeds and reports the features it enabled', () => {
  const uffd = Userfaultfd.open();
  try {
    assert.ok(uffd.fd >= 0);
    const remove = (uffd.features & abi.UFFD_FEATURE_EVENT_REMOVE) !== 0;
    if (!remove) console.log('  (this kernel lacks UFFD_FEATURE_EVENT_REMOVE)');
    assert.is(uffd.readEvents().length, 0, 'no events before any registration');
  } finally {
    uffd.close();
  }
});

test('EPERM from userfaultfd(2) explains vm.unprivileged_userfaultfd and CAP_SYS_PTRACE', () => {
  // Reproduced by running without CAP_SYS_PTRACE (setpriv drops it from the bounding set, so
  // even root loses it at exec), which only fails while the sysctl is 0.
  const sysctl = readFileSync('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').trim();
  const setpriv = spawnSync('setpriv', ['--version']);
  if (sysctl !== '0' || setpriv.error) {
    console.log(`  (skipped: vm.unprivileged_userfaultfd=${sysctl}${setpriv.error ? ', no setpriv' : ''})`);
    return;
  }
  const uffdUrl = pathToFileURL(resolve(here, '..', '..', 'src', 'memory', 'uffd.js')).href;
  const script = `import { Userfaultfd } from ${JSON.stringify(uffdUrl)};
    try { Userfaultfd.open(); console.log('opened'); } catch (e) { console.log(e.code + ' ' + e.message); }`;
  const r = spawnSync('setpriv', ['--bounding-set=-sys_ptrace', '--inh-caps=-sys_ptrace', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.match(r.stdout, /^UFFD userfaultfd failed: EPERM \(errno 1\): vm\.unprivileged_userfaultfd is 0.*CAP_SYS_PTRACE/, r.stdout + r.stderr);
});

/** The memory file: every page different, so a page served from the wrong offset shows. */
function patternFile(path: string, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + Math.floor(i / PAGE) * 13 + 1) & 0xff;
  writeFileSync(path, b);
  return b;
}

/** Runs the example handler under a watchdog; resolves its output lines as they come. */
function startHandler(sock: string, mem: string): { child: ChildProcess; line: (re: RegExp) => Promise<string>; exit: Promise<number | null>; out: () => string } {
  const child = spawn('timeout', ['-s', 'KILL', String(HANDLER_WATCHDOG_S), process.execPath, HANDLER, sock, mem], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const waiters: (() => void)[] = [];
  const onData = (d: Buffer): void => {
    out += d.toString();
    waiters.splice(0).forEach((w) => w());
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exit = new Promise<number | null>((res) => child.on('exit', (code) => { waiters.splice(0).forEach((w) => w()); res(code); }));
  const line = (re: RegExp): Promise<string> => new Promise((res, rej) => {
    const check = (): void => {
      const m = out.match(re);
      if (m) res(m[0]);
      else if (child.exitCode !== null) rej(new Error(`handler exited ${child.exitCode} without ${re}: ${out}`));
      else waiters.push(check);
    };
    check();
  });
  return { child, line, exit, out: () => out };
}

/** sendUffdHandshake, retried while the handler is still starting (no socket yet, or not yet listening). */
async function handshake(sock: string, regions: UffdRegion[], fd: number): Promise<number> {
  for (let i = 0; ; i++) {
    try {
      return sendUffdHandshake(sock, regions, fd);
    } catch (e) {
      if (!(e instanceof UffdError) || !/ENOENT|ECONNREFUSED/.test(e.message) || i > 500) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

test('end to end: the example handler fills registered memory from the file; removed pages come back zero', async () => {
  const SIZE = 2 * MIB;
  const mem = join(dir, 'mem.bin');
  const sock = join(dir, 'uffd.sock');
  const file = patternFile(mem, SIZE);
  const addr = libc.mmapChecked(null, SIZE, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS, -1, 0);
  const h = startHandler(sock, mem);
  let conn = -1;
  try {
    const uffd = Userfaultfd.open();
    uffd.register(addr, SIZE);
    const remove = (uffd.features & abi.UFFD_FEATURE_EVENT_REMOVE) !== 0;
    // Two regions whose file order is the reverse of their host order: the handler must use
    // each region's offset, not the distance from the first region.
    const regions: UffdRegion[] = [
      { baseHostVirtAddr: addr + BigInt(MIB), size: MIB, offset: 0, pageSize: PAGE },
      { baseHostVirtAddr: addr, size: MIB, offset: MIB, pageSize: PAGE },
    ];
    conn = await handshake(sock, regions, uffd.fd);
    // The handler holds the uffd now. Unlike a VMM, the test closes its own copy: if the
    // handler dies (or the watchdog kills it) the registration goes with it, and a fault below
    // resolves (to zeroes, failing an assertion) instead of blocking the test forever.
    uffd.close();
    await h.line(/uffd handler: ready/);

    const view = new Uint8Array(libc.viewOf(addr, SIZE));
    const fileAt = (hostOff: number): number => (hostOff < MIB ? MIB + hostOff : hostOff - MIB);
    // Each first touch faults; the read sleeps in the kernel until the handler copies the page.
    for (const off of [0, 5 * PAGE + 123, MIB - 1, MIB, MIB + 17 * PAGE + 4095, SIZE - 1]) {
      assert.is(view[off], file[fileAt(off)], `byte at host offset ${off}`);
    }
    const p = 40 * PAGE;
    assert.ok(Buffer.from(view.subarray(p, p + PAGE)).equals(file.subarray(fileAt(p), fileAt(p) + PAGE)), 'a whole page');
    // A write to a missing page faults too; the copy lands first, then the write.
    const w = 300 * PAGE + 8;
    view[w] = file[fileAt(w)]! ^ 0xff;
    assert.is(view[w + 1], file[fileAt(w + 1)]);
    assert.is(view[w], file[fileAt(w)]! ^ 0xff);

    if (remove) {
      // madvise waits until the handler has read the REMOVE event; the next touch must read zeroes.
      libc.check('madvise', libc.madvise(addr + BigInt(p), PAGE, libc.MADV_DONTNEED));
      assert.ok(view.subarray(p, p + PAGE).every((b) => b === 0), 'a removed page reads back zero');
    } else {
      console.log('  (skipped the REMOVE check: this kernel lacks UFFD_FEATURE_EVENT_REMOVE)');
    }

    h.child.kill('SIGTERM');
    assert.is(await h.exit, 0, h.out());
    const summary = h.out().match(/(\d+) copied, (\d+) zeroed/);
    assert.ok(summary, h.out());
    assert.ok(Number(summary![1]) >= 8, h.out());
    assert.is(Number(summary![2]), remove ? 1 : 0, h.out());
  } finally {
    if (h.child.exitCode === null) h.child.kill('SIGKILL');
    if (conn >= 0) libc.close(conn);
    libc.munmap(addr, SIZE);
  }
});

test('end to end: the handler exits 0 on its own when the VMM process exits', async () => {
  const mem = join(dir, 'mem2.bin');
  const sock = join(dir, 'uffd2.sock');
  const file = patternFile(mem, MIB);
  const h = startHandler(sock, mem);
  // A stand-in VMM: registers 1 MiB, hands it over, reads one byte, exits.
  const uffdUrl = pathToFileURL(resolve(here, '..', '..', 'src', 'memory', 'uffd.js')).href;
  const libcUrl = pathToFileURL(resolve(here, '..', '..', 'src', 'kvm', 'libc.js')).href;
  const script = `
    import * as libc from ${JSON.stringify(libcUrl)};
    import { Userfaultfd, sendUffdHandshake } from ${JSON.stringify(uffdUrl)};
    const addr = libc.mmapChecked(null, ${MIB}, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS, -1, 0);
    const uffd = Userfaultfd.open();
    uffd.register(addr, ${MIB});
    for (let i = 0; ; i++) {
      try { sendUffdHandshake(${JSON.stringify(sock)}, [{ baseHostVirtAddr: addr, size: ${MIB}, offset: 0, pageSize: 4096 }], uffd.fd); break; }
      catch (e) { if (i > 500) throw e; await new Promise((r) => setTimeout(r, 20)); }
    }
    console.log('byte ' + new Uint8Array(libc.viewOf(addr, ${MIB}))[${3 * PAGE + 5}]);`;
  const vmm = spawn('timeout', ['-s', 'KILL', String(HANDLER_WATCHDOG_S), process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let vmmOut = '';
  vmm.stdout!.on('data', (d: Buffer) => { vmmOut += d.toString(); });
  const vmmCode = await new Promise<number | null>((res) => vmm.on('exit', res));
  try {
    assert.is(vmmCode, 0, vmmOut);
    assert.is(vmmOut.trim(), `byte ${file[3 * PAGE + 5]}`);
    assert.is(await h.exit, 0, h.out());
    assert.match(h.out(), /exiting \(the VMM exited\); faults served: 1 copied/);
  } finally {
    if (h.child.exitCode === null) h.child.kill('SIGKILL');
  }
});

test.run();
