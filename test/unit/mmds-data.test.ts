/**
 * What the guest reads (src/mmds/data-tree.ts, responder.ts; Firecracker mmds/mod.rs
 * `convert_to_response`, data_store.rs `get_value`/`format_imds`): JSON pointers, the IMDS
 * format of every JSON type, V1 and V2 token rules, PUT /latest/api/token, and the texts of
 * every error answer.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MmdsError } from '../../src/errors.js';
import { MmdsData } from '../../src/mmds/data-tree.js';
import { parseRequest, type HttpRequest, type HttpResponse } from '../../src/mmds/http.js';
import { MmdsMetrics } from '../../src/mmds/metrics.js';
import { MMDS_TEXTS, MmdsResponder, absPath, sanitizeUri } from '../../src/mmds/responder.js';
import { TOKEN_KEY_LEN, TokenAuthority } from '../../src/mmds/token.js';
import { fakeClock } from '../helpers/mmds-guest.js';

/** serde_json's text of the store, as src/config/mmds-data.ts would hand it over (sorted keys, `1.0` floats). */
const DOC =
  '{"arr":[1,"two",{"k":"v"}],"bool":true,"empty":{},"float":1.0,"latest":{"meta-data":{"ami-id":"ami-1234","hostname":"vm.local","net":{"mac":"aa"}}},"n":null,"num":42,"s":"plain \\"quoted\\" é","sl~a/sh":"escaped"}';

test('JSON pointer lookup: objects, arrays by index, escapes, trailing slash, the whole document', () => {
  const d = new MmdsData(DOC);
  const at = (p: string): string | undefined => {
    const n = d.lookup(p);
    return n && d.json(n);
  };
  assert.is(at('/latest/meta-data/ami-id'), '"ami-1234"');
  assert.is(at('/latest/meta-data/'), '{"ami-id":"ami-1234","hostname":"vm.local","net":{"mac":"aa"}}', 'a trailing / is dropped');
  assert.is(at('/arr/1'), '"two"');
  assert.is(at('/arr/2/k'), '"v"');
  for (const missing of ['/arr/01', '/arr/+1', '/arr/3', '/arr/-1', '/s/x', '/nope', '/latest//meta-data']) assert.is(at(missing), undefined, missing);
  assert.is(at('/latest/meta-data/ami-id/'), '"ami-1234"', 'one trailing slash, on a leaf too');
  assert.is(at('/sl~0a~1sh'), '"escaped"', '~0 and ~1 unescape');
  assert.is(at('/'), DOC, '"/" is the whole document');
  assert.is(at(''), DOC);
  assert.is(at('/float'), '1.0', 'numbers are printed as the store printed them');
  assert.is(d.pointer('no-slash'), undefined);
});

test('IMDS format of every JSON type: object keys (sub-objects with /), nested, string raw, the rest none', () => {
  const d = new MmdsData(DOC);
  const imds = (p: string): string | null => d.imds(d.lookup(p)!);
  assert.is(imds('/'), 'arr\nbool\nempty/\nfloat\nlatest/\nn\nnum\ns\nsl~a/sh', 'keys in store order; objects (even empty) get /');
  assert.is(imds('/latest/meta-data'), 'ami-id\nhostname\nnet/');
  assert.is(imds('/empty'), '', 'an empty object lists nothing');
  assert.is(imds('/s'), 'plain "quoted" é', 'a string is its raw value');
  for (const p of ['/arr', '/bool', '/num', '/float', '/n']) assert.is(imds(p), null, p);
  assert.is(new MmdsData('null').imds(new MmdsData('null').root), null);
});

test('data text: whitespace tolerated, anything not one JSON value is an MmdsError', () => {
  const d = new MmdsData(' { "a" : [ 1 , 2 ] } ');
  assert.is(d.json(d.lookup('/a')!), '[ 1 , 2 ]');
  for (const bad of ['', '{', '{"a":}', '[1,]', '{"a" 1}', 'tru', '01', '"\\x"', '{} {}', '{"a":1,}', '"a\u0001"']) {
    assert.throws(() => new MmdsData(bad), (e: unknown) => e instanceof MmdsError && e.code === 'MMDS_DATA_INVALID', JSON.stringify(bad));
  }
  assert.throws(() => new MmdsData('['.repeat(600) + ']'.repeat(600)), (e: unknown) => e instanceof MmdsError);
  const big = JSON.stringify({ k: 'x'.repeat(1 << 20) });
  assert.is(new MmdsData(big).imds(new MmdsData(big).lookup('/k')!)!.length, 1 << 20, 'a 1 MiB string indexes');
});

test('URI helpers: absolute form, relative paths, // collapsed', () => {
  assert.is(absPath('http://169.254.169.254/latest'), '/latest');
  assert.is(absPath('http://169.254.169.254'), '');
  assert.is(absPath('latest'), '');
  assert.is(absPath('/a?b'), '/a?b', 'no query handling');
  assert.is(sanitizeUri('//latest///api//token'), '/latest/api/token');
});

/** A responder with a fake clock, and its metrics. */
function rig(version: 'V1' | 'V2' = 'V1') {
  const clock = fakeClock();
  const tokens = new TokenAuthority({ key: new Uint8Array(TOKEN_KEY_LEN).fill(1), instanceId: 'i-1', now: clock.now });
  const metrics = new MmdsMetrics();
  const r = new MmdsResponder(tokens, metrics);
  r.data = new MmdsData(DOC);
  r.version = version;
  const ask = (text: string): HttpResponse => {
    const req = parseRequest(new TextEncoder().encode(text));
    if ('status' in req) throw new Error(req.message);
    return r.respond(req as HttpRequest);
  };
  const token = (ttl = 60): string => ask(`PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: ${ttl}\r\n\r\n`).body;
  return { clock, tokens, metrics, r, ask, token };
}

test('V1 GET: no token needed; a missing or invalid token is only counted', () => {
  const { ask, metrics, token } = rig('V1');
  const res = ask('GET /latest/meta-data HTTP/1.1\r\n\r\n');
  assert.equal([res.status, res.contentType, res.body, res.version], [200, 'text/plain', 'ami-id\nhostname\nnet/', 'HTTP/1.1']);
  assert.is(metrics.count('rx_no_token'), 1);
  assert.is(ask('GET /s HTTP/1.0\r\nX-metadata-token: junk\r\n\r\n').status, 200);
  assert.is(metrics.count('rx_invalid_token'), 1);
  assert.is(ask(`GET /s HTTP/1.0\r\nX-aws-ec2-metadata-token: ${token()}\r\n\r\n`).version, 'HTTP/1.0');
  assert.equal([metrics.count('rx_no_token'), metrics.count('rx_invalid_token')], [1, 1], 'a valid token counts nothing');
});

test('V2 GET: 401 without or with a bad token (Firecracker texts), 200 with a valid one; tokens expire', () => {
  const { ask, metrics, token, clock } = rig('V2');
  const none = ask('GET /s HTTP/1.1\r\n\r\n');
  assert.equal([none.status, none.body, none.contentType], [401, MMDS_TEXTS.NoTokenProvided, 'text/plain']);
  assert.is(ask('GET /s HTTP/1.1\r\nX-metadata-token: nope\r\n\r\n').body, 'MMDS token not valid.');
  assert.equal([metrics.count('rx_no_token'), metrics.count('rx_invalid_token')], [1, 1]);
  const t = token(2);
  assert.is(ask(`GET /s HTTP/1.1\r\nx-METADATA-token: ${t}\r\n\r\n`).body, 'plain "quoted" é', 'header name in any case');
  assert.is(ask(`GET /s HTTP/1.1\r\nX-aws-ec2-metadata-token: ${t}\r\n\r\n`).status, 200);
  clock.advance(2000);
  assert.is(ask(`GET /s HTTP/1.1\r\nX-metadata-token: ${t}\r\n\r\n`).status, 401, 'expired');
});

test('output formats: Accept JSON gives JSON text, text/plain and default IMDS; imds_compat forces IMDS; other types 501', () => {
  const { ask, r } = rig();
  const json = ask('GET /latest/meta-data/net HTTP/1.1\r\nAccept: application/json\r\n\r\n');
  assert.equal([json.status, json.contentType, json.body], [200, 'application/json', '{"mac":"aa"}']);
  assert.is(ask('GET /num HTTP/1.1\r\nAccept: application/json\r\n\r\n').body, '42');
  assert.is(ask('GET /s HTTP/1.1\r\nAccept: application/json\r\n\r\n').body, '"plain \\"quoted\\" é"');
  assert.is(ask('GET /latest/ HTTP/1.1\r\nAccept: text/plain\r\n\r\n').body, 'meta-data/');
  const num = ask('GET /num HTTP/1.1\r\n\r\n');
  assert.equal([num.status, num.body, num.contentType], [501, 'Cannot retrieve value. The value has an unsupported type.', 'text/plain']);
  for (const p of ['/arr', '/bool', '/n', '/float']) assert.is(ask(`GET ${p} HTTP/1.1\r\n\r\n`).status, 501, p);
  r.imdsCompat = true;
  const compat = ask('GET /latest HTTP/1.1\r\nAccept: application/json\r\n\r\n');
  assert.equal([compat.status, compat.body, compat.contentType], [200, 'meta-data/', 'application/json'], 'IMDS body, content type still from Accept');
});

test('paths: 404 names the URI as sent; // collapsed; absolute URIs; empty path 400; empty store', () => {
  const { ask, r } = rig();
  const miss = ask('GET /latest//nope HTTP/1.1\r\n\r\n');
  assert.equal([miss.status, miss.body], [404, 'Resource not found: /latest//nope.']);
  assert.is(ask('GET //latest//meta-data//ami-id HTTP/1.1\r\n\r\n').body, 'ami-1234');
  assert.is(ask('GET http://169.254.169.254/latest/meta-data/ami-id HTTP/1.1\r\n\r\n').body, 'ami-1234');
  const noPath = ask('GET http://169.254.169.254 HTTP/1.1\r\n\r\n');
  assert.equal([noPath.status, noPath.body], [400, 'Invalid URI.']);
  assert.is(ask('GET * HTTP/1.1\r\n\r\n').body, 'Invalid URI.');
  r.data = new MmdsData('null');
  assert.is(ask('GET / HTTP/1.1\r\n\r\n').status, 501, 'an unset store is null: no IMDS form');
  assert.is(ask('GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n').body, 'null');
  assert.is(ask('GET /a HTTP/1.1\r\n\r\n').status, 404);
});

test('PUT /latest/api/token: TTL header echoed as sent; missing, malformed and out-of-range TTLs; X-Forwarded-For; other paths', () => {
  const { ask, tokens } = rig('V2');
  const ok = ask('PUT //latest//api/token HTTP/1.0\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n');
  assert.equal([ok.status, ok.version, ok.contentType, ok.headers], [200, 'HTTP/1.0', 'text/plain', [['X-aws-ec2-metadata-token-ttl-seconds', '21600']]]);
  assert.ok(tokens.isValid(ok.body));
  assert.is(ask('PUT /latest/api/token HTTP/1.1\r\n\r\n').body, MMDS_TEXTS.NoTtlProvided);
  const bad = ask('PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 1h\r\n\r\n');
  assert.equal([bad.status, bad.body], [400, 'Invalid header. Reason: Invalid value. Key:X-metadata-token-ttl-seconds; Value:1h']);
  for (const ttl of ['0', '21601', '4294967295']) {
    const r = ask(`PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: ${ttl}\r\n\r\n`);
    assert.equal([r.status, r.body], [400, `Invalid time to live value provided for token: ${ttl}. Please provide a value between 1 and 21600.`]);
  }
  const fwd = ask('PUT /latest/api/token HTTP/1.1\r\nx-forwarded-for: 10.0.0.1\r\nX-metadata-token-ttl-seconds: 60\r\n\r\n');
  assert.equal([fwd.status, fwd.body], [400, 'Invalid header. Reason: Unsupported header name. Key: x-forwarded-for']);
  const other = ask('PUT /latest/meta-data HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n\r\n');
  assert.equal([other.status, other.body], [404, 'Resource not found: /latest/meta-data.']);
});

test('PATCH and DELETE: 405 with Allow: GET, PUT; parse errors answer HTTP/1.1 with micro_http\'s default content type', () => {
  const { ask } = rig();
  for (const m of ['PATCH', 'DELETE']) {
    const r = ask(`${m} /latest HTTP/1.0\r\n\r\n`);
    assert.equal([r.status, r.body, r.allowGetPut, r.version], [405, 'Not allowed HTTP method.', true, 'HTTP/1.0'], m);
  }
  assert.equal(MmdsResponder.parseErrorResponse({ status: 501, message: 'Unsupported HTTP method.' }), {
    version: 'HTTP/1.1', status: 501, contentType: 'application/json', body: 'Unsupported HTTP method.',
  });
});

test('a repeated token header: the last one counts', () => {
  const { ask, token } = rig('V2');
  const t = token();
  assert.is(ask(`GET /s HTTP/1.1\r\nX-metadata-token: bad\r\nX-metadata-token: ${t}\r\n\r\n`).status, 200);
  assert.is(ask(`GET /s HTTP/1.1\r\nX-metadata-token: ${t}\r\nX-aws-ec2-metadata-token: bad\r\n\r\n`).status, 401);
});

test.run();
