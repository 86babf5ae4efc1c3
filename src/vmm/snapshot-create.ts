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
 * The memory file write runs on libuv's thread pool (fs/promises), never on the main thread,
 * so the API socket keeps answering while gigabytes are written.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { saveVcpuState, saveVmState, msrsToSave } from '../arch/x86_64/kvm-state.js';
import { SnapshotError } from '../errors.js';
import { ioErrorText } from '../config/errors.js';
import { encodeStateFile } from '../snapshot/state-file.js';
import { savedConfig, type MicrovmState } from '../snapshot/microvm-state.js';
import type { CreateSnapshotParams } from '../config/snapshot.js';
import type { VmmParts } from './vmm.js';

/** Bytes per write call of the memory file (bounded so one call never pins a huge iovec). */
const MEMORY_WRITE_CHUNK = 64 * 1024 * 1024;

/** Every virtio device handle of the VM, in attach order. */
function virtioHandles(p: VmmParts) {
  return [...p.blocks, ...p.nets, ...(p.vsock ? [p.vsock] : []), ...(p.entropy ? [p.entropy] : [])];
}

/** Reads the whole microVM state; the devices stay quiesced until the caller releases them. */
export async function captureState(p: VmmParts): Promise<MicrovmState> {
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
    devices: { blocks, nets, vsock, entropy },
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

/**
 * A Full memory file: every region back to back in guest order. The file's size is set to the
 * total only when it differs: it may be the file a restored VM is mapped from (MAP_PRIVATE),
 * and truncating that would pull pages from under the guest (Firecracker persist.rs).
 */
async function writeFullMemory(path: string, p: VmmParts): Promise<void> {
  const step = async <T>(op: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw new SnapshotError('SNAPSHOT_STATE_FORMAT', `Cannot perform ${op} on the memory backing file: ${ioErrorText(e)}`, { cause: e });
    }
  };
  const regions = p.mem.hostRegions;
  const total = regions.reduce((n, r) => n + r.size, 0);
  const fh = await step('open', () => open(path, constants.O_RDWR | constants.O_CREAT, 0o600));
  try {
    const st = await step('metadata', () => fh.stat());
    if (st.size !== total) await step('set_len', () => fh.truncate(total));
    let offset = 0;
    for (const r of regions) {
      for (let at = 0; at < r.size; at += MEMORY_WRITE_CHUNK) {
        const len = Math.min(MEMORY_WRITE_CHUNK, r.size - at);
        // A view of guest RAM: the kernel copies straight from the mapping, nothing through JS.
        await step('write', () => fh.write(r.bytes, at, len, offset + at));
      }
      offset += r.size;
    }
    await step('sync_all', () => fh.sync());
  } finally {
    await fh.close();
  }
}

/** Takes a snapshot of a paused VM; the devices are released even when it fails. */
export async function createSnapshot(p: VmmParts, params: CreateSnapshotParams): Promise<void> {
  if (params.snapshot_type === 'Diff') {
    throw new SnapshotError('SNAPSHOT_NOT_ALLOWED', 'Diff snapshots are not implemented by this build yet; take a Full snapshot');
  }
  const handles = virtioHandles(p);
  try {
    const state = await captureState(p);
    await writeStateFile(params.snapshot_path, encodeStateFile(state));
    await writeFullMemory(params.mem_file_path, p);
  } finally {
    await Promise.all(handles.map((h) => h.release().catch(() => undefined)));
  }
}
