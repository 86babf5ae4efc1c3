/**
 * What a virtio-net device shows the driver before activation: offered features, the config
 * space (virtio 1.1 §5.1.4) and its write rules, and the TAP offloads that follow from the
 * features the driver acked. Firecracker: src/vmm/src/devices/virtio/net/device.rs
 * (`Net::new_with_tap`, `ConfigSpace`, `write_config`, `build_tap_offload_features`).
 *
 * Config state. The config bytes are written by vCPU threads (a driver's MAC write) and read by
 * the device worker (the MAC that TX frames are checked against), so they live in one buffer
 * both sides view, ideally over a SharedArrayBuffer: NET_CONFIG_STATE_SIZE bytes, the 12 config
 * bytes the driver sees and then one flag byte, set when a guest MAC is known (configured, or
 * written by the driver: Firecracker sets `guest_mac = Some(..)` on a config write). A driver's
 * multi-byte MAC write is not atomic for the worker; at worst one frame is counted as spoofed
 * against a half-written MAC, as a metric.
 */
import { DeviceStateError, NetDeviceParamsError } from '../../../errors.js';
import {
  VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_RING_INDIRECT_DESC, VIRTIO_F_VERSION_1, VIRTIO_ID_NET, VIRTIO_NET_CONFIG_MAC, VIRTIO_NET_CONFIG_MAX_VIRTQUEUE_PAIRS,
  VIRTIO_NET_CONFIG_MTU, VIRTIO_NET_CONFIG_SIZE, VIRTIO_NET_CONFIG_STATUS, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_HOST_UFO, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_MTU, featureBit, hasFeature,
} from '../constants.js';
import { ByteConfigSpace, type VirtioDeviceDescription } from '../device.js';
import { ETH_ALEN, NET_NUM_QUEUES, NET_QUEUE_SIZE, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_UFO } from './constants.js';
import type { NetMetrics } from './metrics.js';

/** Smallest MTU Firecracker accepts (`NetError::InvalidMtu`: [68, 65535]). */
export const NET_MTU_MIN = 68;
/** Largest MTU (the config field is a u16). */
export const NET_MTU_MAX = 65535;

/** Bytes of a net config state buffer: the config space, then the "guest MAC known" flag. */
export const NET_CONFIG_STATE_SIZE = 16;
/** Offset of the flag byte: 1 when a guest MAC is configured or was written by the driver. */
const NET_CONFIG_MAC_KNOWN = VIRTIO_NET_CONFIG_SIZE;

/** The interface properties the model needs (from PUT /network-interfaces). */
export interface NetDeviceParams {
  /** guest_mac as 6 bytes; null lets the driver pick one (VIRTIO_NET_F_MAC not offered). */
  readonly guestMac: Uint8Array | null;
  /** mtu in 68..65535; null: VIRTIO_NET_F_MTU not offered. */
  readonly mtu: number | null;
}

/** Throws NetDeviceParamsError for a MAC or MTU the API layer would have refused. */
function checkParams(p: NetDeviceParams): void {
  if (p.guestMac !== null && p.guestMac.length !== ETH_ALEN) throw new NetDeviceParamsError(`guest MAC of ${p.guestMac.length} bytes`);
  if (p.mtu !== null && (!Number.isInteger(p.mtu) || p.mtu < NET_MTU_MIN || p.mtu > NET_MTU_MAX)) {
    throw new NetDeviceParamsError(`MTU ${p.mtu} is out of range [${NET_MTU_MIN}, ${NET_MTU_MAX}]`);
  }
}

/**
 * The offered feature bits: Firecracker's fixed set, plus MAC and MTU when configured, plus
 * INDIRECT_DESC (as QEMU offers it; Firecracker does not). Without it a TSO frame holds one TX
 * ring descriptor per page fragment plus one, and Linux virtio_net stops its queue whenever
 * fewer than 2 + MAX_SKB_FRAGS (19) are free: a 256-entry ring holds as few as ~13 large frames
 * and the guest sleeps until TX completions come back. With it each frame is one ring slot
 * (virtio_ring.c takes an indirect table for any buffer of more than one descriptor). A
 * guest-visible feature, not an API change.
 */
export function netFeatures(p: NetDeviceParams): bigint {
  let f = [
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_HOST_UFO, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_F_VERSION_1,
    VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_RING_INDIRECT_DESC,
  ].reduce((acc, bit) => acc | featureBit(bit), 0n);
  if (p.guestMac !== null) f |= featureBit(VIRTIO_NET_F_MAC);
  if (p.mtu !== null) f |= featureBit(VIRTIO_NET_F_MTU);
  return f;
}

/**
 * Encodes the config state into `bytes` (NET_CONFIG_STATE_SIZE bytes, e.g. over a
 * SharedArrayBuffer): `struct virtio_net_config` {mac, status 0, max_virtqueue_pairs 0, mtu}
 * (a zero MAC and MTU when not configured, as Firecracker's default ConfigSpace), and the
 * "guest MAC known" flag. Throws DeviceStateError when `bytes` is too small.
 */
export function encodeNetConfig(p: NetDeviceParams, bytes: Uint8Array = new Uint8Array(NET_CONFIG_STATE_SIZE)): Uint8Array {
  checkParams(p);
  if (bytes.length < NET_CONFIG_STATE_SIZE) {
    throw new DeviceStateError(`virtio-net config state needs ${NET_CONFIG_STATE_SIZE} bytes, got ${bytes.length}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  bytes.fill(0, 0, NET_CONFIG_STATE_SIZE);
  if (p.guestMac) bytes.set(p.guestMac, VIRTIO_NET_CONFIG_MAC);
  dv.setUint16(VIRTIO_NET_CONFIG_STATUS, 0, true);
  dv.setUint16(VIRTIO_NET_CONFIG_MAX_VIRTQUEUE_PAIRS, 0, true);
  dv.setUint16(VIRTIO_NET_CONFIG_MTU, p.mtu ?? 0, true);
  Atomics.store(bytes, NET_CONFIG_MAC_KNOWN, p.guestMac ? 1 : 0);
  return bytes;
}

/**
 * The guest MAC the device checks TX frames against, read from the config state: a view of
 * the 6 MAC bytes, or null while none is known.
 */
export function knownGuestMac(configState: Uint8Array): Uint8Array | null {
  if (Atomics.load(configState, NET_CONFIG_MAC_KNOWN) === 0) return null;
  return configState.subarray(VIRTIO_NET_CONFIG_MAC, VIRTIO_NET_CONFIG_MAC + ETH_ALEN);
}

/**
 * A driver write to the config space (Firecracker v1.16 `Net::write_config`): a write that lies
 * inside `mac` updates it, makes it the guest MAC and counts `mac_address_updates`; any other
 * write (status, max_virtqueue_pairs, mtu, past the end) is refused and counts `cfg_fails`.
 */
function writeConfig(configState: Uint8Array, offset: number, data: Uint8Array, metrics: NetMetrics | undefined): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + data.length > VIRTIO_NET_CONFIG_MAC + ETH_ALEN) {
    metrics?.inc('cfg_fails');
    return;
  }
  configState.set(data, VIRTIO_NET_CONFIG_MAC + offset);
  Atomics.store(configState, NET_CONFIG_MAC_KNOWN, 1);
  metrics?.inc('mac_address_updates');
}

/**
 * The transport-facing description of an interface. `configState` (NET_CONFIG_STATE_SIZE
 * bytes, over a SharedArrayBuffer shared with the device worker) defaults to a private
 * encoding; config writes are handled as `writeConfig` says and counted in `metrics`.
 */
export function netDescription(p: NetDeviceParams, configState?: Uint8Array, metrics?: NetMetrics): VirtioDeviceDescription {
  checkParams(p);
  const state = configState ?? encodeNetConfig(p);
  if (state.length < NET_CONFIG_STATE_SIZE) {
    throw new DeviceStateError(`virtio-net config state needs ${NET_CONFIG_STATE_SIZE} bytes, got ${state.length}`);
  }
  return {
    deviceId: VIRTIO_ID_NET,
    features: netFeatures(p),
    queueMaxSizes: new Array<number>(NET_NUM_QUEUES).fill(NET_QUEUE_SIZE),
    config: new ByteConfigSpace(state.subarray(0, VIRTIO_NET_CONFIG_SIZE), (offset, data) => writeConfig(state, offset, data, metrics)),
  };
}

/**
 * TUNSETOFFLOAD flags for the features the driver acked (Firecracker
 * `build_tap_offload_features`): the TAP may hand the guest checksum-less or GSO frames only
 * when the driver takes them (the GUEST_* features).
 */
export function netTapOffloadFlags(ackedFeatures: bigint): number {
  let flags = 0;
  if (hasFeature(ackedFeatures, VIRTIO_NET_F_GUEST_CSUM)) flags |= TUN_F_CSUM;
  if (hasFeature(ackedFeatures, VIRTIO_NET_F_GUEST_UFO)) flags |= TUN_F_UFO;
  if (hasFeature(ackedFeatures, VIRTIO_NET_F_GUEST_TSO4)) flags |= TUN_F_TSO4;
  if (hasFeature(ackedFeatures, VIRTIO_NET_F_GUEST_TSO6)) flags |= TUN_F_TSO6;
  return flags;
}
