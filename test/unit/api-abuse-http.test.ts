/**
 * API abuse, part 2: raw HTTP against the real server (fake VM) over loopback Unix sockets —
 * request-line and header limits, bad Content-Length, chunked bodies, pipelining, over-limit
 * bodies followed by more requests, half-closed sockets, slow clients writing a byte at a
 * time, the 11th connection, clients that never read. Each case gets a fresh API and checks
 * that every reply is valid micro_http (test/helpers/api-abuse.ts `checkReply`), that a later
 * request on the same connection is answered, that the server still serves a new connection,
 * and that the stored configuration did not change. The last test runs every case again and
 * checks fds and memory (the first pass was the warm-up).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { HttpRequestParser, ParseEvent } from '../../src/api/http-parser.js';
import { SERVER_FULL_RESPONSE } from '../../src/api/http-response.js';
import { MAX_CONNECTIONS } from '../../src/api/server.js';
import { AbuseCounts, CaseContext, GET_VERSION, SEEDS, VERSION_BODY, checkReply, checkResources, isParseError, runCase, sampleResources } from '../helpers/api-abuse.js';
import type { RawClient } from '../helpers/api-harness.js';

const req = (method: string, path: string, body?: string, headers: string[] = []): string =>
  `${method} ${path} HTTP/1.1\r\n${[...headers, ...(body === undefined ? [] : [`Content-Length: ${Buffer.byteLength(body)}`])].map((x) => `${x}\r\n`).join('')}\r\n${body ?? ''}`;

const pathOfLine = (len: number): string => `/${'x'.repeat(len - 'GET / HTTP/1.1'.length)}`;

const bytes = (max: number, min = 0): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a.map((b) => (b === 0x0a || b === 0x0d ? 0x20 : b))));
const text = (...s: string[]): fc.Arbitrary<Buffer> => fc.constantFrom(...s).map((x) => Buffer.from(x));
const long = (prefix: string, min: number, max: number): fc.Arbitrary<Buffer> => fc.integer({ min, max }).map((n) => Buffer.from(prefix + 'l'.repeat(Math.max(0, n - prefix.length))));

/** Mostly well-formed pieces (weight 6), so that requests get past the request line often. */
const mostly = (good: fc.Arbitrary<Buffer>, bad: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> => fc.oneof({ weight: 6, arbitrary: good }, { weight: 1, arbitrary: bad });
const method = mostly(text('GET', 'PUT', 'PATCH', 'DELETE'), fc.oneof(text('POST', 'HEAD', 'get', 'G E T', ''), bytes(8)));
const uri = mostly(
  text('/', '/version', '/vm/config', '/machine-config', 'http://localhost/version', '/mmds', '/drives/x', '/\u00e9', '/%00'),
  fc.oneof(text('*', 'http://x', '', '/a b', '/\u0000'), long('/', 1000, 1030), bytes(40)),
);
const version = mostly(text('HTTP/1.1', 'HTTP/1.0'), fc.oneof(text('HTTP/2.0', 'HTTP/1.1 ', 'http/1.1', 'HTTP/1.10', 'HTTP/1', ''), bytes(10)));
const sep = mostly(text(' '), text('  ', '\t', ''));
const header = mostly(
  text(
    'Accept: application/json', 'Accept: text/plain', 'Accept: */*', 'Content-Type: text/plain', 'Content-Type: x/y', 'Expect: 100-continue',
    'Transfer-Encoding: chunked', 'Transfer-Encoding: identity', 'Accept-Encoding: gzip, identity', 'Connection: close', 'Content-Length: 0', 'Server: x', 'X-Token: abc',
  ),
  fc.oneof(
    text('Accept-Encoding: identity;q=0', 'Accept-Encoding: *;q=0', 'Accept-Encoding: ', 'Content-Length: -1', 'Content-Length: x', 'Content-Length: 4294967296', 'NoColon', ':', ' : '),
    fc.tuple(bytes(20, 1), bytes(60)).map(([k, v]) => Buffer.concat([k, Buffer.from(': '), v])),
    long('X-Long: ', 1015, 1030),
    bytes(60, 1),
  ),
);

/** One generated request: its bytes end with the blank line, and nothing follows. */
const request = fc
  .record({ method, sep1: sep, uri, sep2: sep, version, headers: fc.array(header, { maxLength: 4 }) })
  .map((r) => {
    const lines = [Buffer.concat([r.method, r.sep1, r.uri, r.sep2, r.version]), ...r.headers];
    // An empty line would end the header block early and start another request.
    return Buffer.concat([...lines.filter((l) => l.length > 0).flatMap((l) => [l, Buffer.from('\r\n')]), Buffer.from('\r\n')]);
  })
  .filter((b) => !b.subarray(0, -2).includes('\r\n\r\n'));

/**
 * Generated request lines and header blocks: methods, URIs and versions valid and not,
 * separators, known headers with good and bad values, random names and values of arbitrary
 * bytes (never CR or LF, so each request ends exactly at its blank line), lines just under and
 * over the 1024-byte buffer. No request announces a body, so each must draw exactly one reply
 * and the probe after it must be answered. 400 requests on one kept connection.
 */
async function headerCase({ client, abuse, counts }: CaseContext): Promise<void> {
  const c = client();
  let parseErrors = 0;
  await fc.assert(
    fc.asyncProperty(request, async (bytes) => {
      const rs = await abuse(c, bytes);
      assert.is(rs.length, 1, `replies to ${JSON.stringify(bytes.toString('latin1'))}`);
      if (isParseError(rs[0]!)) parseErrors++;
    }),
    { seed: SEEDS.rawHeaders, numRuns: 400, endOnFailure: true },
  );
  counts.cases += 400;
  assert.ok(parseErrors > 0 && parseErrors < 400, `parse errors: ${parseErrors} of 400`);
}

const CASES: [string, (x: CaseContext) => Promise<void>][] = [
  ['request lines at and over the 1024-byte buffer', async ({ client, abuse }) => {
    const c = client();
    for (const [len, parseError] of [[1022, false], [1023, true], [1024, true], [3000, true], [60_000, true]] as const) {
      const rs = await abuse(c, `GET ${pathOfLine(len)} HTTP/1.1\r\n\r\n`);
      assert.is(rs.length, 1, `line of ${len}`);
      assert.is(isParseError(rs[0]!), parseError, `line of ${len}: ${rs[0]!.body.slice(0, 80)}`);
    }
  }],
  ['header lines at and over the limit, many headers, bad bytes', async ({ client, abuse }) => {
    const c = client();
    const line = (len: number): string => `X-Pad: ${'p'.repeat(len - 7)}`;
    const cases: [string, boolean][] = [
      [`GET /version HTTP/1.1\r\n${line(1022)}\r\n\r\n`, false],
      [`GET /version HTTP/1.1\r\n${line(1023)}\r\n\r\n`, true],
      [`GET /version HTTP/1.1\r\n${Array.from({ length: 300 }, (_, i) => `X-H${i}: ${'v'.repeat(90)}\r\n`).join('')}\r\n`, false],
      ['GET /version HTTP/1.1\r\nNoColon\r\n\r\n', true],
      ['GET /version HTTP/1.1\r\nX-Nul: a\u0000b\r\n\r\n', false],
      ['GET /version HTTP/1.1\r\n: empty name\r\n\r\n', false],
      ['GET /version HTTP/1.1\r\nAccept-Encoding: identity;q=0\r\n\r\n', true],
      ['GET /version HTTP/1.1\r\nAccept-Encoding:\r\n\r\n', true],
    ];
    for (const [bytes, parseError] of cases) {
      const rs = await abuse(c, bytes);
      assert.is(rs.length, 1);
      assert.is(isParseError(rs[0]!), parseError, JSON.stringify(bytes.slice(0, 60)));
    }
    const bad = await abuse(c, Buffer.concat([Buffer.from('GET /version HTTP/1.1\r\nX-Bin: '), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('\r\n\r\n')]));
    assert.ok(isParseError(bad[0]!) && bad[0]!.body.includes('Header contains invalid characters'), bad[0]!.body);
  }],
  ['bad Content-Length values', async ({ client, abuse }) => {
    const c = client();
    for (const v of ['-1', '', 'abc', '1.5', '0x5', '5 5', '4294967296', '99999999999999999999', '\u0663']) {
      const rs = await abuse(c, `PUT /mmds HTTP/1.1\r\nContent-Length: ${v}\r\n\r\n{"a":}`);
      assert.equal(rs.map(isParseError), [true], `Content-Length: ${v}`);
    }
    // Forms micro_http accepts: the body is then read, and the request is answered.
    for (const v of ['+6', ' 6 ', '0000000006']) {
      const rs = await abuse(c, `PUT /mmds HTTP/1.1\r\nContent-Length: ${v}\r\n\r\n{"a":}`);
      assert.equal(rs.map((r) => r.status), [400], `Content-Length: ${v}`);
      assert.ok(rs[0]!.body.includes('deserializing the json body'), `Content-Length: ${v} is read as 6: ${rs[0]!.body}`);
    }
    // Two Content-Length headers: the last one counts.
    const two = await abuse(c, 'PUT /mmds HTTP/1.1\r\nContent-Length: 99\r\nContent-Length: 7\r\n\r\n{"a":1}');
    assert.equal(two.map((r) => r.status), [204]);
  }],
  ['chunked bodies are not decoded', async ({ client, abuse }) => {
    const c = client();
    const one = await abuse(c, 'PUT /mmds HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"a":1}\r\n0\r\n\r\n');
    assert.ok(one.length >= 1 && one.every((r) => r.status === 400));
    const withLength = await abuse(c, 'PUT /mmds HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n{"a":1}');
    assert.equal(withLength.map((r) => r.status), [204]);
  }],
  ['Expect: 100-continue: the interim 100, then the body in the same or a later write', async ({ client, abuse, counts }) => {
    const c = client();
    const put = (v: string): string => req('PUT', '/mmds', `{"e":${v}}`, ['Expect: 100-continue']);
    const one = await abuse(c, put('1').replace('HTTP/1.1', 'HTTP/1.0'));
    assert.equal(one.map((r) => [r.status, r.raw.slice(0, 8)]), [[100, 'HTTP/1.0'], [204, 'HTTP/1.1']]);
    // As curl does it: headers, wait for the 100, then the body.
    const text = put('2');
    const at = text.indexOf('\r\n\r\n') + 4;
    await c.write(text.slice(0, at));
    assert.equal((await c.waitResponses(1)).map((r) => r.status), [100]);
    checkReply(c.take()[0]!, 'interim 100');
    assert.equal((await abuse(c, text.slice(at))).map((r) => r.status), [204]);
    counts.requests++;
  }],
  ['pipelining: 300 mixed requests in one write are answered in order', async ({ client, abuse }) => {
    const c = client();
    const kinds = [req('GET', '/version'), req('PUT', '/mmds', '{"k":1}'), req('GET', '/mmds'), req('PUT', '/machine-config', '{"vcpu_count":'), req('GET', '/nope')];
    const rs = await abuse(c, Array.from({ length: 300 }, (_, i) => kinds[i % kinds.length]).join(''), 300);
    assert.equal(rs.map((r) => r.status), Array.from({ length: 300 }, (_, i) => [200, 204, 200, 400, 400][i % 5]));
  }],
  ['over-limit bodies followed by more requests', async ({ client, abuse }) => {
    const c = client();
    const body = `"${'a'.repeat(51_199)}"`;
    const same = await abuse(c, req('PUT', '/mmds', body) + GET_VERSION);
    assert.equal(same.map((r) => [isParseError(r), r.status]), [[true, 400], [false, 200]]);
    // The body in ten writes, the next request in the last one.
    const head = `PUT /mmds HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n`;
    await c.write(head);
    for (let i = 0; i < 9; i++) await c.write(body.slice((i * body.length) / 10, ((i + 1) * body.length) / 10));
    const split = await abuse(c, body.slice((9 * body.length) / 10) + GET_VERSION);
    assert.equal(split.map((r) => r.status), [400, 200]);
    // With Expect: 100-continue the client waits: nothing is skipped.
    const expect = await abuse(c, `PUT /mmds HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`);
    assert.equal(expect.map(isParseError), [true]);
  }],
  ['Content-Length of 4294967295: the connection eats the announced body, others are served', async ({ client, abuse }) => {
    const c = client();
    await c.write('PUT /mmds HTTP/1.1\r\nContent-Length: 4294967295\r\n\r\n');
    const [r] = await c.waitResponses(1);
    assert.ok(r && isParseError(r));
    for (let i = 0; i < 16; i++) await c.write(Buffer.alloc(64 * 1024, GET_VERSION));
    // Another connection's exchange lets the server read what we wrote (same event loop).
    await abuse(client(), GET_VERSION);
    assert.is(c.take().length, 1, 'nothing in the skipped body is answered');
  }],
  ['half-closed sockets', async ({ client, counts }) => {
    const full = client();
    full.socket.end(req('GET', '/version') + req('PUT', '/mmds', '{"h":1}') + req('GET', '/mmds'));
    await full.waitClose();
    const rs = full.responses();
    rs.forEach((r) => (checkReply(r, 'half-closed pipeline'), counts.status(r.status)));
    assert.equal(rs.map((r) => r.status), [200, 204, 200]);
    const partial = client();
    partial.socket.end('GET /vers');
    await partial.waitClose();
    assert.is(partial.bytes.length, 0, 'an unfinished request at EOF draws no reply');
    const empty = client();
    empty.socket.end();
    await empty.waitClose();
    counts.requests += 5;
  }],
  ['slow clients writing a byte at a time, while others are served', async ({ client, abuse, counts }) => {
    const slow = client();
    const other = client();
    const bytes = Buffer.from(req('PUT', '/mmds', JSON.stringify({ slow: 'x'.repeat(200) })) + GET_VERSION);
    for (let i = 0; i < bytes.length; i++) {
      await slow.write(bytes.subarray(i, i + 1));
      // Let the server read this byte on its own (same event loop), not together with the next.
      await new Promise((r) => setImmediate(r));
      if (i % 50 === 0) assert.equal((await abuse(other, GET_VERSION)).map((r) => r.body), [VERSION_BODY]);
    }
    const rs = await slow.waitResponses(2);
    rs.forEach((r) => (checkReply(r, 'slow client'), counts.status(r.status)));
    assert.equal(rs.map((r) => r.status), [204, 200]);
    counts.requests += 2;
  }],
  ['the 11th connection gets the 503 and is closed; the ten keep working', async ({ client, abuse }) => {
    // The runner's observer is the first of the ten.
    const held: RawClient[] = [];
    for (let i = 1; i < MAX_CONNECTIONS; i++) {
      const c = client();
      await abuse(c, GET_VERSION);
      held.push(c);
    }
    // It sends a request, which the server never reads: that must not keep its fd open. The
    // server writes the 503 and closes at once, so the request may meet a closed socket (EPIPE,
    // and Node then drops the 503 it had not read yet).
    const eleventh = client();
    await eleventh.write(GET_VERSION);
    await eleventh.waitClose();
    assert.ok(eleventh.bytes.equals(SERVER_FULL_RESPONSE) || (eleventh.bytes.length === 0 && eleventh.error === 'EPIPE'), `${eleventh.bytes} (${eleventh.error})`);
    for (const c of held) assert.equal((await abuse(c, GET_VERSION)).map((r) => r.status), [200]);
    const last = held.pop()!;
    last.socket.end();
    await last.waitClose();
  }],
  ['clients that never read do not stop the others', async ({ client, abuse, counts }) => {
    for (let i = 0; i < 3; i++) {
      const c = client();
      await c.write(GET_VERSION.replace('version', 'vm/config').repeat(2000));
      counts.requests += 2000;
    }
    const other = client();
    for (let i = 0; i < 20; i++) assert.equal((await abuse(other, GET_VERSION)).map((r) => r.body), [VERSION_BODY]);
  }],
  ['generated request lines and headers (fast-check)', headerCase],
];

/**
 * The parser alone, on streams of valid requests and over-limit ones whatever the chunking:
 * one error per over-limit request, every request after the last of them parsed, and nothing
 * parsed that was not sent. (Requests in the same emulated read as an error are dropped with
 * it, as micro_http drops them, so which earlier requests survive depends on the chunking.)
 */
test('over-limit requests in any chunking: one error each, nothing after them lost (parser)', () => {
  const limit = 300;
  const one = fc.oneof(
    fc.stringMatching(/^\/[a-z]{0,20}$/).map((p) => req('GET', p)),
    fc.string({ maxLength: limit }).map((b) => req('PUT', '/mmds', b)),
    fc.integer({ min: limit + 1, max: 5000 }).map((n) => `PUT /mmds HTTP/1.1\r\nContent-Length: ${n}\r\n\r\n${'z'.repeat(n)}`),
    fc.integer({ min: 0, max: 40 }).map((n) => `GET /h HTTP/1.1\r\n${Array.from({ length: n }, (_, i) => `X-${i}: ${'v'.repeat(50)}\r\n`).join('')}\r\n`),
  );
  const show = (evs: ParseEvent[]): string[] => evs.map((e) => (e.kind === 'request' ? `${e.request.method} ${e.request.path} ${e.request.body?.toString('hex') ?? ''}` : e.kind));
  let streams = 0;
  fc.assert(
    fc.property(fc.array(one, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (reqs, cuts) => {
      streams++;
      const alone = new HttpRequestParser(limit);
      const want = show(reqs.flatMap((r) => alone.feed(Buffer.from(r))));
      const stream = Buffer.from(reqs.join(''));
      const p = new HttpRequestParser(limit);
      const got: ParseEvent[] = [];
      let at = 0;
      for (const cut of [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b).concat(stream.length)) {
        got.push(...p.feed(stream.subarray(at, cut)));
        at = cut;
      }
      const seen = show(got);
      const errors = (x: string[]): number => x.filter((e) => e === 'error').length;
      assert.is(errors(seen), errors(want), 'one error per over-limit request');
      const tail = want.slice(want.lastIndexOf('error') + 1);
      assert.equal(seen.slice(seen.length - tail.length), tail, 'the requests after the last over-limit one');
      let i = 0;
      for (const w of want) if (seen[i] === w) i++;
      assert.is(i, seen.length, 'what was parsed is a subsequence of what was sent');
    }),
    { seed: SEEDS.rawHeaders + 1, numRuns: 1000 },
  );
  console.log(`  api-abuse-http (parser chunking): ${streams} streams, each cut at up to 20 random points`);
});

for (const [name, body] of CASES) {
  test(name, async () => {
    const counts = new AbuseCounts();
    await runCase(body, counts);
    console.log(counts.line(`api-abuse-http (${name.split(':')[0]})`));
  });
}

test('fds and memory are flat after every case again (the first pass was the warm-up)', async () => {
  const counts = new AbuseCounts();
  const before = sampleResources();
  for (const [, body] of CASES) await runCase(body, counts);
  const line = checkResources(before, sampleResources());
  console.log(`${counts.line('api-abuse-http (resource run)')}; ${line}`);
});

test.run();
