/**
 * `--config-file` (resources.rs `VmResources::from_json`): the GET /vm/config shape
 * read back, applied in Firecracker's order — logger, metrics, machine-config, cpu-config,
 * boot-source, drives, network-interfaces, vsock, balloon, --metadata into MMDS, mmds-config,
 * entropy, pmem, memory-hotplug, and Kindling's `fs` (virtio-fs). Top-level unknown keys are ignored; `boot-source` and `drives`
 * are required. Errors read like `ResourcesError` ("Invalid JSON: ...", "Block device error: ...").
 */
import { readFileSync } from 'node:fs';
import { ApiLayerError } from '../errors.js';
import { BALLOON, BalloonDeviceConfig } from './balloon.js';
import { BOOT_SOURCE, BootSourceConfig } from './boot-source.js';
import { CUSTOM_CPU_TEMPLATE, CustomCpuTemplate } from './cpu-config.js';
import { BLOCK_DEVICE, BlockDeviceConfig } from './drives.js';
import { ENTROPY, EntropyDeviceConfig } from './entropy.js';
import { ConfigError, ioErrorText } from './errors.js';
import { LOGGER, LoggerConfig } from './logger.js';
import { MACHINE_CONFIG, MachineConfigUpdate } from './machine-config.js';
import { MEMORY_HOTPLUG, MemoryHotplugConfig } from './memory-hotplug.js';
import { METRICS, MetricsConfig } from './metrics.js';
import { MMDS_CONFIG, MmdsConfig } from './mmds-config.js';
import { NETWORK_INTERFACE, NetworkInterfaceConfig } from './network-interfaces.js';
import { PMEM, PmemConfig } from './pmem.js';
import { FS, FsDeviceConfig } from './fs.js';
import { VmResources, VmResourcesOptions } from './resources.js';
import { JsonValue, SerdeError, parseJsonValue, serdeJsonStringify } from './serde-read.js';
import { Desc, any, custom, customError, deserialize, field, opt, seq, struct } from './serde.js';
import { VSOCK, VsockDeviceConfig } from './vsock.js';

/** A config-file failure; `message` is the `ResourcesError` text Firecracker prints. */
export class ConfigFileError extends ApiLayerError {
  /** True when Firecracker would panic (abort) instead of returning an error. */
  readonly panic: boolean;
  constructor(message: string, panic = false, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', message, 400, options);
    this.panic = panic;
  }
}

/** `cpu-config`: an inline template or a path to one (serde untagged enum). */
type CpuConfigOrPath = { path: string } | { template: CustomCpuTemplate };

const CPU_CONFIG_OR_PATH = custom<JsonValue>(any, (v) => {
  if (typeof v === 'string') return { path: v } satisfies CpuConfigOrPath;
  try {
    return { template: deserialize<CustomCpuTemplate>(serdeJsonStringify(v), CUSTOM_CPU_TEMPLATE) } satisfies CpuConfigOrPath;
  } catch {
    throw customError('data did not match any variant of untagged enum CustomCpuTemplateOrPath');
  }
});

/** serde description of `VmmConfig` (kebab-case keys, unknown top-level keys ignored). */
const VMM_CONFIG: Desc = struct(
  'VmmConfig',
  [
    field('balloon', opt(BALLOON)),
    field('drives', seq(BLOCK_DEVICE)),
    field('boot-source', BOOT_SOURCE),
    field('cpu-config', opt(CPU_CONFIG_OR_PATH)),
    field('logger', opt(LOGGER)),
    field('machine-config', opt(MACHINE_CONFIG)),
    field('metrics', opt(METRICS)),
    field('mmds-config', opt(MMDS_CONFIG)),
    field('network-interfaces', seq(NETWORK_INTERFACE), () => []),
    field('vsock', opt(VSOCK)),
    field('entropy', opt(ENTROPY)),
    field('pmem', seq(PMEM), () => []),
    field('fs', seq(FS), () => []),
    field('memory-hotplug', opt(MEMORY_HOTPLUG)),
  ],
  false,
);

/** The parsed config file. */
export interface VmmConfigFile {
  balloon: BalloonDeviceConfig | null;
  drives: BlockDeviceConfig[];
  'boot-source': BootSourceConfig;
  'cpu-config': CpuConfigOrPath | null;
  logger: LoggerConfig | null;
  'machine-config': MachineConfigUpdate | null;
  metrics: MetricsConfig | null;
  'mmds-config': MmdsConfig | null;
  'network-interfaces': NetworkInterfaceConfig[];
  vsock: VsockDeviceConfig | null;
  entropy: EntropyDeviceConfig | null;
  pmem: PmemConfig[];
  /** Kindling's own: virtio-fs devices, each a PUT /fs body (src/config/fs.ts). */
  fs: FsDeviceConfig[];
  'memory-hotplug': MemoryHotplugConfig | null;
}

/** What the loader needs besides the JSON: hooks into the logger/metrics and --metadata. */
export interface ConfigFileOptions extends VmResourcesOptions {
  /** Applies `logger` (throws a ConfigError('logger') on failure). */
  configureLogger?: (cfg: LoggerConfig) => void;
  /** Applies `metrics` (throws a ConfigError('metrics') on failure). */
  configureMetrics?: (cfg: MetricsConfig) => void;
  /** The --metadata file contents, put into MMDS before mmds-config is applied. */
  metadata?: string | null;
}

function wrap<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigFileError(e.resourcesMessage, false, { cause: e });
    throw e;
  }
}

/** Builds a `VmResources` from a config file, in Firecracker's order (firecracker src/vmm/src/resources.rs). */
export function fromConfigFile(json: string | Uint8Array, opts: ConfigFileOptions = {}): VmResources {
  let cfg: VmmConfigFile;
  try {
    cfg = deserialize<VmmConfigFile>(json, VMM_CONFIG);
  } catch (e) {
    if (e instanceof SerdeError) throw new ConfigFileError(`Invalid JSON: ${e.message}`, false, { cause: e });
    throw e;
  }
  if (cfg.logger && opts.configureLogger) wrap(() => opts.configureLogger!(cfg.logger!));
  if (cfg.metrics && opts.configureMetrics) wrap(() => opts.configureMetrics!(cfg.metrics!));
  const res = new VmResources(opts);
  if (cfg['machine-config']) wrap(() => res.updateMachineConfig(cfg['machine-config']!));
  const cpu = cfg['cpu-config'];
  if (cpu) {
    if ('path' in cpu) {
      let text: string;
      try {
        text = readFileSync(cpu.path, 'utf8');
      } catch (e) {
        throw new ConfigFileError(`File operation error: ${ioErrorText(e)}`, false, { cause: e });
      }
      try {
        res.setCustomCpuTemplate(deserialize<CustomCpuTemplate>(text, CUSTOM_CPU_TEMPLATE));
      } catch (e) {
        if (e instanceof SerdeError) throw new ConfigFileError(`Invalid JSON: ${e.message}`, false, { cause: e });
        throw e;
      }
    } else {
      res.setCustomCpuTemplate(cpu.template);
    }
  }
  wrap(() => res.setBootSource(cfg['boot-source']));
  for (const d of cfg.drives) wrap(() => res.insertDrive(d));
  for (const n of cfg['network-interfaces']) wrap(() => res.insertNetworkInterface(n));
  if (cfg.vsock) wrap(() => res.setVsock(cfg.vsock!));
  if (cfg.balloon) wrap(() => res.setBalloon(cfg.balloon!));
  if (opts.metadata != null) {
    let data: JsonValue;
    try {
      data = parseJsonValue(opts.metadata);
    } catch (e) {
      throw new ConfigFileError(`MMDS error: metadata provided not valid json: ${(e as Error).message}`, true, { cause: e });
    }
    wrap(() => res.mmdsOrDefault().put(data));
  }
  if (cfg['mmds-config']) wrap(() => res.setMmdsConfig(cfg['mmds-config']!));
  if (cfg.entropy) wrap(() => res.setEntropy(cfg.entropy!));
  for (const p of cfg.pmem) wrap(() => res.insertPmem(p));
  for (const f of cfg.fs) wrap(() => res.insertFs(f));
  if (cfg['memory-hotplug']) wrap(() => res.setMemoryHotplug(cfg['memory-hotplug']!));
  return res;
}
