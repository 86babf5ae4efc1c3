/**
 * The request side of micro_http's `HttpConnection` (facts §1.1), rebuilt on a 1024-byte read
 * buffer so the limits fall exactly where Firecracker's do: a request line or a single header
 * line must fit the buffer (CRLF included), the body is collected separately, Content-Length
 * above the payload limit is refused before the body is read, `Expect: 100-continue` queues an
 * interim 100, chunked bodies are not decoded, and several requests in one read are all parsed.
 *
 * Node delivers arbitrary chunks; `feed` cuts them into the reads micro_http would do
 * (`BUFFER_SIZE - read_cursor` bytes each). Divergence, on purpose: after a parse error
 * micro_http leaves its state machine mid-request (later requests on that connection then
 * mis-parse); Kindling drops the rest of that read and starts afresh, and after a payload-limit
 * error (without Expect) it skips the announced body, so one bad request yields one 400.
 */

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

class ParseError extends Error {}

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
  if (sp1 === -1) throw new ParseError(ERR.InvalidRequest);
  const sp2 = line.indexOf(0x20, sp1 + 1);
  if (sp2 === -1) throw new ParseError(ERR.InvalidRequest);
  const method = line.subarray(0, sp1).toString('latin1');
  const uriBytes = line.subarray(sp1 + 1, sp2);
  const version = line.subarray(sp2 + 1).toString('latin1');
  if (method !== 'GET' && method !== 'PUT' && method !== 'PATCH' && method !== 'DELETE') throw new ParseError(ERR.Method);
  if (uriBytes.length === 0) throw new ParseError(ERR.EmptyUri);
  let uri: string;
  try {
    uri = utf8.decode(uriBytes);
  } catch {
    throw new ParseError(ERR.Utf8Uri);
  }
  if (version !== 'HTTP/1.0' && version !== 'HTTP/1.1') throw new ParseError(ERR.Version);
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
    throw new ParseError(`Invalid header. Reason: Header contains invalid characters. Key: invalid utf-8 sequence of 1 bytes from index ${valid}`);
  }
  const colon = text.indexOf(':');
  if (colon === -1) throw new ParseError(`Invalid header. Reason: Header is incorrectly formatted. Key: ${text}`);
  const key = text.slice(0, colon);
  const value = text.slice(colon + 1);
  switch (key.toLowerCase().trim()) {
    case 'content-length': {
      const t = value.trim();
      const n = /^\+?[0-9]+$/.test(t) ? Number(t.replace('+', '')) : NaN;
      if (!Number.isInteger(n) || n > 0xffffffff) throw new ParseError(`Invalid header. Reason: Invalid value. Key:${key}; Value:${value}`);
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
      if (all.length === 0) throw new ParseError(ERR.InvalidRequest);
      for (const enc of all.split(',')) {
        const e = enc.trim();
        if (e === 'identity;q=0' || (e === '*;q=0' && !all.includes('identity'))) {
          throw new ParseError(`Invalid header. Reason: Invalid value. Key:Accept-Encoding; Value:${enc}`);
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

  /** Consumes a chunk from the socket; returns what each emulated read produced. */
  feed(chunk: Buffer): ParseEvent[] {
    const out: ParseEvent[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - off);
        this.skip -= n;
        off += n;
        continue;
      }
      const n = Math.min(HTTP_BUFFER_SIZE - this.readCursor, chunk.length - off);
      chunk.copy(this.buffer, this.readCursor, off, off + n);
      off += n;
      const events: ParseEvent[] = [];
      try {
        this.tryRead(this.readCursor + n, events);
        out.push(...events);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
        // Requests parsed in this read are dropped with the error (ClientConnection::read).
        out.push(...events.filter((ev) => ev.kind === 'continue'), { kind: 'error', message: e.message });
        this.reset();
        return out;
      }
    }
    return out;
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
          if (end === HTTP_BUFFER_SIZE && start === 0) throw new ParseError(ERR.InvalidRequest);
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
            throw new ParseError(`Invalid header. Reason: Invalid content length. Header: ${this.buffer.toString('utf8')}`);
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
          if (!req.expect) this.skip = Math.max(0, req.contentLength - (end - start));
          throw new ParseError(`Request payload with size ${req.contentLength} is larger than the limit of ${this.payloadMaxSize} allowed by server.`);
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
