/**
 * Named koffi types defined twice in one isolate (src/kvm/koffi-types.ts): the library bundle
 * and tsc's tree can both be loaded in one process (the KVM tier does), and koffi refuses a
 * second definition of a name. The second one must take the first type, and only when the
 * layouts agree.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import koffi from 'koffi';
import { namedStruct, namedUnion } from '../../src/kvm/koffi-types.js';

const name = `kt_${process.pid}`;

test('a second definition of a name returns the first type when the layout is the same', () => {
  const a = namedStruct(name, { x: 'uint64_t', y: 'uint32_t' });
  const b = namedStruct(name, { x: 'uint64_t', y: 'uint32_t' });
  assert.is(b, a);
  assert.is(koffi.sizeof(b), 16);
  assert.throws(() => koffi.struct(name, { x: 'uint64_t', y: 'uint32_t' }), /Duplicate type name/, 'koffi itself refuses the name');
});

test('a second definition with another layout throws', () => {
  namedStruct(`${name}_s`, { x: 'uint32_t' });
  assert.throws(() => namedStruct(`${name}_s`, { x: 'uint64_t' }), /already defined with another layout/);
  const u = namedUnion(`${name}_u`, { a: 'uint32_t', b: 'uint64_t' });
  assert.is(namedUnion(`${name}_u`, { a: 'uint32_t', b: 'uint64_t' }), u);
  assert.throws(() => namedUnion(`${name}_u`, { a: 'uint8_t' }), /another layout/);
});

test('the library bundle and tsc\'s modules load side by side in one process', async () => {
  const bundle = new URL('../../bundle/kindling-lib.js', import.meta.url);
  await import(bundle.href);
  const abi = await import('../../src/kvm/abi.js');
  const uffd = await import('../../src/memory/uffd-abi.js');
  assert.is(koffi.sizeof(abi.kvm_regs), 144);
  assert.ok(Object.keys(uffd).length > 0);
});

test.run();
