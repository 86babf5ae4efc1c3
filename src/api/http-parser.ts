/**
 * The request side of micro_http's `HttpConnection` (micro_http src/connection.rs), rebuilt on a
 * 1024-byte read buffer so the limits fall exactly where Firecracker's do: a request line or a
 * single header line must fit the buffer (CRLF included), the body is collected separately,
 * Content-Length above the payload limit is refused before the body is read, `Expect:
 * 100-continue` queues an interim 100, chunked bodies are not decoded, and several requests in
 * one read are all parsed.
 *
 * Node delivers arbitrary chunks; `step` cuts them into the reads micro_http would do
 * (`BUFFER_SIZE - read_cursor` bytes each), one read per call, so the server can stop between
 * reads when a connection's replies back up. Divergence, on purpose: after a parse error
 * micro_http leaves its state machine mid-request (later requests on that connection then
 * mis-parse); Kindling drops the rest of that chunk and starts afresh, and after a
 * payload-limit error (without Expect) it skips exactly the announced body — whether those bytes
 * are already in hand or still to come — and parses what follows, so one bad request yields one
 * 400 and the requests after it are answered.
 */
import { ApiLayerError } from '../errors.js';

/** micro_http BUFFER_SIZE. */
export const HTTP_BUFFER_SIZE = 1024;
/** Default `--http-api-max-payload-size` (micro_http MAX_PAYLOAD_SIZE). */
export const DEFAULT_MAX_PAYLOAD_SIZE = 51200;

/** Methods micro_http accepts (exact uppercase). */
export type HttpMethod = 'GET' | 'PUT' | 'PATCH' | 'DELETE';
/** Versions micro_http accepts. */
export type HttpVersion = 'HTTP/1.0' | 'HTTP/1.1';
/** Media types micro_http recognises in Accept / Content-Type. */
export type MediaType = 'text/plain' | 'application/json';

/** A fully received request. */
export interface HttpRequest {
  method: HttpMethod;
  /** The raw request-target. */
  uri: string;
  /** `Uri::get_abs_path`: `http://host/p` → `/p`; targets not starting with `/` → ''. */
  path: string;
  version: HttpVersion;
  contentLength: number;
  expect: boolean;
  chunked: boolean;
  /** Accept header (default text/plain). */
  accept: MediaType;
  /** Headers micro_http does not know, trimmed, by name as sent. */
  custom: Map<string, string>;
  /** The body, or null when Content-Length is absent or 0. */
  body: Buffer | null;
}

/** What one read produced, in order: requests, interim 100s, or a parse error (400 text). */
export type ParseEvent =
  | { kind: 'request'; request: HttpRequest }
  | { kind: 'continue'; version: HttpVersion }
  | { kind: 'error'; message: string };

/** micro_http `RequestError` Display texts used here. */
const ERR = {
  InvalidRequest: 'Invalid request.',
  Method: 'Invalid HTTP Method: Unsupported HTTP method.',
  Version: 'Invalid HTTP Version: Unsupported HTTP version.',
  EmptyUri: 'Invalid URI: Empty URI not allowed.',
  Utf8Uri: 'Invalid URI: Cannot parse URI as UTF-8.',
} as const;

/** An HTTP-level parse error; the message is micro_http's `RequestError` Display text. */
export class HttpParseError extends ApiLayerError {
  constructor(message: string) {
    super('API_HTTP_PARSE', message);
  }
}

/**
 * Content-Length above the payload limit. Carries where the refused body starts in the read
 * buffer and whether its bytes will follow (they do not with `Expect: 100-continue`: the client
 * waits for the 100 that never comes), so the parser can skip exactly that many bytes.
 */
class PayloadTooLargeError extends HttpParseError {
  constructor(message: string, readonly bodyStart: number, readonly contentLength: number, readonly bodyFollows: boolean) {
    super(message);
  }
}

const CRLF = Buffer.from('\r\n');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** `Uri::get_abs_path`. */
export function absPath(uri: string): string {
  const scheme = 'http://';
  if (uri.startsWith(scheme)) {
    const rest = uri.slice(scheme.length);
    const at = rest.indexOf('/');
    return at === -1 ? '' : rest.slice(at);
  }
  return uri.startsWith('/') ? uri : '';
}

function parseRequestLine(line: Buffer): Pick<HttpRequest, 'method' | 'uri' | 'path' | 'version'> {
  const sp1 = line.indexOf(0x20);
  if (sp1 === -1) throw new HttpParseError(ERR.InvalidRequest);
  const sp2 = line.indexOf(0x20, sp1 + 1);
  if (sp2 === -1) throw new HttpParseError(ERR.InvalidRequest);
  const method = line.subarray(0, sp1).toString('latin1');
  const uriBytes = line.subarray(sp1 + 1, sp2);
  const version = line.subarray(sp2 + 1).toString('latin1');
  if (method !== 'GET' && method !== 'PUT' && method !== 'PATCH' && method !== 'DELETE') throw new HttpParseError(ERR.Method);
  if (uriBytes.length === 0) throw new HttpParseError(ERR.EmptyUri);
  let uri: string;
  try {
    uri = utf8.decode(uriBytes);
  } catch {
    throw new HttpParseError(ERR.Utf8Uri);
  }
  if (version !== 'HTTP/1.0' && version !== 'HTTP/1.1') throw new HttpParseError(ERR.Version);
  return { method, uri, path: absPath(uri), version };
}

function mediaType(v: string): MediaType | null {
  const t = v.trim();
  return t === 'text/plain' || t === 'application/json' ? t : null;
}

/** `Headers::parse_header_line` (common/headers.rs). */
function parseHeaderLine(req: HttpRequest, line: Buffer): void {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch {
    const valid = validUtf8Prefix(line);
    throw new HttpParseError(`Invalid header. Reason: Header contains invalid characters. Key: invalid utf-8 sequence of 1 bytes from index ${valid}`);
  }
  const colon = text.indexOf(':');
  if (colon === -1) throw new HttpParseError(`Invalid header. Reason: Header is incorrectly formatted. Key: ${text}`);
  const key = text.slice(0, colon);
  const value = text.slice(colon + 1);
  switch (key.toLowerCase().trim()) {
    case 'content-length': {
      const t = value.trim();
      const n = /^\+?[0-9]+$/.test(t) ? Number(t.replace('+', '')) : NaN;
      if (!Number.isInteger(n) || n > 0xffffffff) throw new HttpParseError(`Invalid header. Reason: Invalid value. Key:${key}; Value:${value}`);
      req.contentLength = n;
      return;
    }
    case 'content-type':
    case 'server':
      return;
    case 'accept': {
      const m = mediaType(value);
      if (m) req.accept = m;
      return;
    }
    case 'transfer-encoding':
      if (value.trim() === 'chunked') req.chunked = true;
      return;
    case 'expect':
      if (value.trim() === '100-continue') req.expect = true;
      return;
    case 'accept-encoding': {
      const all = value.trim();
      if (all.length === 0) throw new HttpParseError(ERR.InvalidRequest);
      for (const enc of all.split(',')) {
        const e = enc.trim();
        if (e === 'identity;q=0' || (e === '*;q=0' && !all.includes('identity'))) {
          throw new HttpParseError(`Invalid header. Reason: Invalid value. Key:Accept-Encoding; Value:${enc}`);
        }
      }
      return;
    }
    default:
      req.custom.set(key.trim(), value.trim());
  }
}

function validUtf8Prefix(b: Buffer): number {
  for (let n = b.length; n > 0; n--) {
    try {
      utf8.decode(b.subarray(0, n));
      return n;
    } catch {
      /* shorter */
    }
  }
  return 0;
}

type State = 'line' | 'headers' | 'body';

/** One connection's request parser (the reading half of `HttpConnection`). */
export class HttpRequestParser {
  private buffer = Buffer.alloc(HTTP_BUFFER_SIZE);
  private readCursor = 0;
  private state: State = 'line';
  private pending: HttpRequest | null = null;
  private bodyParts: Buffer[] = [];
  private bodyRemaining = 0;
  /** Bytes of a refused oversized body still to be discarded. */
  private skip = 0;

  /** @param payloadMaxSize Content-Length limit (`--http-api-max-payload-size`). */
  constructor(readonly payloadMaxSize = DEFAULT_MAX_PAYLOAD_SIZE) {}

  /** Consumes a whole chunk from the socket; returns what each emulated read produced. */
  feed(chunk: Buffer): ParseEvent[] {
    const out: ParseEvent[] = [];
    for (let off = 0; off < chunk.length; ) off = this.step(chunk, off, out);
    return out;
  }

  /**
   * Consumes one emulated read (or one stretch of a refused body being skipped) from
   * `chunk[off..]`, appends what it produced to `out`, and returns the offset of the next
   * unconsumed byte (`chunk.length` when the rest of the chunk is dropped after an error).
   */
  step(chunk: Buffer, off: number, out: ParseEvent[]): number {
    if (this.skip > 0) {
      const n = Math.min(this.skip, chunk.length - off);
      this.skip -= n;
      return off + n;
    }
    const cursor = this.readCursor;
    const n = Math.min(HTTP_BUFFER_SIZE - cursor, chunk.length - off);
    chunk.copy(this.buffer, cursor, off, off + n);
    const events: ParseEvent[] = [];
    try {
      this.tryRead(cursor + n, events);
      out.push(...events);
      return off + n;
    } catch (e) {
      if (!(e instanceof HttpParseError)) throw e;
      // Requests parsed in this read are dropped with the error (micro_http src/server.rs
      // `ClientConnection::read` pops and discards them).
      out.push(...events.filter((ev) => ev.kind === 'continue'), { kind: 'error', message: e.message });
      this.reset();
      if (e instanceof PayloadTooLargeError && e.bodyFollows) {
        // The header block ended inside this read (bytes before `cursor` held no CRLF), so the
        // body starts at a byte of `chunk`: skip the body from there, then parse what follows.
        this.skip = e.contentLength;
        return off + Math.max(0, e.bodyStart - cursor);
      }
      return chunk.length;
    }
  }

  private reset(): void {
    this.buffer.fill(0);
    this.readCursor = 0;
    this.state = 'line';
    this.pending = null;
    this.bodyParts = [];
    this.bodyRemaining = 0;
  }

  /** `HttpConnection::try_read` after `read_bytes` returned `end`. */
  private tryRead(end: number, events: ParseEvent[]): void {
    let start = 0;
    for (;;) {
      if (this.state === 'line') {
        const at = this.buffer.subarray(start, end).indexOf(CRLF);
        if (at === -1) {
          if (end === HTTP_BUFFER_SIZE && start === 0) throw new HttpParseError(ERR.InvalidRequest);
          this.shiftLeft(start, end);
          return;
        }
        const line = Buffer.from(this.buffer.subarray(start, start + at));
        start += at + 2;
        this.pending = { ...parseRequestLine(line), contentLength: 0, expect: false, chunked: false, accept: 'text/plain', custom: new Map(), body: null };
        this.state = 'headers';
      } else if (this.state === 'headers') {
        const at = this.buffer.subarray(start, end).indexOf(CRLF);
        if (at === -1) {
          if (start === 0 && end === HTTP_BUFFER_SIZE) {
            throw new HttpParseError(`Invalid header. Reason: Invalid content length. Header: ${this.buffer.toString('utf8')}`);
          }
          this.shiftLeft(start, end);
          return;
        }
        const req = this.pending!;
        if (at > 0) {
          parseHeaderLine(req, Buffer.from(this.buffer.subarray(start, start + at)));
          start += at + 2;
          continue;
        }
        start += 2;
        if (req.contentLength === 0) {
          this.complete(events);
          continue;
        }
        if (req.contentLength > this.payloadMaxSize) {
          const msg = `Request payload with size ${req.contentLength} is larger than the limit of ${this.payloadMaxSize} allowed by server.`;
          throw new PayloadTooLargeError(msg, start, req.contentLength, !req.expect);
        }
        if (req.expect) events.push({ kind: 'continue', version: req.version });
        this.bodyRemaining = req.contentLength;
        this.bodyParts = [];
        this.state = 'body';
      } else {
        const avail = end - start;
        if (this.bodyRemaining > avail) {
          this.bodyParts.push(Buffer.from(this.buffer.subarray(start, end)));
          this.bodyRemaining -= avail;
          this.buffer.fill(0);
          this.readCursor = 0;
          return;
        }
        this.bodyParts.push(Buffer.from(this.buffer.subarray(start, start + this.bodyRemaining)));
        start += this.bodyRemaining;
        this.bodyRemaining = 0;
        this.pending!.body = Buffer.concat(this.bodyParts);
        this.bodyParts = [];
        this.complete(events);
      }
    }
  }

  private complete(events: ParseEvent[]): void {
    events.push({ kind: 'request', request: this.pending! });
    this.pending = null;
    this.state = 'line';
  }

  /** `shift_buffer_left`: keep the incomplete line at the start of the buffer. */
  private shiftLeft(start: number, end: number): void {
    if (start !== 0) {
      this.buffer.copy(this.buffer, 0, start, end);
      this.buffer.fill(0, end - start, end);
    }
    this.readCursor = end - start;
  }
}
