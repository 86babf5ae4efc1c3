/**
 * Connection-level resource bounds of the API server (issue 12): refused connections give their
 * fd back, and a client that pipelines requests without reading replies cannot grow the
 * server's memory without bound.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Socket, connect } from 'node:net';
import { MAX_CONNECTIONS } from '../../src/api/server.js';
import { SERVER_FULL_RESPONSE } from '../../src/api/http-response.js';
import { ApiHarness, splitResponses, startApi } from '../helpers/api-harness.js';
import { openFdCount } from '../helpers/api-socket.js';

const GET_VERSION = 'GET /version HTTP/1.1\r\n\r\n';

/** Opens a connection and completes one request on it, so the server has surely accepted it. */
async function heldConnection(path: string): Promise<Socket> {
  const s = connect(path);
  const got: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.on('data', (d: Buffer) => {
      got.push(d);
      if (splitResponses(Buffer.concat(got)).length === 1) resolve();
    });
    s.write(GET_VERSION);
  });
  s.removeAllListeners('data');
  return s;
}

/**
 * A refused client: sends a request and closes its side; resolves with what it received and
 * its error code by 'close'. The server writes the 503 and closes at accept time, as micro_http
 * does, so a client whose request goes out after that gets EPIPE (and Node drops what it had
 * not read yet); one whose request arrived unread may see ECONNRESET after the 503.
 */
function refusedClient(path: string): Promise<{ got: Buffer; code: string | undefined }> {
  return new Promise((resolve) => {
    const s = connect(path);
    const got: Buffer[] = [];
    let code: string | undefined;
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', (e: NodeJS.ErrnoException) => (code = e.code));
    s.on('close', () => resolve({ got: Buffer.concat(got), code }));
    s.end(GET_VERSION);
  });
}

let h: ApiHarness;
test.before.each(async () => {
  h = await startApi();
});
test.after.each(async () => {
  await h.close();
});

test('1,000 refused connections (the 11th and later) leave no fd behind', async () => {
  const held: Socket[] = [];
  for (let i = 0; i < MAX_CONNECTIONS; i++) held.push(await heldConnection(h.socketPath));
  try {
    const before = openFdCount();
    let full = 0;
    let epipe = 0;
    for (let batch = 0; batch < 20; batch++) {
      for (const r of await Promise.all(Array.from({ length: 50 }, () => refusedClient(h.socketPath)))) {
        if (r.got.equals(SERVER_FULL_RESPONSE)) full++;
        else if (r.got.length === 0 && r.code === 'EPIPE') epipe++;
        else assert.unreachable(`refused client got ${JSON.stringify(r.got.toString())} (${r.code})`);
      }
    }
    const after = openFdCount();
    console.log(`  api-connections: 1000 refused connections: ${full} got the 503, ${epipe} wrote after the close (EPIPE); fds ${before} → ${after}`);
    assert.is(full + epipe, 1000);
    assert.ok(full > 0);
    // Exact: the refused sockets are closed in the accept handler, our clients by their 'close'.
    assert.is(after, before);
  } finally {
    for (const s of held) s.destroy();
  }
});

test.run();
