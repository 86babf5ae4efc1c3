/** MP floating pointer and configuration table (firecracker src/vmm/src/arch/x86_64/mptable.rs and src/vmm/src/acpi/, MP spec 1.4 §4). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arrayGuestMemory } from '../../src/memory/guest-memory.js';
import { MptableError } from '../../src/errors.js';
import { buildMptable, mptableSize, writeMptable } from '../../src/arch/x86_64/mptable.js';

/** uvu's throws() takes a predicate, not a class. */
const isA = (C: abstract new (...a: never[]) => unknown) => (e: unknown): boolean => e instanceof C;

const sum8 = (b: Uint8Array): number => b.reduce((s, x) => (s + x) & 0xff, 0);
const str = (b: Uint8Array, off: number, len: number): string => Buffer.from(b.subarray(off, off + len)).toString('latin1');

interface Parsed {
  cpus: { apicid: number; ver: number; flags: number; signature: number; features: number }[];
  buses: string[];
  ioapics: { id: number; flags: number; addr: number }[];
  intsrc: { type: number; srcirq: number; dstapic: number; dstirq: number }[];
  lintsrc: { type: number; destapic: number; lint: number }[];
  count: number;
}

/** Walks the configuration table entries the way Linux's smp_read_mpc does (by length). */
function parseEntries(t: Uint8Array): Parsed {
  const v = new DataView(t.buffer, t.byteOffset, t.byteLength);
  const p: Parsed = { cpus: [], buses: [], ioapics: [], intsrc: [], lintsrc: [], count: 0 };
  let off = 44;
  const end = v.getUint16(4, true);
  while (off < end) {
    p.count++;
    switch (t[off]) {
      case 0:
        p.cpus.push({ apicid: t[off + 1]!, ver: t[off + 2]!, flags: t[off + 3]!, signature: v.getUint32(off + 4, true), features: v.getUint32(off + 8, true) });
        off += 20; break;
      case 1: p.buses.push(str(t, off + 2, 6)); off += 8; break;
      case 2: p.ioapics.push({ id: t[off + 1]!, flags: t[off + 3]!, addr: v.getUint32(off + 4, true) }); off += 8; break;
      case 3: p.intsrc.push({ type: t[off + 1]!, srcirq: t[off + 5]!, dstapic: t[off + 6]!, dstirq: t[off + 7]! }); off += 8; break;
      case 4: p.lintsrc.push({ type: t[off + 1]!, destapic: t[off + 6]!, lint: t[off + 7]! }); off += 8; break;
      default: throw new Error(`unknown entry type ${t[off]} at ${off}`);
    }
  }
  assert.is(off, end, 'entries end exactly at the table length');
  return p;
}

test('size matches Firecracker for 4 vCPUs (ACPI DSDT starts at 0x9fd6c in its guests)', () => {
  assert.is(mptableSize(4), 0x16c);
  assert.is(buildMptable(4).length, 0x16c);
});

test('floating pointer: signature, physptr, spec 1.4, checksum', () => {
  const t = buildMptable(2, 0x9fc00);
  const v = new DataView(t.buffer);
  assert.is(str(t, 0, 4), '_MP_');
  assert.is(v.getUint32(4, true), 0x9fc10);
  assert.is(t[8], 1, 'length in paragraphs');
  assert.is(t[9], 4);
  assert.is(sum8(t.subarray(0, 16)), 0);
  assert.equal([...t.subarray(11, 16)], [0, 0, 0, 0, 0], 'no default configuration, IMCR absent');
});

test('configuration table: header fields and checksum over its length', () => {
  const t = buildMptable(3).subarray(16);
  const v = new DataView(t.buffer, t.byteOffset);
  assert.is(str(t, 0, 4), 'PCMP');
  assert.is(v.getUint16(4, true), t.length);
  assert.is(t[6], 4);
  assert.is(sum8(t.subarray(0, v.getUint16(4, true))), 0);
  assert.is(str(t, 8, 8), 'FC      ');
  assert.is(str(t, 16, 12), '000000000000');
  assert.is(v.getUint32(36, true), 0xfee00000);
  assert.is(v.getUint16(34, true), parseEntries(t).count, 'entry count');
});

test('entries: one CPU per vCPU (BSP first), ISA bus, IOAPIC, 24 identity IRQs, LINT0/LINT1', () => {
  for (const n of [1, 2, 7]) {
    const p = parseEntries(buildMptable(n).subarray(16));
    assert.is(p.cpus.length, n);
    p.cpus.forEach((c, i) => {
      assert.equal(c, { apicid: i, ver: 0x14, flags: i === 0 ? 3 : 1, signature: 0x600, features: 0x201 });
    });
    assert.equal(p.buses, ['ISA   ']);
    assert.equal(p.ioapics, [{ id: n + 1, flags: 1, addr: 0xfec00000 }]);
    assert.is(p.intsrc.length, 24);
    p.intsrc.forEach((s, i) => assert.equal(s, { type: 0, srcirq: i, dstapic: n + 1, dstirq: i }));
    assert.equal(p.lintsrc, [{ type: 3, destapic: 0, lint: 0 }, { type: 1, destapic: 0xff, lint: 1 }]);
  }
});

test('writeMptable writes at SYSTEM_MEM_START and returns the end for the ACPI tables', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: 0x100000 }]);
  const end = writeMptable(mem, 2);
  assert.is(end, 0x9fc00 + mptableSize(2));
  const back = new Uint8Array(end - 0x9fc00);
  assert.is(mem.read(0x9fc00, back), undefined);
  assert.equal(back, buildMptable(2));
});

test('vCPU counts outside 1..254 are MptableErrors', () => {
  for (const n of [0, 255, 1.5, -1]) assert.throws(() => buildMptable(n), isA(MptableError), String(n));
  assert.is(parseEntries(buildMptable(254).subarray(16)).cpus.length, 254);
});

test('a table outside guest RAM is a GuestMemoryError', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: 0x9fc00 }]);
  assert.throws(() => writeMptable(mem, 1), (e: Error & { code?: string }) => e.code === 'GUEST_MEMORY_OUT_OF_RANGE');
});

test.run();
