/** Every error code is listed in the code table with a meaning, and codes survive the wire. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as errors from '../../src/errors.js';
import { HostIoError } from '../../src/util/io-error.js';

test('every code has a meaning', () => {
  for (const [code, meaning] of Object.entries(errors.ERROR_CODES)) {
    assert.ok(/^[A-Z][A-Z0-9_]+$/.test(code), code);
    assert.ok(meaning.length > 10, code);
  }
});

test('error classes carry table codes and their names', () => {
  const samples = [
    new errors.KvmIoctlError('KVM_RUN', 14, 'EFAULT'),
    new errors.SyscallError('mmap', 12, 'ENOMEM'),
    new errors.GuestMemoryError(0x1000, 4),
    new errors.GuestMemoryLayoutError('x'),
    new errors.KvmUnavailableError('KVM_MISSING_CAPABILITY', 'x'),
    new errors.GuestMemoryAllocationError('Cannot create mmap region: Out of memory (os error 12)'),
    new errors.DeviceManagerError('x'),
    HostIoError.os('ENOENT'),
  ];
  for (const e of samples) {
    assert.ok(e.code in errors.ERROR_CODES, e.code);
    assert.is(e.name, e.constructor.name);
    assert.instance(e, errors.KindlingError);
  }
  assert.match(samples[0]!.message, /KVM_RUN failed: EFAULT \(errno 14\)/);
});

test('wire round trip keeps code, message and name; foreign errors become INTERNAL', () => {
  const w = errors.toWire(new errors.GuestMemoryError(0x2000, 8));
  const back = errors.fromWire(structuredClone(w));
  assert.is(back.code, 'GUEST_MEMORY_OUT_OF_RANGE');
  assert.is(back.name, 'GuestMemoryError');
  assert.is(errors.toWire(new TypeError('boom')).code, 'INTERNAL');
});

test.run();
