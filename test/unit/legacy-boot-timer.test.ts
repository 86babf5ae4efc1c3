/** Boot-timer pseudo device (firecracker src/vmm/src/devices/pseudo/boot_timer.rs): the magic write and the exact log line. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BOOT_TIMER_SIGNAL_OFFSET,
  BootTimer,
  bootTimeSince,
  bootTimestamp,
  formatBootTime,
  MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE,
} from '../../src/devices/legacy/index.js';

test('a 1-byte write of 123 at offset 0 signals boot complete', () => {
  let n = 0;
  const t = new BootTimer(() => n++);
  assert.is(MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE, 123);
  t.write(BOOT_TIMER_SIGNAL_OFFSET, Uint8Array.of(MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE));
  assert.is(n, 1);
  t.write(BOOT_TIMER_SIGNAL_OFFSET, Uint8Array.of(MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE));
  assert.is(n, 2, 'every magic write signals, as Firecracker logs each one');
});

test('other values, offsets and sizes are ignored; reads are zero', () => {
  let n = 0;
  const t = new BootTimer(() => n++);
  t.write(0, Uint8Array.of(122));
  t.write(1, Uint8Array.of(MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE));
  t.write(0, Uint8Array.of(MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE, 0));
  t.write(0, new Uint8Array(0));
  t.write(-1, Uint8Array.of(MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE));
  assert.is(n, 0);
  const d = Uint8Array.of(1, 2, 3, 4);
  t.read(0, d);
  assert.equal(Array.from(d), [0, 0, 0, 0]);
});

test('formatBootTime prints the exact Firecracker line (%6u right-aligned)', () => {
  assert.is(formatBootTime(1234, 567), 'Guest-boot-time =   1234 us 1 ms,    567 CPU us 0 CPU ms');
  assert.is(formatBootTime(123456, 98765), 'Guest-boot-time = 123456 us 123 ms,  98765 CPU us 98 CPU ms');
  assert.is(formatBootTime(12345678, 1999), 'Guest-boot-time = 12345678 us 12345 ms,   1999 CPU us 1 CPU ms', 'wider numbers are not cut');
  assert.is(formatBootTime(0, 0), 'Guest-boot-time =      0 us 0 ms,      0 CPU us 0 CPU ms');
});

test('formatBootTime treats fractions, negatives and non-finite inputs as %u would see them', () => {
  assert.is(formatBootTime(999.9, -5), 'Guest-boot-time =    999 us 0 ms,      0 CPU us 0 CPU ms');
  assert.is(formatBootTime(Number.NaN, Number.POSITIVE_INFINITY), 'Guest-boot-time =      0 us 0 ms,      0 CPU us 0 CPU ms');
});

test('bootTimeSince measures forward on both clocks', () => {
  const start = bootTimestamp();
  let x = 0;
  for (let i = 0; i < 1e6; i++) x += i;
  const d = bootTimeSince(start);
  assert.ok(x > 0);
  assert.ok(d.wallUs >= 0 && Number.isInteger(d.wallUs));
  assert.ok(d.cpuUs >= 0);
  assert.ok(start.wallUs > 0);
});

test.run();
