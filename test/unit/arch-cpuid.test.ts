/** CPUID normalization per vCPU, Intel and AMD branches (firecracker src/vmm/src/arch/x86_64/regs.rs). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CpuidEntry } from '../../src/kvm/kvm.js';
import { CpuidError } from '../../src/errors.js';
import { cpuVendor, getField, intelBrandString, normalizeCpuid, type CpuidNormalizeOptions } from '../../src/arch/x86_64/cpuid.js';

/** uvu's throws() takes a predicate, not a class. */
const isA = (C: abstract new (...a: never[]) => unknown) => (e: unknown): boolean => e instanceof C;

const e = (fn: number, index: number, eax: number, ebx = 0, ecx = 0, edx = 0, flags = 0): CpuidEntry =>
  ({ function: fn, index, flags, eax, ebx, ecx, edx });

/** Leaf-0 registers spelling a vendor string (EBX, EDX, ECX). */
function vendorLeaf(vendor: string, maxLeaf: number): CpuidEntry {
  const b = Buffer.from(vendor, 'latin1');
  return e(0, 0, maxLeaf, b.readUInt32LE(0), b.readUInt32LE(8), b.readUInt32LE(4));
}

/** Brand string leaves 0x80000002..4. */
function brandLeaves(s: string): CpuidEntry[] {
  const b = Buffer.alloc(48);
  b.write(s, 'latin1');
  return [0, 1, 2].map((i) => e(0x80000002 + i, 0, b.readUInt32LE(16 * i), b.readUInt32LE(16 * i + 4), b.readUInt32LE(16 * i + 8), b.readUInt32LE(16 * i + 12)));
}

function brandOf(entries: CpuidEntry[]): string {
  const b = Buffer.alloc(48);
  [0, 1, 2].forEach((i) => {
    const x = entries.find((y) => y.function === 0x80000002 + i)!;
    [x.eax, x.ebx, x.ecx, x.edx].forEach((r, j) => b.writeUInt32LE(r, 16 * i + 4 * j));
  });
  return b.toString('latin1').replace(/\0+$/, '');
}

const BIT = (n: number): number => 2 ** n;
const has = (x: number, bit: number): boolean => (x & BIT(bit)) !== 0;

/** A plausible KVM_GET_SUPPORTED_CPUID on an Intel host. */
function intelEntries(): CpuidEntry[] {
  return [
    vendorLeaf('GenuineIntel', 0x1f),
    e(1, 0, 0x50657, 0x00ff0800, BIT(15) | BIT(0), BIT(0)),
    e(4, 0, 0x121, 0, 0, 0, 1), e(4, 1, 0x122, 0, 0, 0, 1), e(4, 2, 0x143, 0, 0, 0, 1), e(4, 3, 0x163, 0, 0, 0, 1), e(4, 4, 0, 0, 0, 0, 1),
    e(6, 0, BIT(1) | BIT(2), 0, BIT(3) | BIT(0)),
    e(7, 0, 0, 0, BIT(5) | BIT(1), 0, 1),
    e(0xa, 0, 0x07300402, 0, 0, 0x603),
    e(0xb, 0, 1, 2, 0x100, 7, 1),
    e(0x1f, 0, 9, 9, 9, 9, 1), e(0x1f, 1, 9, 9, 9, 9, 1), e(0x1f, 2, 9, 9, 9, 9, 1),
    e(0x80000000, 0, 0x80000008),
    e(0x80000001, 0, 0, 0, 0x121, 0x2c100800),
    ...brandLeaves('Intel(R) Xeon(R) Platinum 8275CL CPU @ 3.00GHz'),
    e(0x80000005, 0, 0), e(0x80000006, 0, 0, 0, 0x01006040, 0x00030000 | 0x100),
    e(0x80000008, 0, 0x3027),
  ];
}

/** A plausible KVM_GET_SUPPORTED_CPUID on an AMD host. */
function amdEntries(): CpuidEntry[] {
  return [
    vendorLeaf('AuthenticAMD', 0x10),
    e(1, 0, 0xa00f11, 0, BIT(15), 0),
    e(7, 0, 0, 0, 0, BIT(29) | BIT(4), 1),
    e(0xa, 0, 0x1234),
    e(0xb, 0, 1, 2, 0x100, 0, 1), e(0xb, 1, 7, 64, 0x201, 0, 1),
    e(0x80000000, 0, 0x80000021),
    e(0x80000001, 0, 0, 0, 0, 0),
    ...brandLeaves('AMD EPYC 7R13 48-Core Processor'),
    e(0x80000005, 0, 1), e(0x80000006, 0, 0, 0, 0, 0x00030000),
    e(0x80000008, 0, 0x3030, 0, 0x0000_703f),
    e(0x8000001d, 0, 0x121, 0, 0, 0, 1), e(0x8000001d, 1, 0x143, 0, 0, 0, 1), e(0x8000001d, 2, 0x163, 0, 0, 0, 1),
  ];
}

const get = (list: CpuidEntry[], fn: number, index = 0): CpuidEntry => {
  const x = list.find((y) => y.function === fn && y.index === index);
  if (!x) throw new Error(`leaf 0x${fn.toString(16)}.${index} missing`);
  return x;
};
const F = (msb: number, lsb: number) => ({ lsb, width: msb - lsb + 1 });
const opts = (o: Partial<CpuidNormalizeOptions>): CpuidNormalizeOptions => ({ vcpuIndex: 0, vcpuCount: 1, smt: false, ...o });

test('vendor is read from leaf 0', () => {
  assert.is(cpuVendor(intelEntries()), 'intel');
  assert.is(cpuVendor(amdEntries()), 'amd');
  assert.throws(() => cpuVendor([vendorLeaf('HygonGenuine', 1)]), isA(CpuidError));
});

test('leaf 1: CLFLUSH 64 B, logical CPUs rounded to a power of two, APIC id = index', () => {
  for (const vendor of [intelEntries, amdEntries]) {
    for (let i = 0; i < 3; i++) {
      const l1 = get(normalizeCpuid(vendor(), opts({ vcpuIndex: i, vcpuCount: 3 })), 1);
      assert.is(getField(l1.ebx, F(31, 24)), i);
      assert.is(getField(l1.ebx, F(23, 16)), 4);
      assert.is(getField(l1.ebx, F(15, 8)), 8);
      assert.ok(!has(l1.ecx, 15), 'PDCM cleared');
      assert.ok(has(l1.ecx, 24), 'TSC-deadline set');
      assert.ok(has(l1.ecx, 31), 'hypervisor set');
      assert.ok(has(l1.edx, 28), 'HTT with more than one vCPU');
    }
  }
  const single = get(normalizeCpuid(intelEntries(), opts({})), 1);
  assert.ok(!has(single.edx, 28), 'no HTT with one vCPU');
  assert.is(getField(single.ebx, F(23, 16)), 1);
  assert.ok(has(single.ecx, 0), 'other feature bits kept');
});

test('leaf 0xB: SMT and core levels, x2APIC id per vCPU, subleaf 1 added when KVM omits it', () => {
  const out = normalizeCpuid(intelEntries(), opts({ vcpuIndex: 3, vcpuCount: 4, smt: true }));
  const s0 = get(out, 0xb, 0);
  const s1 = get(out, 0xb, 1);
  assert.equal([s0.eax, s0.ebx, s0.ecx, s0.edx, s0.flags], [1, 2, 0x100, 3, 1]);
  assert.equal([s1.eax, s1.ebx, s1.ecx, s1.edx, s1.flags], [5, 4, 0x201, 3, 1]);
  const noSmt = normalizeCpuid(intelEntries(), opts({ vcpuIndex: 1, vcpuCount: 2, smt: false }));
  assert.equal([get(noSmt, 0xb, 0).eax, get(noSmt, 0xb, 0).ebx, get(noSmt, 0xb, 0).edx], [0, 1, 1]);
  const smtOneCpu = normalizeCpuid(amdEntries(), opts({ vcpuCount: 1, smt: true }));
  assert.is(get(smtOneCpu, 0xb, 0).ebx, 1, 'SMT needs a second vCPU');
});

test('Intel: cache sharing, turbo/EPB/WAITPKG off, FPU bits on, no PMU, 0x1F mirrors 0xB, brand', () => {
  const input = intelEntries();
  const snapshot = JSON.stringify(input);
  const out = normalizeCpuid(input, opts({ vcpuIndex: 1, vcpuCount: 4, smt: true }));
  assert.is(JSON.stringify(input), snapshot, 'input not modified');
  // L1d/L1i/L2 shared by the 2 threads of a core, L3 by all 4; 2 cores in the package.
  assert.equal([0, 1, 2, 3].map((i) => getField(get(out, 4, i).eax, F(25, 14))), [1, 1, 1, 3]);
  assert.equal([0, 1, 2, 3].map((i) => getField(get(out, 4, i).eax, F(31, 26))), [1, 1, 1, 1]);
  assert.is(get(out, 4, 4).eax, 0, 'the terminating zero subleaf stays zero');
  const l6 = get(out, 6);
  assert.ok(!has(l6.eax, 1) && has(l6.eax, 2), 'turbo cleared only');
  assert.ok(!has(l6.ecx, 3) && has(l6.ecx, 0), 'EPB cleared only');
  const l7 = get(out, 7, 0);
  assert.ok(has(l7.ebx, 6) && has(l7.ebx, 13));
  assert.ok(!has(l7.ecx, 5) && has(l7.ecx, 1), 'WAITPKG cleared only');
  const pmu = get(out, 0xa);
  assert.equal([pmu.eax, pmu.ebx, pmu.ecx, pmu.edx], [0, 0, 0, 0]);
  const b = out.filter((x) => x.function === 0xb).map((x) => ({ ...x, function: 0x1f }));
  assert.equal(out.filter((x) => x.function === 0x1f), b);
  assert.is(brandOf(out), 'Intel(R) Xeon(R) Processor @ 3.00GHz');
  assert.is(getField(get(out, 0x80000006).edx, F(17, 16)), 0);
  assert.is(get(out, 0x80000006).edx & 0xffff, 0x100, 'other EDX bits kept');
});

test('Intel brand string without a frequency falls back to the plain name', () => {
  assert.is(intelBrandString(Buffer.from('Intel(R) Core(TM) CPU')).toString('latin1').replace(/\0+$/, ''), 'Intel(R) Xeon(R) Processor');
  assert.is(intelBrandString(undefined).length, 48);
});

test('AMD: ARCH_CAPABILITIES off, TOPOEXT on, 0x80000008 / 0x8000001D / 0x8000001E topology, brand', () => {
  const out = normalizeCpuid(amdEntries(), opts({ vcpuIndex: 3, vcpuCount: 4, smt: true }));
  const l7 = get(out, 7, 0);
  assert.ok(!has(l7.edx, 29) && has(l7.edx, 4));
  assert.ok(has(get(out, 0x80000001).ecx, 22));
  const l8 = get(out, 0x80000008);
  assert.equal([getField(l8.ecx, F(15, 12)), getField(l8.ecx, F(7, 0))], [7, 3]);
  assert.equal([0, 1, 2].map((i) => getField(get(out, 0x8000001d, i).eax, F(25, 14))), [1, 1, 3]);
  const x = get(out, 0x8000001e);
  assert.is(x.eax, 3, 'extended APIC id');
  assert.equal([getField(x.ebx, F(7, 0)), getField(x.ebx, F(15, 8)), getField(x.ecx, F(10, 8))], [1, 1, 0]);
  assert.is(brandOf(out), 'AMD EPYC');
  assert.is(get(out, 0xa).eax, 0x1234, 'Intel-only leaves untouched on AMD');
  const s1 = get(out, 0xb, 1);
  assert.equal([s1.eax, s1.ebx, s1.edx], [5, 4, 3]);
});

test('host leaves replace the pass-through leaves', () => {
  const host = [e(0x80000005, 0, 0xdead, 0xbeef, 1, 2), e(0x80000006, 0, 7, 7, 7, 0x00030001)];
  const out = normalizeCpuid(intelEntries(), { ...opts({}), host });
  const l5 = get(out, 0x80000005);
  assert.equal([l5.eax, l5.ebx, l5.ecx, l5.edx], [0xdead, 0xbeef, 1, 2]);
  assert.is(get(out, 0x80000006).edx, 1, 'reserved bits cleared after the copy');
});

test('explicit vendor picks the branch', () => {
  const out = normalizeCpuid(amdEntries(), { ...opts({}), vendor: 'intel' });
  assert.is(get(out, 0xa).eax, 0, 'Intel branch zeroed the PMU leaf');
});

test('bad input: one defect per case', () => {
  const noLeaf1 = intelEntries().filter((x) => x.function !== 1);
  assert.throws(() => normalizeCpuid(noLeaf1, opts({})), (err: unknown) => err instanceof CpuidError && err.code === 'CPUID_NORMALIZATION');
  assert.throws(() => normalizeCpuid(intelEntries().slice(1), opts({})), isA(CpuidError));
  assert.throws(() => normalizeCpuid(intelEntries(), opts({ vcpuIndex: 2, vcpuCount: 2 })), isA(CpuidError));
  assert.throws(() => normalizeCpuid(intelEntries(), opts({ vcpuCount: 0 })), isA(CpuidError));
  assert.throws(() => normalizeCpuid(intelEntries(), opts({ vcpuCount: 65 })), isA(CpuidError));
  assert.throws(() => normalizeCpuid(amdEntries().filter((x) => x.function !== 0x80000001), opts({})), isA(CpuidError));
  assert.ok(normalizeCpuid(intelEntries(), opts({ vcpuIndex: 63, vcpuCount: 64 })).length > 0, 'the largest topology fits');
  const amd64 = normalizeCpuid(amdEntries(), opts({ vcpuIndex: 63, vcpuCount: 64, smt: true }));
  assert.equal([get(amd64, 0xb, 1).eax, get(amd64, 0xb, 1).ebx], [6, 64], 'core shift widened past 32 vCPUs');
});

test.run();
