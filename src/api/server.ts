/**
 * The API server: micro_http over a Unix socket with node:net (micro_http src/request.rs — node:http's parser
 * accepts and rejects different things), feeding one `VmmController`.
 *
 * - At most 10 connections; the 11th gets the raw 503 and is closed.
 * - Requests from all connections are processed one at a time, end to end, in arrival order
 *   (Firecracker's API thread blocks on the VMM thread per request); each
 *   connection's responses go out in request order, keep-alive always.
 * - Per request, as `ApiServer::handle_request` logs it: "The API server received a ...",
 *   the outcome, a deprecation warning, then "Total previous API call duration: N us." —
 *   written before the response bytes are.
 */
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { Server, Socket, createServer } from 'node:net';
import { ApiLayerError } from '../errors.js';
import { rustDebugStr } from '../config/serde.js';
import { VmmActionError, methodDebug } from '../vmm/actions.js';
import type { VmmController } from '../vmm/controller.js';
import { ApiConnection, PauseState, ResponseSlot } from './connection.js';
import { DEFAULT_MAX_PAYLOAD_SIZE, HttpRequest } from './http-parser.js';
import { SERVER_FULL_RESPONSE, StatusCode, formatResponse } from './http-response.js';
import { dataToResponse, serializeFault } from './replies.js';
import { ApiRequestError, parseRequest } from './router.js';

/** micro_http MAX_CONNECTIONS. */
export const MAX_CONNECTIONS = 10;

const API = { thread: 'fc_api', module: 'firecracker::api_server' } as const;

/** Server options. */
export interface ApiServerOptions {
  socketPath: string;
  controller: VmmController;
  /** --http-api-max-payload-size (default 51200). */
  payloadMaxSize?: number;
  /**
   * Requests wait until this resolves (the VM of `--config-file` is running); they are read and
   * queued meanwhile, as Firecracker's API thread queues them for the VMM thread.
   */
  ready?: Promise<void>;
  /** Called after a fatal failure (snapshot load) once its response is written; should exit(1). */
  onFatal?: (err: VmmActionError) => void;
  /** Called when a request was read and queued, before it is processed (tests). */
  onQueued?: () => void;
  /** Called when a connection stops being read because its replies backed up (tests). */
  onConnectionPaused?: (state: PauseState) => void;
}

/** `Method request on "path" [with body "..."]` (parsed_request.rs `describe`). */
export function describeRequest(req: HttpRequest, debugEnabled: boolean): string {
  const head = `${methodDebug(req.method)} request on ${rustDebugStr(req.path)}`;
  if (req.body === null || req.path === '/mmds') return head;
  if (req.path === '/cpu-config' && !debugEnabled) return `${head}. To view the CPU template received by the API, configure log-level to DEBUG`;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(req.body);
  } catch {
    text = 'inconvertible to UTF-8';
  }
  return `${head} with body ${rustDebugStr(text)}`;
}

const LATENCY_ACTIONS: Record<string, [string, 'pause_vm' | 'resume_vm' | 'load_snapshot' | 'full_create_snapshot' | 'diff_create_snapshot']> = {
  Pause: ['pause vm', 'pause_vm'],
  Resume: ['resume vm', 'resume_vm'],
  LoadSnapshot: ['load snapshot', 'load_snapshot'],
};

/** The HTTP API server. */
export class ApiServer {
  private server: Server | null = null;
  /** The socket path when it was renamed into place (listen), and its inode. */
  private placed: { path: string; ino: number } | null = null;
  private readonly conns = new Set<ApiConnection>();
  private work: Promise<void>;
  /** Set by close(): queued requests are dropped, not processed. */
  private closed = false;
  private releaseGate: () => void = () => undefined;
  /** Duration of each processed request in µs (tests print the slowest). */
  readonly durationsUs: number[] = [];
  private readonly payloadMax: number;

  constructor(private readonly opts: ApiServerOptions) {
    this.payloadMax = opts.payloadMaxSize ?? DEFAULT_MAX_PAYLOAD_SIZE;
    // close() releases the gate too, so it never waits on a VM that will not come.
    const released = new Promise<void>((r) => { this.releaseGate = r; });
    this.work = opts.ready ? Promise.race([opts.ready, released]) : Promise.resolve();
  }

  /**
   * Binds the socket (never unlinking an existing file) and starts serving. The socket file
   * appears only once connections are accepted: Node binds, then listens, and a client that
   * connects as soon as the file exists (what Firecracker's clients do) was refused in between
   * (seen in CI, nested). So the server listens on a private name beside the path first and
   * renames it into place, refusing an existing path as bind does (checked just before: the
   * window in which another process could create the path is that of a stat and a rename).
   * Where that cannot be done (the private name too long for sun_path, a failed rename) it
   * binds the path itself, with bind's own errors.
   */
  async listen(): Promise<void> {
    const path = this.opts.socketPath;
    const staging = `${path}.${process.pid}.bind`;
    if (Buffer.byteLength(staging) <= SUN_PATH_MAX && !existsSync(path)) {
      const server = this.newServer();
      try {
        await this.bind(server, staging);
      } catch {
        await closeServer(server);
        return this.listenAt(path);
      }
      // Checked again just before the rename, which would replace a file (rename(2) has no
      // no-replace flag Node can pass, and the seccomp filter allows rename, not link).
      if (existsSync(path)) {
        await closeServer(server);
        throw socketInUse(path);
      }
      try {
        renameSync(staging, path);
      } catch {
        rmSync(staging, { force: true });
        await closeServer(server);
        return this.listenAt(path);
      }
      this.placed = { path, ino: statSync(path).ino };
      this.server = server;
      this.opts.controller.logger.info('API server started.', API);
      return;
    }
    return this.listenAt(path);
  }

  /** Binds `path` itself (bind's own errors, in Firecracker's words). */
  private async listenAt(path: string): Promise<void> {
    const server = this.newServer();
    this.server = server;
    await this.bind(server, path);
    this.opts.controller.logger.info('API server started.', API);
  }

  private newServer(): Server {
    return createServer({ allowHalfOpen: true }, (s) => this.accept(s));
  }

  private bind(server: Server, path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EADDRINUSE') reject(socketInUse(this.opts.socketPath));
        else reject(new ApiLayerError('API_SOCKET_IN_USE', `Failed to bind and run the HTTP server: IO error: ${e.message}`, 400, { cause: e }));
      });
      server.listen(path, () => resolve());
    });
  }

  /** Stops accepting, closes connections, waits for the request in progress. */
  async close(): Promise<void> {
    this.closed = true;
    this.releaseGate();
    for (const c of this.conns) c.destroy();
    this.conns.clear();
    await closeServer(this.server);
    // Node unlinks the name it bound (the staging one, gone since the rename); the path is
    // ours to remove, unless another socket has replaced it since.
    const placed = this.placed;
    this.placed = null;
    try {
      if (placed && statSync(placed.path).ino === placed.ino) rmSync(placed.path, { force: true });
    } catch { /* already gone */ }
    await this.work;
  }

  private accept(socket: Socket): void {
    if (this.conns.size >= MAX_CONNECTIONS) {
      // micro_http (src/server.rs `HttpServer::requests`) writes the 503 once and drops the
      // stream. Do the same: the write of these few bytes to a fresh socket completes at once
      // (libuv tries it synchronously), and destroy() closes the fd now. end() alone left the
      // read side open (allowHalfOpen, nobody reading) and leaked the fd for good.
      socket.on('error', () => undefined);
      socket.write(SERVER_FULL_RESPONSE);
      socket.destroy();
      return;
    }
    const conn = new ApiConnection(socket, this.payloadMax, {
      request: (c, slot, req) => this.enqueue(c, slot, req),
      done: (c) => this.conns.delete(c),
      paused: this.opts.onConnectionPaused,
    });
    this.conns.add(conn);
  }

  /** Queues a request behind every request already received, from any connection. */
  private enqueue(conn: ApiConnection, slot: ResponseSlot, req: HttpRequest): void {
    this.opts.onQueued?.();
    this.work = this.work
      .then(() => this.process(conn, slot, req))
      .catch((e: unknown) => {
        // A bug, not a request error: answer so the connection does not stall.
        this.opts.controller.logger.error(`API request handling failed: ${(e as Error).stack ?? e}`, API);
        slot.bytes ??= formatResponse(400, { body: serializeFault({ fault_message: String((e as Error).message ?? e) }) });
        conn.flush();
      });
  }

  /** `ApiServer::handle_request` + `serve_vmm_action_request` for one request. */
  private async process(conn: ApiConnection, slot: ResponseSlot, req: HttpRequest): Promise<void> {
    if (this.closed) return;
    const c = this.opts.controller;
    const log = c.logger;
    const t0 = performance.now();
    log.info(`The API server received a ${describeRequest(req, log.enabled('Debug'))}.`, API);
    let status: StatusCode;
    let body: string | undefined;
    let deprecation = false;
    let fatal: VmmActionError | null = null;
    try {
      const parsed = parseRequest(req, c.metrics);
      try {
        const data = await c.handle(parsed.action);
        ({ status, body } = dataToResponse(data));
        log.info(`The request was executed successfully. Status code: ${status === 204 ? '204 No Content' : '200 OK'}.`, API);
        const lat = LATENCY_ACTIONS[parsed.action.kind] ??
          (parsed.action.kind === 'CreateSnapshot' ? (parsed.action.params.snapshot_type === 'Full' ? ['create full snapshot', 'full_create_snapshot'] : ['create diff snapshot', 'diff_create_snapshot']) : undefined);
        if (lat) {
          const us = Math.round((performance.now() - t0) * 1000);
          c.metrics.latencies_us[lat[1]].store(us);
          log.info(`'${lat[0]}' API request took ${us} us.`, API);
        }
      } catch (e) {
        const err = e instanceof VmmActionError ? e : new VmmActionError((e as Error).message);
        status = err.status as StatusCode;
        log.error(`Received Error. Status code: ${status === 413 ? '413 Payload too large' : '400 Bad Request'}. Message: ${err.message}`, API);
        body = serializeFault({ fault_message: err.message });
        if (err.fatal) fatal = err;
      }
      if (parsed.deprecation) {
        log.warn(parsed.deprecation, API);
        deprecation = true;
      }
    } catch (e) {
      if (!(e instanceof ApiRequestError)) throw e;
      log.error(e.debug, API);
      status = e.status as StatusCode;
      body = serializeFault({ fault_message: e.message });
    }
    slot.bytes = formatResponse(status, { body, deprecation });
    const us = Math.round((performance.now() - t0) * 1000);
    this.durationsUs.push(us);
    log.debug(`Total previous API call duration: ${us} us.`, API);
    conn.flush();
    if (fatal && this.opts.onFatal) {
      const f = fatal;
      await new Promise<void>((r) => (conn.socket.writableLength === 0 ? r() : conn.socket.once('drain', () => r())));
      this.opts.onFatal(f);
    }
  }
}

/** Longest sun_path a socket path may have (108 bytes with the terminating NUL). */
const SUN_PATH_MAX = 107;

/** Firecracker's text for an API socket path that is already taken. */
function socketInUse(path: string): ApiLayerError {
  return new ApiLayerError('API_SOCKET_IN_USE', `Failed to open the API socket at: ${path}. Check that it is not already used.`);
}

/** Stops `server` listening (no-op for none or a server that never listened). */
function closeServer(server: Server | null): Promise<void> {
  return new Promise<void>((r) => (server && server.listening ? server.close(() => r()) : r()));
}
