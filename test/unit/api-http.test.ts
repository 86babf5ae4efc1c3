/**
 * micro_http compatibility over a real Unix socket (micro_http src/connection.rs, src/server.rs,
 * src/response.rs): exact response bytes, the 1024-byte line limits, the payload limit, the 11th
 * connection, pipelining, chunked bodies, malformed headers, Expect: 100-continue. Waits are on
 * reply bytes and 'close', never on timers.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ApiHarness, RawClient, rawExchange, reportSlowest, splitResponses, startApi } from '../helpers/api-harness.js';

/** Builds raw request bytes with a correct Content-Length. */
function req(method: string, path: string, body?: string, headers: string[] = []): string {
  const h = [...headers];
  if (body !== undefined) h.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${method} ${path} HTTP/1.1\r\n${h.map((x) => `${x}\r\n`).join('')}\r\n${body ?? ''}`;
}

const HEAD_200 = 'HTTP/1.1 200 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n';
const RESP_204 = 'HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n';

function parseError(msg: string): string {
  const body = `{ "error": "${msg}\nAll previous unanswered requests will be dropped." }`;
  return `HTTP/1.1 400 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

function fault(msg: string, status = 400, deprecation = false): string {
  const body = JSON.stringify({ fault_message: msg });
  return `HTTP/1.1 ${status} \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n${deprecation ? 'Deprecation: true\r\n' : ''}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

let h: ApiHarness;
test.before.each(async () => {
  h = await startApi();
});
test.after.each(async () => {
  await h.close();
});
test.after(() => reportSlowest('api-http'));

test('GET /version: exact 200 bytes (trailing space, no reason, keep-alive)', async () => {
  const got = (await rawExchange(h.socketPath, req('GET', '/version'))).toString();
  assert.is(got, `${HEAD_200}Content-Length: 32\r\n\r\n{"firecracker_version":"1.16.1"}`);
});

test('204 has neither Content-Type nor Content-Length', async () => {
  const got = (await rawExchange(h.socketPath, req('PUT', '/mmds', '{}'))).toString();
  assert.is(got, RESP_204);
});

test('HTTP/1.0 requests and absolute-form URIs are answered as HTTP/1.1', async () => {
  const got = (await rawExchange(h.socketPath, 'GET http://localhost/version HTTP/1.0\r\n\r\n')).toString();
  assert.ok(got.startsWith('HTTP/1.1 200 \r\n'));
  assert.ok(got.endsWith('{"firecracker_version":"1.16.1"}'));
});

test('a 51200-byte body is accepted, 51201 is refused with the micro_http text', async () => {
  const ok = `"${'a'.repeat(51198)}"`;
  assert.is(ok.length, 51200);
  assert.is((await rawExchange(h.socketPath, req('PUT', '/mmds', ok))).toString(), RESP_204);
  const big = `"${'a'.repeat(51199)}"`;
  const got = (await rawExchange(h.socketPath, req('PUT', '/mmds', big))).toString();
  assert.is(got, parseError('Request payload with size 51201 is larger than the limit of 51200 allowed by server.'));
});

test('payload limit from --http-api-max-payload-size: limit 250, CL 260 → Content-Length 145', async () => {
  const small = await startApi({ payloadMaxSize: 250 });
  try {
    const got = (await rawExchange(small.socketPath, req('PUT', '/mmds', `"${'b'.repeat(258)}"`))).toString();
    assert.ok(got.includes('Content-Length: 145\r\n'), got);
    assert.is(got, parseError('Request payload with size 260 is larger than the limit of 250 allowed by server.'));
    // The refused body is skipped: the connection stays usable.
    const two = await rawExchange(small.socketPath, [req('PUT', '/mmds', `"${'b'.repeat(258)}"`), req('GET', '/version')], { responses: 2 });
    assert.is(splitResponses(two)[1]!.status, 200);
  } finally {
    await small.close();
  }
});

test('an over-limit body in the same write as the next request: the next request is answered', async () => {
  // The refused body and the GET after it reach the server in one read; skipping the body must
  // not swallow the GET.
  const big = req('PUT', '/mmds', `"${'a'.repeat(51199)}"`);
  const got = splitResponses(await rawExchange(h.socketPath, big + req('GET', '/version'), { responses: 2 }));
  assert.equal(got.map((r) => r.status), [400, 200]);
  assert.is(got[1]!.body, '{"firecracker_version":"1.16.1"}');
  // Same with a small limit, where the whole refused body and the GET fit one 1024-byte read.
  const small = await startApi({ payloadMaxSize: 250 });
  try {
    const two = await rawExchange(small.socketPath, req('PUT', '/mmds', `"${'b'.repeat(258)}"`) + req('GET', '/version'), { responses: 2 });
    assert.equal(splitResponses(two).map((r) => r.status), [400, 200]);
  } finally {
    await small.close();
  }
});

test('request line: 1022 bytes + CRLF fits the 1024-byte buffer, 1023 does not', async () => {
  const pathFor = (lineLen: number): string => `/${'x'.repeat(lineLen - 'GET / HTTP/1.1'.length)}`;
  const fits = (await rawExchange(h.socketPath, `GET ${pathFor(1022)} HTTP/1.1\r\n\r\n`)).toString();
  assert.ok(fits.includes('Invalid request method and/or path: GET x'), fits.slice(0, 200));
  const over = (await rawExchange(h.socketPath, `GET ${pathFor(1023)} HTTP/1.1\r\n\r\n`)).toString();
  assert.is(over, parseError('Invalid request.'));
  const line1025 = (await rawExchange(h.socketPath, `GET ${pathFor(1025)} HTTP/1.1\r\n\r\n`)).toString();
  assert.is(line1025, parseError('Invalid request.'));
});

test('a header line longer than the buffer → Invalid content length with the buffer text', async () => {
  const got = (await rawExchange(h.socketPath, `GET / HTTP/1.1\r\nX-Long: ${'y'.repeat(2000)}\r\n\r\n`)).toString();
  const r = splitResponses(Buffer.from(got, 'latin1'))[0]!;
  assert.is(r.status, 400);
  assert.ok(r.body.startsWith('{ "error": "Invalid header. Reason: Invalid content length. Header: '), r.body.slice(0, 120));
  assert.ok(r.body.endsWith('\nAll previous unanswered requests will be dropped." }'));
});

test('the 11th simultaneous connection gets the raw 503 and is closed', async () => {
  // Each held connection completes a request, so the server has accepted all ten.
  const held: RawClient[] = [];
  for (let i = 0; i < 10; i++) {
    const c = new RawClient(h.socketPath);
    await c.write(req('GET', '/version'));
    assert.is((await c.waitResponses(1))[0]?.status, 200);
    held.push(c);
  }
  const got = (await rawExchange(h.socketPath, [], { timeoutMs: 1000 })).toString();
  assert.is(got, 'HTTP/1.1 503\r\nServer: Firecracker API\r\nConnection: close\r\nContent-Length: 40\r\n\r\n{ "error": "Too many open connections" }');
  // A connection whose peer closed stops counting before the server's FIN goes out, so once
  // our side sees 'close' the slot is free.
  for (const c of held) c.socket.end();
  await Promise.all(held.map((c) => c.waitClose()));
  assert.is((await rawExchange(h.socketPath, req('GET', '/version'))).toString().split(' ')[1], '200');
});

test('two pipelined requests in one write are answered in order', async () => {
  const got = await rawExchange(h.socketPath, req('GET', '/version') + req('GET', '/'), { responses: 2 });
  const rs = splitResponses(got);
  assert.is(rs.length, 2);
  assert.is(rs[0]!.body, '{"firecracker_version":"1.16.1"}');
  assert.ok(rs[1]!.body.startsWith('{"id":"anonymous-instance"'));
});

test('keep-alive: several requests on one connection, sequentially', async () => {
  const got = await rawExchange(h.socketPath, [req('GET', '/version'), req('PUT', '/mmds', '{"a":1}'), req('GET', '/mmds')], { responses: 3 });
  const rs = splitResponses(got);
  assert.equal(rs.map((r) => r.status), [200, 204, 200]);
  assert.is(rs[2]!.body, '{"a":1}');
});

test('chunked bodies are not decoded: the chunk text is a malformed request', async () => {
  const got = (await rawExchange(h.socketPath, 'PUT /mmds HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n')).toString();
  assert.is(got, parseError('Invalid request.'));
  // Headers and chunks in separate reads: the bodiless PUT is answered first.
  const split = await rawExchange(h.socketPath, ['PUT /mmds HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n', '5\r\nhello\r\n0\r\n\r\n'], { responses: 2 });
  const rs = splitResponses(split);
  assert.is(rs[0]!.raw, fault('Empty PUT request.'));
  assert.is(rs[1]!.raw, parseError('Invalid request.'));
});

test('a header line without a colon → Header is incorrectly formatted', async () => {
  const got = (await rawExchange(h.socketPath, 'GET / HTTP/1.1\r\nNoColonHere\r\n\r\n')).toString();
  assert.is(got, parseError('Invalid header. Reason: Header is incorrectly formatted. Key: NoColonHere'));
});

test('bad Content-Length, method, version and empty URI texts', async () => {
  assert.is((await rawExchange(h.socketPath, 'PUT /mmds HTTP/1.1\r\nContent-Length: 12x\r\n\r\n')).toString(), parseError('Invalid header. Reason: Invalid value. Key:Content-Length; Value: 12x'));
  assert.is((await rawExchange(h.socketPath, 'POST / HTTP/1.1\r\n\r\n')).toString(), parseError('Invalid HTTP Method: Unsupported HTTP method.'));
  assert.is((await rawExchange(h.socketPath, 'GET / HTTP/2.0\r\n\r\n')).toString(), parseError('Invalid HTTP Version: Unsupported HTTP version.'));
  assert.is((await rawExchange(h.socketPath, 'GET  HTTP/1.1\r\n\r\n')).toString(), parseError('Invalid URI: Empty URI not allowed.'));
  assert.is((await rawExchange(h.socketPath, 'GET /\r\n\r\n')).toString(), parseError('Invalid request.'));
});

test('Accept-Encoding identity;q=0 is refused', async () => {
  const got = (await rawExchange(h.socketPath, 'GET / HTTP/1.1\r\nAccept-Encoding: identity;q=0\r\n\r\n')).toString();
  assert.is(got, parseError('Invalid header. Reason: Invalid value. Key:Accept-Encoding; Value:identity;q=0'));
});

test('Expect: 100-continue queues an interim 100 in the request version', async () => {
  const got = await rawExchange(h.socketPath, req('PUT', '/mmds', '{"k":"v"}', ['Expect: 100-continue']).replace('HTTP/1.1', 'HTTP/1.0'), { responses: 2 });
  const rs = splitResponses(got);
  assert.is(rs[0]!.raw, 'HTTP/1.0 100 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n');
  assert.is(rs[1]!.raw, RESP_204);
});

test('GET with a body, PUT/PATCH without one, DELETE with one', async () => {
  assert.is((await rawExchange(h.socketPath, req('GET', '/version', '{}'))).toString(), fault('GET request cannot have a body.'));
  assert.is((await rawExchange(h.socketPath, req('PUT', '/machine-config'))).toString(), fault('Empty PUT request.'));
  assert.is((await rawExchange(h.socketPath, req('PUT', '/machine-config', ''))).toString(), fault('Empty PUT request.'));
  assert.is((await rawExchange(h.socketPath, req('PATCH', '/machine-config'))).toString(), fault('Empty PATCH request.'));
  assert.is((await rawExchange(h.socketPath, req('DELETE', '/drives/x', '{}'))).toString(), fault('Empty Delete request.'));
});

test('deprecated input adds Deprecation: true, also on the error that follows', async () => {
  const sock = `${h.dir}/v.sock`;
  const ok = (await rawExchange(h.socketPath, req('PUT', '/vsock', JSON.stringify({ vsock_id: 'v', guest_cid: 3, uds_path: sock })))).toString();
  assert.is(ok, 'HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nDeprecation: true\r\n\r\n');
  assert.is(h.metrics.deprecated_api.deprecated_http_api_calls.count(), 1);
  const bad = (await rawExchange(h.socketPath, req('PUT', '/machine-config', '{"vcpu_count":0,"mem_size_mib":128,"cpu_template":"T2"}'))).toString();
  assert.is(bad, fault('Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.', 400, true));
});

test('responses of one connection stay in order while another connection is served', async () => {
  const [a, b] = await Promise.all([
    rawExchange(h.socketPath, req('GET', '/version') + req('PUT', '/mmds', '{"x":1}') + req('GET', '/mmds'), { responses: 3 }),
    rawExchange(h.socketPath, req('GET', '/') + req('GET', '/machine-config'), { responses: 2 }),
  ]);
  assert.equal(splitResponses(a).map((r) => r.status), [200, 204, 200]);
  assert.equal(splitResponses(b).map((r) => r.status), [200, 200]);
});

test.run();
