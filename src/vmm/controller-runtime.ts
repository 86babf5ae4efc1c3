/**
 * The post-boot half of `VmmController` (firecracker src/vmm/src/rpc_interface.rs
 * `RuntimeApiController`): actions on a VM that exists, called on the `RunningVm` directly.
 * Operations of devices this build does not run answer "The requested operation is not
 * supported: ..." instead of pretending success.
 */
import { machineConfigJson } from '../config/machine-config.js';
import { serdeJsonStringify } from '../config/serde-read.js';
import type { VmmController } from './controller.js';
import { FIRECRACKER_VERSION, PHASE_ERRORS, VmmAction, VmmActionError, VmmData, toActionError } from './actions.js';

const VMM = { thread: 'main', module: 'vmm::rpc_interface' } as const;
const NOT_FOUND = 'Failed perform action on device: Device not found';
const EMPTY: VmmData = { kind: 'Empty' };

function unsupported(what: string): VmmActionError {
  return new VmmActionError(`The requested operation is not supported: ${what}`);
}

async function call<T>(f: (() => Promise<T>) | undefined, what: string, prefix: string): Promise<T> {
  if (!f) throw unsupported(what);
  try {
    return await f();
  } catch (e) {
    throw toActionError(e, prefix);
  }
}

function mmdsStore(c: VmmController) {
  const mmds = c.vmConfig?.mmds?.store ?? null;
  if (!mmds) throw new VmmActionError('MMDS error: The MMDS data store is not initialized.');
  return mmds;
}

/** `RuntimeApiController::handle_request`. */
export async function runtimeAction(c: VmmController, a: VmmAction): Promise<VmmData> {
  const b = c.vm!;
  const r = c.resources;
  switch (a.kind) {
    case 'CreateSnapshot': {
      const t0 = performance.now();
      await call(b.createSnapshot && (() => b.createSnapshot!(a.params)), 'snapshot creation is not implemented by this build', 'Create snapshot error');
      // Firecracker rpc_interface.rs `create_snapshot`: the VMM-thread view of the latency.
      const us = Math.round((performance.now() - t0) * 1000);
      const full = a.params.snapshot_type === 'Full';
      c.metrics.latencies_us[full ? 'vmm_full_create_snapshot' : 'vmm_diff_create_snapshot'].store(us);
      c.logger.info(`'create ${full ? 'full' : 'diff'} snapshot' VMM action took ${us} us.`, VMM);
      return EMPTY;
    }
    case 'FlushMetrics':
      try {
        c.metrics.write();
      } catch (e) {
        throw new VmmActionError(`Internal VMM error: Metrics error: ${(e as Error).message}`);
      }
      return EMPTY;
    case 'GetBalloonConfig':
      if (!r.balloon) throw new VmmActionError(`Internal VMM error: ${NOT_FOUND}`);
      return { kind: 'BalloonConfig', value: { ...r.balloon } };
    case 'GetBalloonStats':
      if (!r.balloon) throw new VmmActionError(`Internal VMM error: ${NOT_FOUND}`);
      return { kind: 'BalloonStats', value: await call(b.balloonStats?.bind(b), 'balloon statistics', 'Internal VMM error') };
    case 'GetFullVmConfig':
      return { kind: 'FullVmConfig', value: r.toFullVmConfiguration() };
    case 'GetMemoryHotplugStatus':
      if (!r.memoryHotplug) throw new VmmActionError(`Internal VMM error: ${NOT_FOUND}`);
      return { kind: 'VirtioMemStatus', value: await call(b.memoryHotplugStatus?.bind(b), 'memory hotplug status', 'Internal VMM error') };
    case 'GetMMDS':
      return { kind: 'MmdsValue', json: mmdsStore(c).toJson() };
    case 'GetVmMachineConfig':
      return { kind: 'MachineConfiguration', value: machineConfigJson(r.machineConfig) };
    case 'GetVmInstanceInfo':
      return c.instanceInfo();
    case 'GetVmmVersion':
      return { kind: 'VmmVersion', version: FIRECRACKER_VERSION };
    case 'PatchMMDS':
    case 'PutMMDS': {
      const store = mmdsStore(c);
      if (a.kind === 'PutMMDS') store.put(a.value);
      else store.patch(a.value);
      // The guest reads the store through the net workers' MMDS stacks: they get the new text.
      await b.updateMmdsData?.(serdeJsonStringify(store.value()));
      return EMPTY;
    }
    case 'InsertBlockDevice':
    case 'InsertPmemDevice':
    case 'InsertNetworkDevice':
    case 'HotUnplugDevice':
      if (!r.pciEnabled) throw new VmmActionError('PCI is not enabled');
      throw unsupported('PCI device hotplug is not implemented');
    case 'Pause': {
      const t0 = performance.now();
      await call(() => b.pause(), 'pause', 'Internal VMM error');
      c.state = 'Paused';
      const us = Math.round((performance.now() - t0) * 1000);
      c.metrics.latencies_us.vmm_pause_vm.store(us);
      c.logger.info(`'pause vm' VMM action took ${us} us.`, VMM);
      return EMPTY;
    }
    case 'Resume': {
      const t0 = performance.now();
      await call(() => b.resume(), 'resume', 'Internal VMM error');
      c.state = 'Running';
      const us = Math.round((performance.now() - t0) * 1000);
      c.metrics.latencies_us.vmm_resume_vm.store(us);
      c.logger.info(`'resume vm' VMM action took ${us} us.`, VMM);
      return EMPTY;
    }
    case 'SendCtrlAltDel':
      if (!b.sendCtrlAltDel()) throw new VmmActionError('Internal VMM error: The i8042 buffer has no room for the Ctrl+Alt+Del sequence.');
      return EMPTY;
    case 'UpdateBalloon':
      if (!r.balloon) throw new VmmActionError(`Balloon update error: ${NOT_FOUND}`);
      await call(b.updateBalloon && (() => b.updateBalloon!(a.config.amount_mib)), 'balloon update', 'Balloon update error');
      r.balloon = { ...r.balloon, amount_mib: a.config.amount_mib };
      return EMPTY;
    case 'UpdateBalloonStatistics':
      if (!r.balloon) throw new VmmActionError(`Balloon update error: ${NOT_FOUND}`);
      await call(b.updateBalloonStatistics && (() => b.updateBalloonStatistics!(a.config.stats_polling_interval_s)), 'balloon statistics update', 'Balloon update error');
      r.balloon = { ...r.balloon, stats_polling_interval_s: a.config.stats_polling_interval_s };
      return EMPTY;
    case 'StartFreePageHinting':
      if (!r.balloon) throw new VmmActionError(`Balloon update error: ${NOT_FOUND}`);
      await call(b.startBalloonHinting && (() => b.startBalloonHinting!(a.cmd)), 'free page hinting', 'Balloon update error');
      return EMPTY;
    case 'GetFreePageHintingStatus':
      if (!r.balloon) throw new VmmActionError(`Balloon update error: ${NOT_FOUND}`);
      return { kind: 'HintingStatus', value: await call(b.balloonHintingStatus?.bind(b), 'free page hinting', 'Balloon update error') };
    case 'StopFreePageHinting':
      if (!r.balloon) throw new VmmActionError(`Balloon update error: ${NOT_FOUND}`);
      await call(b.stopBalloonHinting?.bind(b), 'free page hinting', 'Balloon update error');
      return EMPTY;
    case 'UpdateBlockDevice': {
      const prefix = 'Drive config error: Unable to patch the block device';
      const i = r.drives.findIndex((d) => d.drive_id === a.config.drive_id);
      if (i === -1) throw new VmmActionError(`${prefix}: ${NOT_FOUND} Please verify the request arguments.`);
      try {
        await b.updateDrive(a.config);
      } catch (e) {
        if (e instanceof VmmActionError) throw e;
        throw new VmmActionError(`${prefix}: ${(e as Error).message} Please verify the request arguments.`);
      }
      const d = r.drives[i]!;
      if (d.kind === 'virtio-block') {
        r.drives[i] = { ...d, path_on_host: a.config.path_on_host ?? d.path_on_host, rate_limiter: a.config.rate_limiter ?? d.rate_limiter };
      }
      return EMPTY;
    }
    case 'UpdateNetworkInterface': {
      const n = r.networkInterfaces.find((x) => x.iface_id === a.config.iface_id);
      if (!n) throw new VmmActionError(`Network config error: Unable to update the net device: ${NOT_FOUND}`);
      await call(b.updateNetworkInterface && (() => b.updateNetworkInterface!(a.config)), 'network interface update', 'Network config error: Unable to update the net device');
      n.rx_rate_limiter = a.config.rx_rate_limiter ?? n.rx_rate_limiter;
      n.tx_rate_limiter = a.config.tx_rate_limiter ?? n.tx_rate_limiter;
      return EMPTY;
    }
    case 'UpdatePmemDevice': {
      const p = r.pmem.find((x) => x.id === a.config.id);
      if (a.config.rate_limiter === null) return EMPTY;
      if (!p) throw new VmmActionError(`Pmem config error: Unable to patch the pmem device: ${NOT_FOUND} Please verify the request arguments.`);
      await call(b.updatePmemDevice && (() => b.updatePmemDevice!(a.config)), 'pmem update', 'Pmem config error: Unable to patch the pmem device');
      p.rate_limiter = a.config.rate_limiter;
      return EMPTY;
    }
    case 'UpdateMemoryHotplugSize':
      if (!r.memoryHotplug) throw new VmmActionError(`Memory hotplug update error: ${NOT_FOUND}`);
      await call(b.updateMemoryHotplugSize && (() => b.updateMemoryHotplugSize!(a.config.requested_size_mib)), 'memory hotplug', 'Memory hotplug update error');
      return EMPTY;
    // Operations not allowed post-boot.
    case 'ConfigureBootSource':
    case 'ConfigureLogger':
    case 'ConfigureMetrics':
    case 'ConfigureSerial':
    case 'LoadSnapshot':
    case 'PutCpuConfiguration':
    case 'SetBalloonDevice':
    case 'SetVsockDevice':
    case 'SetMmdsConfiguration':
    case 'SetEntropyDevice':
    case 'InsertFsDevice':
    case 'SetMemoryHotplugDevice':
    case 'StartMicroVm':
    case 'UpdateMachineConfiguration':
      throw new VmmActionError(PHASE_ERRORS.PostBoot);
    default: {
      const never: never = a;
      throw new VmmActionError(`unhandled action ${(never as VmmAction).kind}`);
    }
  }
}
