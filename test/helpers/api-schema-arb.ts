/**
 * fast-check generators of API requests from Firecracker's API schema (v1.16.1
 * src/firecracker/swagger/firecracker.yaml; the request parsers in
 * src/firecracker/src/api_server/request/*.rs): every GET/PUT/PATCH/DELETE path with a body
 * that matches its schema, and the same requests mutated — wrong types, missing and extra
 * fields, huge numbers and strings, NUL bytes, deep nesting, truncated or over-limit bodies,
 * wrong methods and paths.
 *
 * Every file path a body names lies in the fixture folder the caller passes (the API opens,
 * and for the logger and metrics creates, what it is given), and a path never holds `/` or
 * `..` after that folder's prefix, so a generated request cannot reach outside it.
 */
import fc from 'fast-check';

/** A JSON value, or `Raw` text spliced into the body as is (numbers JSON.stringify cannot write). */
export type Json = null | boolean | number | string | Raw | Json[] | { [k: string]: Json };

/** Literal body text. */
export class Raw {
  constructor(readonly text: string) {}
}

/** One generated request. */
export interface GenRequest {
  method: 'GET' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  /** The body text (Content-Length is its byte length); absent: no body. */
  body?: string;
  /** `METHOD /path-pattern`, for counting. */
  endpoint: string;
  /** 'valid' (schema-conforming), or the mutation applied. */
  kind: string;
}

/** Files the generated bodies may name. */
export interface Fixtures {
  dir: string;
  /** An existing readable file (kernel, initrd, drive and pmem backing). */
  file: string;
}

/** Serializes a `Json` tree, splicing `Raw` text. */
export function jsonText(v: Json): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return `[${v.map(jsonText).join(',')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${jsonText(x)}`).join(',')}}`;
  return JSON.stringify(v);
}

const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(a, { nil: null });
const id = fc.oneof(fc.constantFrom('rootfs', 'scratch', 'net0', 'pmem0', 'eth1'), fc.stringMatching(/^[a-z0-9_]{1,8}$/));
const u64 = fc.oneof(fc.nat(1_000_000), fc.constant(0));
const tokenBucket = fc.record({ size: u64, one_time_burst: opt(u64), refill_time: u64 }, { requiredKeys: ['size', 'refill_time'] });
const rateLimiter = fc.record({ bandwidth: opt(tokenBucket), ops: opt(tokenBucket) }, { requiredKeys: [] });
const bits = (n: number): fc.Arbitrary<string> => fc.array(fc.constantFrom('0', '1', 'x'), { minLength: n, maxLength: n }).map((b) => `0b${b.join('')}`);
const hex = fc.nat(0xffff).map((n) => `0x${n.toString(16)}`);

/** A path inside the fixture folder: the readable file, or a fresh name (no `/`, no `..`). */
function pathIn(fx: Fixtures): fc.Arbitrary<string> {
  return fc.oneof(fc.constant(fx.file), fc.stringMatching(/^[a-z0-9_]{1,12}$/).map((n) => `${fx.dir}/gen-${n}`));
}

type Body = fc.Arbitrary<Json>;
interface Endpoint {
  method: GenRequest['method'];
  /** Path pattern, `{id}` where an id goes. */
  path: string;
  /** Body generator given the path id; null: the endpoint takes no body. */
  body: ((pathId: string) => Body) | null;
}

/** Every endpoint of the schema with a generator of valid bodies. */
export function endpoints(fx: Fixtures): Endpoint[] {
  const file = pathIn(fx);
  const machine = { vcpu_count: fc.constantFrom(1, 2, 4), mem_size_mib: fc.constantFrom(128, 256, 512), smt: fc.boolean(), track_dirty_pages: fc.boolean(), huge_pages: fc.constantFrom('None', '2M'), cpu_template: fc.constantFrom('None', 'T2', 'C3') };
  const get = (path: string): Endpoint => ({ method: 'GET', path, body: null });
  return [
    get('/'), get('/version'), get('/vm/config'), get('/machine-config'), get('/mmds'), get('/balloon'),
    get('/balloon/statistics'), get('/balloon/hinting/status'), get('/hotplug/memory'),
    { method: 'PUT', path: '/boot-source', body: () => fc.record({ kernel_image_path: fc.constant(fx.file), initrd_path: opt(fc.constant(fx.file)), boot_args: opt(fc.constantFrom('console=ttyS0', 'reboot=k panic=1', '')) }, { requiredKeys: ['kernel_image_path'] }) },
    { method: 'PUT', path: '/machine-config', body: () => fc.record(machine, { requiredKeys: ['vcpu_count', 'mem_size_mib'] }) },
    { method: 'PATCH', path: '/machine-config', body: () => fc.record(machine, { requiredKeys: [] }) },
    {
      method: 'PUT', path: '/drives/{id}',
      body: (i) => fc.record({
        drive_id: fc.constant(i), is_root_device: fc.boolean(), path_on_host: file, is_read_only: fc.boolean(), partuuid: opt(fc.uuid()),
        cache_type: fc.constantFrom('Unsafe', 'Writeback'), io_engine: fc.constantFrom('Sync', 'Async'), rate_limiter: opt(rateLimiter),
      }, { requiredKeys: ['drive_id', 'is_root_device', 'path_on_host'] }),
    },
    { method: 'PATCH', path: '/drives/{id}', body: (i) => fc.record({ drive_id: fc.constant(i), path_on_host: file, rate_limiter: opt(rateLimiter) }, { requiredKeys: ['drive_id'] }) },
    {
      method: 'PUT', path: '/network-interfaces/{id}',
      body: (i) => fc.record({
        iface_id: fc.constant(i), host_dev_name: fc.constantFrom('tap0', 'tap1'), guest_mac: fc.constantFrom('06:00:ac:10:00:02', 'AA:FC:00:00:00:01'),
        mtu: fc.integer({ min: 576, max: 9000 }), rx_rate_limiter: opt(rateLimiter), tx_rate_limiter: opt(rateLimiter),
      }, { requiredKeys: ['iface_id', 'host_dev_name'] }),
    },
    { method: 'PATCH', path: '/network-interfaces/{id}', body: (i) => fc.record({ iface_id: fc.constant(i), rx_rate_limiter: opt(rateLimiter), tx_rate_limiter: opt(rateLimiter) }, { requiredKeys: ['iface_id'] }) },
    { method: 'PUT', path: '/vsock', body: () => fc.record({ guest_cid: fc.integer({ min: 3, max: 100 }), uds_path: pathIn(fx), vsock_id: fc.constant('vsock0') }, { requiredKeys: ['guest_cid', 'uds_path'] }) },
    {
      method: 'PUT', path: '/balloon',
      body: () => fc.record({ amount_mib: fc.nat(64), deflate_on_oom: fc.boolean(), stats_polling_interval_s: fc.nat(10), free_page_hinting: fc.boolean(), free_page_reporting: fc.boolean() }, { requiredKeys: ['amount_mib', 'deflate_on_oom'] }),
    },
    { method: 'PATCH', path: '/balloon', body: () => fc.record({ amount_mib: fc.nat(64) }) },
    { method: 'PATCH', path: '/balloon/statistics', body: () => fc.record({ stats_polling_interval_s: fc.nat(10) }) },
    { method: 'PATCH', path: '/balloon/hinting/start', body: () => fc.record({ acknowledge_on_stop: fc.boolean() }, { requiredKeys: [] }) },
    { method: 'PATCH', path: '/balloon/hinting/stop', body: null },
    { method: 'PUT', path: '/entropy', body: () => fc.record({ rate_limiter: opt(rateLimiter) }, { requiredKeys: [] }) },
    { method: 'PUT', path: '/mmds', body: () => fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>, { maxKeys: 4 }) },
    { method: 'PATCH', path: '/mmds', body: () => fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>, { maxKeys: 4 }) },
    {
      method: 'PUT', path: '/mmds/config',
      body: () => fc.record({ network_interfaces: fc.array(id, { maxLength: 2 }), version: fc.constantFrom('V1', 'V2'), ipv4_address: fc.constantFrom('169.254.169.254', '169.254.170.2'), imds_compat: fc.boolean() }, { requiredKeys: ['network_interfaces'] }),
    },
    {
      method: 'PUT', path: '/logger',
      body: () => fc.record({ log_path: pathIn(fx), level: fc.constantFrom('Error', 'Warning', 'Info', 'Debug', 'Trace', 'Off', 'warn'), show_level: fc.boolean(), show_log_origin: fc.boolean(), module: fc.constantFrom('api_server', 'vmm') }, { requiredKeys: [] }),
    },
    { method: 'PUT', path: '/metrics', body: () => fc.record({ metrics_path: pathIn(fx) }) },
    { method: 'PUT', path: '/serial', body: () => fc.record({ serial_out_path: opt(pathIn(fx)), rate_limiter: opt(tokenBucket) }, { requiredKeys: [] }) },
    {
      method: 'PUT', path: '/cpu-config',
      body: () => fc.record({
        kvm_capabilities: fc.array(fc.constantFrom('121', '!121', '54'), { maxLength: 2 }),
        cpuid_modifiers: fc.array(fc.record({ leaf: hex, subleaf: hex, flags: fc.nat(1), modifiers: fc.array(fc.record({ register: fc.constantFrom('eax', 'ebx', 'ecx', 'edx'), bitmap: bits(32) }), { maxLength: 2 }) }), { maxLength: 2 }),
        msr_modifiers: fc.array(fc.record({ addr: hex, bitmap: bits(64) }), { maxLength: 2 }),
      }, { requiredKeys: [] }),
    },
    { method: 'PUT', path: '/snapshot/create', body: () => fc.record({ snapshot_type: fc.constantFrom('Full', 'Diff'), snapshot_path: pathIn(fx), mem_file_path: pathIn(fx) }, { requiredKeys: ['snapshot_path', 'mem_file_path'] }) },
    {
      method: 'PUT', path: '/snapshot/load',
      body: () => fc.record({
        snapshot_path: pathIn(fx), mem_backend: fc.record({ backend_path: pathIn(fx), backend_type: fc.constantFrom('File', 'Uffd') }), track_dirty_pages: fc.boolean(), resume_vm: fc.boolean(),
        network_overrides: fc.array(fc.record({ iface_id: id, host_dev_name: fc.constant('tap0') }), { maxLength: 1 }), clock_realtime: fc.boolean(),
      }, { requiredKeys: ['snapshot_path', 'mem_backend'] }),
    },
    { method: 'PUT', path: '/actions', body: () => fc.record({ action_type: fc.constantFrom('InstanceStart', 'SendCtrlAltDel', 'FlushMetrics') }) },
    { method: 'PATCH', path: '/vm', body: () => fc.record({ state: fc.constantFrom('Paused', 'Resumed') }) },
    { method: 'PUT', path: '/hotplug/memory', body: () => fc.record({ total_size_mib: fc.constantFrom(128, 1024), block_size_mib: fc.constantFrom(2, 128), slot_size_mib: fc.constantFrom(128, 256) }, { requiredKeys: ['total_size_mib'] }) },
    { method: 'PATCH', path: '/hotplug/memory', body: () => fc.record({ requested_size_mib: fc.constantFrom(0, 128, 256) }) },
    {
      method: 'PUT', path: '/pmem/{id}',
      body: (i) => fc.record({ id: fc.constant(i), path_on_host: file, root_device: fc.boolean(), read_only: fc.boolean(), rate_limiter: opt(rateLimiter) }, { requiredKeys: ['id', 'path_on_host'] }),
    },
    { method: 'PATCH', path: '/pmem/{id}', body: (i) => fc.record({ id: fc.constant(i), rate_limiter: opt(rateLimiter) }, { requiredKeys: ['id'] }) },
    { method: 'DELETE', path: '/drives/{id}', body: null },
    { method: 'DELETE', path: '/network-interfaces/{id}', body: null },
    { method: 'DELETE', path: '/pmem/{id}', body: null },
  ];
}

/** A change to the body's JSON tree; `at` picks the node (modulo the node count). */
type TreeMutation =
  | { op: 'wrongType'; at: number; value: Json }
  | { op: 'delete'; at: number }
  | { op: 'extra'; at: number; key: string; value: Json }
  | { op: 'hugeNumber'; at: number; text: string }
  | { op: 'hugeString'; at: number; length: number }
  | { op: 'nul'; at: number; text: string }
  | { op: 'deep'; at: number; depth: number; array: boolean };

const treeMutation: fc.Arbitrary<TreeMutation> = fc.oneof(
  fc.record({ op: fc.constant('wrongType' as const), at: fc.nat(), value: fc.constantFrom<Json>('x', '', 7, -1, 0.5, true, false, null, [], {}, [1, 'a'], { a: 1 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('extra' as const), at: fc.nat(), key: fc.oneof(fc.constantFrom('foo', '', 'drive_id', '__proto__', 'constructor', 'k\u0000'), fc.string({ maxLength: 6 })), value: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json> }),
  fc.record({
    op: fc.constant('hugeNumber' as const), at: fc.nat(),
    text: fc.constantFrom('18446744073709551616', '18446744073709551615', '9223372036854775808', '4294967296', '65536', '256', '-1', '-0', '1e400', '-1e400', '1.5', '1e2', '9007199254740993', '123456789012345678901234567890', '0.0000001'),
  }),
  fc.record({ op: fc.constant('hugeString' as const), at: fc.nat(), length: fc.constantFrom(300, 4096, 40_000, 60_000) }),
  fc.record({ op: fc.constant('nul' as const), at: fc.nat(), text: fc.constantFrom('\u0000', 'a\u0000b', '/tmp/\u0000x', '\u0000'.repeat(64)) }),
  fc.record({ op: fc.constant('deep' as const), at: fc.nat(), depth: fc.constantFrom(127, 128, 129, 1000, 10_000), array: fc.boolean() }),
);

/** Every node of a tree as [parent, key] (the root as [null, null]). */
function nodes(root: Json): [Json[] | { [k: string]: Json } | null, string | number | null][] {
  const out: [Json[] | { [k: string]: Json } | null, string | number | null][] = [[null, null]];
  const walk = (v: Json): void => {
    if (Array.isArray(v)) v.forEach((x, i) => (out.push([v, i]), walk(x)));
    else if (v !== null && typeof v === 'object' && !(v instanceof Raw)) for (const [k, x] of Object.entries(v)) out.push([v, k]), walk(x);
  };
  walk(root);
  return out;
}

/** Applies a tree mutation in place; returns the new root (undefined: no body at all). */
function mutateTree(root: Json, m: TreeMutation): Json | undefined {
  const all = nodes(root);
  const [parent, key] = all[m.at % all.length]!;
  const set = (v: Json): Json => {
    if (parent === null) return v;
    (parent as Record<string | number, Json>)[key!] = v;
    return root;
  };
  switch (m.op) {
    case 'wrongType': return set(m.value);
    case 'delete':
      if (parent === null) return undefined;
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key as string];
      return root;
    case 'extra': {
      const objs = all.map(([p, k]) => (p === null ? root : (p as Record<string | number, Json>)[k!]!)).filter((v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Raw));
      const target = (objs[m.at % Math.max(1, objs.length)] ?? root) as { [k: string]: Json };
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) target[m.key] = m.value;
      return root;
    }
    case 'hugeNumber': return set(new Raw(m.text));
    case 'hugeString': return set('A'.repeat(m.length));
    case 'nul': return set(m.text);
    case 'deep': return set(new Raw(m.array ? `${'['.repeat(m.depth)}1${']'.repeat(m.depth)}` : `${'{"a":'.repeat(m.depth)}1${'}'.repeat(m.depth)}`));
  }
}

/** A change to the body text itself. */
const textMutation = fc.oneof(
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('rawByte' as const), at: fc.nat(), byte: fc.constantFrom('\u0000', '\u0001', '\u007f', '\r\n', '\uffff', '\ud800') }),
  fc.record({ op: fc.constant('duplicateKey' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('replace' as const), at: fc.nat(), text: fc.constantFrom('', ' ', 'null', '[]', '"x"', '1', '{', '{"a":1}}', 'true false', '\ufeff{}', '{}'.repeat(100)) }),
);

type TextMutation = typeof textMutation extends fc.Arbitrary<infer T> ? T : never;

function mutateText(text: string, m: TextMutation): string {
  const at = m.at % (text.length + 1);
  switch (m.op) {
    case 'truncate': return text.slice(0, at);
    case 'rawByte': return text.slice(0, at) + m.byte + text.slice(at);
    case 'duplicateKey': {
      const member = /^\{("[^"]*":(?:"[^"]*"|[^,{}[\]]*))/.exec(text);
      return member ? `{${member[1]},${text.slice(1)}` : text;
    }
    case 'replace': return m.text;
  }
}

/** A change to the method or path. */
const requestMutation = fc.oneof(
  fc.record({ op: fc.constant('method' as const), method: fc.constantFrom<GenRequest['method']>('GET', 'PUT', 'PATCH', 'DELETE') }),
  fc.record({
    op: fc.constant('path' as const),
    path: fc.oneof(
      fc.constantFrom('/foo', '/drives', '/drives/', '/snapshot', '/snapshot/x', '/mmds/foo', '//version', '/version?x=1', '/balloon/hinting/x', '/balloon/x', '/hotplug', '/vm', 'http://localhost/version', 'http://localhost', '*', 'version', '/%00', '/drives/a-b', '/drives/x.y', '/pmem/%41', '/network-interfaces/\u00e9\u0663', '/cpu-config/extra'),
      fc.array(fc.stringMatching(/^[a-z0-9_.%-]{0,6}$/), { minLength: 1, maxLength: 4 }).map((s) => `/${s.join('/')}`),
    ),
  }),
  fc.record({ op: fc.constant('idMismatch' as const) }),
  fc.record({ op: fc.constant('noBody' as const) }),
);

interface Instance {
  ep: Endpoint;
  path: string;
  tree: Json | undefined;
}

function instance(ep: Endpoint): fc.Arbitrary<Instance> {
  return id.chain((i) => (ep.body ? ep.body(i) : fc.constant(undefined)).map((tree) => ({ ep, path: ep.path.replace('{id}', i), tree: tree as Json | undefined })));
}

/** How a generated request reads in a report: kind, request line and the body's first 200 characters. */
export function describeRequest(r: GenRequest): string {
  return `${r.kind} ${r.method} ${r.path} ${JSON.stringify((r.body ?? '').slice(0, 200))}${(r.body?.length ?? 0) > 200 ? ` (${r.body!.length} chars)` : ''}`;
}

function request(x: Instance, kind: string, tree: Json | undefined = x.tree, over: Partial<GenRequest> = {}): GenRequest {
  const r: GenRequest = { method: x.ep.method, path: x.path, endpoint: `${x.ep.method} ${x.ep.path}`, kind, ...(tree === undefined ? {} : { body: jsonText(tree) }), ...over };
  // fast-check prints counterexamples with this, so a 60 000-character body stays readable.
  Object.defineProperty(r, fc.toStringMethod, { value: () => describeRequest(r) });
  return r;
}

/** Generated requests: schema-valid ones and mutated ones, mutated about three times in four. */
export function requests(fx: Fixtures): fc.Arbitrary<GenRequest> {
  const inst = fc.constantFrom(...endpoints(fx)).chain(instance);
  return fc.oneof(
    { weight: 3, arbitrary: inst.map((x) => request(x, 'valid')) },
    {
      weight: 5,
      arbitrary: fc.tuple(inst, fc.array(treeMutation, { minLength: 1, maxLength: 3 })).map(([x, ms]) => {
        let tree: Json | undefined = x.tree ?? {};
        for (const m of ms) tree = tree === undefined ? undefined : mutateTree(tree, m);
        return request(x, ms.map((m) => m.op).join('+'), tree);
      }),
    },
    { weight: 2, arbitrary: fc.tuple(inst, textMutation).map(([x, m]) => request(x, m.op, undefined, { body: mutateText(jsonText(x.tree ?? {}), m) })) },
    {
      weight: 2,
      arbitrary: fc.tuple(inst, requestMutation).map(([x, m]) => {
        if (m.op === 'method') return request(x, 'method', x.tree, { method: m.method });
        if (m.op === 'path') return request(x, 'path', x.tree, { path: m.path });
        if (m.op === 'idMismatch') return request(x, 'idMismatch', x.tree, { path: x.ep.path.includes('{id}') ? x.ep.path.replace('{id}', 'other_id') : `${x.path}/other_id` });
        const noBody = request(x, 'noBody', undefined);
        return x.tree === undefined ? { ...noBody, body: '{}' } : noBody;
      }),
    },
  );
}

/** The raw bytes of a generated request (HTTP/1.1, Content-Length when it has a body). */
export function requestBytes(r: GenRequest): Buffer {
  const body = r.body === undefined ? '' : r.body;
  const head = `${r.method} ${r.path} HTTP/1.1\r\n${r.body === undefined ? '' : `Content-Length: ${Buffer.byteLength(body)}\r\n`}\r\n`;
  return Buffer.concat([Buffer.from(head), Buffer.from(body)]);
}
