/**
 * `VmmController`: the single owner of the VM's configuration and run state (facts §0, §1.3).
 * Like Firecracker's `PrebootApiController` / `RuntimeApiController` pair it answers one action
 * at a time; the two `switch`es below name every action, disallowed ones included, so the
 * pre/post-boot matrix is readable in one place.
 *
 *   NotStarted --InstanceStart--> Running --Pause--> Paused --Resume--> Running
 *   NotStarted --LoadSnapshot---> Paused (or Running with resume_vm)
 */
import { ConfigError } from '../config/errors.js';
import type { LoggerConfig } from '../config/logger.js';
import { machineConfigJson } from '../config/machine-config.js';
import type { MetricsConfig } from '../config/metrics.js';
import { VmConfig, VmResources } from '../config/resources.js';
import { LOGGER, Logger } from '../logger/logger.js';
import { METRICS, Metrics } from '../metrics/metrics.js';
import { InstanceState, PHASE_ERRORS, VmmAction, VmmActionError, VmmData } from './actions.js';
import { DEVICE_KIND_NAMES, DeviceKind, VmBackend } from './backend.js';
import { runtimeAction } from './controller-runtime.js';

/** The Firecracker version Kindling's API reports (GET /version, InstanceInfo.vmm_version). */
export const FIRECRACKER_VERSION = '1.16.1';

/** Options of a controller. */
export interface ControllerOptions {
  instanceId: string;
  backend: VmBackend;
  resources?: VmResources;
  logger?: Logger;
  metrics?: Metrics;
  /** Period of the metrics flush after boot (default 60 s). */
  metricsPeriodMs?: number;
}

const VMM = { thread: 'main', module: 'vmm::rpc_interface' } as const;

/** Turns store/backend failures into the fault_message Firecracker would send. */
export function toActionError(e: unknown, prefix?: string): VmmActionError {
  if (e instanceof VmmActionError) return e;
  if (e instanceof ConfigError) return new VmmActionError(e.faultMessage, e.status, { cause: e });
  const msg = e instanceof Error ? e.message : String(e);
  return new VmmActionError(prefix ? `${prefix}: ${msg}` : msg, 400, { cause: e });
}

/** Owns `VmResources` and the backend; answers `VmmAction`s. */
export class VmmController {
  readonly instanceId: string;
  readonly backend: VmBackend;
  resources: VmResources;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Run state (GET / `state`). */
  state: InstanceState = 'Not started';
  /** Set once a boot-specific resource was configured: snapshot load is then refused. */
  bootPath = false;
  /** The configuration the running VM was built from. */
  vmConfig: VmConfig | null = null;
  private readonly metricsPeriodMs: number | undefined;

  constructor(opts: ControllerOptions) {
    this.instanceId = opts.instanceId;
    this.backend = opts.backend;
    this.logger = opts.logger ?? LOGGER;
    this.metrics = opts.metrics ?? METRICS;
    this.resources = opts.resources ?? new VmResources({ openTap: opts.backend.openTap?.bind(opts.backend) });
    this.metricsPeriodMs = opts.metricsPeriodMs;
  }

  /** True once a VM exists (booted or restored). */
  get started(): boolean {
    return this.state !== 'Not started';
  }

  /** Handles one action; rejects with `VmmActionError`. */
  async handle(action: VmmAction): Promise<VmmData> {
    try {
      return this.started ? await runtimeAction(this, action) : await this.preboot(action);
    } catch (e) {
      throw toActionError(e);
    }
  }

  /** Applies a logger configuration (PUT /logger, CLI, config file). */
  configureLogger(cfg: LoggerConfig): void {
    this.logger.update(cfg);
  }

  /** Initializes metrics (PUT /metrics, --metrics-path, config file); only once per process. */
  configureMetrics(cfg: MetricsConfig): void {
    this.metrics.init(cfg, this.instanceId);
  }

  private boot<T>(f: () => T): VmmData {
    this.bootPath = true;
    f();
    return { kind: 'Empty' };
  }

  /** `PrebootApiController::handle_preboot_request`. */
  private async preboot(a: VmmAction): Promise<VmmData> {
    const r = this.resources;
    switch (a.kind) {
      case 'ConfigureBootSource': return this.boot(() => r.setBootSource(a.config));
      case 'ConfigureLogger': this.configureLogger(a.config); return { kind: 'Empty' };
      case 'ConfigureMetrics': this.configureMetrics(a.config); return { kind: 'Empty' };
      case 'ConfigureSerial': r.setSerial(a.config); return { kind: 'Empty' };
      case 'GetBalloonConfig':
        if (!r.balloon) throw new ConfigError('balloon', 'No balloon device found.');
        return { kind: 'BalloonConfig', value: { ...r.balloon } };
      case 'GetFullVmConfig':
        this.logger.warn('If the VM was restored from snapshot, boot-source, machine-config.smt, and machine-config.cpu_template will all be empty.', VMM);
        return { kind: 'FullVmConfig', value: r.toFullVmConfiguration() };
      case 'GetMMDS': return { kind: 'MmdsValue', json: r.mmdsOrDefault().toJson() };
      case 'GetVmMachineConfig': return { kind: 'MachineConfiguration', value: machineConfigJson(r.machineConfig) };
      case 'GetVmInstanceInfo': return this.instanceInfo();
      case 'GetVmmVersion': return { kind: 'VmmVersion', version: FIRECRACKER_VERSION };
      case 'InsertBlockDevice': return this.boot(() => r.insertDrive(a.config));
      case 'InsertPmemDevice': return this.boot(() => r.insertPmem(a.config));
      case 'InsertNetworkDevice': return this.boot(() => r.insertNetworkInterface(a.config));
      case 'LoadSnapshot': return this.loadSnapshot(a.params);
      case 'PatchMMDS': r.mmdsOrDefault().patch(a.value); return { kind: 'Empty' };
      case 'PutCpuConfiguration': r.setCustomCpuTemplate(a.template); return { kind: 'Empty' };
      case 'PutMMDS': r.mmdsOrDefault().put(a.value); return { kind: 'Empty' };
      case 'SetBalloonDevice': return this.boot(() => r.setBalloon(a.config));
      case 'SetVsockDevice': return this.boot(() => r.setVsock(a.config));
      case 'SetMmdsConfiguration': return this.boot(() => r.setMmdsConfig(a.config));
      case 'StartMicroVm': await this.startMicroVm(); return { kind: 'Empty' };
      case 'UpdateMachineConfiguration': return this.boot(() => r.updateMachineConfig(a.config));
      case 'SetEntropyDevice': return this.boot(() => r.setEntropy(a.config));
      case 'SetMemoryHotplugDevice': return this.boot(() => r.setMemoryHotplug(a.config));
      // Operations not allowed pre-boot.
      case 'CreateSnapshot':
      case 'FlushMetrics':
      case 'Pause':
      case 'Resume':
      case 'GetBalloonStats':
      case 'GetMemoryHotplugStatus':
      case 'UpdateBalloon':
      case 'UpdateBalloonStatistics':
      case 'UpdateBlockDevice':
      case 'UpdateMemoryHotplugSize':
      case 'UpdateNetworkInterface':
      case 'UpdatePmemDevice':
      case 'StartFreePageHinting':
      case 'GetFreePageHintingStatus':
      case 'StopFreePageHinting':
      case 'HotUnplugDevice':
      case 'SendCtrlAltDel':
        throw new VmmActionError(PHASE_ERRORS.PreBoot);
      default: {
        const never: never = a;
        throw new VmmActionError(`unhandled action ${(never as VmmAction).kind}`);
      }
    }
  }

  /** GET / */
  instanceInfo(): VmmData {
    return { kind: 'InstanceInformation', value: { id: this.instanceId, state: this.state, vmm_version: FIRECRACKER_VERSION, app_name: 'Firecracker' } };
  }

  /** The devices/features a configuration needs from the backend, in attach order. */
  static requiredKinds(c: VmConfig): DeviceKind[] {
    const k = new Set<DeviceKind>();
    if (c.machine.smt) k.add('smt');
    if (c.machine.huge_pages !== 'None') k.add('huge-pages');
    if (c.machine.track_dirty_pages) k.add('track-dirty-pages');
    if (c.machine.cpu_template) k.add('static-cpu-template');
    if (c.machine.custom_cpu_template) k.add('custom-cpu-template');
    if (c.bootSource.initrd_path !== null) k.add('initrd');
    if (c.balloon) k.add('balloon');
    for (const d of c.drives) {
      k.add(d.kind);
      if (d.kind === 'virtio-block' && d.io_engine === 'Async') k.add('block-io-engine-async');
      if (d.kind === 'virtio-block' && d.rate_limiter) k.add('rate-limiter');
    }
    for (const n of c.networkInterfaces) {
      k.add('virtio-net');
      if (n.rx_rate_limiter || n.tx_rate_limiter) k.add('rate-limiter');
    }
    if (c.mmds) k.add('mmds');
    if (c.pmem.length) k.add('pmem');
    if (c.pmem.some((p) => p.rate_limiter)) k.add('rate-limiter');
    if (c.vsock) k.add('vsock');
    if (c.entropy) k.add('entropy');
    if (c.entropy?.rate_limiter) k.add('rate-limiter');
    if (c.memoryHotplug) k.add('memory-hotplug');
    if (c.serial.serial_out_path !== null) k.add('serial-output-file');
    if (c.serial.rate_limiter) k.add('serial-rate-limiter');
    if (c.bootTimer) k.add('boot-timer');
    if (c.pciEnabled) k.add('pci');
    return [...k];
  }

  /**
   * InstanceStart (`build_and_boot_microvm`): refuses configurations the backend cannot honour,
   * then starts the VM. Failures leave the controller pre-boot (not fatal, facts §1.3).
   */
  async startMicroVm(): Promise<void> {
    let config: VmConfig;
    try {
      config = this.resources.toVmConfig(this.instanceId);
    } catch (e) {
      throw new VmmActionError(`Start microvm error: ${(e as ConfigError).detail ?? (e as Error).message}`);
    }
    for (const kind of VmmController.requiredKinds(config)) {
      if (!this.backend.supports(kind)) {
        throw new VmmActionError(`Start microvm error: The configuration uses ${DEVICE_KIND_NAMES[kind]}, which this Kindling VM backend does not support.`);
      }
    }
    this.logger.debug('event_start: build microvm for boot', VMM);
    try {
      await this.backend.start(config);
    } catch (e) {
      throw toActionError(e, 'Start microvm error');
    }
    this.logger.debug('event_end: boot microvm', VMM);
    this.vmConfig = config;
    this.state = 'Running';
    this.backend.flushMetrics?.();
    this.metrics.startPeriodic((e) => this.logger.error(`Failed to write metrics: ${e.message}`, VMM), this.metricsPeriodMs);
  }

  private async loadSnapshot(params: Parameters<NonNullable<VmBackend['loadSnapshot']>>[0]): Promise<VmmData> {
    if (this.bootPath) {
      const msg = 'Loading a microVM snapshot not allowed after configuring boot-specific resources.';
      this.logger.info(msg, VMM);
      throw new VmmActionError(`Load snapshot error: ${msg}`);
    }
    if (!this.backend.loadSnapshot) throw new VmmActionError('The requested operation is not supported: snapshot load is not implemented by this backend');
    const started = performance.now();
    let restored: VmConfig;
    try {
      restored = await this.backend.loadSnapshot(params);
    } catch (e) {
      throw new VmmActionError(`Load snapshot error: Failed to restore from snapshot: ${(e as Error).message}`, 400, { fatal: true, cause: e });
    }
    this.vmConfig = restored;
    this.state = 'Paused';
    if (params.resume_vm) {
      try {
        await this.backend.resume();
      } catch (e) {
        throw new VmmActionError(`Load snapshot error: Failed to resume microVM: ${(e as Error).message}`, 400, { fatal: true, cause: e });
      }
      this.state = 'Running';
    }
    const us = Math.round((performance.now() - started) * 1000);
    this.metrics.latencies_us.vmm_load_snapshot.store(us);
    this.logger.debug(`'load snapshot' VMM action took ${us} us.`, VMM);
    this.metrics.startPeriodic((e) => this.logger.error(`Failed to write metrics: ${e.message}`, VMM), this.metricsPeriodMs);
    return { kind: 'Empty' };
  }

  /** Stops timers (tests, shutdown). */
  close(): void {
    this.metrics.stopPeriodic();
  }
}
