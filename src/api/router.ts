/**
 * Routing (firecracker src/firecracker/src/api_server/parsed_request.rs and request/*.rs): one
 * table row per resource (its first path segment) with a handler per method; extra trailing
 * segments are ignored, ids checked, bodies deserialized into a `VmmAction`. Only parsing
 * happens here; state lives in the VmmController (src/vmm/controller.ts).
 * The per-endpoint `*_count` / `*_fails` metrics are bumped exactly where Firecracker bumps
 * them (including its quirks, e.g. PATCH /network-interfaces counting an id mismatch as a count).
 */
import { ApiLayerError } from '../errors.js';
import { BALLOON_UPDATE, BALLOON_UPDATE_STATS, START_HINTING, StartHintingCmd, parseBalloon } from '../config/balloon.js';
import { parseBootSource } from '../config/boot-source.js';
import { parseCpuConfig } from '../config/cpu-config.js';
import { parseDrive, parseDriveUpdate } from '../config/drives.js';
import { parseEntropy } from '../config/entropy.js';
import { parseFs } from '../config/fs.js';
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

/** What a route handler sees: the metrics, the path segments after the resource, the body. */
interface RouteCtx {
  metrics: Metrics;
  /** Path segments after the resource name (`/drives/rootfs` → ['rootfs']). */
  rest: string[];
}

/** A handler: the parsed request, or null when the sub-path is unknown (→ InvalidPathMethod). */
type Handler = (c: RouteCtx, body: Buffer) => ParsedRequest | null;
type GetHandler = (c: RouteCtx) => ParsedRequest | null;

/** The methods one resource answers (`parsed_request.rs` dispatches on method, then path). */
interface Resource {
  GET?: GetHandler;
  PUT?: Handler;
  PATCH?: Handler;
  /** PATCH that may come without a body (only /balloon: hinting start/stop). */
  PATCH_NO_BODY?: (c: RouteCtx, body: Buffer | null) => ParsedRequest;
  /** DELETE (hot-unplug): `/resource/{id}`. */
  DELETE?: 'Block' | 'Pmem' | 'Net';
}

function idOrFail(id: string | undefined, fails: SharedIncMetric): string {
  if (id === undefined) {
    fails.inc();
    throw emptyId();
  }
  return checkedId(id);
}

/**
 * `PUT|PATCH /resource/{id}` with the id repeated in the body: counts, parses, and refuses a
 * mismatch. `idFails` is where a missing id counts (Firecracker counts PATCH
 * /network-interfaces' missing id and mismatch as `*_count`, a quirk kept as is).
 */
function withId<T>(
  body: Buffer, c: RouteCtx, m: { count: SharedIncMetric; fails: SharedIncMetric; idFails?: SharedIncMetric },
  parse: (b: Buffer) => T, bodyId: (t: T) => string, mismatch: (path: string, body: string) => string,
): T {
  m.count.inc();
  const id = idOrFail(c.rest[0], m.idFails ?? m.fails);
  const cfg = serde(() => parse(body), m.fails);
  if (id !== bodyId(cfg)) {
    (m.idFails ?? m.fails).inc();
    throw generic(mismatch(id, bodyId(cfg)));
  }
  return cfg;
}
const SAME_ID = (): string => 'The id from the path does not match the id from the body!';
const SAME_ID_NET = (p: string, b: string): string => `The id from the path [${p}] does not match the id from the body [${b}]!`;

/** A deprecated field was used: count it and warn (`Deprecation: true` header). */
function deprecated(c: RouteCtx, action: VmmAction, warning: string): ParsedRequest {
  c.metrics.deprecated_api.deprecated_http_api_calls.inc();
  return ok(action, warning);
}

/** Every resource of the API, by its first path segment (firecracker src/firecracker/src/api_server/request/*.rs). */
const ROUTES: Record<string, Resource> = {
  '': {
    GET: (c) => { c.metrics.get_api_requests.instance_info_count.inc(); return ok({ kind: 'GetVmInstanceInfo' }); },
  },
  actions: {
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      put.actions_count.inc();
      const a = serde(() => deserialize<{ action_type: string }>(body, ACTION_BODY), put.actions_fails).action_type;
      return ok(a === 'FlushMetrics' ? { kind: 'FlushMetrics' } : a === 'InstanceStart' ? { kind: 'StartMicroVm' } : { kind: 'SendCtrlAltDel' });
    },
  },
  balloon: {
    GET: (c) => {
      const [t, s] = c.rest;
      if (t === undefined) return ok({ kind: 'GetBalloonConfig' });
      if (t === 'statistics') return ok({ kind: 'GetBalloonStats' });
      if (t === 'hinting') {
        if (s === 'status') return ok({ kind: 'GetFreePageHintingStatus' });
        throw generic(s === undefined ? 'Unrecognized GET request path `/hinting/`.' : `Unrecognized GET request path \`/hinting/${s}\`.`);
      }
      throw generic(`Unrecognized GET request path \`${t}\`.`);
    },
    PUT: (_c, body) => ok({ kind: 'SetBalloonDevice', config: serde(() => parseBalloon(body)) }),
    PATCH_NO_BODY: (c, body) => patchBalloon(c.rest, body),
  },
  'boot-source': {
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      put.boot_source_count.inc();
      return ok({ kind: 'ConfigureBootSource', config: serde(() => parseBootSource(body), put.boot_source_fails) });
    },
  },
  'cpu-config': {
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      put.cpu_cfg_count.inc();
      return ok({ kind: 'PutCpuConfiguration', template: serde(() => parseCpuConfig(body), put.cpu_cfg_fails) });
    },
  },
  drives: {
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      const cfg = withId(body, c, { count: put.drive_count, fails: put.drive_fails }, parseDrive, (d) => d.drive_id, SAME_ID);
      return ok({ kind: 'InsertBlockDevice', config: cfg });
    },
    PATCH: (c, body) => {
      const patch = c.metrics.patch_api_requests;
      const cfg = withId(body, c, { count: patch.drive_count, fails: patch.drive_fails }, parseDriveUpdate, (d) => d.drive_id, SAME_ID);
      return ok({ kind: 'UpdateBlockDevice', config: cfg });
    },
    DELETE: 'Block',
  },
  entropy: {
    PUT: (_c, body) => ok({ kind: 'SetEntropyDevice', config: serde(() => parseEntropy(body)) }),
  },
  // Kindling's own resource (src/config/fs.ts): ids and body as /pmem/{id}; Firecracker has no
  // metrics counter for it, so none is counted.
  fs: {
    PUT: (c, body) => {
      const id = checkedId(c.rest[0]);
      const cfg = serde(() => parseFs(body));
      if (id !== cfg.id) throw generic(SAME_ID());
      return ok({ kind: 'InsertFsDevice', config: cfg });
    },
  },
  hotplug: {
    GET: (c) => {
      if (c.rest[0] !== 'memory') return null;
      c.metrics.get_api_requests.hotplug_memory_count.inc();
      return ok({ kind: 'GetMemoryHotplugStatus' });
    },
    PUT: (c, body) => {
      if (c.rest[0] !== 'memory') return null;
      const put = c.metrics.put_api_requests;
      put.hotplug_memory_count.inc();
      return ok({ kind: 'SetMemoryHotplugDevice', config: serde(() => parseMemoryHotplug(body), put.hotplug_memory_fails) });
    },
    PATCH: (c, body) => {
      if (c.rest[0] !== 'memory') return null;
      const patch = c.metrics.patch_api_requests;
      patch.hotplug_memory_count.inc();
      return ok({ kind: 'UpdateMemoryHotplugSize', config: serde(() => parseMemoryHotplugUpdate(body), patch.hotplug_memory_fails) });
    },
  },
  logger: {
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      put.logger_count.inc();
      return ok({ kind: 'ConfigureLogger', config: serde(() => parseLoggerConfig(body), put.logger_fails) });
    },
  },
  'machine-config': {
    GET: (c) => { c.metrics.get_api_requests.machine_cfg_count.inc(); return ok({ kind: 'GetVmMachineConfig' }); },
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      put.machine_cfg_count.inc();
      const u = serde(() => parseMachineConfigPut(body), put.machine_cfg_fails);
      const action: VmmAction = { kind: 'UpdateMachineConfiguration', config: u };
      return u.cpu_template === null ? ok(action) : deprecated(c, action, 'PUT /machine-config: cpu_template field is deprecated.');
    },
    PATCH: (c, body) => {
      const patch = c.metrics.patch_api_requests;
      patch.machine_cfg_count.inc();
      const u = serde(() => parseMachineConfigPatch(body), patch.machine_cfg_fails);
      if (isEmptyUpdate(u)) throw methodToError('PATCH');
      const action: VmmAction = { kind: 'UpdateMachineConfiguration', config: u };
      return u.cpu_template === null ? ok(action) : deprecated(c, action, 'PATCH /machine-config: cpu_template field is deprecated.');
    },
  },
  metrics: {
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      put.metrics_count.inc();
      return ok({ kind: 'ConfigureMetrics', config: serde(() => parseMetricsConfig(body), put.metrics_fails) });
    },
  },
  mmds: {
    GET: (c) => { c.metrics.get_api_requests.mmds_count.inc(); return ok({ kind: 'GetMMDS' }); },
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      put.mmds_count.inc();
      const t = c.rest[0];
      if (t === undefined) return ok({ kind: 'PutMMDS', value: serde(() => parseJsonValue(body), put.mmds_fails) });
      if (t === 'config') {
        const cfg = serde(() => parseMmdsConfig(body), put.mmds_fails);
        const action: VmmAction = { kind: 'SetMmdsConfiguration', config: cfg };
        return cfg.version !== 'V1' ? ok(action) : deprecated(c, action, 'PUT /mmds/config: V1 is deprecated. Use V2 instead.');
      }
      put.mmds_fails.inc();
      throw generic(`Unrecognized PUT request path \`${t}\`.`);
    },
    PATCH: (c, body) => {
      const patch = c.metrics.patch_api_requests;
      patch.mmds_count.inc();
      return ok({ kind: 'PatchMMDS', value: serde(() => parseJsonValue(body), patch.mmds_fails) });
    },
  },
  'network-interfaces': {
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      const cfg = withId(body, c, { count: put.network_count, fails: put.network_fails }, parseNetworkInterface, (n) => n.iface_id, SAME_ID_NET);
      return ok({ kind: 'InsertNetworkDevice', config: cfg });
    },
    PATCH: (c, body) => {
      const patch = c.metrics.patch_api_requests;
      const m = { count: patch.network_count, fails: patch.network_fails, idFails: patch.network_count };
      const cfg = withId(body, c, m, parseNetworkInterfaceUpdate, (n) => n.iface_id, SAME_ID_NET);
      return ok({ kind: 'UpdateNetworkInterface', config: cfg });
    },
    DELETE: 'Net',
  },
  pmem: {
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      const cfg = withId(body, c, { count: put.pmem_count, fails: put.pmem_fails }, parsePmem, (p) => p.id, SAME_ID);
      return ok({ kind: 'InsertPmemDevice', config: cfg });
    },
    PATCH: (c, body) => {
      const patch = c.metrics.patch_api_requests;
      const cfg = withId(body, c, { count: patch.pmem_count, fails: patch.pmem_fails }, parsePmemUpdate, (p) => p.id, SAME_ID);
      return ok({ kind: 'UpdatePmemDevice', config: cfg });
    },
    DELETE: 'Pmem',
  },
  serial: {
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      put.serial_count.inc();
      return ok({ kind: 'ConfigureSerial', config: serde(() => parseSerial(body), put.serial_fails) });
    },
  },
  snapshot: {
    PUT: (c, body) => {
      const t = c.rest[0];
      if (t === undefined) throw generic('Missing snapshot operation type.');
      if (t === 'create') return ok({ kind: 'CreateSnapshot', params: serde(() => parseCreateSnapshot(body)) });
      if (t !== 'load') throw invalidPath(`/snapshot/${t}`, 'PUT');
      const l = serde(() => parseLoadSnapshot(body));
      const action: VmmAction = { kind: 'LoadSnapshot', params: l.params };
      return l.deprecated ? deprecated(c, action, 'PUT /snapshot/load: mem_file_path and enable_diff_snapshots fields are deprecated.') : ok(action);
    },
  },
  version: {
    GET: (c) => { c.metrics.get_api_requests.vmm_version_count.inc(); return ok({ kind: 'GetVmmVersion' }); },
  },
  vm: {
    GET: (c) => (c.rest[0] === 'config' ? ok({ kind: 'GetFullVmConfig' }) : null),
    PATCH: (_c, body) => ok({ kind: serde(() => parseVmState(body)) === 'Paused' ? 'Pause' : 'Resume' }),
  },
  vsock: {
    PUT: (c, body) => {
      const put = c.metrics.put_api_requests;
      put.vsock_count.inc();
      const cfg = serde(() => parseVsock(body), put.vsock_fails);
      const action: VmmAction = { kind: 'SetVsockDevice', config: cfg };
      return cfg.vsock_id === null ? ok(action) : deprecated(c, action, 'PUT /vsock: vsock_id field is deprecated.');
    },
  },
};

/** `ParsedRequest::try_from(&Request)` minus the logging (done by the server). */
export function parseRequest(req: HttpRequest, metrics: Metrics): ParsedRequest {
  const tokens = req.path.replace(/^\/+/, '').split('/');
  if (tokens[tokens.length - 1] === '') tokens.pop(); // split_terminator
  const path = tokens[0] ?? '';
  const c: RouteCtx = { metrics, rest: tokens.slice(1) };
  const route = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
  const { method: m, body } = req;
  let parsed: ParsedRequest | null = null;
  switch (m) {
    case 'GET':
      if (body !== null) throw methodToError(m);
      parsed = route?.GET?.(c) ?? null;
      break;
    case 'DELETE':
      if (body !== null) throw methodToError(m);
      if (route?.DELETE) return ok({ kind: 'HotUnplugDevice', deviceType: route.DELETE, id: checkedId(c.rest[0]) });
      break;
    case 'PATCH':
      if (route?.PATCH_NO_BODY) return route.PATCH_NO_BODY(c, body);
      if (body === null) throw methodToError(m);
      parsed = route?.PATCH?.(c, body) ?? null;
      break;
    case 'PUT':
      if (body === null) throw methodToError(m);
      parsed = route?.PUT?.(c, body) ?? null;
      break;
  }
  if (!parsed) throw invalidPath(path, m);
  return parsed;
}

/** `parse_patch_balloon` (the only PATCH that may come without a body: hinting start/stop). */
function patchBalloon(rest: string[], body: Buffer | null): ParsedRequest {
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
