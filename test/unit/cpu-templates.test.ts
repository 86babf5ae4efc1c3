/**
 * CPU templates on CPUID and MSR tables (src/arch/x86_64/cpu-template.ts,
 * static-cpu-templates.ts), without KVM: modifiers force exactly their bits and replace the
 * entry's flags, a leaf or MSR KVM does not offer is Firecracker's error, static templates
 * apply only on their vendor and CPU models, the template's KVM capabilities combine with the
 * defaults as Firecracker's do, boot MSRs win over template MSRs, and per-vCPU normalization
 * runs on top of the template.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CpuidEntry } from '../../src/kvm/kvm.js';
import { CpuTemplateError } from '../../src/errors.js';
import {
  applyCpuTemplate, checkStaticTemplateHost, combineCapabilities, cpuModelOf, parseBitmap, vcpuMsrs,
  EMPTY_CPU_TEMPLATE, MILAN_FMS, SKYLAKE_FMS, ICE_LAKE_FMS, type CustomCpuTemplate, type StaticTemplateName,
} from '../../src/arch/x86_64/cpu-template.js';
import { cpuTemplateInEffect, staticCpuTemplate, MSR_IA32_ARCH_CAPABILITIES } from '../../src/arch/x86_64/static-cpu-templates.js';
import { normalizeCpuid } from '../../src/arch/x86_64/cpuid.js';
import { parseCpuConfig } from '../../src/config/cpu-config.js';
import { T2A_JSON } from '../helpers/cpu-template-json.js';

const e = (fn: number, index: number, eax: number, ebx = 0, ecx = 0, edx = 0, flags = 0): CpuidEntry =>
  ({ function: fn, index, flags, eax, ebx, ecx, edx });

function vendorLeaf(vendor: string): CpuidEntry {
  const b = Buffer.from(vendor, 'latin1');
  return e(0, 0, 0x10, b.readUInt32LE(0), b.readUInt32LE(8), b.readUInt32LE(4));
}

/** A KVM_GET_SUPPORTED_CPUID of `vendor` with leaf 1 EAX = `fms`. */
function host(vendor: 'GenuineIntel' | 'AuthenticAMD', fms: number): CpuidEntry[] {
  return [
    vendorLeaf(vendor),
    e(1, 0, fms, 0x800, 0xffff_ffff, 0xffff_ffff),
    e(7, 0, 0, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 1),
    e(0xd, 0, 0xffff_ffff, 0, 0, 0, 1), e(0xd, 1, 0xffff_ffff, 0, 0, 0, 1),
    e(0x80000000, 0, 0x80000008),
    e(0x80000001, 0, 0, 0, 0xffff_ffff, 0xffff_ffff),
    e(0x80000008, 0, 0x3030, 0xffff_ffff),
  ];
}

const errText = (f: () => unknown): string => {
  try {
    f();
  } catch (x) {
    assert.instance(x, CpuTemplateError);
    return (x as Error).message;
  }
  throw new Error('no error thrown');
};

const one = (leaf: number, subleaf: number, flags: number, register: 'eax' | 'ebx' | 'ecx' | 'edx', bitmap: string): CustomCpuTemplate => {
  const b = parseBitmap(bitmap, 32);
  if (!('ok' in b)) throw new Error('bad bitmap');
  return { kvm_capabilities: [], cpuid_modifiers: [{ leaf, subleaf, flags, modifiers: [{ register, bitmap: { filter: Number(b.ok.filter), value: Number(b.ok.value) } }] }], msr_modifiers: [] };
};

test('a CPUID modifier forces its 0/1 bits, leaves x bits, replaces the flags, and touches nothing else', () => {
  const base = [e(1, 0, 0x1234, 0x5678, 0b1010_1010, 0xffff_0000, 0), e(7, 0, 0, 0xffff_ffff, 0, 0, 1)];
  const t = one(0x1, 0x0, 4, 'ecx', '0bxxxx01x1');
  const out = applyCpuTemplate({ cpuid: base, msrs: new Map() }, t);
  const l1 = out.cpuid.find((x) => x.function === 1)!;
  // Read right to left: bit 0 → 1, bit 1 kept, bit 2 → 1, bit 3 → 0, bits 4..31 kept.
  assert.is(l1.ecx, 0b1010_0111);
  assert.is(l1.flags, 4, 'the template\'s flags replace KVM\'s');
  assert.equal([l1.eax, l1.ebx, l1.edx], [0x1234, 0x5678, 0xffff_0000]);
  assert.equal(out.cpuid[1], base[1], 'other leaves unchanged');
  assert.is(base[0]!.ecx, 0b1010_1010, 'the input is not modified');
  // All 32 bits: the high bit stays unsigned.
  const hi = applyCpuTemplate({ cpuid: base, msrs: new Map() }, one(0x7, 0x0, 1, 'ebx', `0b0${'x'.repeat(31)}`));
  assert.is(hi.cpuid[1]!.ebx, 0x7fff_ffff);
});

test('a leaf or MSR KVM does not offer fails with Firecracker\'s CpuConfigurationError text', () => {
  const base = { cpuid: [e(1, 0, 0)], msrs: new Map<number, bigint>([[0x10a, 5n]]) };
  assert.is(errText(() => applyCpuTemplate(base, one(0x80000001, 0x0, 0, 'ecx', '0b0'))),
    'Template changes a CPUID entry not supported by KVM: Leaf: 80000001, Subleaf: 0');
  assert.is(errText(() => applyCpuTemplate(base, one(0x1, 0x3, 0, 'ecx', '0b0'))), 'Template changes a CPUID entry not supported by KVM: Leaf: 1, Subleaf: 3');
  const msr = (addr: number, s: string): CustomCpuTemplate => {
    const b = parseBitmap(s, 64);
    if (!('ok' in b)) throw new Error('bad bitmap');
    return { ...EMPTY_CPU_TEMPLATE, msr_modifiers: [{ addr, bitmap: b.ok }] };
  };
  assert.is(errText(() => applyCpuTemplate(base, msr(0x48, '0b1'))), 'Template changes an MSR entry not supported by KVM: Register Address: 48');
  // 64-bit MSR bitmaps: bit 63 set, bit 0 cleared, the rest kept.
  const out = applyCpuTemplate(base, msr(0x10a, `0b1${'x'.repeat(62)}0`));
  assert.is(out.msrs.get(0x10a), (1n << 63n) | 4n);
});

test('Firecracker\'s T2A.json as a custom template equals the static T2A (verify_consistency_with_json_templates)', () => {
  assert.equal(parseCpuConfig(T2A_JSON), staticCpuTemplate('T2A'));
});

test('static templates: every bitmap parses; T2S and T2CL pin IA32_ARCH_CAPABILITIES, the others no MSR', () => {
  for (const n of ['C3', 'T2', 'T2S', 'T2CL', 'T2A'] as StaticTemplateName[]) {
    const t = staticCpuTemplate(n);
    assert.ok(t.cpuid_modifiers.length >= 5, n);
    assert.equal(t.msr_modifiers.map((m) => m.addr), n === 'T2S' || n === 'T2CL' ? [MSR_IA32_ARCH_CAPABILITIES] : [], n);
  }
  // T2S forces all 64 bits of the MSR.
  assert.is(staticCpuTemplate('T2S').msr_modifiers[0]!.bitmap.filter, (1n << 64n) - 1n);
});

test('static templates apply on their vendor and CPU models only, with Firecracker\'s texts', () => {
  const amdTcg = host('AuthenticAMD', 0x0663); // QEMU TCG `-cpu max`: family 6 model 6 stepping 3
  for (const n of ['C3', 'T2', 'T2S', 'T2CL'] as StaticTemplateName[]) {
    assert.is(errText(() => checkStaticTemplateHost(n, amdTcg)), 'Failed to get CPU template: CPU vendor mismatched between actual CPU and CPU template.', n);
  }
  assert.is(errText(() => checkStaticTemplateHost('T2A', amdTcg)), 'Failed to get CPU template: The current CPU model is not permitted to apply the CPU template.');
  checkStaticTemplateHost('T2A', host('AuthenticAMD', MILAN_FMS));
  assert.is(errText(() => checkStaticTemplateHost('T2A', host('GenuineIntel', SKYLAKE_FMS))), 'Failed to get CPU template: CPU vendor mismatched between actual CPU and CPU template.');
  checkStaticTemplateHost('T2', host('GenuineIntel', SKYLAKE_FMS));
  checkStaticTemplateHost('T2CL', host('GenuineIntel', ICE_LAKE_FMS));
  assert.is(errText(() => checkStaticTemplateHost('T2S', host('GenuineIntel', ICE_LAKE_FMS))), 'Failed to get CPU template: The current CPU model is not permitted to apply the CPU template.');
  // Only family/model/stepping count: the reserved high bits of EAX do not.
  checkStaticTemplateHost('T2A', host('AuthenticAMD', (MILAN_FMS | 0xf000_0000) >>> 0));
  assert.equal(cpuModelOf(MILAN_FMS), { extendedFamily: 0xa, extendedModel: 0, family: 0xf, model: 1, stepping: 1 });
});

test('the template in effect: custom as given, static after the host check, else the empty template', () => {
  const custom = one(1, 0, 0, 'ecx', '0b0');
  const milan = host('AuthenticAMD', MILAN_FMS);
  assert.is(cpuTemplateInEffect({ staticName: null, custom }, milan), custom);
  assert.equal(cpuTemplateInEffect({ staticName: 'T2A', custom: null }, milan), staticCpuTemplate('T2A'));
  assert.is(cpuTemplateInEffect({ staticName: null, custom: null }, milan), EMPTY_CPU_TEMPLATE);
  assert.throws(() => cpuTemplateInEffect({ staticName: 'T2', custom: null }, milan), (x: unknown) => x instanceof CpuTemplateError && x.code === 'CPU_TEMPLATE_HOST');
});

test('T2A on a Milan-like table: the features it hides are gone, the family/model it fixes is set', () => {
  const out = applyCpuTemplate({ cpuid: host('AuthenticAMD', MILAN_FMS), msrs: new Map() }, staticCpuTemplate('T2A'));
  const get = (fn: number, i = 0): CpuidEntry => out.cpuid.find((x) => x.function === fn && x.index === i)!;
  assert.is(get(1).eax & 0x0fff_3fff, 0x0003_06f2, 'leaf 1 EAX: family 6, ext. model 3, model 0xf, stepping 2');
  assert.is(get(0x80000001).ecx & (1 << 2), 0, 'SVM hidden');
  assert.is(get(7).ebx & (1 << 19), 0, 'ADX hidden');
  assert.is(get(7).ebx & (1 << 9), 1 << 9, 'ERMS forced on');
  assert.is(get(1).edx & (1 << 12), 1 << 12, 'MTRR forced on');
});

test('normalization runs on top of the template: the hypervisor bit and APIC id are set whatever the template says', () => {
  const t = one(1, 0, 0, 'ecx', '0b0xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx0'); // clears bit 31 (hypervisor) and bit 0 (SSE3)
  const cfg = applyCpuTemplate({ cpuid: host('AuthenticAMD', MILAN_FMS), msrs: new Map() }, t);
  const v1 = normalizeCpuid(cfg.cpuid, { vcpuIndex: 1, vcpuCount: 2, smt: false });
  const l1 = v1.find((x) => x.function === 1)!;
  assert.is(l1.ecx >>> 31, 1, 'hypervisor');
  assert.is(l1.ecx & 1, 0, 'SSE3 stays cleared');
  assert.is(l1.ebx >>> 24, 1, 'APIC id of vCPU 1');
});

test('KVM capabilities: additions appended once, removals as Rust\'s swap_remove', () => {
  assert.equal(combineCapabilities([1, 2, 3, 4], [{ op: 'add', cap: 121 }, { op: 'add', cap: 2 }, { op: 'remove', cap: 2 }]), [1, 121, 3, 4]);
  assert.equal(combineCapabilities([1, 2], [{ op: 'remove', cap: 9 }]), [1, 2]);
});

test('a vCPU\'s MSRs: the template\'s, with the boot MSRs over them, by index', () => {
  const got = vcpuMsrs(new Map([[0x10a, 7n], [0x1a0, 0n]]), [{ index: 0x1a0, data: 1n }, { index: 0x10, data: 0n }]);
  assert.equal(got, [{ index: 0x10, data: 0n }, { index: 0x10a, data: 7n }, { index: 0x1a0, data: 1n }]);
});

test('bitmap text: separators, too long, bad characters', () => {
  assert.equal(parseBitmap('0b1_0x', 8), { ok: { filter: 0b110n, value: 0b100n } });
  assert.equal(parseBitmap('0b000000000', 8), { tooLong: true });
  assert.equal(parseBitmap('0b1y', 8), { badChar: 0x79 });
});

test.run();
