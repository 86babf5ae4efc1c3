/**
 * The Unix-socket layer of the vsock backend (src/kvm/unix-socket.ts, socket-abi.ts, poll.ts)
 * on real sockets: the ABI sizes, Firecracker's bind error texts, non-blocking accept/connect/
 * readv/writev/peek with -errno results, poll events, and no fd left behind.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import koffi from 'koffi';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnixSocketIo } from '../../src/kvm/unix-socket.js';
import { PollSet } from '../../src/kvm/poll.js';
import { POLLHUP, POLLIN, POLLOUT } from '../../src/kvm/libc.js';
import { SOCKADDR_UN_SIZE, SUN_PATH_OFFSET, sockaddr_un } from '../../src/kvm/socket-abi.js';
import { HostIoError } from '../../src/util/io-error.js';

const E = constants.errno;
const dir = mkdtempSync(join(tmpdir(), 'kindling-uds-'));
const io = new UnixSocketIo();
const openFds = (): number => readdirSync('/proc/self/fd').length;

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('uapi layout: struct sockaddr_un is 110 bytes, sun_path at 2', () => {
  assert.is(koffi.sizeof(sockaddr_un), SOCKADDR_UN_SIZE);
  assert.is(koffi.offsetof(sockaddr_un, 'sun_path'), SUN_PATH_OFFSET);
});

test('listen: an existing path or a too-long one fails with Rust io::Error texts', () => {
  const taken = join(dir, 'taken');
  writeFileSync(taken, '');
  const e = (() => { try { UnixSocketIo.listen(taken); } catch (x) { return x as HostIoError; } return null; })();
  assert.instance(e, HostIoError);
  assert.is(e!.message, 'Address in use (os error 98)');
  const long = join(dir, 'x'.repeat(120));
  assert.throws(() => UnixSocketIo.listen(long), (x: Error) => x.message === 'path must be shorter than SUN_LEN');
  assert.throws(() => UnixSocketIo.listen(join(dir, 'no-such-dir', 's')), (x: Error) => x.message === 'No such file or directory (os error 2)');
});

test('connect, accept, readv/writev, peek; -errno where a call would block or fail; no fd left', () => {
  const before = openFds();
  const path = join(dir, 's1');
  const l = UnixSocketIo.listen(path);
  try {
    assert.is(io.accept(l), -E.EAGAIN, 'nobody waiting');
    const c = io.connect(path);
    assert.ok(c >= 0, `connect: ${c}`);
    const s = io.accept(l);
    assert.ok(s >= 0, `accept: ${s}`);
    const buf = new Uint8Array(16);
    assert.is(io.read(s, [buf]), -E.EAGAIN, 'nothing queued');
    assert.is(io.write(c, [Uint8Array.from([1, 2, 3]), Uint8Array.from([4, 5])]), 5);
    const peek = new Uint8Array(3);
    assert.is(io.peek(s, peek), 3);
    assert.equal([...peek], [1, 2, 3]);
    // Peeking consumed nothing: a scattered read gets all five bytes.
    const a = new Uint8Array(2);
    const b = new Uint8Array(8);
    assert.is(io.read(s, [a, b]), 5);
    assert.equal([...a, ...b.subarray(0, 3)], [1, 2, 3, 4, 5]);
    // Views into a larger buffer land at their offset (the host address is base + byteOffset).
    const big = new Uint8Array(64);
    io.write(c, [Uint8Array.from([9, 8])]);
    assert.is(io.read(s, [big.subarray(40, 42)]), 2);
    assert.equal([...big.subarray(39, 43)], [0, 9, 8, 0]);
    io.close(c);
    assert.is(io.read(s, [buf]), 0, 'end of stream');
    assert.is(io.write(s, [buf]), -E.EPIPE, 'the peer is gone: EPIPE, and no SIGPIPE kills the process');
    io.close(s);
  } finally {
    io.close(l);
  }
  // The socket file stays, as after Firecracker's listener: nobody listens on it now.
  assert.is(io.connect(path), -E.ECONNREFUSED);
  assert.is(io.connect(join(dir, 'absent')), -E.ENOENT);
  assert.is(io.connect(join(dir, 'y'.repeat(120))), -E.ENAMETOOLONG);
  assert.is(openFds(), before, 'every fd closed');
});

test('PollSet: POLLIN when data is queued, POLLOUT while writable, POLLHUP when the peer left', () => {
  const path = join(dir, 's2');
  const l = UnixSocketIo.listen(path);
  const c = io.connect(path);
  const s = io.accept(l);
  try {
    const ps = new PollSet();
    ps.add(l, POLLIN);
    ps.add(s, POLLIN);
    assert.is(ps.wait(0), 0, 'nothing ready');
    ps.clear();
    ps.add(s, POLLIN | POLLOUT);
    assert.is(ps.wait(0), 1);
    assert.is(ps.revents(0), POLLOUT);
    io.write(c, [Uint8Array.of(7)]);
    ps.clear();
    for (let i = 0; i < 100; i++) ps.add(c, POLLOUT); // grows past its first allocation
    ps.add(s, POLLIN);
    assert.is(ps.size, 101);
    assert.is(ps.wait(1000), 101);
    assert.is(ps.fd(100), s);
    assert.is(ps.revents(100), POLLIN);
    io.close(c);
    ps.clear();
    ps.add(s, POLLIN);
    ps.wait(1000);
    assert.ok((ps.revents(0) & POLLHUP) !== 0, `revents ${ps.revents(0)}`);
  } finally {
    io.close(s);
    io.close(l);
  }
});

test.run();
