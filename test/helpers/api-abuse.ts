/**
 * Shared checks of the API abuse suite (test/unit/api-abuse-*.test.ts): what a valid reply of
 * the API socket looks like, the stored configuration, the process's fds and memory before and
 * after a run, and the counts the suite prints.
 */
import * as assert from 'uvu/assert';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ApiHarness, RawClient, RawResponse, openFdCount, startApi } from './api-harness.js';

export const GET_VERSION = 'GET /version HTTP/1.1\r\n\r\n';
export const VERSION_BODY = '{"firecracker_version":"1.16.1"}';

/** Fixed seeds: a run is reproducible; a failure prints the seed and path to replay. */
export const SEEDS = { schemaPreBoot: 0x5eed_0012, schemaPostBoot: 0x5eed_0013, rawHeaders: 0x5eed_0014 } as const;

const HEAD = 'Server: Firecracker API\r\nConnection: keep-alive\r\n';
/** micro_http's HTTP-level error body (src/server.rs `ClientConnection::read`): not JSON. */
const PARSE_ERROR_BODY = /^\{ "error": "[^]*\nAll previous unanswered requests will be dropped\." \}$/;

/**
 * Asserts that `r` is a reply the API may send on a kept connection: micro_http's exact head
 * (`HTTP/1.1 <code> ` with a trailing space and no reason, Server, keep-alive, optional
 * Deprecation), no Content-Type/Length on 100 and 204, and a Firecracker-shaped body: JSON
 * on 200, `{"fault_message": "..."}` (and nothing else) on errors, or micro_http's own parse
 * error text on an HTTP-level 400. No 5xx: the only one the API sends is the 503 of the 11th
 * connection, which `checkServerFull` covers.
 */
export function checkReply(r: RawResponse, what: string): void {
  const ctx = `${what}: ${JSON.stringify(r.raw.slice(0, 300))}`;
  assert.ok(r.status >= 100 && r.status < 500, `status ${r.status} for ${ctx}`);
  const m = /^HTTP\/1\.([01]) (\d{3}) \r\n/.exec(r.raw);
  assert.ok(m, `bad status line for ${ctx}`);
  assert.ok(m[1] === '1' || r.status === 100, `only the interim 100 echoes HTTP/1.0: ${ctx}`);
  const rest = r.raw.slice(m[0].length);
  assert.ok(rest.startsWith(HEAD), `bad head for ${ctx}`);
  const tail = rest.slice(HEAD.length).replace(/^Deprecation: true\r\n/, '');
  if (r.status === 100 || r.status === 204) {
    assert.is(tail, '\r\n', `100/204 carry no Content-Type/Length or body: ${ctx}`);
    return;
  }
  const ct = /^Content-Type: (application\/json|text\/plain)\r\nContent-Length: (\d+)\r\n\r\n/.exec(tail);
  assert.ok(ct, `bad Content-Type/Length for ${ctx}`);
  assert.is(Buffer.byteLength(r.body), Number(ct[2]), `Content-Length for ${ctx}`);
  if (r.status < 300) {
    if (ct[1] === 'application/json') JSON.parse(r.body);
    return;
  }
  if (r.status === 400 && PARSE_ERROR_BODY.test(r.body)) return;
  let fault: unknown;
  try {
    fault = JSON.parse(r.body);
  } catch {
    assert.unreachable(`error body is neither JSON nor micro_http's parse error: ${ctx}`);
  }
  assert.ok(fault !== null && typeof fault === 'object' && !Array.isArray(fault), `fault body is not an object: ${ctx}`);
  assert.equal(Object.keys(fault as object), ['fault_message'], `fault body keys: ${ctx}`);
  assert.type((fault as { fault_message: unknown }).fault_message, 'string', `fault_message type: ${ctx}`);
}

/** True when `r` is micro_http's HTTP-level parse error (a 400 with its non-JSON body). */
export function isParseError(r: RawResponse): boolean {
  return r.status === 400 && PARSE_ERROR_BODY.test(r.body);
}

/** The stored configuration as GET /vm/config and GET /machine-config report it. */
export async function storedConfig(observer: RawClient): Promise<string> {
  await observer.write('GET /vm/config HTTP/1.1\r\n\r\nGET /machine-config HTTP/1.1\r\n\r\n');
  await observer.waitResponses(2);
  const rs = observer.take();
  assert.equal(rs.map((r) => r.status), [200, 200], 'config GETs');
  return `${rs[0]!.body}\n${rs[1]!.body}`;
}

/** Sends one request on `c` and returns its single reply, checked. */
export async function exchange(c: RawClient, bytes: string | Buffer, what: string): Promise<RawResponse> {
  await c.write(bytes);
  const rs = await c.waitResponses(1);
  assert.ok(rs.length >= 1, `no reply (connection ${c.closed ? 'closed' : 'open'}) to ${what}`);
  const [r] = c.take();
  checkReply(r!, what);
  return r!;
}

/** Counts a suite prints at the end, so the tier output shows how much was tried. */
export class AbuseCounts {
  requests = 0;
  cases = 0;
  connections = 0;
  readonly statuses = new Map<number, number>();

  status(s: number): void {
    this.statuses.set(s, (this.statuses.get(s) ?? 0) + 1);
  }

  line(label: string): string {
    const st = [...this.statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ');
    return `  ${label}: ${this.cases} cases, ${this.requests} requests sent${this.connections ? ` on ${this.connections} connections` : ''}; replies ${st}`;
  }
}

const gc = ((): (() => void) => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/** The process's open fds, RSS and live memory (V8 heap + Buffers outside it), after a full GC. */
export interface ResourceSample {
  fds: number;
  rss: number;
  live: number;
}

/** Samples fds, RSS and live memory after a full GC (so garbage is not counted). */
export function sampleResources(): ResourceSample {
  gc();
  const m = process.memoryUsage();
  return { fds: openFdCount(), rss: m.rss, live: m.heapUsed + m.external };
}

const MiB = 1024 * 1024;

/**
 * Bounds on what a finished abuse run may leave behind, measured after a warm-up run of the
 * same kinds of requests (so JIT code, pools and fast-check's caches already exist):
 * - fds: exactly as before — every connection and file the run opened is closed;
 * - live memory (V8 heap plus Buffer memory, after a full GC): +4 MiB. A resource run sends
 *   several thousand requests (the counts are printed), so keeping any per-request object of
 *   ~1 KiB (a request with its body, a GET /vm/config reply) or any per-connection state of
 *   tens of KiB (a parser with its 1024-byte buffer and a held 64 KiB input chunk) would pass
 *   it; the measured growth is well under 1 MiB;
 * - RSS: +32 MiB — coarse, because V8 and the allocator keep freed pages mapped for a while
 *   and grow their arenas in steps; it catches what the live figure cannot see (native
 *   buffers of sockets that were never closed, unbounded unsent replies).
 */
export const RESOURCE_BOUNDS = { live: 4 * MiB, rss: 32 * MiB } as const;

/** Asserts the bounds above and returns a printable line. */
export function checkResources(before: ResourceSample, after: ResourceSample): string {
  const mib = (n: number): string => (n / MiB).toFixed(1);
  const line = `fds ${before.fds} → ${after.fds}, RSS ${mib(before.rss)} → ${mib(after.rss)} MiB, live ${mib(before.live)} → ${mib(after.live)} MiB`;
  assert.is(after.fds, before.fds, `fds: ${line}`);
  assert.ok(after.live - before.live < RESOURCE_BOUNDS.live, `live memory: ${line}`);
  assert.ok(after.rss - before.rss < RESOURCE_BOUNDS.rss, `RSS: ${line}`);
  return line;
}

/** One abuse case: what it does on a fresh API. */
export interface CaseContext {
  h: ApiHarness;
  counts: AbuseCounts;
  /** A new client connection (closed by the case runner). */
  client(): RawClient;
  /**
   * Writes `bytes` (`requests` requests, for the counts), waits for the replies they draw,
   * then for a unique probe's; returns the replies before the probe.
   */
  abuse(c: RawClient, bytes: string | Buffer, requests?: number): Promise<RawResponse[]>;
}

let probes = 0;

/**
 * The probe is `GET /probe-N`, whose 400 names N: unique, so the replies the abuse drew are
 * exactly those before it. It is written only after the abuse drew a reply: the server has
 * then read the abuse, so the probe arrives in a read of its own (after a parse error the
 * server drops the rest of the read, as micro_http does).
 */
export async function abuseThenProbe(c: RawClient, bytes: string | Buffer, counts: AbuseCounts, requests = 1): Promise<RawResponse[]> {
  await c.write(bytes);
  counts.requests += requests;
  await c.waitResponses(1);
  const n = ++probes;
  const want = `{"fault_message":"Invalid request method and/or path: GET probe-${n}."}`;
  await c.write(`GET /probe-${n} HTTP/1.1\r\n\r\n`);
  counts.requests++;
  for (;;) {
    const rs = c.responses();
    if (rs.length && rs[rs.length - 1]!.body === want) {
      c.take();
      for (const r of rs) {
        checkReply(r, `reply to ${JSON.stringify(bytes.toString('latin1').slice(0, 120))}`);
        counts.status(r.status);
      }
      return rs.slice(0, -1);
    }
    assert.ok(!c.closed, `connection closed before the probe's reply; got ${rs.map((r) => r.status).join(', ')}`);
    await c.waitResponses(rs.length + 1);
  }
}

/** Runs one case on a fresh API, then checks the server serves a new connection and the config is unchanged. */
export async function runCase(body: (ctx: CaseContext) => Promise<void>, counts: AbuseCounts): Promise<void> {
  const h = await startApi();
  h.logger.sink = () => undefined;
  const clients: RawClient[] = [];
  const client = (): RawClient => {
    const c = new RawClient(h.socketPath);
    clients.push(c);
    counts.connections++;
    return c;
  };
  try {
    const observer = client();
    const before = await storedConfig(observer);
    counts.cases++;
    await body({ h, counts, client, abuse: (c, bytes, n) => abuseThenProbe(c, bytes, counts, n) });
    const fresh = client();
    await fresh.write(GET_VERSION);
    const [r] = await fresh.waitResponses(1);
    assert.is(r?.body, VERSION_BODY, 'a new connection is served after the case');
    assert.is(await storedConfig(observer), before, 'the stored configuration is unchanged');
    counts.requests += 5;
  } finally {
    for (const c of clients) c.destroy();
    await h.close();
  }
}
