/**
 * PUT /snapshot/create on a paused VM (Firecracker src/vmm/src/persist.rs `create_snapshot`,
 * docs/design.md "Snapshots"):
 *
 *  1. every virtio device worker is quiesced: it settles what it holds (requests in flight,
 *     popped RX chains) and stops touching guest memory, then reports its queue indices;
 *  2. the vCPUs' and the VM's KVM state and the legacy devices' state are read (the vCPUs
 *     are parked with no pending I/O exit, see src/actors/vcpu/worker.ts);
 *  3. the state file is written (create/truncate, fsync), then the memory file;
 *  4. the devices are released, whatever happened, so a failed snapshot leaves the VM as it
 *     was (paused and resumable).
 *
 * The memory file (src/snapshot/memory-file.ts: Full, or Diff from the dirty logs) is written
 * by a piscina thread straight from guest RAM, never on the main thread, so the API socket
 * keeps answering while gigabytes are written.
 */
import { open } from 'node:fs/promises';
import { saveVcpuState, saveVmState, msrsToSave } from '../arch/x86_64/kvm-state.js';
import { SnapshotError } from '../errors.js';
import { ioErrorText } from '../config/errors.js';
import { encodeStateFile } from '../snapshot/state-file.js';
import { snapshotMemory } from '../snapshot/memory-file.js';
import { savedConfig, type MicrovmState } from '../snapshot/microvm-state.js';
import type { CreateSnapshotParams } from '../config/snapshot.js';
import type { VmmParts } from './vmm.js';

/** Every virtio device handle of the VM, in attach order. */
function virtioHandles(p: VmmParts) {
  return [...(p.balloon ? [p.balloon] : []), ...p.blocks, ...p.nets, ...(p.vsock ? [p.vsock] : []), ...(p.entropy ? [p.entropy] : [])];
}

/** Reads the whole microVM state; the devices stay quiesced until the caller releases them. */
export async function captureState(p: VmmParts): Promise<MicrovmState> {
  // The virtio-pci transport's state (config space, MSI-X table, KVM's MSI routes) is not in
  // Kindling's state file yet: refuse rather than write a snapshot that restores broken.
  if (p.config.pciEnabled) {
    throw new SnapshotError('SNAPSHOT_NOT_ALLOWED', 'Cannot save the microVM state: snapshots of a microVM started with --enable-pci are not supported by Kindling yet');
  }
  // Not saved by Kindling yet: the hotplug region's plug state and slots, and the pmem windows
  // (Firecracker saves both). Refuse rather than write a snapshot that restores a different VM.
  if (p.config.memoryHotplug || p.config.pmem.length > 0) {
    const what = p.config.memoryHotplug ? 'memory hotplug (virtio-mem)' : 'pmem devices';
    throw new SnapshotError('SNAPSHOT_NOT_ALLOWED', `Cannot save the microVM state: snapshots of a microVM with ${what} are not supported by Kindling yet`);
  }
  // A vhost-user backend holds the virtio-fs device's state (its rings' positions, the FUSE
  // inodes and open files the guest knows), and Kindling cannot ask virtiofsd for it.
  // Firecracker cannot save its vhost-user drives either (VhostUserBlock::save is
  // `unimplemented!`, firecracker src/vmm/src/devices/virtio/block/vhost_user/persist.rs); Kindling
  // refuses before anything is quiesced or written.
  if ((p.config.fs ?? []).length > 0) {
    throw new SnapshotError('SNAPSHOT_NOT_ALLOWED', 'Cannot save the microVM state: snapshots of a microVM with virtio-fs devices (/fs) are not supported');
  }
  const balloon = p.balloon ? await p.balloon.saveState() : null;
  const blocks = await Promise.all(p.blocks.map((b) => b.saveState()));
  const nets = await Promise.all(p.nets.map((n) => n.saveState()));
  const vsock = p.vsock ? await p.vsock.saveState() : null;
  const entropy = p.entropy ? await p.entropy.saveState() : null;
  const xsaveSize = p.kvm.checkExtension('KVM_CAP_XSAVE2');
  const canReadTsc = p.kvm.checkExtension('KVM_CAP_GET_TSC_KHZ') > 0;
  const msrs = msrsToSave(p.kvm);
  let vcpus;
  try {
    vcpus = p.vcpus.map((v) => saveVcpuState(v, msrs, xsaveSize, canReadTsc));
  } catch (e) {
    throw new SnapshotError('SNAPSHOT_NOT_ALLOWED', `Cannot save the microVM state: Cannot save Vcpu state: ${(e as Error).message}`, { cause: e });
  }
  let vm;
  try {
    vm = saveVmState(p.vm);
  } catch (e) {
    throw new SnapshotError('SNAPSHOT_NOT_ALLOWED', `Cannot save the microVM state: Cannot save KvmVm state: ${(e as Error).message}`, { cause: e });
  }
  return {
    config: savedConfig(p.config),
    memory: { regions: p.mem.hostRegions.map((r) => ({ gpa: r.gpa, size: r.size })) },
    vm,
    vcpus,
    legacy: p.devices.saveLegacyState(),
    devices: { balloon, blocks, nets, vsock, entropy },
  };
}

/** Writes `bytes` to `path` (created or truncated) and fsyncs it; Firecracker's SnapshotBackingFile errors. */
async function writeStateFile(path: string, bytes: Uint8Array): Promise<void> {
  const step = async <T>(op: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw new SnapshotError('SNAPSHOT_STATE_FORMAT', `Cannot perform ${op} on the snapshot backing file: ${ioErrorText(e)}`, { cause: e });
    }
  };
  const fh = await step('open', () => open(path, 'w', 0o600));
  try {
    await step('flush', () => fh.writeFile(bytes));
    await step('sync_all', () => fh.sync());
  } finally {
    await fh.close();
  }
}

/** Takes a snapshot of a paused VM; the devices are released even when it fails. */
export async function createSnapshot(p: VmmParts, params: CreateSnapshotParams): Promise<void> {
  const handles = virtioHandles(p);
  try {
    const state = await captureState(p);
    await writeStateFile(params.snapshot_path, encodeStateFile(state));
    await snapshotMemory(params.mem_file_path, params.snapshot_type, p.vm, p.mem);
  } finally {
    await Promise.all(handles.map((h) => h.release().catch(() => undefined)));
  }
}
