/**
 * Host I/O errors read as Firecracker's (a Rust binary on musl) and never as Node's: the
 * `io::Error` Display/Debug forms, musl's strerror texts, std's NUL-byte and socket-path
 * refusals, and every resource whose path the API opens (issue 12, defect 5).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceManagerError, SyscallError } from '../../src/errors.js';
import { readInitrdImage, readKernelImage } from '../../src/config/boot-source.js';
import { createDeviceManager } from '../../src/config/serial.js';
import { ConfigFileError, fromConfigFile } from '../../src/config/config-file.js';
import { MicroVm } from '../../src/vmm/microvm.js';
import { HostIoError, ioErrorDebug, ioErrorText, unixSocketPathError } from '../../src/util/io-error.js';
import { ApiHarness, startApi } from '../helpers/api-harness.js';
import { fault, ok } from '../helpers/api-expect.js';

/** What a Node fs call throws, for feeding the converter real Node errors. */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to throw');
}

const NUL = 'file name contained an unexpected NUL byte';

test('OS errors: musl strerror text, (os error N), Rust Debug form', () => {
  const enoent = thrown(() => openSync('/nonexistent/kindling', 'r'));
  assert.is(ioErrorText(enoent), 'No such file or directory (os error 2)');
  assert.is(ioErrorDebug(enoent), 'Os { code: 2, kind: NotFound, message: "No such file or directory" }');
  assert.is(ioErrorText(thrown(() => readFileSync('/'))), 'Is a directory (os error 21)');
  // musl words these differently from glibc ("Cannot allocate memory", "Address already in use").
  assert.is(HostIoError.os('ENOMEM').message, 'Out of memory (os error 12)');
  assert.is(HostIoError.os('EADDRINUSE').message, 'Address in use (os error 98)');
  assert.is(HostIoError.os(12).debug, 'Os { code: 12, kind: OutOfMemory, message: "Out of memory" }');
  assert.is(ioErrorText(new SyscallError('mmap', 12, 'ENOMEM')), 'Out of memory (os error 12)');
});

test('a NUL byte in a path: std InvalidInput text, never Node\'s', () => {
  const e = thrown(() => openSync('/tmp/a\0b', 'r'));
  assert.is(ioErrorText(e), NUL);
  assert.is(ioErrorDebug(e), `Error { kind: InvalidInput, message: "${NUL}" }`);
  assert.not.match(ioErrorText(e), /argument|null bytes|Received/);
});

test('non-I/O errors are not dressed up as I/O errors', () => {
  assert.is(HostIoError.from(new TypeError('boom')), null);
  assert.is(ioErrorText(new TypeError('boom')), 'boom');
});

test('unix socket paths: std sockaddr_un checks, empty path refused', () => {
  assert.is(unixSocketPathError(`/${'s'.repeat(106)}`), null); // 107 bytes + NUL fit
  assert.is(unixSocketPathError(`/${'s'.repeat(107)}`)?.message, 'path must be shorter than SUN_LEN');
  assert.is(unixSocketPathError(`/${'é'.repeat(54)}`)?.message, 'path must be shorter than SUN_LEN'); // bytes, not chars
  assert.is(unixSocketPathError('/tmp/a\0b')?.message, 'paths must not contain interior null bytes');
  assert.is(unixSocketPathError('/tmp/a\0b')?.debug, 'Error { kind: InvalidInput, message: "paths must not contain interior null bytes" }');
  assert.is(unixSocketPathError('')?.message, 'No such file or directory (os error 2)');
});

const KERNEL_UNREADABLE = 'System configuration error: Cannot load kernel due to invalid memory configuration or invalid kernel image: Kernel Loader: failed to load ELF kernel image: Unable to read elf header';

test('InstanceStart reads of the boot files fail in the loaders\' words', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-boot-'));
  assert.throws(() => readKernelImage(dir), (e: Error) => e.message === KERNEL_UNREADABLE);
  assert.throws(() => readInitrdImage(dir),
    (e: Error) => e.message === 'Error with initrd initialization: Cannot load initrd due to an invalid image: Is a directory (os error 21).');
  writeFileSync(join(dir, 'k'), 'kernel bytes');
  assert.is(readKernelImage(join(dir, 'k')).toString(), 'kernel bytes');
});

test('MicroVm.start with a directory as kernel: the ELF loader\'s text, not EISDIR (no KVM needed: the read comes first)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-boot-'));
  const vm = new MicroVm({ 'boot-source': { kernel_image_path: dir } }, { log: () => undefined });
  const e = await vm.start().then(() => null, (err: Error) => err);
  assert.is(e?.message, `Start microvm error: ${KERNEL_UNREADABLE}`, "the library answers as InstanceStart would");
});

test('--config-file: a cpu-config template path with a NUL byte is a File operation error in std\'s words', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-boot-'));
  writeFileSync(join(dir, 'k'), 'k');
  const json = JSON.stringify({ 'boot-source': { kernel_image_path: join(dir, 'k') }, drives: [], 'cpu-config': join(dir, 't\0.json') });
  assert.throws(() => fromConfigFile(json), (e: Error) => e instanceof ConfigFileError && e.message === `File operation error: ${NUL}`);
});

test('legacy device set-up (serial output file): DeviceManagerCreateError::EventFd text; other errors pass through', () => {
  assert.throws(() => createDeviceManager(() => openSync('/tmp/serial\0out', 'a')),
    (e: Error) => e instanceof DeviceManagerError && e.message === `Failed to create device manager: Error with EventFd: ${NUL}`);
  assert.throws(() => createDeviceManager(() => openSync('/nonexistent/dir/serial.out', 'a')),
    (e: Error) => e.message === 'Failed to create device manager: Error with EventFd: No such file or directory (os error 2)');
  assert.throws(() => createDeviceManager(() => { throw new TypeError('a bug'); }), (e: Error) => e instanceof TypeError);
  assert.is(createDeviceManager(() => 7), 7);
});

let h: ApiHarness;
test.before.each(async () => {
  h = await startApi();
});
test.after.each(async () => {
  await h.close();
});

test('API: a NUL byte in any opened path gives the resource\'s usual error with std\'s text', async () => {
  const bad = `${h.dir}/x\0y`;
  await fault(h, 'PUT', '/boot-source', { kernel_image_path: bad }, `Boot source error: The kernel file cannot be opened: ${NUL}`);
  await fault(h, 'PUT', '/boot-source', { kernel_image_path: h.kernel, initrd_path: bad },
    `Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. ${NUL}`);
  await fault(h, 'PUT', '/drives/d', { drive_id: 'd', is_root_device: false, path_on_host: bad },
    `Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: ${NUL} ${bad}`);
  await fault(h, 'PUT', '/logger', { log_path: bad }, `Logger error: Failed to open target file: ${NUL}`);
  await fault(h, 'PUT', '/metrics', { metrics_path: bad }, `Metrics error: Cannot initialize the metrics system due to bad user input: ${NUL}`);
  // vsock binds a socket: std's sockaddr_un check words it differently from a file open.
  await fault(h, 'PUT', '/vsock', { guest_cid: 3, uds_path: bad },
    'Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: paths must not contain interior null bytes');
  for (const line of h.logs) assert.not.match(line, /null bytes\. Received|ERR_INVALID_ARG_VALUE/);
});

test('API: fs errors keep the (os error N) form; a directory kernel is accepted at PUT as Firecracker opens it', async () => {
  const dir = join(h.dir, 'd');
  mkdirSync(dir);
  await ok(h, 'PUT', '/boot-source', { kernel_image_path: dir });
  await fault(h, 'PUT', '/drives/d', { drive_id: 'd', is_root_device: false, path_on_host: dir },
    `Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: Is a directory (os error 21) ${dir}`);
  await fault(h, 'PUT', '/vsock', { guest_cid: 3, uds_path: `${h.dir}/${'v'.repeat(120)}` },
    'Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: path must be shorter than SUN_LEN');
  await fault(h, 'PUT', '/vsock', { guest_cid: 3, uds_path: `${h.dir}/no/such/v.sock` },
    'Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: No such file or directory (os error 2)');
});

test.run();
