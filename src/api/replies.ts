/**
 * Reply bodies, serialized with fast-json-stringify from schemas whose property order is the
 * Rust struct order (serde serializes fields in declaration order; firecracker src/firecracker/src/api_server/parsed_request.rs "compact
 * serde_json"). `VmmData` → status + body (`ParsedRequest::convert_to_response`).
 */
import { lazySerializer } from '../util/json-serializer.js';
import { BALLOON_STAT_NAMES } from '../config/balloon.js';
import { MACHINE_CONFIG_REPLY_SCHEMA } from '../config/machine-config.js';
import type { VmmData } from '../vmm/actions.js';
import type { StatusCode } from './http-response.js';

/** fast-json-stringify, compiled on first use (src/util/json-serializer.ts). */
const fastJson = lazySerializer;

const int = { type: 'integer' } as const;
const bool = { type: 'boolean' } as const;
const strS = { type: 'string' } as const;
const nstr = { type: ['string', 'null'] } as const;
const nint = { type: ['integer', 'null'] } as const;
const obj = (properties: Record<string, unknown>, nullable = false): Record<string, unknown> => ({
  type: nullable ? ['object', 'null'] : 'object',
  properties,
  required: Object.keys(properties),
});

const TOKEN_BUCKET = obj({ size: int, one_time_burst: nint, refill_time: int }, true);
const RATE_LIMITER = obj({ bandwidth: TOKEN_BUCKET, ops: TOKEN_BUCKET }, true);
const BALLOON = obj({ amount_mib: int, deflate_on_oom: bool, stats_polling_interval_s: int, free_page_hinting: bool, free_page_reporting: bool });
const DRIVE = obj({
  drive_id: strS, partuuid: nstr, is_root_device: bool, cache_type: strS, is_read_only: { type: ['boolean', 'null'] }, path_on_host: nstr,
  rate_limiter: RATE_LIMITER, io_engine: nstr, socket: nstr,
});
const NET = obj({ iface_id: strS, host_dev_name: strS, guest_mac: nstr, mtu: nint, rx_rate_limiter: RATE_LIMITER, tx_rate_limiter: RATE_LIMITER });
const PMEM = obj({ id: strS, path_on_host: strS, root_device: bool, read_only: bool, rate_limiter: RATE_LIMITER });
const MMDS_CONFIG = obj({ version: strS, network_interfaces: { type: 'array', items: strS }, ipv4_address: nstr, imds_compat: bool }, true);
const MEMORY_HOTPLUG = obj({ total_size_mib: int, block_size_mib: int, slot_size_mib: int }, true);
const NULL_ONLY = { type: 'null' } as const;

/** GET / */
export const serializeInstanceInfo = fastJson(obj({ id: strS, state: strS, vmm_version: strS, app_name: strS }));
/** GET /version */
export const serializeVersion = fastJson(obj({ firecracker_version: strS }));
/** GET /machine-config */
export const serializeMachineConfig = fastJson(MACHINE_CONFIG_REPLY_SCHEMA);
/** GET /balloon */
export const serializeBalloon = fastJson(BALLOON);
/** GET /balloon/statistics (optional counters omitted when absent). */
export const serializeBalloonStats = fastJson({
  type: 'object',
  properties: { target_pages: int, actual_pages: int, target_mib: int, actual_mib: int, ...Object.fromEntries(BALLOON_STAT_NAMES.map((n) => [n, int])) },
  required: ['target_pages', 'actual_pages', 'target_mib', 'actual_mib'],
});
/** GET /balloon/hinting/status */
export const serializeHintingStatus = fastJson(obj({ host_cmd: int, guest_cmd: nint }));
/** GET /hotplug/memory */
export const serializeMemoryHotplugStatus = fastJson(
  obj({ total_size_mib: int, slot_size_mib: int, block_size_mib: int, plugged_size_mib: int, requested_size_mib: int }),
);
/** GET /vm/config (`VmmConfig`, kebab-case keys, explicit nulls). */
export const serializeFullVmConfig = fastJson(
  obj({
    balloon: { ...BALLOON, type: ['object', 'null'] },
    drives: { type: 'array', items: DRIVE },
    'boot-source': obj({ kernel_image_path: strS, initrd_path: nstr, boot_args: nstr }),
    'cpu-config': NULL_ONLY,
    logger: NULL_ONLY,
    'machine-config': MACHINE_CONFIG_REPLY_SCHEMA,
    metrics: NULL_ONLY,
    'mmds-config': MMDS_CONFIG,
    'network-interfaces': { type: 'array', items: NET },
    vsock: obj({ guest_cid: int, uds_path: strS }, true),
    entropy: obj({ rate_limiter: RATE_LIMITER }, true),
    pmem: { type: 'array', items: PMEM },
    'memory-hotplug': MEMORY_HOTPLUG,
  }),
);
/** `{"fault_message": "..."}` (serde_json `json!` → compact). */
export const serializeFault = fastJson(obj({ fault_message: strS }));

/** Status and body of a successful action. */
export function dataToResponse(d: VmmData): { status: StatusCode; body?: string } {
  switch (d.kind) {
    case 'Empty': return { status: 204 };
    case 'BalloonConfig': return { status: 200, body: serializeBalloon(d.value) };
    case 'BalloonStats': return { status: 200, body: serializeBalloonStats(d.value) };
    case 'FullVmConfig': return { status: 200, body: serializeFullVmConfig(d.value) };
    case 'MachineConfiguration': return { status: 200, body: serializeMachineConfig(d.value) };
    case 'MmdsValue': return { status: 200, body: d.json };
    case 'InstanceInformation': return { status: 200, body: serializeInstanceInfo(d.value) };
    case 'VmmVersion': return { status: 200, body: serializeVersion({ firecracker_version: d.version }) };
    case 'VirtioMemStatus': return { status: 200, body: serializeMemoryHotplugStatus(d.value) };
    case 'HintingStatus': return { status: 200, body: serializeHintingStatus(d.value) };
  }
}
