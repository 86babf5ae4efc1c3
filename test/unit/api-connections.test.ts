/**
 * Connection-level resource bounds of the API server (issue 12): refused connections give their
 * fd back, and a client that pipelines requests without reading replies cannot grow the
 * server's memory without bound.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { Socket, connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { MAX_QUEUED_REQUESTS, MAX_UNSENT_BYTES } from '../../src/api/connection.js';
import { MAX_CONNECTIONS } from '../../src/api/server.js';
import { SERVER_FULL_RESPONSE } from '../../src/api/http-response.js';
import { ApiHarness, RawClient, openFdCount, splitResponses, startApi } from '../helpers/api-harness.js';
import type { ChildMessage } from '../helpers/api-child.js';

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

/** The API in a child process (test/helpers/api-child.ts), so its RSS is its own. */
class ChildApi {
  readonly proc: ChildProcess;
  private readonly listeners = new Set<(m: ChildMessage) => void>();

  constructor() {
    this.proc = fork(fileURLToPath(new URL('../helpers/api-child.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (m: ChildMessage) => {
      for (const l of [...this.listeners]) l(m);
    });
  }

  /** Resolves with the first message of `kind` (optionally matching `pred`). */
  next<K extends ChildMessage['kind']>(kind: K, pred: (m: Extract<ChildMessage, { kind: K }>) => boolean = () => true): Promise<Extract<ChildMessage, { kind: K }>> {
    return new Promise((resolve) => {
      const l = (m: ChildMessage): void => {
        if (m.kind === kind && pred(m as Extract<ChildMessage, { kind: K }>)) {
          this.listeners.delete(l);
          resolve(m as Extract<ChildMessage, { kind: K }>);
        }
      };
      this.listeners.add(l);
    });
  }

  async rss(): Promise<number> {
    const r = this.next('rss');
    this.proc.send({ kind: 'rss' });
    return (await r).rss;
  }

  async close(): Promise<void> {
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.send({ kind: 'close' });
    await exited;
  }
}

const MiB = 1024 * 1024;
const GET_VM_CONFIG = 'GET /vm/config HTTP/1.1\r\n\r\n';
/**
 * Allowed RSS growth of the server while one client pipelines GETs and never reads. What the
 * server may hold by design is small (64 KiB of unsent replies, at most 120 queued requests and
 * one held 64 KiB input chunk: well under 1 MiB); the rest of the margin is V8's own
 * fluctuation (the young generation alone may grow by 16–32 MiB between scavenges). Without
 * backpressure the same client drives the server to hundreds of MiB (each 28-byte request
 * buys a 483-byte reply).
 */
const FLOOD_RSS_BOUND = 48 * MiB;
/**
 * Requests the flooding client offers at most: 400 k × 28 B = 11 MiB of requests, ~185 MiB of
 * replies, well past the bound if the server reads them all (it then grows by several hundred
 * MiB), while a bounded server stops reading after about ten thousand.
 */
const FLOOD_REQUESTS = 400_000;

test('a client that pipelines GET /vm/config and never reads cannot grow the server past the bound', async () => {
  const child = new ChildApi();
  try {
    const { socketPath } = await child.next('ready');
    // Warm up (JIT, pools) with the same request, read back, before the baseline.
    const warm = new RawClient(socketPath);
    for (let i = 0; i < 20; i++) {
      await warm.write(GET_VM_CONFIG.repeat(100));
      await warm.waitResponses(100);
      assert.is(warm.take().length, 100);
    }
    warm.destroy();
    const base = await child.rss();

    // The flood: write until the server stops reading us for good (its unsent replies passed the
    // bound: we never read, so they never drain), or until the whole flood went out.
    const outputPaused = child.next('paused', (m) => m.reason === 'output');
    let stalled = false;
    void outputPaused.then(() => (stalled = true));
    const flood = connect(socketPath);
    flood.on('error', () => undefined);
    const batch = GET_VM_CONFIG.repeat(1000);
    let offered = 0;
    while (!stalled && offered < FLOOD_REQUESTS) {
      offered += 1000;
      if (!flood.write(batch)) await Promise.race([once(flood, 'drain'), outputPaused]);
    }
    // Every request the server accepted is answered (into its bounded buffer) before this
    // second connection's GET is, so the RSS below is taken with the server at rest.
    const probe = new RawClient(socketPath);
    await probe.write(GET_VERSION);
    assert.is((await probe.waitResponses(1))[0]?.status, 200);
    const rss = await child.rss();
    console.log(`  api-connections: flood offered ${offered} requests (${stalled ? 'server stopped reading' : 'all sent'}); server RSS ${(base / MiB).toFixed(1)} → ${(rss / MiB).toFixed(1)} MiB (bound +${FLOOD_RSS_BOUND / MiB} MiB)`);
    assert.ok(rss - base < FLOOD_RSS_BOUND, `server RSS grew by ${((rss - base) / MiB).toFixed(1)} MiB`);
    assert.ok(stalled, 'the server never stopped reading the client that does not read');
    // When it stopped, it held about the bound: the last reply written may overshoot it.
    const at = await outputPaused;
    assert.ok(at.unsentBytes <= MAX_UNSENT_BYTES + 1024, `${at.unsentBytes} unsent bytes`);
    assert.ok(at.queuedRequests <= MAX_QUEUED_REQUESTS + 56, `${at.queuedRequests} queued requests`);
    probe.destroy();
    flood.destroy();
  } finally {
    await child.close();
  }
});

test.run();
