/**
 * micro_http's response bytes (response.rs): `HTTP/1.1 <code> \r\n` (trailing space,
 * no reason phrase), `Server: Firecracker API`, `Connection: keep-alive`, optional
 * `Deprecation: true`, then Content-Type/Content-Length unless the status is 100 or 204.
 */
import type { HttpVersion, MediaType } from './http-parser.js';

/** Status codes micro_http can send. */
export type StatusCode = 100 | 200 | 204 | 400 | 401 | 404 | 405 | 409 | 413 | 429 | 500 | 501 | 503;

/** The reply to the 11th simultaneous connection, sent raw before closing it (server.rs). */
export const SERVER_FULL_RESPONSE = Buffer.from(
  'HTTP/1.1 503\r\nServer: Firecracker API\r\nConnection: close\r\nContent-Length: 40\r\n\r\n{ "error": "Too many open connections" }',
);

/** Options of one response. */
export interface ResponseOptions {
  body?: string | Buffer;
  deprecation?: boolean;
  contentType?: MediaType;
  /** Only the interim 100 echoes the request's version; everything else is HTTP/1.1. */
  version?: HttpVersion;
}

/** Serializes a response exactly as `Response::write_all` does. */
export function formatResponse(status: StatusCode, opts: ResponseOptions = {}): Buffer {
  const head = [`${opts.version ?? 'HTTP/1.1'} ${status} `, 'Server: Firecracker API', 'Connection: keep-alive'];
  if (opts.deprecation) head.push('Deprecation: true');
  const hasLength = status !== 100 && status !== 204;
  const body = opts.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body);
  if (hasLength) {
    head.push(`Content-Type: ${opts.contentType ?? 'application/json'}`, `Content-Length: ${body.length}`);
  }
  const headBuf = Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1');
  return hasLength ? Buffer.concat([headBuf, body]) : headBuf;
}

/**
 * The 400 micro_http sends for an HTTP-level parse error. The body is NOT valid JSON: it holds
 * a literal newline (server.rs `ClientConnection::read`).
 */
export function parseErrorResponse(message: string): Buffer {
  return formatResponse(400, { body: `{ "error": "${message}\nAll previous unanswered requests will be dropped." }` });
}

/** The interim `100` for `Expect: 100-continue`, in the request's HTTP version. */
export function continueResponse(version: HttpVersion): Buffer {
  return formatResponse(100, { version });
}
