/**
 * GET/PUT/PATCH /machine-config (firecracker src/vmm/src/vmm_config/ MachineConfiguration, vmm_config/machine_config.rs
 * at v1.16.1). PUT requires `vcpu_count` and `mem_size_mib`; PATCH takes any non-empty subset;
 * both become a `MachineConfigUpdate` applied by `applyMachineConfigUpdate`.
 *
 * v1.16.1 knows huge pages `None` and `2M` only (`Transparent` arrived after 1.16).
 */
import { ConfigError } from './errors.js';
import { Desc, bool, deserialize, enumOf, field, int, opt, struct } from './serde.js';
import type { CustomCpuTemplate } from './cpu-config.js';
import type { HugePages } from '../memory/huge-pages.js';

/** Default vCPU count before any PUT. */
export const DEFAULT_VCPU_COUNT = 1;
/** Default guest memory before any PUT (DEFAULT_MEM_SIZE_MIB). */
export const DEFAULT_MEM_SIZE_MIB = 128;
/** MAX_SUPPORTED_VCPUS. */
export const MAX_SUPPORTED_VCPUS = 32;

/** Static (deprecated) CPU templates, in Firecracker's declaration order. */
export const STATIC_CPU_TEMPLATES = ['C3', 'T2', 'T2S', 'None', 'T2CL', 'T2A'] as const;
/** A static CPU template name. */
export type StaticCpuTemplate = (typeof STATIC_CPU_TEMPLATES)[number];
/** Guest memory page configuration (`HugePageConfig`); the memory layer maps it (src/memory/huge-pages.ts). */
export type HugePageConfig = HugePages;

/** The CPU template in effect: a static one (deprecated API) or a custom one from /cpu-config. */
export type CpuTemplateType = { kind: 'static'; name: Exclude<StaticCpuTemplate, 'None'> } | { kind: 'custom'; template: CustomCpuTemplate };

/** The stored machine configuration. */
export interface MachineConfig {
  vcpu_count: number;
  mem_size_mib: number;
  smt: boolean;
  cpu_template: CpuTemplateType | null;
  track_dirty_pages: boolean;
  huge_pages: HugePageConfig;
}

/** A PUT or PATCH: absent (null) fields keep their current value. */
export interface MachineConfigUpdate {
  vcpu_count: number | null;
  mem_size_mib: number | null;
  smt: boolean | null;
  cpu_template: StaticCpuTemplate | null;
  track_dirty_pages: boolean | null;
  huge_pages: HugePageConfig | null;
}

const HUGE_PAGES = enumOf('None', '2M');
const CPU_TEMPLATE = enumOf(...STATIC_CPU_TEMPLATES);

/** serde description of `MachineConfig` (PUT body). */
export const MACHINE_CONFIG: Desc = struct('MachineConfig', [
  field('vcpu_count', int('u8')),
  field('mem_size_mib', int('usize')),
  field('smt', bool, () => false),
  field('cpu_template', opt(CPU_TEMPLATE), () => null),
  field('track_dirty_pages', bool, () => false),
  field('huge_pages', HUGE_PAGES, () => 'None'),
]);

/** serde description of `MachineConfigUpdate` (PATCH body). */
const MACHINE_CONFIG_UPDATE: Desc = struct('MachineConfigUpdate', [
  field('vcpu_count', opt(int('u8'))),
  field('mem_size_mib', opt(int('usize'))),
  field('smt', opt(bool)),
  field('cpu_template', opt(CPU_TEMPLATE)),
  field('track_dirty_pages', opt(bool)),
  field('huge_pages', opt(HUGE_PAGES)),
]);


/** Reply schema of GET /machine-config (cpu_template omitted when none/custom). */
export const MACHINE_CONFIG_REPLY_SCHEMA = {
  type: 'object',
  properties: {
    vcpu_count: { type: 'integer' },
    mem_size_mib: { type: 'integer' },
    smt: { type: 'boolean' },
    cpu_template: { type: 'string' },
    track_dirty_pages: { type: 'boolean' },
    huge_pages: { type: 'string' },
  },
  required: ['vcpu_count', 'mem_size_mib', 'smt', 'track_dirty_pages', 'huge_pages'],
} as const;

/** The machine configuration before any PUT (firecracker src/vmm/src/vmm_config/: 1 vCPU, 128 MiB). */
export function defaultMachineConfig(): MachineConfig {
  return { vcpu_count: DEFAULT_VCPU_COUNT, mem_size_mib: DEFAULT_MEM_SIZE_MIB, smt: false, cpu_template: null, track_dirty_pages: false, huge_pages: 'None' };
}

/** Parses a PUT body into an update carrying every field (`MachineConfigUpdate::from`). */
export function parseMachineConfigPut(body: Uint8Array | string): MachineConfigUpdate {
  const c = deserialize<MachineConfigUpdate & { vcpu_count: number; mem_size_mib: number }>(body, MACHINE_CONFIG);
  return { ...c };
}

/** Parses a PATCH body. */
export function parseMachineConfigPatch(body: Uint8Array | string): MachineConfigUpdate {
  return deserialize<MachineConfigUpdate>(body, MACHINE_CONFIG_UPDATE);
}

/** `MachineConfigUpdate::is_empty`: a PATCH with no field set is "Empty PATCH request.". */
export function isEmptyUpdate(u: MachineConfigUpdate): boolean {
  return Object.values(u).every((v) => v === null);
}

/** MachineConfigError texts (displaydoc of machine_config.rs). */
export const MACHINE_CONFIG_ERRORS = {
  IncompatibleBalloonSize: 'The memory size (MiB) is smaller than the previously set balloon device target size.',
  InvalidMemorySize: 'The memory size (MiB) is either 0, or not a multiple of the configured page size.',
  InvalidVcpuCount: `The number of vCPUs must be greater than 0, less than ${MAX_SUPPORTED_VCPUS} and must be 1 or an even number if SMT is enabled.`,
} as const;

/**
 * `MachineConfig::update`: validates the merged result. A PUT without cpu_template keeps the
 * previous template (code quirk); `None` clears it.
 */
export function applyMachineConfigUpdate(cur: MachineConfig, u: MachineConfigUpdate): MachineConfig {
  const vcpu = u.vcpu_count ?? cur.vcpu_count;
  const smt = u.smt ?? cur.smt;
  if (vcpu === 0 || vcpu > MAX_SUPPORTED_VCPUS) throw new ConfigError('machine-config', MACHINE_CONFIG_ERRORS.InvalidVcpuCount);
  if (smt && vcpu > 1 && vcpu % 2 === 1) throw new ConfigError('machine-config', MACHINE_CONFIG_ERRORS.InvalidVcpuCount);
  const mem = u.mem_size_mib ?? cur.mem_size_mib;
  const pages = u.huge_pages ?? cur.huge_pages;
  if (mem === 0 || (pages === '2M' && mem % 2 !== 0)) throw new ConfigError('machine-config', MACHINE_CONFIG_ERRORS.InvalidMemorySize);
  let cpu_template = cur.cpu_template;
  if (u.cpu_template === 'None') cpu_template = null;
  else if (u.cpu_template !== null) cpu_template = { kind: 'static', name: u.cpu_template };
  return {
    vcpu_count: vcpu,
    mem_size_mib: mem,
    smt,
    cpu_template,
    track_dirty_pages: u.track_dirty_pages ?? cur.track_dirty_pages,
    huge_pages: pages,
  };
}

/** The GET /machine-config object: `cpu_template` only when a static template is set. */
export function machineConfigJson(m: MachineConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { vcpu_count: m.vcpu_count, mem_size_mib: m.mem_size_mib, smt: m.smt };
  if (m.cpu_template?.kind === 'static') out.cpu_template = m.cpu_template.name;
  out.track_dirty_pages = m.track_dirty_pages;
  out.huge_pages = m.huge_pages;
  return out;
}
