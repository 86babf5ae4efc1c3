/**
 * PUT /cpu-config: an x86_64 custom CPU template (firecracker src/vmm/src/vmm_config/ CpuConfig,
 * cpu_config/x86_64/custom_cpu_template.rs, templates_serde.rs). Numbers are strings with a
 * `0x`/`0b` prefix, bitmaps are `0b` + 0/1/x characters (x = leave the bit alone).
 * aarch64-only fields (`reg_modifiers`, `vcpu_features`) are unknown fields on x86_64.
 */
import { Desc, customError, custom, deserialize, field, int, seq, str, struct } from './serde.js';
import { parseBitmap, type CustomCpuTemplate, type KvmCapability, type RegisterValueFilter } from '../arch/x86_64/cpu-template.js';

// The template's shape is the arch layer's (src/arch/x86_64/cpu-template.ts applies it).
export type {
  CustomCpuTemplate, KvmCapability, RegisterValueFilter, CpuidRegisterModifier, CpuidLeafModifier, RegisterModifier,
} from '../arch/x86_64/cpu-template.js';

/** Rust `ParseIntError` Display and Debug, for the template error texts. */
function parseUint(s: string, radix: number, bits: number): { ok: bigint } | { display: string; debug: string } {
  const body = s.startsWith('+') ? s.slice(1) : s;
  if (s.length === 0) return { display: 'cannot parse integer from empty string', debug: 'ParseIntError { kind: Empty }' };
  const digits = radix === 2 ? /^[01]+$/ : radix === 16 ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/;
  if (!digits.test(body)) return { display: 'invalid digit found in string', debug: 'ParseIntError { kind: InvalidDigit }' };
  const prefix = radix === 2 ? '0b' : radix === 16 ? '0x' : '';
  const v = BigInt(prefix + body);
  if (v >= 1n << BigInt(bits)) return { display: 'number too large to fit in target type', debug: 'ParseIntError { kind: PosOverflow }' };
  return { ok: v };
}

/** `deserialize_from_str_u32`: `0x`/`0b`-prefixed u32. */
function hexOrBinU32(s: string): number {
  const radix = s.startsWith('0b') ? 2 : s.startsWith('0x') ? 16 : 0;
  if (radix === 0) {
    throw customError(
      `No supported number system prefix found in value [${s}]. Make sure to prefix the number with '0x' for hexadecimal numbers or '0b' for binary numbers.`,
    );
  }
  const r = parseUint(s.slice(2), radix, 32);
  if ('ok' in r) return Number(r.ok);
  throw customError(`Failed to parse string [${s}] as a number for CPU template - ${r.debug}`);
}

/** `RegisterValueFilter` from its tri-state text, with the deserializer's error texts. */
function bitmap(bits: number): (s: string) => RegisterValueFilter<bigint> {
  return (s) => {
    const r = parseBitmap(s, bits);
    if ('ok' in r) return r.ok;
    if ('tooLong' in r) throw customError(`Failed to parse string [${s}] as a bitmap - string is too long`);
    throw customError(`Failed to parse string [${s}] as a bitmap - unknown character: ${r.badChar}`);
  };
}

const KVM_CAPABILITY = custom<string>(str, (s) => {
  const remove = s.startsWith('!');
  const r = parseUint(remove ? s.slice(1) : s, 10, 32);
  if ('ok' in r) return { op: remove ? 'remove' : 'add', cap: Number(r.ok) } satisfies KvmCapability;
  throw customError(`Failed to parse string [${s}] as a kvm capability - can not convert to numeric: ${r.display}`);
});

const CPUID_REGISTER = custom<string>(str, (s) => {
  if (s === 'eax' || s === 'ebx' || s === 'ecx' || s === 'edx') return s;
  throw customError('Invalid CPUID register. Must be one of [eax, ebx, ecx, edx]');
});

const U32_STR = custom<string>(str, hexOrBinU32);
const BITMAP32 = custom<string>(str, (s) => {
  const b = bitmap(32)(s);
  return { filter: Number(b.filter), value: Number(b.value) };
});

/** serde description of the x86_64 `CustomCpuTemplate` (deny_unknown_fields at top level). */
export const CUSTOM_CPU_TEMPLATE: Desc = struct('CustomCpuTemplate', [
  field('kvm_capabilities', seq(KVM_CAPABILITY), () => []),
  field(
    'cpuid_modifiers',
    seq(
      struct(
        'CpuidLeafModifier',
        [
          field('leaf', U32_STR),
          field('subleaf', U32_STR),
          field('flags', int('u32')),
          field('modifiers', seq(struct('CpuidRegisterModifier', [field('register', CPUID_REGISTER), field('bitmap', BITMAP32)], false))),
        ],
        false,
      ),
    ),
    () => [],
  ),
  field('msr_modifiers', seq(struct('RegisterModifier', [field('addr', U32_STR), field('bitmap', custom<string>(str, bitmap(64)))], false)), () => []),
]);


/** Parses a PUT /cpu-config body (`CustomCpuTemplate::try_from(&[u8])`). */
export function parseCpuConfig(body: Uint8Array | string): CustomCpuTemplate {
  return deserialize<CustomCpuTemplate>(body, CUSTOM_CPU_TEMPLATE);
}
