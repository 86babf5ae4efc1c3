/**
 * The MMDS's HTTP/1.x (src/mmds/http.ts): micro_http's request rules and error texts as the
 * MMDS endpoint answers them (micro_http src/request.rs, common/headers.rs; Firecracker
 * dumbo/tcp/endpoint.rs), the framing out of a connection's buffer, and the response bytes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeResponse, findRequestEnd, parseRequest, takeRequest, type HttpRequest } from '../../src/mmds/http.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const parse = (s: string): ReturnType<typeof parseRequest> => parseRequest(enc(s));
const ok = (s: string): HttpRequest => {
  const r = parse(s);
  if ('status' in r) throw new Error(`refused: ${r.status} ${r.message}`);
  return r;
};
const err = (s: string): string => {
  const r = parse(s);
  return 'status' in r ? `${r.status} ${r.message}` : 'accepted';
};

test('a GET with headers: method, URI, version, Accept, custom headers trimmed and in order', () => {
  const r = ok('GET /latest/meta-data HTTP/1.1\r\nHost: 169.254.169.254\r\nAccept: application/json\r\nX-metadata-token:  abc \r\n\r\n');
  assert.is(r.method, 'GET');
  assert.is(r.uri, '/latest/meta-data');
  assert.is(r.version, 'HTTP/1.1');
  assert.is(r.accept, 'application/json');
  assert.equal(r.custom, [['Host', '169.254.169.254'], ['X-metadata-token', 'abc']]);
});

test('no Host header is fine (micro_http does not ask for one); HTTP/1.0 and 1.1; no headers at all', () => {
  assert.is(ok('GET / HTTP/1.0\r\n\r\n').version, 'HTTP/1.0');
  assert.is(ok('GET / HTTP/1.1\r\n\r\n').version, 'HTTP/1.1');
  assert.equal(ok('PUT /latest/api/token HTTP/1.1\r\nx-metadata-token-ttl-seconds: 60\r\n\r\n').custom, [['x-metadata-token-ttl-seconds', '60']]);
});

test('header names are case-insensitive: lowercase and odd-cased known headers are recognized', () => {
  assert.is(ok('GET / HTTP/1.1\r\naccept: application/json\r\n\r\n').accept, 'application/json');
  assert.is(ok('GET / HTTP/1.1\r\nACCEPT:text/plain\r\n\r\n').accept, 'text/plain');
  assert.is(ok('PUT /x HTTP/1.1\r\ncOnTeNt-LeNgTh: 4\r\n\r\n').contentLength, 4);
  assert.is(ok('GET / HTTP/1.1\r\nAccept: */*\r\n\r\n').accept, 'text/plain', 'an unknown media type is ignored (curl sends */*)');
  assert.is(ok('GET / HTTP/1.1\r\nAccept:\r\n\r\n').accept, 'text/plain');
  assert.equal(ok('GET / HTTP/1.1\r\nContent-Type: nonsense\r\nTransfer-Encoding: gzip\r\nExpect: 103\r\nServer: x\r\n\r\n').custom, []);
});

test('bad request lines: Firecracker texts and statuses', () => {
  assert.is(err('GET / HTTP/1.1\n\n'), '400 Invalid request.', 'LF only');
  assert.is(err('GET /\r\n\r\n'), '400 Invalid request.', 'no version');
  assert.is(err('GET / HTTP/1\r\n\r\n'), '400 Invalid request.', 'shorter than the shortest request line');
  assert.is(err('GET /a/b/cHTTP/1.1\r\n\r\n'), '400 Invalid request.', 'one space only');
  assert.is(err('POST / HTTP/1.1\r\n\r\n'), '501 Unsupported HTTP method.');
  assert.is(err('get / HTTP/1.1\r\n\r\n'), '501 Unsupported HTTP method.', 'methods are case-sensitive');
  assert.is(err('GET / HTTP/2.0\r\n\r\n'), '501 Unsupported HTTP version.');
  assert.is(err('GET / HTTP/1.1 x\r\n\r\n'), '501 Unsupported HTTP version.', 'a third space belongs to the version');
  assert.is(err('GET  HTTP/1.1xx\r\n\r\n'), '400 Empty URI not allowed.');
  assert.is(err('GET /\xff HTTP/1.1\r\n\r\n'.replace('\xff', '\u00ff')), 'accepted', 'ÿ as UTF-8 is a valid URI');
  const raw = enc('GET /a HTTP/1.1\r\n\r\n');
  raw[5] = 0xff;
  const r = parseRequest(raw);
  assert.equal(r, { status: 400, message: 'Cannot parse URI as UTF-8.' });
  assert.is(err('FOO / HTTP/9.9\r\n\r\n'), '501 Unsupported HTTP method.', 'the method is checked first');
});

test('bad headers: no colon, bad Content-Length, Accept-Encoding without identity, bad UTF-8', () => {
  assert.is(err('GET / HTTP/1.1\r\nnocolon\r\n\r\n'), '400 Header is incorrectly formatted. Key: nocolon');
  assert.is(err('PUT / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n'), '400 Invalid value. Key:Content-Length; Value: 12x');
  assert.is(err('PUT / HTTP/1.1\r\ncontent-length: 4294967296\r\n\r\n'), '400 Invalid value. Key:content-length; Value: 4294967296');
  assert.is(ok('PUT / HTTP/1.1\r\nContent-Length: +3\r\n\r\n').contentLength, 3, "Rust's u32 parser takes a '+'");
  assert.is(err('GET / HTTP/1.1\r\nAccept-Encoding: gzip, identity;q=0\r\n\r\n'), '400 Invalid value. Key:Accept-Encoding; Value: identity;q=0');
  assert.is(err('GET / HTTP/1.1\r\nAccept-Encoding: *;q=0\r\n\r\n'), '400 Invalid value. Key:Accept-Encoding; Value:*;q=0');
  assert.is(err('GET / HTTP/1.1\r\nAccept-Encoding: identity, *;q=0\r\n\r\n'), 'accepted');
  assert.is(err('GET / HTTP/1.1\r\nAccept-Encoding:\r\n\r\n'), '400 Invalid request.');
  const raw = enc('GET / HTTP/1.1\r\nX-a: b\r\n\r\n');
  raw[20] = 0xc3;
  assert.equal(parseRequest(raw), { status: 400, message: 'Invalid request.' });
  assert.is(err('GET / HTTP/1.1\r\nX: a:b:c\r\n\r\n'), 'accepted', 'only the first colon splits');
  assert.equal(ok('GET / HTTP/1.1\r\nX: a:b\r\n\r\n').custom, [['X', 'a:b']]);
});

test('PATCH and DELETE parse (the MMDS answers them 405); anything else is 501 at parse time', () => {
  assert.is(ok('PATCH / HTTP/1.1\r\n\r\n').method, 'PATCH');
  assert.is(ok('DELETE / HTTP/1.1\r\n\r\n').method, 'DELETE');
  for (const m of ['HEAD', 'OPTIONS', 'POST', 'CONNECT', 'TRACE']) assert.is(err(`${m} / HTTP/1.1\r\n\r\n`), '501 Unsupported HTTP method.', m);
});

test('framing: the end is the first blank line, LF or CRLF, as the endpoint finds it', () => {
  assert.is(findRequestEnd(enc('GET / HTTP/1.1\r\n\r\nGET'), 21), 18);
  assert.is(findRequestEnd(enc('GET / HTTP/1.1\n\n'), 16), 16);
  assert.is(findRequestEnd(enc('GET / HTTP/1.1\r\n'), 16), -1);
  assert.is(findRequestEnd(enc('GET / HTTP/1.1\r\n\r'), 17), -1);
  assert.is(findRequestEnd(enc('\n\n'), 2), 2);
});

test('takeRequest: incomplete, complete, pipelined, bodies, and requests that cannot fit', () => {
  const buf = new Uint8Array(2500);
  const put = (s: string): number => {
    buf.set(enc(s));
    return s.length;
  };
  assert.is(takeRequest(buf, put('GET / HTTP/1.1\r\nHost: x'), 2500).kind, 'incomplete');
  const two = put('GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n');
  const first = takeRequest(buf, two, 2500);
  assert.ok(first.kind === 'request' && first.consumed === 19 && first.request.uri === '/a');
  const body = put('PUT /latest/api/token HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc');
  assert.is(takeRequest(buf, body, 2500).kind, 'incomplete', 'the body is waited for');
  const full = put('PUT /latest/api/token HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcdeGET');
  const r = takeRequest(buf, full, 2500);
  assert.ok(r.kind === 'request' && r.consumed === full - 3, 'the body goes with its request');
  const getBody = put('GET / HTTP/1.1\r\nContent-Length: 2\r\n\r\nxy');
  const g = takeRequest(buf, getBody, 2500);
  assert.ok(g.kind === 'error' && g.consumed === getBody && g.error.message === 'Invalid request.', 'micro_http refuses a GET body');
  assert.is(takeRequest(buf, put('PUT / HTTP/1.1\r\nContent-Length: 2500\r\n\r\n'), 2500).kind, 'too-large');
  buf.fill(0x41);
  assert.is(takeRequest(buf, 2500, 2500).kind, 'too-large', 'a full buffer without a blank line');
  assert.is(takeRequest(buf, 2499, 2500).kind, 'incomplete');
  const bad = put('BREW /pot HTTP/1.1\r\n\r\n');
  const b = takeRequest(buf, bad, 2500);
  assert.ok(b.kind === 'error' && b.error.status === 501 && b.consumed === bad);
});

test('responses: micro_http layout, no reason phrase, Allow and extra headers, UTF-8 length', () => {
  const text = (b: Uint8Array): string => new TextDecoder().decode(b);
  assert.is(
    text(encodeResponse({ version: 'HTTP/1.0', status: 200, contentType: 'text/plain', body: 'ami-id\nhostname' })),
    'HTTP/1.0 200 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n\r\nami-id\nhostname',
  );
  assert.is(
    text(encodeResponse({ version: 'HTTP/1.1', status: 405, contentType: 'text/plain', body: 'Not allowed HTTP method.', allowGetPut: true })),
    'HTTP/1.1 405 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nAllow: GET, PUT\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\nNot allowed HTTP method.',
  );
  const withHeader = text(encodeResponse({ version: 'HTTP/1.1', status: 200, contentType: 'text/plain', body: 'tok', headers: [['X-metadata-token-ttl-seconds', '60']] }));
  assert.match(withHeader, /keep-alive\r\nX-metadata-token-ttl-seconds: 60\r\nContent-Type/);
  assert.match(text(encodeResponse({ version: 'HTTP/1.1', status: 200, contentType: 'application/json', body: '"é"' })), /Content-Length: 4\r\n/);
});

test.run();
