/**
 * Shared checks of the API abuse suite (test/unit/api-abuse-*.test.ts): what a valid reply of
 * the API socket looks like, the stored configuration, the process's fds and memory before and
 * after a run, and the counts the suite prints.
 */
import * as assert from 'uvu/assert';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { RawResponse } from './api-harness.js';
import { RawClient, openFdCount } from './api-socket.js';

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
  readonly statuses = new Map<number, number>();

  status(s: number): void {
    this.statuses.set(s, (this.statuses.get(s) ?? 0) + 1);
  }

  line(label: string): string {
    const st = [...this.statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ');
    return `  ${label}: ${this.cases} cases, ${this.requests} requests sent; replies ${st}`;
  }
}

const gc = ((): (() => void) => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/** The process's open fds, RSS and live heap, after a full GC. */
export interface ResourceSample {
  fds: number;
  rss: number;
  heap: number;
}

/** Samples fds, RSS and the live heap after a full GC (so garbage is not counted). */
export function sampleResources(): ResourceSample {
  gc();
  const m = process.memoryUsage();
  return { fds: openFdCount(), rss: m.rss, heap: m.heapUsed };
}

const MiB = 1024 * 1024;

/**
 * Bounds on what a finished abuse run may leave behind, measured after a warm-up run of the
 * same kind (so JIT code, pools and fast-check's caches are already there):
 * - fds: exactly as before — every connection and file the run opened is closed;
 * - live heap: +8 MiB — a leak of one retained request (≥ 100 bytes: the HttpRequest, its
 *   headers map, the slot) per request sent would exceed it over the thousands sent;
 * - RSS: +32 MiB — V8 keeps freed pages mapped for a while and the allocator's arenas grow
 *   in steps, so RSS is coarse; a per-connection leak of a 64 KiB read buffer or of unsent
 *   replies (hundreds of connections per run) would still exceed it.
 */
export const RESOURCE_BOUNDS = { heap: 8 * MiB, rss: 32 * MiB } as const;

/** Asserts the bounds above and returns a printable line. */
export function checkResources(before: ResourceSample, after: ResourceSample): string {
  const line = `fds ${before.fds} → ${after.fds}, RSS ${(before.rss / MiB).toFixed(1)} → ${(after.rss / MiB).toFixed(1)} MiB, heap ${(before.heap / MiB).toFixed(1)} → ${(after.heap / MiB).toFixed(1)} MiB`;
  assert.is(after.fds, before.fds, `fds: ${line}`);
  assert.ok(after.heap - before.heap < RESOURCE_BOUNDS.heap, `heap: ${line}`);
  assert.ok(after.rss - before.rss < RESOURCE_BOUNDS.rss, `RSS: ${line}`);
  return line;
}
