/**
 * `VmmController`: the single owner of the VM's configuration and run state (firecracker
 * src/vmm/src/rpc_interface.rs `PrebootApiController` / `RuntimeApiController`). It answers
 * one action at a time; the two `switch`es (here pre-boot, controller-runtime.ts after) name
 * every action, disallowed ones included, so the pre/post-boot matrix is readable in one place.
 *
 *   NotStarted --InstanceStart--> Running --Pause--> Paused --Resume--> Running
 *   NotStarted --LoadSnapshot---> Paused (or Running with resume_vm)
 *
 * Both the HTTP API (src/api/server.ts) and the library (src/vmm/microvm.ts) drive the VM
 * through it: API → controller → RunningVm (Vmm) → actor handles (docs/design.md "API flow").
 */
import { ConfigError } from '../config/errors.js';
import type { LoggerConfig } from '../config/logger.js';
import { machineConfigJson } from '../config/machine-config.js';
import type { MetricsConfig } from '../config/metrics.js';
import { VmConfig, VmResources } from '../config/resources.js';
import type { LoadSnapshotParams } from '../config/snapshot.js';
import { LOGGER, Logger } from '../logger/logger.js';
import { METRICS, Metrics } from '../metrics/metrics.js';
import { FIRECRACKER_VERSION, InstanceState, PHASE_ERRORS, VmmAction, VmmActionError, VmmData, toActionError } from './actions.js';
import { runtimeAction } from './controller-runtime.js';
import { DEVICE_KIND_NAMES, firstUnsupported } from './features.js';
import { actorDemand, type RunningVm, type VmExit, type VmFactory } from './running-vm.js';

/** Options of a controller. */
export interface ControllerOptions {
  instanceId: string;
  factory: VmFactory;
  resources?: VmResources;
  logger?: Logger;
  metrics?: Metrics;
  /** Period of the metrics flush after boot (default 60 s). */
  metricsPeriodMs?: number;
}

const VMM = { thread: 'main', module: 'vmm::rpc_interface' } as const;

/** Owns `VmResources` and the running VM; answers `VmmAction`s. */
export class VmmController {
  readonly instanceId: string;
  readonly factory: VmFactory;
  resources: VmResources;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Run state (GET / `state`). */
  state: InstanceState = 'Not started';
  /** Set once a boot-specific resource was configured: snapshot load is then refused. */
  bootPath = false;
  /** The configuration the running VM was built from. */
  vmConfig: VmConfig | null = null;
  /** The VM, once InstanceStart (or a snapshot load) succeeded. */
  vm: RunningVm | null = null;
  /** Resolves when the VM has stopped (never, if it never started). */
  readonly exited: Promise<VmExit>;
  private resolveExited!: (e: VmExit) => void;
  private readonly metricsPeriodMs: number | undefined;

  constructor(opts: ControllerOptions) {
    this.instanceId = opts.instanceId;
    this.factory = opts.factory;
    this.logger = opts.logger ?? LOGGER;
    this.metrics = opts.metrics ?? METRICS;
    this.resources = opts.resources ?? new VmResources({ openTap: opts.factory.openTap?.bind(opts.factory) });
    this.metricsPeriodMs = opts.metricsPeriodMs;
    this.exited = new Promise((r) => { this.resolveExited = r; });
  }

  /** True once a VM exists (booted or restored). */
  get started(): boolean {
    return this.state !== 'Not started';
  }

  /** Handles one action; rejects with `VmmActionError`. */
  async handle(action: VmmAction): Promise<VmmData> {
    try {
      if (this.started) return await runtimeAction(this, action);
      const reply = await this.preboot(action);
      if (!this.started) this.factory.expectActors?.(actorDemand(this.resources.machineConfig.vcpu_count, this.resources));
      return reply;
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
      case 'InsertNetworkDevice':
        await this.factory.prepare?.();
        return this.boot(() => r.insertNetworkInterface(a.config));
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
      case 'InsertFsDevice': return this.boot(() => r.insertFs(a.config));
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

  /**
   * InstanceStart (`build_and_boot_microvm`): refuses configurations the factory cannot
   * honour, then boots the VM. Failures leave the controller pre-boot (not fatal).
   */
  async startMicroVm(): Promise<void> {
    let config: VmConfig;
    try {
      config = this.resources.toVmConfig(this.instanceId);
    } catch (e) {
      throw new VmmActionError(`Start microvm error: ${(e as ConfigError).detail ?? (e as Error).message}`);
    }
    const missing = firstUnsupported(config, (k) => this.factory.supports(k));
    if (missing) {
      throw new VmmActionError(`Start microvm error: The configuration uses ${DEVICE_KIND_NAMES[missing]}, which this Kindling build does not support.`);
    }
    this.logger.debug('event_start: build microvm for boot', VMM);
    let vm: RunningVm;
    try {
      vm = await this.factory.boot(config);
    } catch (e) {
      throw toActionError(e, 'Start microvm error');
    }
    this.logger.debug('event_end: boot microvm', VMM);
    this.adopt(vm, config, 'Running');
  }

  private async loadSnapshot(params: LoadSnapshotParams): Promise<VmmData> {
    if (this.bootPath) {
      const msg = 'Loading a microVM snapshot not allowed after configuring boot-specific resources.';
      this.logger.info(msg, VMM);
      throw new VmmActionError(`Load snapshot error: ${msg}`);
    }
    if (!this.factory.restore) throw new VmmActionError('The requested operation is not supported: snapshot load is not implemented by this build');
    const started = performance.now();
    let restored: { vm: RunningVm; config: VmConfig };
    try {
      restored = await this.factory.restore(params, { instanceId: this.instanceId, mmdsStore: () => this.resources.mmdsOrDefault(), startedAt: started });
    } catch (e) {
      throw new VmmActionError(`Load snapshot error: Failed to restore from snapshot: ${(e as Error).message}`, 400, { fatal: true, cause: e });
    }
    this.adopt(restored.vm, restored.config, 'Paused');
    this.resources.adoptRestored(restored.config);
    if (params.resume_vm) {
      try {
        await restored.vm.resume();
      } catch (e) {
        throw new VmmActionError(`Load snapshot error: Failed to resume microVM: ${(e as Error).message}`, 400, { fatal: true, cause: e });
      }
      this.state = 'Running';
      // The restore's phase line (src/vmm/restore.ts) ends at the paused VM; this is the rest.
      this.logger.info(`snapshot load: vCPUs resumed ${Math.round(performance.now() - started)} ms after the request began`, VMM);
    }
    const us = Math.round((performance.now() - started) * 1000);
    this.metrics.latencies_us.vmm_load_snapshot.store(us);
    this.logger.debug(`'load snapshot' VMM action took ${us} us.`, VMM);
    return { kind: 'Empty' };
  }

  /** Takes a VM that now exists: run state, exit, and the periodic metrics flush. */
  private adopt(vm: RunningVm, config: VmConfig, state: InstanceState): void {
    this.vm = vm;
    this.vmConfig = config;
    this.state = state;
    void vm.exit.then(this.resolveExited, (err: Error) => this.resolveExited({ code: 1, reason: err.message }));
    this.metrics.startPeriodic((e) => this.logger.error(`Failed to write metrics: ${e.message}`, VMM), this.metricsPeriodMs);
  }

  /** Stops timers (tests, shutdown). */
  close(): void {
    this.metrics.stopPeriodic();
  }
}

