/**
 * Firecracker v1.16.1's static CPU templates for x86_64 (deprecated in the API since v1.5, still
 * accepted as machine-config `cpu_template`), as data: the CPUID and MSR bitmaps of
 * src/vmm/src/cpu_config/x86_64/static_cpu_templates/{c3,t2,t2s,t2cl,t2a}.rs, which Firecracker
 * keeps equal to its custom-template JSON files tests/data/custom_cpu_templates/*.json (its
 * `verify_consistency_with_json_templates`). Bitmaps use the custom-template notation
 * (cpu-template.ts `parseBitmap`): `0`/`1` force a bit, `x` leaves it.
 *
 * Which host each one applies to: cpu-template.ts STATIC_TEMPLATE_HOSTS (C3, T2, T2S and T2CL
 * on Intel Skylake / Cascade Lake / Ice Lake models, T2A on AMD Milan).
 */
import type { CpuidEntry } from '../../kvm/kvm.js';
import { EMPTY_CPU_TEMPLATE, checkStaticTemplateHost, parseBitmap, type CpuidRegister, type CustomCpuTemplate, type StaticTemplateName } from './cpu-template.js';

/** MSR IA32_ARCH_CAPABILITIES (Intel SDM vol. 4, table 2-2): T2S and T2CL pin its bits. */
export const MSR_IA32_ARCH_CAPABILITIES = 0x10a;
/** kvm_cpuid_entry2.flags of the leaves with subleaves (KVM_CPUID_FLAG_SIGNIFICANT_INDEX). */
const INDEXED = 1;

/** leaf, subleaf, flags, and one bitmap per register the template changes. */
type LeafRow = readonly [number, number, number, readonly (readonly [CpuidRegister, string])[]];

// Leaves 1 (version and features), 7.0 (extended features), 0xD.0/0xD.1 (XSAVE components and
// instructions) are common to all five but for their bits; 0x80000001 (AMD/extended features)
// and 0x80000008 (address sizes, feature ids) differ most.
const LEAF1_T2 = [0x1, 0x0, 0, [['eax', '0bxxxx000000000011xx00011011110010'], ['ecx', '0bxxxxxxxxxxxxx0xx00xx00x0000000xx'], ['edx', '0b000x0xxxx00xx0xxxxx1xxxx1xxxxxxx']]] as const;
const LEAF7_T2 = [0x7, 0x0, INDEXED, [['ebx', '0b00000000000x000000x00x1xxxx0x0xx'], ['ecx', '0bx0xxxxxxx0xxxxx0x0x00000x0x0000x'], ['edx', '0bxxxxxxxxxxxxxxxxxxxxxxx0xxx000xx']]] as const;
const LEAFD0 = [0xd, 0x0, INDEXED, [['eax', '0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx']]] as const;
const LEAFD1 = [0xd, 0x1, INDEXED, [['eax', '0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x']]] as const;
const LEAF80000008_INTEL = [0x80000008, 0x0, 0, [['ebx', '0bxxxxxxxxxxxxxxxxxxxxxx0xxxxxxxxx']]] as const;

const CPUID: Record<StaticTemplateName, readonly LeafRow[]> = {
  C3: [
    [0x1, 0x0, 0, [['eax', '0bxxxx000000000011xx00011011100100'], ['ecx', '0bxxxxxxxxx0xxxxxx00x000x0xx0000xx'], ['edx', '0b0x0x0xxxx00xx0xxxxx1xxxx1xxxxxxx']]],
    [0x7, 0x0, INDEXED, [['ebx', '0b000000000x0x000000x000x0xx0000xx'], ['ecx', '0bx0xxxxxxx0xxxxx0x0xx0xxxxxx0000x'], ['edx', '0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx00xx']]],
    LEAFD0,
    LEAFD1,
    [0x80000001, 0x0, 0, [['ecx', '0bxxxxxxxxxxxxxxxxxxxxxxx0xx0xxxxx'], ['edx', '0bxxxxx0xxxxxxxxxxxxxxxxxxxxxxxxxx']]],
  ],
  T2: [
    LEAF1_T2, LEAF7_T2, LEAFD0, LEAFD1,
    [0x80000001, 0x0, 0, [['ecx', '0bxx0xxxxxxxxxxxxxxxxxxxx0xxxxxxxx'], ['edx', '0bxxxxx0xxxxxxxxxxxxxxxxxxxxxxxxxx']]],
    LEAF80000008_INTEL,
  ],
  T2S: [
    LEAF1_T2, LEAF7_T2, LEAFD0, LEAFD1,
    [0x80000001, 0x0, 0, [['ecx', '0bxx0xxxxxxxxxxxxxxxxxxxx0xxxxxxxx'], ['edx', '0bxxxxx0xxxxxxxxxxxxxxxxxxxxxxxxxx']]],
    LEAF80000008_INTEL,
  ],
  T2CL: [
    LEAF1_T2, LEAF7_T2, LEAFD0, LEAFD1,
    [0x80000001, 0x0, 0, [['ecx', '0bxx0xxxxxxxxxxxxxxxxxxxx000xxxxxx'], ['edx', '0bxxxxx00000xxxxxxxxxxxxxxxxxxxxxx']]],
    LEAF80000008_INTEL,
  ],
  T2A: [
    LEAF1_T2, LEAF7_T2, LEAFD0, LEAFD1,
    [0x80000001, 0x0, 0, [['ecx', '0bxx0xxxxxxxxxxxxxxxxxxxx000xxx0xx'], ['edx', '0bxxxxx00xx0xxxxxxxxxxxxxxxxxxxxxx']]],
    [0x80000008, 0x0, 0, [['ebx', '0bxxxxxxxxxxx111xxxxxxxx0xxxxxx1x0']]],
  ],
};

const MSRS: Record<StaticTemplateName, readonly (readonly [number, string])[]> = {
  C3: [],
  T2: [],
  // T2S: ARCH_CAPABILITIES fixed to what both Skylake and Cascade Lake hosts can honour.
  T2S: [[MSR_IA32_ARCH_CAPABILITIES, '0b0000000000000000000000000000000000001100000010000000110001001100']],
  T2CL: [[MSR_IA32_ARCH_CAPABILITIES, '0b00000000000000000000000000000000000xxx0x0000x0x0xxx0000xxxxxxxxx']],
  T2A: [],
};

function bits(s: string, width: number): { filter: bigint; value: bigint } {
  const r = parseBitmap(s, width);
  if (!('ok' in r)) throw new Error(`static CPU template bitmap ${s} is malformed`); // data above: a bug
  return r.ok;
}

/** Static template `name` as a template to apply (a fresh object each call). */
export function staticCpuTemplate(name: StaticTemplateName): CustomCpuTemplate {
  return {
    kvm_capabilities: [],
    cpuid_modifiers: CPUID[name].map(([leaf, subleaf, flags, regs]) => ({
      leaf, subleaf, flags,
      modifiers: regs.map(([register, s]) => {
        const b = bits(s, 32);
        return { register, bitmap: { filter: Number(b.filter), value: Number(b.value) } };
      }),
    })),
    msr_modifiers: MSRS[name].map(([addr, s]) => ({ addr, bitmap: bits(s, 64) })),
  };
}

/** The template choice of a machine configuration: a static name, a custom template, or neither. */
export interface CpuTemplateChoice {
  readonly staticName: StaticTemplateName | null;
  readonly custom: CustomCpuTemplate | null;
}

/**
 * The template a VM is built with (custom_cpu_template.rs `get_cpu_template`): the custom one
 * as given; a static one only on a host it applies to (`supported`: KVM_GET_SUPPORTED_CPUID,
 * whose leaves 0 and 1 are the host's; throws CpuTemplateError otherwise); else the empty
 * template. The API keeps at most one of the two (a PUT of either replaces the other).
 */
export function cpuTemplateInEffect(choice: CpuTemplateChoice, supported: readonly CpuidEntry[]): CustomCpuTemplate {
  if (choice.custom) return choice.custom;
  if (!choice.staticName) return EMPTY_CPU_TEMPLATE;
  checkStaticTemplateHost(choice.staticName, supported);
  return staticCpuTemplate(choice.staticName);
}
