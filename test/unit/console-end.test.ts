/**
 * test/helpers/guest.ts `consoleEnd`, the console excerpt a failed KVM test prints: it starts at
 * the guest's crash report when one is near the end (the tier's retry reads that report's
 * "Kernel panic - not syncing" line from the failure), else it is a plain tail.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { consoleEnd } from '../helpers/guest.js';

const boot = Array.from({ length: 200 }, (_, i) => `[    ${i}.000000] boot line ${i}`).join('\n');
const trace = Array.from({ length: 120 }, (_, i) => `[   18.7${i}] ? some_function+0x${i.toString(16)}/0x100`).join('\n');

test('a panic with a long stack dump after it: the excerpt starts at the panic line', () => {
  const text = `${boot}\n[   18.700000] Kernel panic - not syncing: Fatal exception in interrupt\n${trace}\n[   18.781913] Kernel Offset: 0x36400000\n`;
  const end = consoleEnd(text);
  assert.ok(end.startsWith('[   18.700000] Kernel panic - not syncing: Fatal exception'), end.slice(0, 80));
  assert.ok(end.endsWith('Kernel Offset: 0x36400000\n'));
  // A plain 2000-character tail would have lost the panic line to the stack dump.
  assert.not.match(text.slice(-2000), /Kernel panic/);
});

test('an Oops followed by the panic it caused: the excerpt starts at the Oops', () => {
  const text = `${boot}\n[    9.1] BUG: unable to handle page fault for address: 0000000000001234\n[    9.2] Oops: 0000 [#1] SMP\n${trace}\n[    9.9] Kernel panic - not syncing: Fatal exception\n`;
  assert.ok(consoleEnd(text).startsWith('[    9.1] BUG: unable to handle page fault'));
});

test('no crash report: the last tailChars characters', () => {
  assert.is(consoleEnd(boot), boot.slice(-2000));
  assert.is(consoleEnd(boot, 100), boot.slice(-100));
});

test('a crash report older than the last 8000 characters is not the excerpt', () => {
  const text = `[ 1.0] Oops: 0000 [#1]\n${boot}\n${boot}`;
  assert.is(consoleEnd(text), text.slice(-2000));
});

test.run();
