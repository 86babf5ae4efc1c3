/**
 * CPU templates on x86_64: what a template is, which static template applies to the host, and
 * how a template changes the CPUID and MSRs every vCPU gets (firecracker
 * src/vmm/src/cpu_config/templates.rs, cpu_config/x86_64/mod.rs `CpuConfiguration`,
 * cpu_config/x86_64/custom_cpu_template.rs `get_cpu_template`, arch/x86_64/cpu_model.rs;
 * docs/cpu_templates/cpu-templates.md).
 *
 * Order at InstanceStart (src/vmm/builder.ts, Firecracker's builder.rs and
 * arch/x86_64/mod.rs `configure_system_for_boot`):
 *  1. the template in effect: a custom one (PUT /cpu-config), a static one (machine-config
 *     `cpu_template`, checked against the host's vendor and model), or none (an empty one);
 *  2. its `kvm_capabilities` adjust the capabilities /dev/kvm must offer;
 *  3. the base configuration: KVM_GET_SUPPORTED_CPUID, and the template's MSRs as vCPU 0 reads
 *     them (KVM_GET_MSRS);
 *  4. the template's modifiers applied to that base, once, for all vCPUs;
 *  5. per vCPU, CPUID normalization (cpuid.ts) on top, then KVM_SET_CPUID2, and KVM_SET_MSRS
 *     with the template's MSRs plus the boot MSRs (regs.ts; a boot MSR wins).
 *
 * The host's vendor and model come from KVM_GET_SUPPORTED_CPUID: JavaScript cannot execute
 * CPUID, and KVM reports leaf 0 (vendor) and leaf 1 EAX (family/model/stepping) as the host's.
 * Everything here is pure.
 */
import type { CpuidEntry } from '../../kvm/kvm.js';
import { CpuTemplateError } from '../../errors.js';
import { cpuVendor, type CpuVendor, CPUID_LEAF_FEATURES } from './cpuid.js';

/** A KVM capability a template requires (`"121"`) or drops from the default checks (`"!121"`). */
export interface KvmCapability {
  op: 'add' | 'remove';
  cap: number;
}

/** Bits to force: where `filter` has a 1, the register bit becomes the `value` bit. */
export interface RegisterValueFilter<N> {
  filter: N;
  value: N;
}

/** A CPUID output register. */
export type CpuidRegister = 'eax' | 'ebx' | 'ecx' | 'edx';

/** One CPUID register modifier. */
export interface CpuidRegisterModifier {
  register: CpuidRegister;
  bitmap: RegisterValueFilter<number>;
}

/** Modifiers for one CPUID leaf/subleaf; `flags` replaces the entry's kvm_cpuid_entry2 flags. */
export interface CpuidLeafModifier {
  leaf: number;
  subleaf: number;
  flags: number;
  modifiers: CpuidRegisterModifier[];
}

/** One MSR modifier (64-bit bitmap, hence bigint). */
export interface RegisterModifier {
  addr: number;
  bitmap: RegisterValueFilter<bigint>;
}

/** An x86_64 CPU template: custom (PUT /cpu-config) or one of the static ones. */
export interface CustomCpuTemplate {
  kvm_capabilities: KvmCapability[];
  cpuid_modifiers: CpuidLeafModifier[];
  msr_modifiers: RegisterModifier[];
}

/** The template of a VM without one: changes nothing. */
export const EMPTY_CPU_TEMPLATE: CustomCpuTemplate = Object.freeze({ kvm_capabilities: [], cpuid_modifiers: [], msr_modifiers: [] });

/**
 * Tri-state bitmap text (`RegisterValueFilter` deserialize, templates.rs): an optional `0b`,
 * then from the right one character per bit: `0`/`1` force the bit, `x` leaves it, `_` is a
 * separator. At most `bits` bits; fewer leave the high bits alone.
 */
export function parseBitmap(s: string, bits: number): { ok: RegisterValueFilter<bigint> } | { tooLong: true } | { badChar: number } {
  const body = Buffer.from(s.startsWith('0b') ? s.slice(2) : s);
  let filter = 0n;
  let value = 0n;
  let i = 0n;
  for (let k = body.length - 1; k >= 0; k--) {
    if (i === BigInt(bits)) return { tooLong: true };
    const c = body[k]!;
    if (c === 0x5f /* _ */) continue;
    if (c === 0x30 /* 0 */) filter |= 1n << i;
    else if (c === 0x31 /* 1 */) {
      filter |= 1n << i;
      value |= 1n << i;
    } else if (c !== 0x78 /* x */) return { badChar: c };
    i++;
  }
  return { ok: { filter, value } };
}

/** `RegisterValueFilter::apply`: (value & !filter) | value-bits. */
export function applyFilter32(x: number, f: RegisterValueFilter<number>): number {
  return ((x & ~f.filter) | f.value) >>> 0;
}
export function applyFilter64(x: bigint, f: RegisterValueFilter<bigint>): bigint {
  const mask = (1n << 64n) - 1n;
  return ((x & ~f.filter) | f.value) & mask;
}

// --- Static templates: vendor and models (static_cpu_templates/mod.rs, arch/x86_64/cpu_model.rs) ---

/** Family/model/stepping as CPUID leaf 1 EAX encodes them. */
export interface CpuModel {
  extendedFamily: number;
  extendedModel: number;
  family: number;
  model: number;
  stepping: number;
}

/** Decodes leaf 1 EAX (Intel SDM vol. 2A, CPUID EAX=01H: version information). */
export function cpuModelOf(eax: number): CpuModel {
  return {
    extendedFamily: (eax >>> 20) & 0xff,
    extendedModel: (eax >>> 16) & 0xf,
    family: (eax >>> 8) & 0xf,
    model: (eax >>> 4) & 0xf,
    stepping: eax & 0xf,
  };
}

/** The CPU models static templates were made for (cpu_model.rs), by their leaf 1 EAX. */
export const SKYLAKE_FMS = 0x0005_0654;
export const CASCADE_LAKE_FMS = 0x0005_0657;
export const ICE_LAKE_FMS = 0x0006_06a6;
export const MILAN_FMS = 0x00a0_0f11;

/** Names of the static templates (the `None` of the API is the absence of one). */
export type StaticTemplateName = 'C3' | 'T2' | 'T2S' | 'T2CL' | 'T2A';

/** Which host each static template applies to (`get_supported_vendor`, `get_supported_cpu_models`). */
export const STATIC_TEMPLATE_HOSTS: Readonly<Record<StaticTemplateName, { vendor: CpuVendor; models: readonly number[] }>> = {
  C3: { vendor: 'intel', models: [SKYLAKE_FMS, CASCADE_LAKE_FMS, ICE_LAKE_FMS] },
  T2: { vendor: 'intel', models: [SKYLAKE_FMS, CASCADE_LAKE_FMS, ICE_LAKE_FMS] },
  T2S: { vendor: 'intel', models: [SKYLAKE_FMS, CASCADE_LAKE_FMS] },
  T2CL: { vendor: 'intel', models: [CASCADE_LAKE_FMS, ICE_LAKE_FMS] },
  T2A: { vendor: 'amd', models: [MILAN_FMS] },
};

/** `GetCpuTemplateError` texts (templates.rs). */
export const GET_CPU_TEMPLATE_ERRORS = {
  CpuVendorMismatched: 'CPU vendor mismatched between actual CPU and CPU template.',
  InvalidCpuModel: 'The current CPU model is not permitted to apply the CPU template.',
} as const;

const sameModel = (a: CpuModel, b: CpuModel): boolean =>
  a.extendedFamily === b.extendedFamily && a.extendedModel === b.extendedModel && a.family === b.family && a.model === b.model && a.stepping === b.stepping;

/**
 * Checks that static template `name` applies to the host KVM describes (`supported`: its
 * KVM_GET_SUPPORTED_CPUID): same vendor, then one of the template's CPU models. Throws
 * CpuTemplateError with Firecracker's "Failed to get CPU template: ..." text otherwise.
 */
export function checkStaticTemplateHost(name: StaticTemplateName, supported: readonly CpuidEntry[]): void {
  const want = STATIC_TEMPLATE_HOSTS[name];
  let vendor: CpuVendor;
  try {
    vendor = cpuVendor(supported);
  } catch (e) {
    // GetCpuTemplateError::GetCpuVendor: the host's vendor string is not one Firecracker knows.
    throw new CpuTemplateError('CPU_TEMPLATE_HOST', `Failed to get CPU template: Failed to get CPU vendor information: ${(e as Error).message}`);
  }
  if (vendor !== want.vendor) throw new CpuTemplateError('CPU_TEMPLATE_HOST', `Failed to get CPU template: ${GET_CPU_TEMPLATE_ERRORS.CpuVendorMismatched}`);
  const leaf1 = supported.find((e) => e.function === CPUID_LEAF_FEATURES && e.index === 0);
  const model = cpuModelOf(leaf1?.eax ?? 0);
  if (!want.models.some((m) => sameModel(cpuModelOf(m), model))) {
    throw new CpuTemplateError('CPU_TEMPLATE_HOST', `Failed to get CPU template: ${GET_CPU_TEMPLATE_ERRORS.InvalidCpuModel}`);
  }
}

// --- KVM capabilities (vstate/kvm.rs `combine_capabilities`) ---

/** The capability numbers to check: `defaults`, plus the template's adds, minus its removes, in that order. */
export function combineCapabilities(defaults: readonly number[], mods: readonly KvmCapability[]): number[] {
  const total = [...defaults];
  for (const m of mods) {
    const at = total.indexOf(m.cap);
    if (m.op === 'add' && at < 0) total.push(m.cap);
    // Rust's swap_remove: the last element takes the removed one's place.
    if (m.op === 'remove' && at >= 0) {
      total[at] = total[total.length - 1]!;
      total.pop();
    }
  }
  return total;
}

// --- Applying a template (cpu_config/x86_64/mod.rs `CpuConfiguration::apply_template`) ---

/** The CPU configuration all vCPUs start from: CPUID entries and the template's MSRs by index. */
export interface CpuConfiguration {
  cpuid: CpuidEntry[];
  msrs: Map<number, bigint>;
}

/** Rust `{:0x}` (the `0` flag, no width): lowercase hex without a prefix. */
const hex = (n: number): string => (n >>> 0).toString(16);

/**
 * The template's modifiers applied to `base` (not modified): each CPUID modifier needs its
 * leaf/subleaf among the entries (it replaces their flags and forces the bitmap's bits), each
 * MSR modifier its MSR among `base.msrs`. Throws CpuTemplateError with Firecracker's
 * CpuConfigurationError text for the first that is missing.
 */
export function applyCpuTemplate(base: CpuConfiguration, t: CustomCpuTemplate): CpuConfiguration {
  const cpuid = base.cpuid.map((e) => ({ ...e }));
  for (const m of t.cpuid_modifiers) {
    const entry = cpuid.find((e) => e.function === m.leaf && e.index === m.subleaf);
    if (!entry) {
      throw new CpuTemplateError('CPU_TEMPLATE_APPLY', `Template changes a CPUID entry not supported by KVM: Leaf: ${hex(m.leaf)}, Subleaf: ${hex(m.subleaf)}`);
    }
    entry.flags = m.flags;
    for (const r of m.modifiers) entry[r.register] = applyFilter32(entry[r.register], r.bitmap);
  }
  const msrs = new Map(base.msrs);
  for (const m of t.msr_modifiers) {
    const v = msrs.get(m.addr);
    if (v === undefined) throw new CpuTemplateError('CPU_TEMPLATE_APPLY', `Template changes an MSR entry not supported by KVM: Register Address: ${hex(m.addr)}`);
    msrs.set(m.addr, applyFilter64(v, m.bitmap));
  }
  return { cpuid, msrs };
}

/**
 * The MSRs one vCPU is given: the template's (as applied), then the boot MSRs over them
 * (vcpu.rs `configure`: `create_boot_msr_entries` inserted into the same map), by index.
 */
export function vcpuMsrs(template: ReadonlyMap<number, bigint>, boot: readonly { index: number; data: bigint }[]): { index: number; data: bigint }[] {
  const all = new Map(template);
  for (const b of boot) all.set(b.index, b.data);
  return [...all].sort((a, b) => a[0] - b[0]).map(([index, data]) => ({ index, data }));
}
