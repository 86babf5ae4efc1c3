/**
 * Test harness for the API tier: a real `ApiServer` + `VmmController` + `VmResources` on a real
 * Unix socket in a temp dir, a `FakeBackend` as the VM, a private logger/metrics pair, the typed
 * client, and raw-socket helpers that return the exact bytes the server sent.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FirecrackerClient } from '../../src/api/client.js';
import { VmmController } from '../../src/vmm/controller.js';
import { ApiServer, ApiServerOptions } from '../../src/api/server.js';
import { VmResources } from '../../src/config/resources.js';
import { Logger } from '../../src/logger/logger.js';
import { Metrics, createMetrics } from '../../src/metrics/metrics.js';
import { FakeBackend } from './api-fake-backend.js';

/** A running API under test. */
export interface ApiHarness {
  dir: string;
  socketPath: string;
  server: ApiServer;
  controller: VmmController;
  backend: FakeBackend;
  logger: Logger;
  logs: string[];
  metrics: Metrics;
  client: FirecrackerClient;
  /** A readable file usable as kernel / drive backing file. */
  kernel: string;
  /** Creates a file in the harness dir and returns its path. */
  file(name: string, content?: string | Buffer): string;
  close(): Promise<void>;
}

const allDurations: { name: string; us: number }[] = [];

/** Starts a fresh API. */
export async function startApi(opts: { payloadMaxSize?: number; instanceId?: string; backend?: FakeBackend; onConnectionPaused?: ApiServerOptions['onConnectionPaused'] } = {}): Promise<ApiHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-api-'));
  const socketPath = join(dir, 'api.sock');
  const backend = opts.backend ?? new FakeBackend();
  const logger = new Logger();
  const logs: string[] = [];
  logger.sink = (l) => logs.push(l);
  logger.level = 'Debug';
  const metrics = createMetrics();
  logger.metrics = metrics;
  const resources = new VmResources({ openTap: backend.openTap.bind(backend) });
  const controller = new VmmController({ instanceId: opts.instanceId ?? 'anonymous-instance', factory: backend, resources, logger, metrics });
  const server = new ApiServer({ socketPath, controller, payloadMaxSize: opts.payloadMaxSize, onConnectionPaused: opts.onConnectionPaused });
  await server.listen();
  const client = new FirecrackerClient(socketPath);
  const file = (name: string, content: string | Buffer = 'x'.repeat(4096)): string => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };
  const kernel = file('vmlinux');
  return {
    dir, socketPath, server, controller, backend, logger, logs, metrics, client, kernel, file,
    async close() {
      await client.close();
      await server.close();
      controller.close();
      metrics.close();
      logger.close();
      for (const us of server.durationsUs) allDurations.push({ name: dir, us });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Prints the slowest API calls seen so far (a report, not an assertion). */
export function reportSlowest(label: string, n = 3): void {
  const sorted = [...allDurations].sort((a, b) => b.us - a.us).slice(0, n);
  if (sorted.length) console.log(`  ${label}: ${allDurations.length} API calls, slowest ${sorted.map((d) => `${(d.us / 1000).toFixed(2)} ms`).join(', ')}`);
}

/** One HTTP response split out of raw bytes. */
export interface RawResponse {
  raw: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits concatenated responses (bodies by Content-Length; none without it). */
export function splitResponses(buf: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let off = 0;
  while (off < buf.length) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end === -1) break;
    const head = buf.subarray(off, end).toString('latin1');
    const [statusLine, ...lines] = head.split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] ?? 0);
    if (end + 4 + len > buf.length) break;
    const body = buf.subarray(end + 4, end + 4 + len).toString('utf8');
    out.push({ raw: buf.subarray(off, end + 4 + len).toString('latin1'), status: Number(statusLine!.split(' ')[1]), headers, body });
    off = end + 4 + len;
  }
  return out;
}

/**
 * Writes `chunks` on a fresh connection, each in its own write, and resolves with everything
 * received once `responses` complete responses arrived, the peer closed, or `timeoutMs` passed
 * (a safety net, not a synchronisation). With several chunks, chunk k+1 is written only once k+1
 * responses arrived, so each chunk but the last must draw exactly one response: the server has
 * then surely read each chunk on its own, with no sleeps between writes.
 */
export function rawExchange(socketPath: string, chunks: (string | Buffer)[] | string | Buffer, opts: { responses?: number; timeoutMs?: number } = {}): Promise<Buffer> {
  const list = Array.isArray(chunks) ? chunks : [chunks];
  const want = opts.responses ?? 1;
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    const got: Buffer[] = [];
    let done = false;
    let sent = 0;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(got));
    };
    const timer = setTimeout(finish, opts.timeoutMs ?? 2000);
    const sendNext = (answered: number): void => {
      while (sent < list.length && sent <= answered) s.write(list[sent++]!);
    };
    s.on('data', (d) => {
      got.push(d);
      const answered = splitResponses(Buffer.concat(got)).length;
      if (answered >= want) finish();
      else sendNext(answered);
    });
    s.on('close', finish);
    s.on('error', (e) => (done ? undefined : reject(e)));
    s.on('connect', () => sendNext(0));
  });
}

/** Writes a file into a fresh temp dir (tests outside a harness). */
export function tempFile(name: string, content: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cfg-'));
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

/** Entries of /proc/self/fd: every fd this process holds (sockets of both ends included). */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** How long a wait may see no byte at all before it fails (a hang guard, see `next`). */
const HANG_GUARD_MS = 10_000;

/**
 * A client connection that collects every byte it receives, so a test can wait for the n-th
 * complete response (or for 'close') instead of sleeping.
 */
export class RawClient {
  readonly socket: Socket;
  private received: Buffer[] = [];
  private waiters: (() => void)[] = [];
  closed = false;
  error: string | undefined;

  constructor(path: string) {
    this.socket = connect(path);
    this.socket.on('data', (d: Buffer) => {
      this.received.push(d);
      this.wake();
    });
    this.socket.on('error', (e: NodeJS.ErrnoException) => (this.error = e.code ?? e.message));
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Everything received so far. */
  get bytes(): Buffer {
    if (this.received.length > 1) this.received = [Buffer.concat(this.received)];
    return this.received[0] ?? Buffer.alloc(0);
  }

  /** The complete responses received so far. */
  responses(): RawResponse[] {
    return splitResponses(this.bytes);
  }

  /** Resolves once `n` complete responses are held (see `take`), or the connection closed. */
  async waitResponses(n: number): Promise<RawResponse[]> {
    for (;;) {
      const rs = this.responses();
      if (rs.length >= n || this.closed) return rs;
      await this.next(`${n} responses (have ${rs.length})`);
    }
  }

  /** Resolves once the connection closed. */
  async waitClose(): Promise<void> {
    while (!this.closed) await this.next('close');
  }

  /**
   * Waits for the next byte or 'close'. Not a synchronisation delay: the guard only turns a
   * server that never answers into a failure naming what was awaited, instead of a test that
   * hangs until the tier's deadline kills every result.
   */
  private next(what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error(`no progress in ${HANG_GUARD_MS / 1000} s waiting for ${what}; received ${JSON.stringify(this.bytes.toString('latin1').slice(-300))}`)), HANG_GUARD_MS);
      this.waiters.push(() => {
        clearTimeout(guard);
        resolve();
      });
    });
  }

  /** Writes and resolves when the bytes are handed to the kernel. */
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => this.socket.write(data, () => resolve()));
  }

  /** Removes and returns the complete responses held (keeps memory flat on long runs). */
  take(): RawResponse[] {
    const rs = this.responses();
    const used = rs.reduce((n, r) => n + r.raw.length, 0);
    this.received = [this.bytes.subarray(used)];
    return rs;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
