/**
 * A typed client for the Firecracker REST API over a Unix socket (undici 7), usable against
 * Kindling or a real `firecracker`. Exported as `kindling/client` for tests and tools.
 *
 *   const fc = new FirecrackerClient('/tmp/fc.sock');
 *   await fc.putMachineConfig({ vcpu_count: 2, mem_size_mib: 256 });
 *   await fc.putBootSource({ kernel_image_path: 'vmlinux', boot_args: 'console=ttyS0' });
 *   await fc.instanceStart();
 *
 * Typed helpers throw `FirecrackerApiError` (status + fault_message) on non-2xx replies;
 * `request()` returns any reply as is.
 */
import { Client } from 'undici';
import type { BootSourceConfig } from '../config/boot-source.js';
import type { BlockDeviceConfig, BlockDeviceUpdateConfig } from '../config/drives.js';
import type { MachineConfigUpdate } from '../config/machine-config.js';
import type { NetworkInterfaceConfig, NetworkInterfaceUpdateConfig } from '../config/network-interfaces.js';
import type { RateLimiterConfig, TokenBucketConfig } from '../config/rate-limiter.js';
import type { RequestBody } from '../config/serde.js';
import type { InstanceInfo } from '../vmm/actions.js';

/** A raw reply. */
export interface ApiReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A non-2xx reply from a typed helper. */
export class FirecrackerApiError extends Error {
  constructor(readonly status: number, readonly faultMessage: string, readonly method: string, readonly path: string) {
    super(`${method} ${path} → ${status}: ${faultMessage}`);
    this.name = 'FirecrackerApiError';
  }
}

/** Request bodies: the server's parsed shapes (src/config), with optional keys optional. */
export type TokenBucket = TokenBucketConfig;
export type RateLimiter = RateLimiterConfig;
export type MachineConfiguration = RequestBody<MachineConfigUpdate, 'vcpu_count' | 'mem_size_mib'>;
export type BootSource = RequestBody<BootSourceConfig, 'kernel_image_path'>;
export type Drive = RequestBody<BlockDeviceConfig, 'drive_id' | 'is_root_device'>;
export type NetworkInterface = RequestBody<NetworkInterfaceConfig, 'iface_id' | 'host_dev_name'>;
export type { InstanceInfo };

/** The client. */
export class FirecrackerClient {
  private readonly client: Client;

  constructor(readonly socketPath: string, opts: { bodyTimeout?: number; headersTimeout?: number } = {}) {
    this.client = new Client('http://localhost', { socketPath, bodyTimeout: opts.bodyTimeout ?? 30_000, headersTimeout: opts.headersTimeout ?? 30_000 });
  }

  /** Sends one request; never throws on HTTP status. */
  async request(method: 'GET' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<ApiReply> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const res = await this.client.request({
      method,
      path,
      body: payload,
      headers: payload === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
    });
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
  }

  private async call<T = void>(method: 'GET' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const r = await this.request(method, path, body);
    if (r.status >= 300) {
      let fault = r.body;
      try {
        fault = (JSON.parse(r.body) as { fault_message?: string }).fault_message ?? r.body;
      } catch {
        /* micro_http parse errors are not JSON */
      }
      throw new FirecrackerApiError(r.status, fault, method, path);
    }
    return (r.body ? JSON.parse(r.body) : undefined) as T;
  }

  /** GET / */
  getInstanceInfo(): Promise<InstanceInfo> { return this.call('GET', '/'); }
  /** GET /version */
  getVersion(): Promise<{ firecracker_version: string }> { return this.call('GET', '/version'); }
  /** GET /machine-config */
  getMachineConfig(): Promise<MachineConfiguration> { return this.call('GET', '/machine-config'); }
  /** PUT /machine-config */
  putMachineConfig(c: MachineConfiguration): Promise<void> { return this.call('PUT', '/machine-config', c); }
  /** PATCH /machine-config */
  patchMachineConfig(c: Partial<MachineConfiguration>): Promise<void> { return this.call('PATCH', '/machine-config', c); }
  /** GET /vm/config */
  getVmConfig(): Promise<Record<string, unknown>> { return this.call('GET', '/vm/config'); }
  /** PUT /boot-source */
  putBootSource(b: BootSource): Promise<void> { return this.call('PUT', '/boot-source', b); }
  /** PUT /drives/{id} */
  putDrive(d: Drive): Promise<void> { return this.call('PUT', `/drives/${d.drive_id}`, d); }
  /** PATCH /drives/{id} */
  patchDrive(d: RequestBody<BlockDeviceUpdateConfig, 'drive_id'>): Promise<void> { return this.call('PATCH', `/drives/${d.drive_id}`, d); }
  /** PUT /network-interfaces/{id} */
  putNetworkInterface(n: NetworkInterface): Promise<void> { return this.call('PUT', `/network-interfaces/${n.iface_id}`, n); }
  /** PATCH /network-interfaces/{id} */
  patchNetworkInterface(n: RequestBody<NetworkInterfaceUpdateConfig, 'iface_id'>): Promise<void> {
    return this.call('PATCH', `/network-interfaces/${n.iface_id}`, n);
  }
  /** PUT /vsock */
  putVsock(v: { guest_cid: number; uds_path: string }): Promise<void> { return this.call('PUT', '/vsock', v); }
  /** PUT /balloon */
  putBalloon(b: { amount_mib: number; deflate_on_oom: boolean; stats_polling_interval_s?: number }): Promise<void> { return this.call('PUT', '/balloon', b); }
  /** PATCH /balloon */
  patchBalloon(amount_mib: number): Promise<void> { return this.call('PATCH', '/balloon', { amount_mib }); }
  /** GET /balloon */
  getBalloon(): Promise<Record<string, unknown>> { return this.call('GET', '/balloon'); }
  /** GET /balloon/statistics */
  getBalloonStats(): Promise<Record<string, number>> { return this.call('GET', '/balloon/statistics'); }
  /** PUT /entropy */
  putEntropy(e: { rate_limiter?: RateLimiter } = {}): Promise<void> { return this.call('PUT', '/entropy', e); }
  /** PUT /serial */
  putSerial(s: { serial_out_path?: string; rate_limiter?: TokenBucket }): Promise<void> { return this.call('PUT', '/serial', s); }
  /** PUT /logger */
  putLogger(l: { log_path?: string; level?: string; show_level?: boolean; show_log_origin?: boolean; module?: string }): Promise<void> { return this.call('PUT', '/logger', l); }
  /** PUT /metrics */
  putMetrics(m: { metrics_path: string }): Promise<void> { return this.call('PUT', '/metrics', m); }
  /** PUT /mmds */
  putMmds(data: unknown): Promise<void> { return this.call('PUT', '/mmds', data); }
  /** PATCH /mmds */
  patchMmds(data: unknown): Promise<void> { return this.call('PATCH', '/mmds', data); }
  /** GET /mmds */
  getMmds(): Promise<unknown> { return this.call('GET', '/mmds'); }
  /** PUT /mmds/config */
  putMmdsConfig(c: { network_interfaces: string[]; version?: 'V1' | 'V2'; ipv4_address?: string; imds_compat?: boolean }): Promise<void> { return this.call('PUT', '/mmds/config', c); }
  /** PUT /cpu-config */
  putCpuConfig(t: unknown): Promise<void> { return this.call('PUT', '/cpu-config', t); }
  /** PUT /pmem/{id} */
  putPmem(p: { id: string; path_on_host: string; root_device?: boolean; read_only?: boolean }): Promise<void> { return this.call('PUT', `/pmem/${p.id}`, p); }
  /** PUT /hotplug/memory */
  putMemoryHotplug(h: { total_size_mib: number; block_size_mib?: number; slot_size_mib?: number }): Promise<void> { return this.call('PUT', '/hotplug/memory', h); }
  /** PUT /actions */
  action(action_type: 'InstanceStart' | 'FlushMetrics' | 'SendCtrlAltDel'): Promise<void> { return this.call('PUT', '/actions', { action_type }); }
  /** InstanceStart */
  instanceStart(): Promise<void> { return this.action('InstanceStart'); }
  /** FlushMetrics */
  flushMetrics(): Promise<void> { return this.action('FlushMetrics'); }
  /** SendCtrlAltDel */
  sendCtrlAltDel(): Promise<void> { return this.action('SendCtrlAltDel'); }
  /** PATCH /vm Paused */
  pause(): Promise<void> { return this.call('PATCH', '/vm', { state: 'Paused' }); }
  /** PATCH /vm Resumed */
  resume(): Promise<void> { return this.call('PATCH', '/vm', { state: 'Resumed' }); }
  /** PUT /snapshot/create */
  createSnapshot(p: { snapshot_path: string; mem_file_path: string; snapshot_type?: 'Full' | 'Diff' }): Promise<void> { return this.call('PUT', '/snapshot/create', p); }
  /** PUT /snapshot/load */
  loadSnapshot(p: { snapshot_path: string; mem_backend: { backend_type: 'File' | 'Uffd'; backend_path: string }; resume_vm?: boolean }): Promise<void> {
    return this.call('PUT', '/snapshot/load', p);
  }

  /** Closes the connection. */
  close(): Promise<void> {
    return this.client.close();
  }
}
