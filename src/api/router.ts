/**
 * Routing (facts §1.2, api_server/parsed_request.rs and request/*.rs): method + first path
 * segment (a second for a few), extra trailing segments ignored, ids checked, bodies
 * deserialized into a `VmmAction`. Only parsing happens here; state lives in VmmController.
 * The per-endpoint `*_count` / `*_fails` metrics are bumped exactly where Firecracker bumps
 * them (including its quirks, e.g. PATCH /network-interfaces counting an id mismatch as a count).
 */
import { ApiLayerError } from '../errors.js';
import { BALLOON_UPDATE, BALLOON_UPDATE_STATS, START_HINTING, StartHintingCmd, parseBalloon } from '../config/balloon.js';
import { parseBootSource } from '../config/boot-source.js';
import { parseCpuConfig } from '../config/cpu-config.js';
import { parseDrive, parseDriveUpdate } from '../config/drives.js';
import { parseEntropy } from '../config/entropy.js';
import { parseLoggerConfig } from '../config/logger.js';
import { isEmptyUpdate, parseMachineConfigPatch, parseMachineConfigPut } from '../config/machine-config.js';
import { parseMemoryHotplug, parseMemoryHotplugUpdate } from '../config/memory-hotplug.js';
import { parseMetricsConfig } from '../config/metrics.js';
import { parseMmdsConfig } from '../config/mmds-config.js';
import { parseNetworkInterface, parseNetworkInterfaceUpdate } from '../config/network-interfaces.js';
import { parsePmem, parsePmemUpdate } from '../config/pmem.js';
import { SerdeError, parseJsonValue } from '../config/serde-read.js';
import { deserialize, enumOf, field, rustDebugStr, struct } from '../config/serde.js';
import { parseSerial } from '../config/serial.js';
import { parseCreateSnapshot, parseLoadSnapshot, parseVmState } from '../config/snapshot.js';
import { parseVsock } from '../config/vsock.js';
import type { Metrics, SharedIncMetric } from '../metrics/metrics.js';
import { VmmAction, methodDebug } from '../vmm/actions.js';
import type { HttpMethod, HttpRequest } from './http-parser.js';

/**
 * A request rejected while parsing (`RequestError`); `debug` is how Firecracker logs it
 * (`{:?}`), `message` the fault_message.
 */
export class ApiRequestError extends ApiLayerError {
  readonly debug: string;
  constructor(message: string, debug: string, status = 400) {
    super('API_REQUEST_INVALID', message, status);
    this.debug = debug;
  }
}

/** A routed request: the action plus an optional deprecation warning (→ `Deprecation: true`). */
export interface ParsedRequest {
  action: VmmAction;
  deprecation: string | null;
}

const ACTION_BODY = struct('ActionBody', [field('action_type', enumOf('FlushMetrics', 'InstanceStart', 'SendCtrlAltDel'))]);

const generic = (msg: string): ApiRequestError => new ApiRequestError(msg, `Generic(BadRequest, ${rustDebugStr(msg)})`);
const emptyId = (): ApiRequestError => new ApiRequestError('The ID cannot be empty.', 'EmptyID');
const invalidPath = (path: string, m: HttpMethod): ApiRequestError =>
  new ApiRequestError(`Invalid request method and/or path: ${m} ${path}.`, `InvalidPathMethod(${rustDebugStr(path)}, ${methodDebug(m)})`);

/** `method_to_error`. */
export function methodToError(m: HttpMethod): ApiRequestError {
  const text = { GET: 'GET request cannot have a body.', PUT: 'Empty PUT request.', PATCH: 'Empty PATCH request.', DELETE: 'Empty Delete request.' }[m];
  return generic(text);
}

/** `checked_id`: non-empty, Unicode alphanumerics and `_` only. */
export function checkedId(id: string | undefined): string {
  if (id === undefined || id === '') throw emptyId();
  if (!/^[\p{Alphabetic}\p{Nd}\p{Nl}\p{No}_]+$/u.test(id)) {
    throw new ApiRequestError('API Resource IDs can only contain alphanumeric characters and underscores.', 'InvalidID');
  }
  return id;
}

/** Runs a body parser, wrapping serde errors as `RequestError::SerdeJson`, bumping `fails`. */
function serde<T>(parse: () => T, fails?: SharedIncMetric): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof SerdeError) {
      fails?.inc();
      const where = e.line === 0 ? '' : `, line: ${e.line}, column: ${e.column}`;
      throw new ApiRequestError(
        `An error occurred when deserializing the json body of a request: ${e.message}.`,
        `SerdeJson(Error(${rustDebugStr(e.reason)}${where}))`,
      );
    }
    throw e;
  }
}

const ok = (action: VmmAction, deprecation: string | null = null): ParsedRequest => ({ action, deprecation });

/** `ParsedRequest::try_from(&Request)` minus the logging (done by the server). */
export function parseRequest(req: HttpRequest, metrics: Metrics): ParsedRequest {
  const tokens = req.path.replace(/^\/+/, '').split('/');
  if (tokens[tokens.length - 1] === '') tokens.pop(); // split_terminator
  let next = 1;
  const token = (): string | undefined => tokens[next++];
  const path = tokens[0] ?? '';
  const body = req.body;
  const m = req.method;
  const put = metrics.put_api_requests;
  const patch = metrics.patch_api_requests;

  if (m === 'GET' && body === null) {
    switch (path) {
      case '':
        metrics.get_api_requests.instance_info_count.inc();
        return ok({ kind: 'GetVmInstanceInfo' });
      case 'balloon': {
        const t = token();
        if (t === undefined) return ok({ kind: 'GetBalloonConfig' });
        if (t === 'statistics') return ok({ kind: 'GetBalloonStats' });
        if (t === 'hinting') {
          const s = token();
          if (s === 'status') return ok({ kind: 'GetFreePageHintingStatus' });
          throw generic(s === undefined ? 'Unrecognized GET request path `/hinting/`.' : `Unrecognized GET request path \`/hinting/${s}\`.`);
        }
        throw generic(`Unrecognized GET request path \`${t}\`.`);
      }
      case 'version':
        metrics.get_api_requests.vmm_version_count.inc();
        return ok({ kind: 'GetVmmVersion' });
      case 'vm':
        if (token() === 'config') return ok({ kind: 'GetFullVmConfig' });
        break;
      case 'machine-config':
        metrics.get_api_requests.machine_cfg_count.inc();
        return ok({ kind: 'GetVmMachineConfig' });
      case 'mmds':
        metrics.get_api_requests.mmds_count.inc();
        return ok({ kind: 'GetMMDS' });
      case 'hotplug':
        if (token() === 'memory') {
          metrics.get_api_requests.hotplug_memory_count.inc();
          return ok({ kind: 'GetMemoryHotplugStatus' });
        }
        break;
    }
    throw invalidPath(path, m);
  }
  if (m === 'GET') throw methodToError(m);

  if (m === 'PUT') {
    if (body === null) throw methodToError(m);
    switch (path) {
      case 'actions': {
        put.actions_count.inc();
        const a = serde(() => deserialize<{ action_type: string }>(body, ACTION_BODY), put.actions_fails).action_type;
        return ok(a === 'FlushMetrics' ? { kind: 'FlushMetrics' } : a === 'InstanceStart' ? { kind: 'StartMicroVm' } : { kind: 'SendCtrlAltDel' });
      }
      case 'balloon':
        return ok({ kind: 'SetBalloonDevice', config: serde(() => parseBalloon(body)) });
      case 'boot-source':
        put.boot_source_count.inc();
        return ok({ kind: 'ConfigureBootSource', config: serde(() => parseBootSource(body), put.boot_source_fails) });
      case 'cpu-config':
        put.cpu_cfg_count.inc();
        return ok({ kind: 'PutCpuConfiguration', template: serde(() => parseCpuConfig(body), put.cpu_cfg_fails) });
      case 'drives': {
        put.drive_count.inc();
        const id = idOrFail(token(), put.drive_fails);
        const cfg = serde(() => parseDrive(body), put.drive_fails);
        if (id !== cfg.drive_id) {
          put.drive_fails.inc();
          throw generic('The id from the path does not match the id from the body!');
        }
        return ok({ kind: 'InsertBlockDevice', config: cfg });
      }
      case 'pmem': {
        put.pmem_count.inc();
        const id = idOrFail(token(), put.pmem_fails);
        const cfg = serde(() => parsePmem(body), put.pmem_fails);
        if (id !== cfg.id) {
          put.pmem_fails.inc();
          throw generic('The id from the path does not match the id from the body!');
        }
        return ok({ kind: 'InsertPmemDevice', config: cfg });
      }
      case 'logger':
        put.logger_count.inc();
        return ok({ kind: 'ConfigureLogger', config: serde(() => parseLoggerConfig(body), put.logger_fails) });
      case 'serial':
        put.serial_count.inc();
        return ok({ kind: 'ConfigureSerial', config: serde(() => parseSerial(body), put.serial_fails) });
      case 'machine-config': {
        put.machine_cfg_count.inc();
        const u = serde(() => parseMachineConfigPut(body), put.machine_cfg_fails);
        if (u.cpu_template === null) return ok({ kind: 'UpdateMachineConfiguration', config: u });
        metrics.deprecated_api.deprecated_http_api_calls.inc();
        return ok({ kind: 'UpdateMachineConfiguration', config: u }, 'PUT /machine-config: cpu_template field is deprecated.');
      }
      case 'metrics':
        put.metrics_count.inc();
        return ok({ kind: 'ConfigureMetrics', config: serde(() => parseMetricsConfig(body), put.metrics_fails) });
      case 'mmds': {
        put.mmds_count.inc();
        const t = token();
        if (t === undefined) return ok({ kind: 'PutMMDS', value: serde(() => parseJsonValue(body), put.mmds_fails) });
        if (t === 'config') {
          const cfg = serde(() => parseMmdsConfig(body), put.mmds_fails);
          if (cfg.version !== 'V1') return ok({ kind: 'SetMmdsConfiguration', config: cfg });
          metrics.deprecated_api.deprecated_http_api_calls.inc();
          return ok({ kind: 'SetMmdsConfiguration', config: cfg }, 'PUT /mmds/config: V1 is deprecated. Use V2 instead.');
        }
        put.mmds_fails.inc();
        throw generic(`Unrecognized PUT request path \`${t}\`.`);
      }
      case 'network-interfaces': {
        put.network_count.inc();
        const id = idOrFail(token(), put.network_fails);
        const cfg = serde(() => parseNetworkInterface(body), put.network_fails);
        if (id !== cfg.iface_id) {
          put.network_fails.inc();
          throw generic(`The id from the path [${id}] does not match the id from the body [${cfg.iface_id}]!`);
        }
        return ok({ kind: 'InsertNetworkDevice', config: cfg });
      }
      case 'snapshot': {
        const t = token();
        if (t === undefined) throw generic('Missing snapshot operation type.');
        if (t === 'create') return ok({ kind: 'CreateSnapshot', params: serde(() => parseCreateSnapshot(body)) });
        if (t === 'load') {
          const l = serde(() => parseLoadSnapshot(body));
          if (!l.deprecated) return ok({ kind: 'LoadSnapshot', params: l.params });
          metrics.deprecated_api.deprecated_http_api_calls.inc();
          return ok({ kind: 'LoadSnapshot', params: l.params }, 'PUT /snapshot/load: mem_file_path and enable_diff_snapshots fields are deprecated.');
        }
        throw invalidPath(`/snapshot/${t}`, m);
      }
      case 'vsock': {
        put.vsock_count.inc();
        const cfg = serde(() => parseVsock(body), put.vsock_fails);
        if (cfg.vsock_id === null) return ok({ kind: 'SetVsockDevice', config: cfg });
        metrics.deprecated_api.deprecated_http_api_calls.inc();
        return ok({ kind: 'SetVsockDevice', config: cfg }, 'PUT /vsock: vsock_id field is deprecated.');
      }
      case 'entropy':
        return ok({ kind: 'SetEntropyDevice', config: serde(() => parseEntropy(body)) });
      case 'hotplug':
        if (token() === 'memory') {
          put.hotplug_memory_count.inc();
          return ok({ kind: 'SetMemoryHotplugDevice', config: serde(() => parseMemoryHotplug(body), put.hotplug_memory_fails) });
        }
        break;
    }
    throw invalidPath(path, m);
  }

  if (m === 'PATCH') {
    if (path === 'balloon') return parsePatchBalloon(tokens.slice(1), body);
    if (body === null) throw methodToError(m);
    switch (path) {
      case 'drives': {
        patch.drive_count.inc();
        const id = idOrFail(token(), patch.drive_fails);
        const cfg = serde(() => parseDriveUpdate(body), patch.drive_fails);
        if (id !== cfg.drive_id) {
          patch.drive_fails.inc();
          throw generic('The id from the path does not match the id from the body!');
        }
        return ok({ kind: 'UpdateBlockDevice', config: cfg });
      }
      case 'machine-config': {
        patch.machine_cfg_count.inc();
        const u = serde(() => parseMachineConfigPatch(body), patch.machine_cfg_fails);
        if (isEmptyUpdate(u)) throw methodToError(m);
        if (u.cpu_template === null) return ok({ kind: 'UpdateMachineConfiguration', config: u });
        metrics.deprecated_api.deprecated_http_api_calls.inc();
        return ok({ kind: 'UpdateMachineConfiguration', config: u }, 'PATCH /machine-config: cpu_template field is deprecated.');
      }
      case 'mmds':
        patch.mmds_count.inc();
        return ok({ kind: 'PatchMMDS', value: serde(() => parseJsonValue(body), patch.mmds_fails) });
      case 'network-interfaces': {
        patch.network_count.inc();
        const id = idOrFail(token(), patch.network_count);
        const cfg = serde(() => parseNetworkInterfaceUpdate(body), patch.network_fails);
        if (id !== cfg.iface_id) {
          patch.network_count.inc();
          throw generic(`The id from the path [${id}] does not match the id from the body [${cfg.iface_id}]!`);
        }
        return ok({ kind: 'UpdateNetworkInterface', config: cfg });
      }
      case 'pmem': {
        patch.pmem_count.inc();
        const id = idOrFail(token(), patch.pmem_fails);
        const cfg = serde(() => parsePmemUpdate(body), patch.pmem_fails);
        if (id !== cfg.id) {
          patch.pmem_fails.inc();
          throw generic('The id from the path does not match the id from the body!');
        }
        return ok({ kind: 'UpdatePmemDevice', config: cfg });
      }
      case 'vm': {
        const state = serde(() => parseVmState(body));
        return ok({ kind: state === 'Paused' ? 'Pause' : 'Resume' });
      }
      case 'hotplug':
        if (token() === 'memory') {
          patch.hotplug_memory_count.inc();
          return ok({ kind: 'UpdateMemoryHotplugSize', config: serde(() => parseMemoryHotplugUpdate(body), patch.hotplug_memory_fails) });
        }
        break;
    }
    throw invalidPath(path, m);
  }

  // DELETE
  if (body === null) {
    const type = path === 'drives' ? 'Block' : path === 'pmem' ? 'Pmem' : path === 'network-interfaces' ? 'Net' : null;
    if (type) return ok({ kind: 'HotUnplugDevice', deviceType: type, id: checkedId(token()) });
    throw invalidPath(path, m);
  }
  throw methodToError(m);
}

function idOrFail(id: string | undefined, fails: SharedIncMetric): string {
  if (id === undefined) {
    fails.inc();
    throw emptyId();
  }
  return checkedId(id);
}

/** `parse_patch_balloon` (the only PATCH that may come without a body: hinting start/stop). */
function parsePatchBalloon(rest: string[], body: Buffer | null): ParsedRequest {
  const [t, sub] = rest;
  if (t === 'statistics' && body !== null) {
    return ok({ kind: 'UpdateBalloonStatistics', config: serde(() => deserialize(body, BALLOON_UPDATE_STATS)) });
  }
  if (t === 'hinting') {
    if (sub === 'start') {
      const cmd: StartHintingCmd = body === null || body.length === 0 ? { acknowledge_on_stop: true } : serde(() => deserialize<StartHintingCmd>(body, START_HINTING));
      return ok({ kind: 'StartFreePageHinting', cmd });
    }
    if (sub === 'stop') return ok({ kind: 'StopFreePageHinting' });
    throw generic(sub === undefined ? 'Unrecognized PATCH request path `/hinting/`.' : `Unrecognized PATCH request path \`/hinting/${sub}\`.`);
  }
  if (body !== null) return ok({ kind: 'UpdateBalloon', config: serde(() => deserialize(body, BALLOON_UPDATE)) });
  throw methodToError('PATCH');
}
