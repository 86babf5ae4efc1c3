/**
 * What the vsock device shows the driver before activation (Firecracker devices/virtio/vsock/
 * device.rs `AVAIL_FEATURES`, `read_config`, `write_config`): VERSION_1, IN_ORDER and
 * EVENT_IDX; three queues of VSOCK_QUEUE_SIZE; and the config space `le64 guest_cid`
 * (virtio 1.1 §5.10.4), read-only.
 *
 * Firecracker answers only the reads a driver makes of guest_cid: all 8 bytes at offset 0, or
 * one 32-bit half at offset 0 or 4 (Linux's virtio-mmio reads a u64 as two 32-bit reads).
 * Any other read returns zeros (Firecracker leaves the buffer as it was) and counts
 * `cfg_fails`; every write counts `cfg_fails`. The description is built on each vCPU thread
 * over the shared metrics, so those counts reach the metrics file.
 */
import { VIRTIO_F_IN_ORDER, VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1, VIRTIO_ID_VSOCK, featureBit } from '../constants.js';
import type { VirtioConfigSpace, VirtioDeviceDescription } from '../device.js';
import { VSOCK_CONFIG_GUEST_CID, VSOCK_CONFIG_GUEST_CID_HIGH, VSOCK_CONFIG_SIZE, VSOCK_NUM_QUEUES, VSOCK_QUEUE_SIZE } from './constants.js';
import type { VsockMetrics } from './metrics.js';

/** The offered feature bits (Firecracker AVAIL_FEATURES). */
export const VSOCK_FEATURES = [VIRTIO_F_VERSION_1, VIRTIO_F_IN_ORDER, VIRTIO_F_RING_EVENT_IDX].reduce((f, b) => f | featureBit(b), 0n);

const U32_SIZE = 4;
const U32_MODULUS = 2 ** 32;

/** The vsock config space over a guest CID (u32 in PUT /vsock, le64 on the wire). */
export class VsockConfigSpace implements VirtioConfigSpace {
  constructor(readonly guestCid: number, private readonly metrics?: VsockMetrics) {}

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const low = this.guestCid % U32_MODULUS;
    const high = Math.floor(this.guestCid / U32_MODULUS);
    if (offset === VSOCK_CONFIG_GUEST_CID && data.length === VSOCK_CONFIG_SIZE) {
      v.setUint32(0, low, true);
      v.setUint32(U32_SIZE, high, true);
    } else if (offset === VSOCK_CONFIG_GUEST_CID && data.length === U32_SIZE) {
      v.setUint32(0, low, true);
    } else if (offset === VSOCK_CONFIG_GUEST_CID_HIGH && data.length === U32_SIZE) {
      v.setUint32(0, high, true);
    } else {
      this.metrics?.inc('cfg_fails');
    }
  }

  write(): void {
    this.metrics?.inc('cfg_fails');
  }
}

/** The transport-facing description of a vsock device with `guestCid`. */
export function vsockDescription(guestCid: number, metrics?: VsockMetrics): VirtioDeviceDescription {
  return {
    deviceId: VIRTIO_ID_VSOCK,
    features: VSOCK_FEATURES,
    queueMaxSizes: new Array<number>(VSOCK_NUM_QUEUES).fill(VSOCK_QUEUE_SIZE),
    config: new VsockConfigSpace(guestCid, metrics),
  };
}
