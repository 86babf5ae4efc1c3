/**
 * The virtio-mem device's face (virtio 1.2 §5.15; Firecracker src/vmm/src/devices/virtio/mem/):
 * device id, features, queue and the 56-byte `struct virtio_mem_config`, kept in a
 * SharedArrayBuffer: the vCPU threads serve the driver's config reads from it, the device
 * worker updates `requested_size` (PATCH /hotplug/memory), `usable_region_size` and
 * `plugged_size`.
 *
 *   le64 block_size; le16 node_id; u8 padding[6]; le64 addr; le64 region_size;
 *   le64 usable_region_size; le64 plugged_size; le64 requested_size;
 */
import { VIRTIO_ID_MEM, featureBit } from '../constants.js';
import { ByteConfigSpace, type VirtioDeviceDescription } from '../device.js';

/** §5.15.3: the device reports an ACPI proximity domain in node_id (not offered). */
export const VIRTIO_MEM_F_ACPI_PXM = 0;
/** §5.15.3: the driver does not read or write unplugged memory (required, as by Firecracker). */
export const VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE = 1;
/** Offered features: VERSION_1 (added by the transport) and UNPLUGGED_INACCESSIBLE (Firecracker `avail_features`). */
export const MEM_FEATURES = featureBit(VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE);
/** One request queue (Firecracker MEM_NUM_QUEUES, MEM_QUEUE) of FIRECRACKER_MAX_QUEUE_SIZE entries. */
export const MEM_NUM_QUEUES = 1;
export const MEM_QUEUE = 0;
export const MEM_QUEUE_SIZE = 256;
/** The device id Firecracker's API and thread names use (`VIRTIO_MEM_DEV_ID`). */
export const MEM_DEV_ID = 'mem';

/** sizeof(struct virtio_mem_config) and its field offsets. */
export const VIRTIO_MEM_CONFIG_SIZE = 56;
const CFG_BLOCK_SIZE = 0;
const CFG_ADDR = 16;
const CFG_REGION_SIZE = 24;
const CFG_USABLE_REGION_SIZE = 32;
const CFG_PLUGGED_SIZE = 40;
const CFG_REQUESTED_SIZE = 48;

/** The device's config fields, as numbers (every value Kindling uses is below 2^53). */
export interface MemConfigFields {
  blockSize: number;
  addr: number;
  regionSize: number;
  usableRegionSize: number;
  pluggedSize: number;
  requestedSize: number;
}

/**
 * `struct virtio_mem_config` over shared bytes. Writers are the device worker only; a vCPU
 * thread reading while the worker writes a field may see a torn value for one read, which
 * the driver re-reads after the config interrupt (config generation is not offered on MMIO
 * by Firecracker either).
 */
export class MemConfig {
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(buffer: SharedArrayBuffer | ArrayBuffer = new SharedArrayBuffer(VIRTIO_MEM_CONFIG_SIZE)) {
    this.bytes = new Uint8Array(buffer, 0, VIRTIO_MEM_CONFIG_SIZE);
    this.view = new DataView(buffer, 0, VIRTIO_MEM_CONFIG_SIZE);
  }

  /** A fresh config: the region, nothing usable, plugged or requested (Firecracker `VirtioMem::new`). */
  static create(addr: number, regionSize: number, blockSize: number): MemConfig {
    const c = new MemConfig();
    c.set({ blockSize, addr, regionSize, usableRegionSize: 0, pluggedSize: 0, requestedSize: 0 });
    return c;
  }

  get buffer(): SharedArrayBuffer | ArrayBuffer {
    return this.bytes.buffer as SharedArrayBuffer | ArrayBuffer;
  }

  get(): MemConfigFields {
    const r = (o: number): number => Number(this.view.getBigUint64(o, true));
    return {
      blockSize: r(CFG_BLOCK_SIZE), addr: r(CFG_ADDR), regionSize: r(CFG_REGION_SIZE), usableRegionSize: r(CFG_USABLE_REGION_SIZE),
      pluggedSize: r(CFG_PLUGGED_SIZE), requestedSize: r(CFG_REQUESTED_SIZE),
    };
  }

  set(f: Partial<MemConfigFields>): void {
    const w = (o: number, v: number | undefined): void => { if (v !== undefined) this.view.setBigUint64(o, BigInt(v), true); };
    w(CFG_BLOCK_SIZE, f.blockSize);
    w(CFG_ADDR, f.addr);
    w(CFG_REGION_SIZE, f.regionSize);
    w(CFG_USABLE_REGION_SIZE, f.usableRegionSize);
    w(CFG_PLUGGED_SIZE, f.pluggedSize);
    w(CFG_REQUESTED_SIZE, f.requestedSize);
  }
}

/**
 * The transport-facing description. The config space is read-only for the driver (§5.15.4);
 * a write is reported through `onWrite` (Firecracker only logs it).
 */
export function memDescription(config: MemConfig, onWrite: (offset: number, data: Uint8Array) => void = () => {}): VirtioDeviceDescription {
  return { deviceId: VIRTIO_ID_MEM, features: MEM_FEATURES, queueMaxSizes: [MEM_QUEUE_SIZE], config: new ByteConfigSpace(config.bytes, onWrite) };
}
