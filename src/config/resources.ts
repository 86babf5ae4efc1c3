/**
 * `VmResources`: the validated pre-boot configuration store (firecracker
 * resources.rs). The API controller and the config-file loader both go through these methods,
 * so PUT/PATCH semantics (same-id replace, root-device-first, one root, duplicate MAC, file checks
 * at PUT time) live in one place. `toVmConfig()` is what a backend receives at InstanceStart;
 * `toFullVmConfiguration()` is the GET /vm/config body.
 */
import { BalloonDeviceConfig, buildBalloon } from './balloon.js';
import { BootSource, BootSourceConfig, KernelCmdline, buildBootSource } from './boot-source.js';
import type { CustomCpuTemplate } from './cpu-config.js';
import { BlockDeviceConfig, DriveConfig, driveJson, insertDrive } from './drives.js';
import { EntropyDeviceConfig, entropyJson } from './entropy.js';
import { ConfigError } from './errors.js';
import { FsDeviceConfig, insertFs } from './fs.js';
import {
  HugePageConfig, MachineConfig, MachineConfigUpdate, MACHINE_CONFIG_ERRORS, StaticCpuTemplate, applyMachineConfigUpdate,
  defaultMachineConfig, machineConfigJson,
} from './machine-config.js';
import { MemoryHotplugConfig, validateMemoryHotplug } from './memory-hotplug.js';
import { MmdsConfig, buildMmdsConfig } from './mmds-config.js';
import { MmdsDataStore } from './mmds-data.js';
import { NetworkInterfaceConfig, OpenTap, insertNetworkInterface, networkInterfaceJson } from './network-interfaces.js';
import { PmemConfig, insertPmem, pmemJson } from './pmem.js';
import { SerialConfig } from './serial.js';
import { VsockConfig, VsockDeviceConfig, buildVsock } from './vsock.js';

/** A network interface as the backend receives it: `mmds` marks MMDS interception (firecracker src/vmm/src/mmds/). */
export interface NetworkInterfaceVmConfig extends NetworkInterfaceConfig {
  mmds: boolean;
}

/**
 * Everything a VM backend needs to build and boot a microVM (InstanceStart).
 * Paths are host paths already checked at PUT time; lists are in attach order (root drive
 * first, firecracker src/vmm/src/devices/virtio/transport/mmio.rs).
 */
export interface VmConfig {
  /** `--id` (the instance id, also the MMDS token AAD). */
  instanceId: string;
  /** vCPUs, memory, SMT, dirty tracking, huge pages and the CPU template in effect. */
  machine: {
    vcpu_count: number;
    mem_size_mib: number;
    smt: boolean;
    track_dirty_pages: boolean;
    huge_pages: HugePageConfig;
    /** Deprecated static template, if one was set through machine-config. */
    cpu_template: Exclude<StaticCpuTemplate, 'None'> | null;
    /** Custom template from PUT /cpu-config. */
    custom_cpu_template: CustomCpuTemplate | null;
  };
  /** Kernel, initrd, raw boot_args and the effective command line (default applied). */
  bootSource: BootSourceConfig & { cmdline: KernelCmdline };
  drives: DriveConfig[];
  networkInterfaces: NetworkInterfaceVmConfig[];
  vsock: VsockConfig | null;
  balloon: BalloonDeviceConfig | null;
  entropy: EntropyDeviceConfig | null;
  pmem: PmemConfig[];
  /** PUT /fs/{id}: virtio-fs devices (Kindling's own resource, src/config/fs.ts). */
  fs: FsDeviceConfig[];
  memoryHotplug: MemoryHotplugConfig | null;
  /** MMDS settings and the live data store, when MMDS is attached to an interface. */
  mmds: { config: MmdsConfig; store: MmdsDataStore } | null;
  serial: SerialConfig;
  /** --boot-timer: add the boot-timer MMIO device (firecracker src/vmm/src/devices/pseudo/boot_timer.rs). */
  bootTimer: boolean;
  /** --enable-pci. */
  pciEnabled: boolean;
}

/** The GET /vm/config body (`VmmConfig` serialized with kebab-case keys). */
export interface FullVmConfiguration {
  balloon: BalloonDeviceConfig | null;
  drives: BlockDeviceConfig[];
  'boot-source': BootSourceConfig;
  'cpu-config': null;
  logger: null;
  'machine-config': Record<string, unknown>;
  metrics: null;
  'mmds-config': MmdsConfig | null;
  'network-interfaces': NetworkInterfaceConfig[];
  vsock: { guest_cid: number; uds_path: string } | null;
  entropy: EntropyDeviceConfig | null;
  pmem: PmemConfig[];
  'memory-hotplug': MemoryHotplugConfig | null;
}

/** Construction options (from the CLI). */
export interface VmResourcesOptions {
  /** --mmds-size-limit (defaults to the API payload limit, 51200). */
  mmdsSizeLimit?: number;
  bootTimer?: boolean;
  pciEnabled?: boolean;
  /** Backend hook that opens a TAP at PUT time, as Firecracker does. */
  openTap?: OpenTap;
}

/** The pre-boot resource store. */
export class VmResources {
  machineConfig: MachineConfig = defaultMachineConfig();
  bootSource: BootSource | null = null;
  drives: DriveConfig[] = [];
  networkInterfaces: NetworkInterfaceVmConfig[] = [];
  vsock: VsockConfig | null = null;
  balloon: BalloonDeviceConfig | null = null;
  entropy: EntropyDeviceConfig | null = null;
  pmem: PmemConfig[] = [];
  fs: FsDeviceConfig[] = [];
  memoryHotplug: MemoryHotplugConfig | null = null;
  serial: SerialConfig = { serial_out_path: null, rate_limiter: null };
  mmds: MmdsDataStore | null = null;
  private mmdsIpv4: string | null = null;
  readonly mmdsSizeLimit: number;
  bootTimer: boolean;
  pciEnabled: boolean;
  private readonly openTap: OpenTap | undefined;

  constructor(opts: VmResourcesOptions = {}) {
    this.mmdsSizeLimit = opts.mmdsSizeLimit ?? 51200;
    this.bootTimer = opts.bootTimer ?? false;
    this.pciEnabled = opts.pciEnabled ?? false;
    this.openTap = opts.openTap;
  }

  /** PUT /boot-source: opens kernel/initrd, validates the command line. */
  setBootSource(cfg: BootSourceConfig): void {
    this.bootSource = buildBootSource(cfg);
  }

  /** PUT/PATCH /machine-config; memory may not shrink below the balloon target. */
  updateMachineConfig(u: MachineConfigUpdate): void {
    const next = applyMachineConfigUpdate(this.machineConfig, u);
    if (this.balloon && next.mem_size_mib < this.balloon.amount_mib) {
      throw new ConfigError('machine-config', MACHINE_CONFIG_ERRORS.IncompatibleBalloonSize);
    }
    this.machineConfig = next;
  }

  /** PUT /cpu-config. */
  setCustomCpuTemplate(t: CustomCpuTemplate): void {
    this.machineConfig = { ...this.machineConfig, cpu_template: { kind: 'custom', template: t } };
  }

  /** PUT /drives/{id}. */
  insertDrive(cfg: BlockDeviceConfig): void {
    insertDrive(this.drives, cfg, this.pmem.some((p) => p.root_device));
  }

  /** PUT /network-interfaces/{id}; a replaced interface loses its MMDS attachment. */
  insertNetworkInterface(cfg: NetworkInterfaceConfig): void {
    const plain = this.networkInterfaces.map(({ mmds: _m, ...n }) => n);
    const flags = new Map(this.networkInterfaces.map((n) => [n.iface_id, n.mmds]));
    insertNetworkInterface(plain, cfg, this.openTap);
    this.networkInterfaces = plain.map((n) => ({ ...n, mmds: n.iface_id === cfg.iface_id ? false : flags.get(n.iface_id) ?? false }));
  }

  /** PUT /vsock. */
  setVsock(cfg: VsockDeviceConfig): void {
    this.vsock = buildVsock(cfg, this.vsock);
  }

  /** PUT /balloon. */
  setBalloon(cfg: BalloonDeviceConfig): void {
    this.balloon = buildBalloon(cfg, this.machineConfig.mem_size_mib);
  }

  /** PUT /entropy. */
  setEntropy(cfg: EntropyDeviceConfig): void {
    this.entropy = { rate_limiter: cfg.rate_limiter };
  }

  /** PUT /pmem/{id}. */
  insertPmem(cfg: PmemConfig): void {
    insertPmem(this.pmem, cfg, this.drives.length > 0 && this.drives[0]!.is_root_device);
  }

  /** PUT /fs/{id}. */
  insertFs(cfg: FsDeviceConfig): void {
    insertFs(this.fs, cfg);
  }

  /** PUT /hotplug/memory. */
  setMemoryHotplug(cfg: MemoryHotplugConfig): void {
    this.memoryHotplug = validateMemoryHotplug(cfg);
  }

  /** PUT /serial. */
  setSerial(cfg: SerialConfig): void {
    this.serial = { ...cfg };
  }

  /** The MMDS data store, created on first use (`mmds_or_default`). */
  mmdsOrDefault(): MmdsDataStore {
    this.mmds ??= new MmdsDataStore(this.mmdsSizeLimit);
    return this.mmds;
  }

  /** PUT /mmds/config: attaches MMDS to the listed interfaces, detaches it from the others. */
  setMmdsConfig(cfg: MmdsConfig): void {
    const eff = buildMmdsConfig(cfg, this.networkInterfaces.map((n) => n.iface_id));
    const store = this.mmdsOrDefault();
    for (const n of this.networkInterfaces) n.mmds = eff.network_interfaces.includes(n.iface_id);
    this.mmdsIpv4 = eff.ipv4_address;
    store.version = eff.version;
    store.imdsCompat = eff.imds_compat;
  }

  /**
   * After PUT /snapshot/load: the store takes the restored VM's devices and machine size, so
   * GET /vm/config shows them and PATCH /drives, /network-interfaces find them. As
   * Firecracker after a restore, boot-source stays empty and machine-config's smt and
   * cpu_template are not known (the warning GET /vm/config logs says so).
   */
  adoptRestored(c: VmConfig): void {
    this.machineConfig = { ...this.machineConfig, vcpu_count: c.machine.vcpu_count, mem_size_mib: c.machine.mem_size_mib, track_dirty_pages: c.machine.track_dirty_pages, smt: false, cpu_template: null };
    this.drives = c.drives.map((d) => ({ ...d }));
    this.networkInterfaces = c.networkInterfaces.map((n) => ({ ...n }));
    this.vsock = c.vsock ? { ...c.vsock } : null;
    this.entropy = c.entropy ? { ...c.entropy } : null;
    this.balloon = c.balloon ? { ...c.balloon } : null;
    if (c.mmds) {
      this.mmds = c.mmds.store;
      this.mmds.version = c.mmds.config.version;
      this.mmds.imdsCompat = c.mmds.config.imds_compat;
      this.mmdsIpv4 = c.mmds.config.ipv4_address;
    }
  }

  /** The MMDS config rebuilt from the interfaces that have MMDS attached (`mmds_config()`). */
  effectiveMmdsConfig(): MmdsConfig | null {
    if (!this.mmds) return null;
    const ifaces = this.networkInterfaces.filter((n) => n.mmds).map((n) => n.iface_id);
    if (ifaces.length === 0) return null;
    return { version: this.mmds.version, network_interfaces: ifaces, ipv4_address: this.mmdsIpv4, imds_compat: this.mmds.imdsCompat };
  }

  /** True when a root device (block or pmem) is configured. */
  hasRootDevice(): boolean {
    return (this.drives[0]?.is_root_device ?? false) || this.pmem.some((p) => p.root_device);
  }

  /** The GET /vm/config body (`From<&VmResources> for VmmConfig`). */
  toFullVmConfiguration(): FullVmConfiguration {
    const bs = this.bootSource?.config ?? { kernel_image_path: '', initrd_path: null, boot_args: null };
    return {
      balloon: this.balloon ? { ...this.balloon } : null,
      drives: this.drives.map(driveJson),
      'boot-source': { kernel_image_path: bs.kernel_image_path, initrd_path: bs.initrd_path, boot_args: bs.boot_args },
      'cpu-config': null,
      logger: null,
      'machine-config': machineConfigJson(this.machineConfig),
      metrics: null,
      'mmds-config': this.effectiveMmdsConfig(),
      'network-interfaces': this.networkInterfaces.map(({ mmds: _m, ...n }) => networkInterfaceJson(n)),
      vsock: this.vsock ? { guest_cid: this.vsock.guest_cid, uds_path: this.vsock.uds_path } : null,
      entropy: this.entropy ? entropyJson(this.entropy) : null,
      pmem: this.pmem.map(pmemJson),
      'memory-hotplug': this.memoryHotplug ? { ...this.memoryHotplug } : null,
    };
  }

  /** The configuration handed to `VmBackend.start` (throws when no kernel was configured). */
  toVmConfig(instanceId: string): VmConfig {
    if (!this.bootSource) throw new ConfigError('boot-source', 'Cannot start microvm without kernel configuration.');
    const m = this.machineConfig;
    const mmdsConfig = this.effectiveMmdsConfig();
    return {
      instanceId,
      machine: {
        vcpu_count: m.vcpu_count,
        mem_size_mib: m.mem_size_mib,
        smt: m.smt,
        track_dirty_pages: m.track_dirty_pages,
        huge_pages: m.huge_pages,
        cpu_template: m.cpu_template?.kind === 'static' ? m.cpu_template.name : null,
        custom_cpu_template: m.cpu_template?.kind === 'custom' ? m.cpu_template.template : null,
      },
      bootSource: { ...this.bootSource.config, cmdline: { ...this.bootSource.cmdline } },
      drives: this.drives.map((d) => ({ ...d })),
      networkInterfaces: this.networkInterfaces.map((n) => ({ ...n })),
      vsock: this.vsock ? { ...this.vsock } : null,
      balloon: this.balloon ? { ...this.balloon } : null,
      entropy: this.entropy ? { ...this.entropy } : null,
      pmem: this.pmem.map((p) => ({ ...p })),
      fs: this.fs.map((f) => ({ ...f })),
      memoryHotplug: this.memoryHotplug ? { ...this.memoryHotplug } : null,
      mmds: mmdsConfig && this.mmds ? { config: mmdsConfig, store: this.mmds } : null,
      serial: { ...this.serial },
      bootTimer: this.bootTimer,
      pciEnabled: this.pciEnabled,
    };
  }
}
