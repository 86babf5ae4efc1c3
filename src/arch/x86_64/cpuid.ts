/**
 * Per-vCPU CPUID normalization (firecracker src/vmm/src/arch/x86_64/regs.rs; firecracker cpu_config/x86_64/cpuid/normalize.rs,
 * intel/normalize.rs, amd/normalize.rs; docs/cpu_templates/cpuid-normalization.md).
 *
 * Input is KVM_GET_SUPPORTED_CPUID's list (after any CPU template); output is a new list for
 * KVM_SET_CPUID2 of one vCPU: its APIC id, the topology (one socket, `vcpuCount` logical
 * CPUs, two threads per core when `smt`), hypervisor/TSC-deadline bits, no PMU, and a generic
 * brand string. The input is never modified.
 *
 * Firecracker copies a few leaves from the host's CPUID (leaf 0 vendor, 0x80000005/6 cache
 * info, AMD 0x8000001D/E topology). JavaScript cannot execute CPUID, and KVM's supported list
 * already carries the host's values for these leaves, so Kindling uses the entries given, or
 * the optional `host` entries when the caller has read the host's CPUID some other way.
 *
 * Register fields are u32 numbers; every write goes through `setField`/`setBit`, which keep
 * values unsigned and reject a value that does not fit its field.
 */
import type { CpuidEntry } from '../../kvm/kvm.js';
import { CpuidError } from '../../errors.js';

/** The CPU vendors Kindling (like Firecracker) supports. */
export type CpuVendor = 'intel' | 'amd';
/** Leaf 0 vendor strings (EBX, EDX, ECX order). */
export const VENDOR_ID_INTEL = 'GenuineIntel';
export const VENDOR_ID_AMD = 'AuthenticAMD';

/** What a vCPU's CPUID is normalized for. */
export interface CpuidNormalizeOptions {
  /** This vCPU's index = its APIC id, 0 ≤ vcpuIndex < vcpuCount. */
  vcpuIndex: number;
  /** Total vCPUs, 1..CPUID_MAX_VCPUS. */
  vcpuCount: number;
  /** Two threads per core (machine-config `smt`); only meaningful with vcpuCount > 1. */
  smt: boolean;
  /** Vendor branch to apply; default: the vendor in leaf 0 of the entries. */
  vendor?: CpuVendor;
  /** Host CPUID values for the leaves Firecracker copies from the host (see header). */
  host?: readonly CpuidEntry[];
}

// --- Leaves (Intel SDM vol. 2A CPUID; AMD APM vol. 3 Appendix E) ---
export const CPUID_LEAF_VENDOR = 0x0;
export const CPUID_LEAF_FEATURES = 0x1;
export const CPUID_LEAF_CACHE_PARAMS = 0x4;
export const CPUID_LEAF_THERMAL_POWER = 0x6;
export const CPUID_LEAF_EXT_FEATURES = 0x7;
export const CPUID_LEAF_PMU = 0xa;
export const CPUID_LEAF_EXT_TOPOLOGY = 0xb;
export const CPUID_LEAF_V2_EXT_TOPOLOGY = 0x1f;
export const CPUID_LEAF_EXT_FEATURES_AMD = 0x8000_0001;
export const CPUID_LEAF_BRAND_STRING = [0x8000_0002, 0x8000_0003, 0x8000_0004] as const;
export const CPUID_LEAF_L1_CACHE_AMD = 0x8000_0005;
export const CPUID_LEAF_L2_CACHE = 0x8000_0006;
export const CPUID_LEAF_ADDR_SIZES = 0x8000_0008;
export const CPUID_LEAF_CACHE_TOPOLOGY_AMD = 0x8000_001d;
export const CPUID_LEAF_EXT_APIC_ID_AMD = 0x8000_001e;
/** kvm_cpuid_entry2.flags: the subleaf index (ECX) selects the entry. */
export const KVM_CPUID_FLAG_SIGNIFICANT_INDEX = 1;

/** A bit field of a CPUID register. */
export interface BitField { readonly lsb: number; readonly width: number }
const field = (msb: number, lsb: number): BitField => ({ lsb, width: msb - lsb + 1 });

// Leaf 1.
export const LEAF1_EBX_CLFLUSH_SIZE = field(15, 8); // in 8-byte units
export const LEAF1_EBX_MAX_LOGICAL_CPUS = field(23, 16);
export const LEAF1_EBX_INITIAL_APIC_ID = field(31, 24);
export const LEAF1_ECX_PDCM = 15;
export const LEAF1_ECX_TSC_DEADLINE = 24;
export const LEAF1_ECX_HYPERVISOR = 31;
export const LEAF1_EDX_HTT = 28;
/** CLFLUSH line size 64 bytes = 8 × 8. */
export const CLFLUSH_LINE_SIZE_QWORDS = 8;
// Leaves 4 (Intel) and 0x8000001D (AMD): deterministic cache parameters.
export const CACHE_EAX_LEVEL = field(7, 5);
export const CACHE_EAX_TYPE = field(4, 0);
export const CACHE_EAX_MAX_SHARING_IDS = field(25, 14);
export const LEAF4_EAX_MAX_CORE_IDS = field(31, 26);
// Leaf 6.
export const LEAF6_EAX_TURBO_BOOST = 1;
export const LEAF6_ECX_EPB = 3;
// Leaf 7 subleaf 0.
export const LEAF7_EBX_FDP_EXCPTN_ONLY = 6;
export const LEAF7_EBX_ZERO_FCS_FDS = 13;
export const LEAF7_ECX_WAITPKG = 5;
export const LEAF7_EDX_ARCH_CAPABILITIES = 29;
// Leaf 0xB (and 0x1F).
export const LEAFB_EAX_APIC_ID_SHIFT = field(4, 0);
export const LEAFB_EBX_LOGICAL_CPUS = field(15, 0);
export const LEAFB_ECX_LEVEL_NUMBER = field(7, 0);
export const LEAFB_ECX_LEVEL_TYPE = field(15, 8);
export const LEAFB_LEVEL_TYPE_SMT = 1;
export const LEAFB_LEVEL_TYPE_CORE = 2;
/** Core-level APIC id shift: log2 of Firecracker's MAX_SUPPORTED_VCPUS (32). */
export const LEAFB_CORE_LEVEL_SHIFT = 5;
// AMD extended leaves.
export const LEAF80000001_ECX_TOPOEXT = 22;
export const LEAF80000006_EDX_RESERVED = field(17, 16);
export const LEAF80000008_ECX_APIC_ID_SIZE = field(15, 12);
export const LEAF80000008_ECX_NC = field(7, 0);
/** ApicIdSize 7: up to 128 logical CPUs in the package. */
export const AMD_APIC_ID_SIZE = 7;
export const LEAF8000001E_EBX_COMPUTE_UNIT_ID = field(7, 0);
export const LEAF8000001E_EBX_THREADS_PER_CU = field(15, 8);
export const LEAF8000001E_ECX_NODES_PER_PROCESSOR = field(10, 8);
export const LEAF8000001E_ECX_NODE_ID = field(7, 0);

/**
 * Most vCPUs the topology fields can describe: leaf 4 EAX[31:26] holds cores − 1 in 6 bits
 * (64 cores without SMT). Firecracker's own limit is 32.
 */
export const CPUID_MAX_VCPUS = 64;
/** Brand strings (12 registers × 4 bytes, NUL padded). */
export const BRAND_STRING_LENGTH = 48;
export const INTEL_BRAND_STRING = 'Intel(R) Xeon(R) Processor';
export const INTEL_BRAND_STRING_FREQ_BASE = 'Intel(R) Xeon(R) Processor @';
export const AMD_BRAND_STRING = 'AMD EPYC';

type Reg = 'eax' | 'ebx' | 'ecx' | 'edx';

/** Sets `f` of `x` to `v`; throws CpuidError when `v` does not fit. */
export function setField(x: number, f: BitField, v: number): number {
  if (!Number.isInteger(v) || v < 0 || (f.width < 32 && v >= 2 ** f.width)) {
    throw new CpuidError(`value ${v} does not fit CPUID bits ${f.lsb + f.width - 1}:${f.lsb}`);
  }
  const mask = f.width === 32 ? 0xffff_ffff : ((2 ** f.width - 1) * 2 ** f.lsb);
  return ((x & ~mask) | (v * 2 ** f.lsb)) >>> 0;
}

/** Reads `f` of `x`. */
export function getField(x: number, f: BitField): number {
  return Math.floor((x >>> 0) / 2 ** f.lsb) % 2 ** f.width;
}

/** Sets or clears bit `bit` of `x`. */
export function setBit(x: number, bit: number, on: boolean): number {
  return on ? (x | (1 << bit)) >>> 0 : (x & ~(1 << bit)) >>> 0;
}

/** Reads the 12-character vendor string of a leaf-0 entry. */
function vendorString(e: CpuidEntry): string {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(e.ebx >>> 0, 0);
  b.writeUInt32LE(e.edx >>> 0, 4);
  b.writeUInt32LE(e.ecx >>> 0, 8);
  return b.toString('latin1');
}

/** The vendor named by leaf 0 of `entries`; throws CpuidError for a missing leaf or other vendors. */
export function cpuVendor(entries: readonly CpuidEntry[]): CpuVendor {
  const leaf0 = entries.find((e) => e.function === CPUID_LEAF_VENDOR);
  if (!leaf0) throw new CpuidError('CPUID leaf 0 (vendor) is missing');
  const v = vendorString(leaf0);
  if (v === VENDOR_ID_INTEL) return 'intel';
  if (v === VENDOR_ID_AMD) return 'amd';
  throw new CpuidError(`unsupported CPU vendor ${JSON.stringify(v)}`);
}

/** A mutable working copy of a CPUID list, looked up by (leaf, subleaf). */
class CpuidTable {
  readonly list: CpuidEntry[];
  constructor(entries: readonly CpuidEntry[]) {
    this.list = entries.map((e) => ({ ...e }));
  }
  get(fn: number, index = 0): CpuidEntry | undefined {
    return this.list.find((e) => e.function === fn && e.index === index);
  }
  /** The entry, inserted as zeros (with `flags`) when absent. */
  ensure(fn: number, index = 0, flags = 0): CpuidEntry {
    let e = this.get(fn, index);
    if (!e) {
      e = { function: fn, index, flags, eax: 0, ebx: 0, ecx: 0, edx: 0 };
      this.list.push(e);
    }
    return e;
  }
  require(fn: number, index = 0): CpuidEntry {
    const e = this.get(fn, index);
    if (!e) throw new CpuidError(`CPUID leaf 0x${fn.toString(16)} subleaf ${index} is missing`);
    return e;
  }
  /** Consecutive subleaves 0, 1, ... of `fn` that exist. */
  subleaves(fn: number): CpuidEntry[] {
    const out: CpuidEntry[] = [];
    for (let i = 0; ; i++) {
      const e = this.get(fn, i);
      if (!e) return out;
      out.push(e);
    }
  }
  /** Replaces all subleaves of `fn` with `entries`. */
  replaceLeaf(fn: number, entries: CpuidEntry[]): void {
    for (let i = this.list.length - 1; i >= 0; i--) if (this.list[i]!.function === fn) this.list.splice(i, 1);
    this.list.push(...entries);
  }
}

const copyRegs = (dst: CpuidEntry, src: CpuidEntry, regs: readonly Reg[]): void => {
  for (const r of regs) dst[r] = src[r] >>> 0;
};

/** Smallest power of two ≥ n (n ≥ 1). */
const nextPowerOfTwo = (n: number): number => 2 ** Math.ceil(Math.log2(n));

/**
 * Normalizes `entries` for one vCPU (firecracker src/vmm/src/arch/x86_64/regs.rs). Throws CpuidError when leaf 0 or 1 is
 * missing, the vendor is neither Intel nor AMD, or the topology is out of range.
 */
export function normalizeCpuid(entries: readonly CpuidEntry[], opts: CpuidNormalizeOptions): CpuidEntry[] {
  const { vcpuIndex, vcpuCount, smt } = opts;
  if (!Number.isInteger(vcpuCount) || vcpuCount < 1 || vcpuCount > CPUID_MAX_VCPUS) {
    throw new CpuidError(`vCPU count ${vcpuCount} outside 1..${CPUID_MAX_VCPUS}`);
  }
  if (!Number.isInteger(vcpuIndex) || vcpuIndex < 0 || vcpuIndex >= vcpuCount) {
    throw new CpuidError(`vCPU index ${vcpuIndex} outside 0..${vcpuCount - 1}`);
  }
  const vendor = opts.vendor ?? cpuVendor(entries);
  const t = new CpuidTable(entries);
  const host = new CpuidTable(opts.host ?? []);
  // Two threads per core only when SMT is on and there is a second vCPU to pair with.
  const cpuBits = smt && vcpuCount > 1 ? 1 : 0;
  const cpusPerCore = 1 << cpuBits;

  // Leaf 0: the host's vendor string.
  const leaf0 = t.require(CPUID_LEAF_VENDOR);
  const hostLeaf0 = host.get(CPUID_LEAF_VENDOR);
  if (hostLeaf0) copyRegs(leaf0, hostLeaf0, ['ebx', 'ecx', 'edx']);

  // Leaf 1: CLFLUSH size, logical CPU count, APIC id, feature bits.
  const leaf1 = t.require(CPUID_LEAF_FEATURES);
  leaf1.ebx = setField(leaf1.ebx, LEAF1_EBX_CLFLUSH_SIZE, CLFLUSH_LINE_SIZE_QWORDS);
  leaf1.ebx = setField(leaf1.ebx, LEAF1_EBX_MAX_LOGICAL_CPUS, nextPowerOfTwo(vcpuCount));
  leaf1.ebx = setField(leaf1.ebx, LEAF1_EBX_INITIAL_APIC_ID, vcpuIndex);
  leaf1.ecx = setBit(leaf1.ecx, LEAF1_ECX_PDCM, false); // no perf capabilities MSR (no PMU)
  leaf1.ecx = setBit(leaf1.ecx, LEAF1_ECX_TSC_DEADLINE, true); // KVM's LAPIC emulates it
  leaf1.ecx = setBit(leaf1.ecx, LEAF1_ECX_HYPERVISOR, true);
  leaf1.edx = setBit(leaf1.edx, LEAF1_EDX_HTT, vcpuCount > 1);

  normalizeExtendedTopology(t, vcpuIndex, vcpuCount, cpuBits, cpusPerCore);

  // 0x80000005/6: host cache/TLB info; 0x80000006 EDX[17:16] are reserved.
  for (const fn of [CPUID_LEAF_L1_CACHE_AMD, CPUID_LEAF_L2_CACHE]) {
    const e = t.get(fn);
    const h = host.get(fn);
    if (e && h) copyRegs(e, h, ['eax', 'ebx', 'ecx', 'edx']);
  }
  const l2 = t.get(CPUID_LEAF_L2_CACHE);
  if (l2) l2.edx = setField(l2.edx, LEAF80000006_EDX_RESERVED, 0);

  if (vendor === 'intel') normalizeIntel(t, host, vcpuCount, cpusPerCore);
  else normalizeAmd(t, host, vcpuIndex, vcpuCount, cpusPerCore);
  return t.list;
}

/** Leaf 0xB: SMT level (subleaf 0) and core level (subleaf 1); x2APIC id = vCPU index. */
function normalizeExtendedTopology(t: CpuidTable, index: number, count: number, cpuBits: number, cpusPerCore: number): void {
  t.ensure(CPUID_LEAF_EXT_TOPOLOGY, 0, KVM_CPUID_FLAG_SIGNIFICANT_INDEX);
  t.ensure(CPUID_LEAF_EXT_TOPOLOGY, 1, KVM_CPUID_FLAG_SIGNIFICANT_INDEX);
  for (const e of t.subleaves(CPUID_LEAF_EXT_TOPOLOGY)) {
    e.flags = KVM_CPUID_FLAG_SIGNIFICANT_INDEX;
    e.eax = 0; e.ebx = 0; e.ecx = 0; e.edx = index >>> 0;
    if (e.index === 0) {
      e.eax = setField(0, LEAFB_EAX_APIC_ID_SHIFT, cpuBits);
      e.ebx = setField(0, LEAFB_EBX_LOGICAL_CPUS, cpusPerCore);
      e.ecx = setField(0, LEAFB_ECX_LEVEL_TYPE, LEAFB_LEVEL_TYPE_SMT);
    } else if (e.index === 1) {
      // Firecracker's shift is 5 (32 vCPUs); widen it only past that range.
      const shift = Math.max(LEAFB_CORE_LEVEL_SHIFT, Math.ceil(Math.log2(count)));
      e.eax = setField(0, LEAFB_EAX_APIC_ID_SHIFT, shift);
      e.ebx = setField(0, LEAFB_EBX_LOGICAL_CPUS, count);
      e.ecx = setField(setField(0, LEAFB_ECX_LEVEL_NUMBER, 1), LEAFB_ECX_LEVEL_TYPE, LEAFB_LEVEL_TYPE_CORE);
    } else {
      // Further subleaves describe no level (type 0, "invalid"), echoing the input ECX.
      e.ecx = setField(0, LEAFB_ECX_LEVEL_NUMBER, e.index);
    }
  }
}

/** Sets the sharing fields of cache descriptors (leaf 4 or 0x8000001D) for our topology. */
function normalizeCacheSharing(e: CpuidEntry, vcpuCount: number, cpusPerCore: number): void {
  const level = getField(e.eax, CACHE_EAX_LEVEL);
  // L1/L2 are shared by the threads of one core, L3 by every vCPU.
  if (level === 1 || level === 2) e.eax = setField(e.eax, CACHE_EAX_MAX_SHARING_IDS, cpusPerCore - 1);
  else if (level === 3) e.eax = setField(e.eax, CACHE_EAX_MAX_SHARING_IDS, vcpuCount - 1);
}

/** Writes a 48-byte brand string into leaves 0x80000002..4. */
function applyBrandString(t: CpuidTable, brand: Buffer): void {
  CPUID_LEAF_BRAND_STRING.forEach((fn, i) => {
    const e = t.ensure(fn);
    (['eax', 'ebx', 'ecx', 'edx'] as const).forEach((r, j) => { e[r] = brand.readUInt32LE(i * 16 + j * 4); });
  });
}

/** The 48-byte brand string stored in leaves 0x80000002..4 of `t`, or undefined. */
function readBrandString(t: CpuidTable): Buffer | undefined {
  const b = Buffer.alloc(BRAND_STRING_LENGTH);
  for (const [i, fn] of CPUID_LEAF_BRAND_STRING.entries()) {
    const e = t.get(fn);
    if (!e) return undefined;
    (['eax', 'ebx', 'ecx', 'edx'] as const).forEach((r, j) => b.writeUInt32LE(e[r] >>> 0, i * 16 + j * 4));
  }
  return b;
}

/** A brand string padded with NULs to 48 bytes (callers keep it ≤ 48). */
const brandBytes = (s: Buffer | string): Buffer => {
  const b = Buffer.alloc(BRAND_STRING_LENGTH);
  (typeof s === 'string' ? Buffer.from(s, 'latin1') : s).copy(b, 0, 0, BRAND_STRING_LENGTH);
  return b;
};

/**
 * "Intel(R) Xeon(R) Processor @ <host frequency>" (firecracker default_brand_string): the
 * frequency is the number before the host's "[MGT]Hz"; without one, the plain brand string.
 */
export function intelBrandString(hostBrand: Buffer | undefined): Buffer {
  const fallback = brandBytes(INTEL_BRAND_STRING);
  if (!hostBrand) return fallback;
  const s = hostBrand.toString('latin1');
  const unit = s.search(/[MGT]Hz/);
  if (unit < 0) return fallback;
  let start = unit;
  while (start > 0 && /[0-9.]/.test(s[start - 1]!)) start--;
  if (start === 0 || s[start - 1] !== ' ') return fallback;
  const out = INTEL_BRAND_STRING_FREQ_BASE + s.slice(start - 1, unit) + s.slice(unit);
  return out.length > BRAND_STRING_LENGTH ? fallback : brandBytes(out);
}

/** Intel-only normalization (firecracker intel/normalize.rs). */
function normalizeIntel(t: CpuidTable, host: CpuidTable, vcpuCount: number, cpusPerCore: number): void {
  const cores = Math.floor(vcpuCount / cpusPerCore);
  for (const e of t.subleaves(CPUID_LEAF_CACHE_PARAMS)) {
    // An all-zero subleaf ends the cache list.
    if ((e.eax | e.ebx | e.ecx | e.edx) === 0) break;
    normalizeCacheSharing(e, vcpuCount, cpusPerCore);
    e.eax = setField(e.eax, LEAF4_EAX_MAX_CORE_IDS, cores - 1); // one package holds all cores
  }
  const leaf6 = t.get(CPUID_LEAF_THERMAL_POWER);
  if (leaf6) {
    leaf6.eax = setBit(leaf6.eax, LEAF6_EAX_TURBO_BOOST, false);
    leaf6.ecx = setBit(leaf6.ecx, LEAF6_ECX_EPB, false); // no frequency selection in a guest
  }
  const leaf7 = t.get(CPUID_LEAF_EXT_FEATURES, 0);
  if (leaf7) {
    // Recommended by KVM (FPU CS/DS deprecated, FDP only on exceptions); reserved on AMD.
    leaf7.ebx = setBit(leaf7.ebx, LEAF7_EBX_FDP_EXCPTN_ONLY, true);
    leaf7.ebx = setBit(leaf7.ebx, LEAF7_EBX_ZERO_FCS_FDS, true);
    // UMWAIT/TPAUSE would idle the physical CPU; hide them.
    leaf7.ecx = setBit(leaf7.ecx, LEAF7_ECX_WAITPKG, false);
  }
  const pmu = t.get(CPUID_LEAF_PMU);
  if (pmu) { pmu.eax = 0; pmu.ebx = 0; pmu.ecx = 0; pmu.edx = 0; }
  // Leaf 0x1F is the preferred superset of 0xB: when present, it mirrors 0xB exactly.
  if (t.get(CPUID_LEAF_V2_EXT_TOPOLOGY)) {
    const mirrored = t.subleaves(CPUID_LEAF_EXT_TOPOLOGY).map((e) => ({ ...e, function: CPUID_LEAF_V2_EXT_TOPOLOGY }));
    t.replaceLeaf(CPUID_LEAF_V2_EXT_TOPOLOGY, mirrored);
  }
  applyBrandString(t, intelBrandString(readBrandString(host) ?? readBrandString(t)));
}

/** AMD-only normalization (firecracker amd/normalize.rs). */
function normalizeAmd(t: CpuidTable, host: CpuidTable, index: number, vcpuCount: number, cpusPerCore: number): void {
  // Host cache topology (0x8000001D, until cache type 0) and extended APIC id leaf.
  const hostCaches: CpuidEntry[] = [];
  for (const e of host.subleaves(CPUID_LEAF_CACHE_TOPOLOGY_AMD)) {
    if (getField(e.eax, CACHE_EAX_TYPE) === 0) break; // cache type 0: no more caches
    hostCaches.push({ ...e, flags: KVM_CPUID_FLAG_SIGNIFICANT_INDEX });
  }
  if (hostCaches.length) t.replaceLeaf(CPUID_LEAF_CACHE_TOPOLOGY_AMD, hostCaches);
  const hostApic = host.get(CPUID_LEAF_EXT_APIC_ID_AMD);
  if (hostApic) copyRegs(t.ensure(CPUID_LEAF_EXT_APIC_ID_AMD), hostApic, ['eax', 'ebx', 'ecx', 'edx']);

  const leaf7 = t.get(CPUID_LEAF_EXT_FEATURES, 0);
  // KVM advertises IA32_ARCH_CAPABILITIES, which AMD hardware does not have.
  if (leaf7) leaf7.edx = setBit(leaf7.edx, LEAF7_EDX_ARCH_CAPABILITIES, false);
  const ext1 = t.require(CPUID_LEAF_EXT_FEATURES_AMD);
  // Topology extensions: the guest must read 0x8000001D/E.
  ext1.ecx = setBit(ext1.ecx, LEAF80000001_ECX_TOPOEXT, true);
  const sizes = t.get(CPUID_LEAF_ADDR_SIZES);
  if (sizes) {
    sizes.ecx = setField(sizes.ecx, LEAF80000008_ECX_APIC_ID_SIZE, AMD_APIC_ID_SIZE);
    sizes.ecx = setField(sizes.ecx, LEAF80000008_ECX_NC, vcpuCount - 1);
  }
  for (const e of t.subleaves(CPUID_LEAF_CACHE_TOPOLOGY_AMD)) normalizeCacheSharing(e, vcpuCount, cpusPerCore);
  const apic = t.ensure(CPUID_LEAF_EXT_APIC_ID_AMD);
  apic.eax = index >>> 0; // extended APIC id
  apic.ebx = setField(apic.ebx, LEAF8000001E_EBX_COMPUTE_UNIT_ID, Math.floor(index / cpusPerCore));
  apic.ebx = setField(apic.ebx, LEAF8000001E_EBX_THREADS_PER_CU, cpusPerCore - 1);
  apic.ecx = setField(apic.ecx, LEAF8000001E_ECX_NODES_PER_PROCESSOR, 0); // one node
  apic.ecx = setField(apic.ecx, LEAF8000001E_ECX_NODE_ID, 0);
  applyBrandString(t, brandBytes(AMD_BRAND_STRING));
}
