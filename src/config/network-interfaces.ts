/**
 * PUT/PATCH /network-interfaces/{id} (firecracker src/vmm/src/vmm_config/ NetworkInterface, vmm_config/net.rs). The TAP is
 * opened at PUT time in Firecracker; Kindling asks the backend's `DeviceProbe.openTap` (the API
 * layer has no TUN ioctls) and otherwise only checks the name length. Same id → replaced (moved
 * to the end, as `swap_remove` + push does); a MAC used by another interface is refused.
 */
import { ConfigError } from './errors.js';
import { RATE_LIMITER, RateLimiterConfig, effectiveRateLimiter } from './rate-limiter.js';
import { Desc, custom, customError, deserialize, field, int, opt, str, struct } from './serde.js';

/** IFNAMSIZ: TAP names must be shorter (IFACE_NAME_MAX_LEN). */
export const IFACE_NAME_MAX_LEN = 16;

/** The PUT body (`NetworkInterfaceConfig`); `guest_mac` normalized to lowercase hex. */
export interface NetworkInterfaceConfig {
  iface_id: string;
  host_dev_name: string;
  guest_mac: string | null;
  mtu: number | null;
  rx_rate_limiter: RateLimiterConfig | null;
  tx_rate_limiter: RateLimiterConfig | null;
}

/** The PATCH body (`NetworkInterfaceUpdateConfig`): only rate limiters change after boot. */
export interface NetworkInterfaceUpdateConfig {
  iface_id: string;
  rx_rate_limiter: RateLimiterConfig | null;
  tx_rate_limiter: RateLimiterConfig | null;
}

/** `MacAddr::from_str`: six `:`-separated 2-character hex octets. */
export function parseMac(s: string): string | null {
  const parts = s.split(':');
  if (parts.length !== 6) return null;
  const out: string[] = [];
  for (const p of parts) {
    if (p.length !== 2 || !/^\+?[0-9a-fA-F]+$/.test(p)) return null;
    out.push(parseInt(p.replace('+', ''), 16).toString(16).padStart(2, '0'));
  }
  return out.join(':');
}

const MAC = custom<string>(str, (s) => {
  const mac = parseMac(s);
  if (mac === null) throw customError('The provided MAC address is invalid.');
  return mac;
});

/** serde description of `NetworkInterfaceConfig` (deny_unknown_fields). */
export const NETWORK_INTERFACE: Desc = struct('NetworkInterfaceConfig', [
  field('iface_id', str),
  field('host_dev_name', str),
  field('guest_mac', opt(MAC)),
  field('mtu', opt(int('u16'))),
  field('rx_rate_limiter', opt(RATE_LIMITER)),
  field('tx_rate_limiter', opt(RATE_LIMITER)),
]);

/** serde description of `NetworkInterfaceUpdateConfig` (deny_unknown_fields). */
const NETWORK_INTERFACE_UPDATE: Desc = struct('NetworkInterfaceUpdateConfig', [
  field('iface_id', str),
  field('rx_rate_limiter', opt(RATE_LIMITER)),
  field('tx_rate_limiter', opt(RATE_LIMITER)),
]);


/** Parses a PUT body. */
export function parseNetworkInterface(body: Uint8Array | string): NetworkInterfaceConfig {
  return deserialize<NetworkInterfaceConfig>(body, NETWORK_INTERFACE);
}

/** Parses a PATCH body. */
export function parseNetworkInterfaceUpdate(body: Uint8Array | string): NetworkInterfaceUpdateConfig {
  return deserialize<NetworkInterfaceUpdateConfig>(body, NETWORK_INTERFACE_UPDATE);
}

/** Opens (or checks) a TAP by name; throws an Error whose message is the TapError text. */
export type OpenTap = (hostDevName: string) => void;

/**
 * `NetBuilder::build`: MAC conflict check, replace-by-id, then device creation (TAP open, then
 * the MTU range check, as `Net::new` orders them). Mutates and returns `list`.
 */
export function insertNetworkInterface(list: NetworkInterfaceConfig[], cfg: NetworkInterfaceConfig, openTap?: OpenTap): NetworkInterfaceConfig[] {
  if (cfg.guest_mac !== null && list.some((n) => n.guest_mac === cfg.guest_mac && n.iface_id !== cfg.iface_id)) {
    throw new ConfigError('net', `The MAC address is already in use: ${cfg.guest_mac}`);
  }
  const at = list.findIndex((n) => n.iface_id === cfg.iface_id);
  if (at !== -1) {
    // Vec::swap_remove: the last element takes the removed slot.
    const last = list.pop()!;
    if (at < list.length) list[at] = last;
  }
  const fail = (msg: string): never => {
    throw new ConfigError('net', `Could not create the network device: ${msg}`);
  };
  if (Buffer.byteLength(cfg.host_dev_name) >= IFACE_NAME_MAX_LEN) fail('Open tap device failed: Invalid interface name');
  if (openTap) {
    try {
      openTap(cfg.host_dev_name);
    } catch (e) {
      fail(`Open tap device failed: ${(e as Error).message}`);
    }
  }
  if (cfg.mtu !== null && cfg.mtu < 68) fail(`MTU ${cfg.mtu} is out of range [68, 65535]`);
  list.push({ ...cfg });
  return list;
}

/** An interface as GET /vm/config reports it. */
export function networkInterfaceJson(n: NetworkInterfaceConfig): NetworkInterfaceConfig {
  return { ...n, rx_rate_limiter: effectiveRateLimiter(n.rx_rate_limiter), tx_rate_limiter: effectiveRateLimiter(n.tx_rate_limiter) };
}
