/**
 * PUT /mmds/config (firecracker src/vmm/src/vmm_config/ MmdsConfig; vmm_config/mmds.rs, resources.rs
 * `set_mmds_network_stack_config`). The interfaces must already exist; the address must be
 * RFC 3927 link-local outside 169.254.0.x and 169.254.255.x.
 */
import { ConfigError } from './errors.js';
import { Desc, bool, custom, customError, deserialize, enumOf, field, opt, seq, str, struct } from './serde.js';

import type { MmdsVersion } from '../mmds/responder.js';
/** MMDS version (`V1` is the deprecated default); defined once, by the guest-facing responder. */
export type { MmdsVersion };
/** MmdsNetworkStack::default_ipv4_addr. */
export const DEFAULT_MMDS_IPV4 = '169.254.169.254';

/** The PUT /mmds/config body. */
export interface MmdsConfig {
  version: MmdsVersion;
  network_interfaces: string[];
  ipv4_address: string | null;
  imds_compat: boolean;
}

/** Rust's strict `Ipv4Addr::from_str`: four decimal octets, no leading zeros. */
export function parseIpv4(s: string): number[] | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return null;
    out.push(Number(p));
  }
  return out;
}

const IPV4 = custom<string>({ kind: 'string', expecting: 'IPv4 address' }, (s) => {
  if (!parseIpv4(s)) throw customError('invalid IPv4 address syntax');
  return s;
});

/** serde description of `MmdsConfig` (deny_unknown_fields). */
export const MMDS_CONFIG: Desc = struct('MmdsConfig', [
  field('version', enumOf('V1', 'V2'), () => 'V1'),
  field('network_interfaces', seq(str)),
  field('ipv4_address', opt(IPV4)),
  field('imds_compat', bool, () => false),
]);


/** Parses a PUT /mmds/config body. */
export function parseMmdsConfig(body: Uint8Array | string): MmdsConfig {
  return deserialize<MmdsConfig>(body, MMDS_CONFIG);
}

/** MmdsConfigError texts. */
export const MMDS_CONFIG_ERRORS = {
  EmptyNetworkIfaceList: 'The list of network interface IDs that allow forwarding MMDS requests is empty.',
  InvalidIpv4Addr: 'The MMDS IPv4 address is not link local.',
  InvalidNetworkInterfaceId:
    'The list of network interface IDs provided contains at least one ID that does not correspond to any existing network interface.',
} as const;

/** `is_link_local_valid`. */
export function isLinkLocalValid(octets: number[]): boolean {
  return octets[0] === 169 && octets[1] === 254 && octets[2] !== 0 && octets[2] !== 255;
}

/** Validates against the configured interfaces and fills in the effective address. */
export function buildMmdsConfig(cfg: MmdsConfig, ifaceIds: readonly string[]): MmdsConfig {
  const ip = cfg.ipv4_address ?? DEFAULT_MMDS_IPV4;
  if (!isLinkLocalValid(parseIpv4(ip)!)) throw new ConfigError('mmds-config', MMDS_CONFIG_ERRORS.InvalidIpv4Addr);
  if (cfg.network_interfaces.length === 0) throw new ConfigError('mmds-config', MMDS_CONFIG_ERRORS.EmptyNetworkIfaceList);
  if (!cfg.network_interfaces.every((id) => ifaceIds.includes(id))) throw new ConfigError('mmds-config', MMDS_CONFIG_ERRORS.InvalidNetworkInterfaceId);
  return { ...cfg, ipv4_address: ip, network_interfaces: [...cfg.network_interfaces] };
}
