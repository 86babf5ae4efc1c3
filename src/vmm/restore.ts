/**
 * PUT /snapshot/load in a fresh process: builds a paused microVM from a state file and a
 * memory file (Firecracker src/vmm/src/persist.rs `restore_from_snapshot`, builder.rs
 * `build_microvm_from_snapshot`; docs/design.md "Snapshots").
 *
 * Order: state file (read, checked, overrides applied) → guest memory (the memory file mapped
 * MAP_PRIVATE, nothing read up front) → KVM VM, memory slots, irqchip, PIT, vCPUs → VM state
 * (PIT, clock, PIC, IOAPIC) → vCPU states → legacy devices → virtio devices spawned with
 * their saved transport and queues → vCPU actors, parked until resume.
 *
 * Every error carries Firecracker's text after "Load snapshot error: Failed to restore from
 * snapshot: " (the controller adds that prefix); anything built so far is released.
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { HostGuestMemory } from '../memory/host-memory.js';
import { UFFD_DEFAULT_PAGE_SIZE, Userfaultfd, memoryFileRegions, sendUffdHandshake } from '../memory/uffd.js';
import { HUGE_PAGE_2M } from '../memory/huge-pages.js';
import { MiB, VMGENID_MEM_SIZE, interruptLayout, ramRanges } from '../arch/x86_64/layout.js';
import { randomBytes } from 'node:crypto';
import { restoreVcpuState, restoreVmState } from '../arch/x86_64/kvm-state.js';
import { GuestMemoryAllocationError, SnapshotError } from '../errors.js';
import { ioErrorText } from '../config/errors.js';
import { createDeviceManager } from '../config/serial.js';
import type { LoadSnapshotParams } from '../config/snapshot.js';
import type { VmConfig } from '../config/resources.js';
import type { MmdsDataStore } from '../config/mmds-data.js';
import { decodeStateFile } from '../snapshot/state-file.js';
import type { MicrovmState } from '../snapshot/microvm-state.js';
import { createHostDevices } from './host-devices.js';
import { ramBacking } from '../memory/discard.js';
import { placements, planVirtioDevices, spawnVirtioDevices } from './virtio-devices.js';
import { acpiDevicesPlan, newGeneration } from '../arch/x86_64/acpi/index.js';
import { Vmm } from './vmm.js';
import { topUpAll } from '../actors/actor-pool.js';
import { actorDemand } from './running-vm.js';
import { createKvmVm, startVcpuActors } from './vm-parts.js';
import type { VmHostOptions } from './builder.js';

/** What the restoring process brings besides the request: its --id and its MMDS data store. */
export interface RestoreContext {
  instanceId: string;
  /** The process's MMDS store (PUT /mmds before the load is allowed and kept). */
  mmdsStore: () => MmdsDataStore;
  /** performance.now() when the load request began: the phase log then counts from it. */
  startedAt?: number;
}

function restoreError(msg: string, cause?: unknown): SnapshotError {
  return new SnapshotError('SNAPSHOT_RESTORE', msg, cause === undefined ? undefined : { cause });
}

/** Reads and checks the state file, then applies the request's overrides. */
export function loadState(params: LoadSnapshotParams): MicrovmState {
  let bytes: Buffer;
  try {
    bytes = readFileSync(params.snapshot_path);
  } catch (e) {
    throw restoreError(`Failed to get snapshot state from file: Failed to open snapshot file: ${ioErrorText(e)}`, e);
  }
  let state: MicrovmState;
  try {
    state = decodeStateFile<MicrovmState>(bytes);
  } catch (e) {
    throw restoreError(`Failed to get snapshot state from file: Failed to load snapshot state from file: ${(e as Error).message}`, e);
  }
  checkShape(state);
  for (const o of params.network_overrides) {
    const n = state.config.networkInterfaces.find((x) => x.iface_id === o.iface_id);
    if (!n) throw restoreError('Failed to get snapshot state from file: Unknown Network Device.');
    n.host_dev_name = o.host_dev_name;
  }
  if (params.vsock_override) {
    if (!state.config.vsock) throw restoreError('Failed to get snapshot state from file: Unknown Vsock Device.');
    state.config.vsock.uds_path = params.vsock_override.uds_path;
  }
  return state;
}

/**
 * The state's parts agree with each other (Firecracker `snapshot_state_sanity_check`): one
 * vCPU state per configured vCPU, the memory layout of the configured size, one device state
 * per configured device. A CRC-valid file from another build can still fail here.
 */
function checkShape(s: MicrovmState): void {
  const bad = (what: string): never => { throw restoreError(`Invalid snapshot state: ${what}`); };
  const c = s.config;
  if (!c?.machine || !Array.isArray(s.vcpus) || !s.memory?.regions || !s.devices || !s.legacy || !s.vm) bad('a part of the microVM state is missing');
  if (s.vcpus.length !== c.machine.vcpu_count || s.vcpus.length < 1) bad(`${s.vcpus.length} vCPU states for ${c.machine.vcpu_count} vCPUs`);
  if (s.memory.regions.length === 0) bad('No memory region defined.');
  const size = s.memory.regions.reduce((n, r) => n + r.size, 0);
  if (size !== c.machine.mem_size_mib * MiB) bad(`memory regions hold ${size} bytes, the machine has ${c.machine.mem_size_mib} MiB`);
  const drives = c.drives.filter((d) => d.kind === 'virtio-block').length;
  if (s.devices.blocks.length !== drives || s.devices.nets.length !== c.networkInterfaces.length ||
    (s.devices.vsock === null) !== (c.vsock === null) || (s.devices.entropy === null) !== (c.entropy === null) ||
    ((s.devices.balloon ?? null) === null) !== (c.balloon === null)) bad('the device states do not match the configured devices');
}

/** Maps the memory file (File backend). */
function memoryFromFile(state: MicrovmState, path: string, trackDirty: boolean): HostGuestMemory {
  // Huge-page RAM cannot be a private mapping of an ordinary file (persist.rs
  // `GuestMemoryFromFileError::HugetlbfsSnapshot`): such snapshots load through Uffd only.
  if (state.config.machine.huge_pages === '2M') {
    throw restoreError('Failed to load guest memory: Error creating guest memory from file: Cannot restore hugetlbfs backed snapshot by mapping the memory file. Please use uffd.');
  }
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw restoreError(`Failed to load guest memory: Error creating guest memory from file: Failed to load guest memory: ${ioErrorText(e)}`, e);
  }
  try {
    return HostGuestMemory.fromFile(ramRanges(state.config.machine.mem_size_mib * MiB), fd, { trackDirty });
  } catch (e) {
    // MemoryError's own text (GuestMemoryAllocationError.detail), without the InstanceStart prefix.
    const detail = e instanceof GuestMemoryAllocationError ? e.detail : (e as Error).message;
    throw restoreError(`Failed to load guest memory: Error creating guest memory from file: Failed to restore guest memory: ${detail}`, e);
  } finally {
    closeSync(fd); // the private mappings keep the file
  }
}

/**
 * Guest RAM for the Uffd backend (Firecracker persist.rs `guest_memory_from_uffd`): anonymous
 * private memory registered with a userfaultfd, whose fd and region table go to the
 * page-fault handler listening at `backendPath` (docs/design.md "Snapshot memory backends:
 * Uffd"). The memory keeps the uffd and the handler connection open for the VM's life.
 */
function memoryFromUffd(state: MicrovmState, backendPath: string, trackDirty: boolean): HostGuestMemory {
  const prefix = 'Failed to load guest memory: Error creating guest memory from uffd: ';
  let mem: HostGuestMemory;
  try {
    // Huge pages come back as huge pages (docs/hugepages.md): the handler gets their size.
    mem = HostGuestMemory.anonymous(ramRanges(state.config.machine.mem_size_mib * MiB), { trackDirty, hugePages: state.config.machine.huge_pages });
  } catch (e) {
    throw restoreError(`${prefix}Failed to restore guest memory: ${e instanceof GuestMemoryAllocationError ? e.detail : (e as Error).message}`, e);
  }
  let uffd: Userfaultfd;
  try {
    uffd = Userfaultfd.open();
  } catch (e) {
    mem.close();
    throw restoreError(`${prefix}Failed to UFFD object: ${(e as Error).message}`, e);
  }
  mem.hold(uffd.fd);
  try {
    for (const r of mem.hostRegions) uffd.register(r.hostAddr, r.size);
  } catch (e) {
    mem.close();
    throw restoreError(`${prefix}Failed to register memory address range with the userfaultfd object: ${(e as Error).message}`, e);
  }
  try {
    const pageSize = mem.hugePages === '2M' ? HUGE_PAGE_2M : UFFD_DEFAULT_PAGE_SIZE;
    mem.hold(sendUffdHandshake(backendPath, memoryFileRegions(mem.hostRegions, pageSize), uffd.fd));
  } catch (e) {
    mem.close();
    throw restoreError(`${prefix}Failed to connect to UDS Unix stream: ${(e as Error).message}`, e);
  }
  return mem;
}

/** Builds the paused VM; the caller resumes it when the request asks (resume_vm). */
export async function restoreMicroVm(params: LoadSnapshotParams, host: VmHostOptions, ctx: RestoreContext): Promise<{ vm: Vmm; config: VmConfig }> {
  // Where a load's time goes, one log line at the end (the bench and issue 19 read it).
  const t0 = ctx.startedAt ?? performance.now();
  const marks: string[] = [];
  const mark = (what: string): void => { marks.push(`${what} ${Math.round(performance.now() - t0)} ms`); };
  // Up to here: the request's handling and this module's load.
  mark('restore module');
  const state = loadState(params);
  mark('state file');
  // The actor workers load while memory is mapped and KVM state set (spawnVirtioDevices then
  // takes them from the pool): a worker's start is the largest part of a restore.
  topUpAll(actorDemand(state.config.machine.vcpu_count, state.config));
  const saved = state.config;
  const config: VmConfig = {
    ...saved,
    fs: [], // never saved: a VM with virtio-fs refuses snapshots (snapshot-create.ts)
    instanceId: ctx.instanceId,
    machine: { ...saved.machine, track_dirty_pages: params.track_dirty_pages },
    mmds: saved.mmds ? { config: saved.mmds.config, store: ctx.mmdsStore() } : null,
  };
  const { backend_type: backend, backend_path: path } = params.mem_backend;
  const mem = backend === 'File' ? memoryFromFile(state, path, params.track_dirty_pages) : memoryFromUffd(state, path, params.track_dirty_pages);
  mark('memory');
  const cleanups: (() => void)[] = [() => mem.close()];
  try {
    // The CPUID and MSRs come from the state; the template's KVM capabilities are checked again.
    const caps = config.machine.custom_cpu_template?.kvm_capabilities ?? [];
    const { kvm, vm, vcpus } = createKvmVm(mem, config.machine.vcpu_count, params.track_dirty_pages, cleanups, caps);
    try {
      restoreVmState(vm, state.vm, { clockRealtime: params.clock_realtime });
    } catch (e) {
      throw restoreError(`Failed to build microVM from snapshot: Cannot restore KvmVm state: ${(e as Error).message}`, e);
    }
    const canScaleTsc = kvm.checkExtension('KVM_CAP_TSC_CONTROL') > 0 && kvm.checkExtension('KVM_CAP_GET_TSC_KHZ') > 0;
    vcpus.forEach((v, i) => {
      let refused: number[];
      try {
        refused = restoreVcpuState(v, state.vcpus[i]!, { canScaleTsc }).refusedMsrs;
      } catch (e) {
        throw restoreError(`Failed to build microVM from snapshot: Cannot restore Vcpu state: ${(e as Error).message}`, e);
      }
      if (refused.length) host.log('warn', `vCPU ${i}: KVM refused ${refused.length} saved MSRs: ${refused.map((x) => `0x${x.toString(16)}`).join(', ')}`);
    });

    const plan = planVirtioDevices(config);
    const outPath = config.serial.serial_out_path;
    mark('KVM state');
    const devices = createDeviceManager(() => createHostDevices({
      vm, serial: outPath !== null ? { kind: 'file', path: outPath } : { kind: host.console }, stdin: host.stdin ?? false,
      legacy: state.legacy,
    }));
    let virtio: Awaited<ReturnType<typeof spawnVirtioDevices>>;
    try {
      virtio = await spawnVirtioDevices(plan, vm, mem.describe(), ramBacking(mem), host.log, { ...state.devices, balloon: state.devices.balloon ?? null });
    } catch (e) {
      await devices.close();
      throw restoreError(`Failed to build microVM from snapshot: Cannot restore devices: ${(e as Error).message}`, e);
    }
    const irqs = interruptLayout(placements(plan).length);
    if (irqs) newGeneration(mem, acpiDevicesPlan(irqs), randomBytes(VMGENID_MEM_SIZE), (gsi) => { vm.irqLine(gsi, 1); vm.irqLine(gsi, 0); });
    mark('device actors');
    const { handles, vmControl } = await startVcpuActors(vm, vcpus, mem, devices, virtio, host.log);
    mark('vCPU actors');
    host.log('info', `snapshot restore (cumulative): ${marks.join(', ')}`);
    const vmm = new Vmm({
      config, kvm, vm, mem, vcpus, handles, vmControl, devices, log: host.log, ...virtio, metrics: host.metrics,
      initialState: 'Paused',
    });
    return { vm: vmm, config };
  } catch (e) {
    for (const c of cleanups.reverse()) {
      try { c(); } catch { /* best effort */ }
    }
    throw e;
  }
}
