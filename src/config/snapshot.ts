/**
 * Snapshot request bodies (firecracker src/vmm/src/vmm_config/ SnapshotCreateParams/SnapshotLoadParams;
 * vmm_config/snapshot.rs, api_server/request/snapshot.rs) and PATCH /vm (`Vm`). Executing them is
 * the backend's job; Kindling's snapshot format is its own (firecracker src/vmm/src/persist.rs: binary compatibility with
 * Firecracker files is not a goal).
 */
import { SerdeError } from './serde-read.js';
import { Desc, bool, deserialize, enumOf, field, opt, path, seq, str, struct } from './serde.js';

/** PUT /snapshot/create body. */
export interface CreateSnapshotParams {
  snapshot_type: 'Full' | 'Diff';
  snapshot_path: string;
  mem_file_path: string;
}

/** Guest memory source for a snapshot load. */
export interface MemBackendConfig {
  backend_path: string;
  backend_type: 'File' | 'Uffd';
}

/** The normalized PUT /snapshot/load parameters (`LoadSnapshotParams`). */
export interface LoadSnapshotParams {
  snapshot_path: string;
  mem_backend: MemBackendConfig;
  track_dirty_pages: boolean;
  resume_vm: boolean;
  network_overrides: { iface_id: string; host_dev_name: string }[];
  vsock_override: { uds_path: string } | null;
  clock_realtime: boolean;
}

/** A parsed load request plus whether deprecated fields were used (→ Deprecation header). */
export interface ParsedLoad {
  params: LoadSnapshotParams;
  deprecated: boolean;
}

/** PATCH /vm body state. */
export type VmStateRequest = 'Paused' | 'Resumed';

/** serde description of `CreateSnapshotParams`. */
const CREATE_SNAPSHOT: Desc = struct('CreateSnapshotParams', [
  field('snapshot_type', enumOf('Diff', 'Full'), () => 'Full'),
  field('snapshot_path', path),
  field('mem_file_path', path),
]);

const MEM_BACKEND = struct('MemBackendConfig', [field('backend_path', path), field('backend_type', enumOf('File', 'Uffd'))]);

/** serde description of `LoadSnapshotConfig`. */
const LOAD_SNAPSHOT: Desc = struct('LoadSnapshotConfig', [
  field('snapshot_path', path),
  field('mem_file_path', opt(path)),
  field('mem_backend', opt(MEM_BACKEND)),
  field('enable_diff_snapshots', bool, () => false),
  field('track_dirty_pages', bool, () => false),
  field('resume_vm', bool, () => false),
  field('network_overrides', seq(struct('NetworkOverride', [field('iface_id', str), field('host_dev_name', str)], false)), () => []),
  field('vsock_override', opt(struct('VsockOverride', [field('uds_path', str)], false))),
  field('clock_realtime', bool, () => false),
]);

/** serde description of `Vm` (PATCH /vm). */
const VM_STATE: Desc = struct('Vm', [field('state', enumOf('Paused', 'Resumed'))]);

/** Parses a PUT /snapshot/create body. */
export function parseCreateSnapshot(body: Uint8Array | string): CreateSnapshotParams {
  return deserialize<CreateSnapshotParams>(body, CREATE_SNAPSHOT);
}

/** Texts of the mem_backend / mem_file_path exclusivity errors (position-less serde customs). */
export const LOAD_SNAPSHOT_ERRORS = {
  MISSING_FIELD: 'missing field: either `mem_backend` or `mem_file_path` is required',
  TOO_MANY_FIELDS: 'too many fields: either `mem_backend` or `mem_file_path` exclusively is required',
} as const;

/** Parses a PUT /snapshot/load body, folding deprecated fields into the new ones. */
export function parseLoadSnapshot(body: Uint8Array | string): ParsedLoad {
  const c = deserialize<{
    snapshot_path: string;
    mem_file_path: string | null;
    mem_backend: MemBackendConfig | null;
    enable_diff_snapshots: boolean;
    track_dirty_pages: boolean;
    resume_vm: boolean;
    network_overrides: { iface_id: string; host_dev_name: string }[];
    vsock_override: { uds_path: string } | null;
    clock_realtime: boolean;
  }>(body, LOAD_SNAPSHOT);
  if (c.mem_backend && c.mem_file_path !== null) throw new SerdeError(LOAD_SNAPSHOT_ERRORS.TOO_MANY_FIELDS);
  if (!c.mem_backend && c.mem_file_path === null) throw new SerdeError(LOAD_SNAPSHOT_ERRORS.MISSING_FIELD);
  return {
    deprecated: c.mem_file_path !== null || c.enable_diff_snapshots,
    params: {
      snapshot_path: c.snapshot_path,
      mem_backend: c.mem_backend ?? { backend_path: c.mem_file_path!, backend_type: 'File' },
      track_dirty_pages: c.enable_diff_snapshots || c.track_dirty_pages,
      resume_vm: c.resume_vm,
      network_overrides: c.network_overrides,
      vsock_override: c.vsock_override,
      clock_realtime: c.clock_realtime,
    },
  };
}

/** Parses a PATCH /vm body. */
export function parseVmState(body: Uint8Array | string): VmStateRequest {
  return deserialize<{ state: VmStateRequest }>(body, VM_STATE).state;
}
