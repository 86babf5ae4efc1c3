/**
 * The guest-facing HTTP/1.x of the MMDS: micro_http's request parser and response writer as
 * Firecracker's MMDS uses them (micro_http src/request.rs, common/headers.rs, response.rs;
 * Firecracker src/vmm/src/dumbo/tcp/endpoint.rs `parse_request_bytes`). Not the API socket's
 * dialect (src/api/http-parser.ts): the MMDS sees one request at a time out of a TCP
 * connection's 2500-byte receive buffer, and answers parse errors itself.
 *
 * Framing (`takeRequest`): a request ends at the first blank line, found as Firecracker's
 * endpoint finds it ("\n\n" or "\n\r\n"); the bytes up to there are parsed, and must then use
 * CRLF as micro_http demands. A `Content-Length` body is waited for and consumed with its
 * request (Firecracker hands micro_http the headers alone, so a request with a body is refused
 * there as truncated; here a PUT may carry one, which is ignored). A request that cannot fit
 * in the buffer is reported as too large: the connection resets.
 */

/** A method micro_http parses; only GET and PUT are served, PATCH and DELETE get 405. */
export type HttpMethod = 'GET' | 'PUT' | 'PATCH' | 'DELETE';
/** A version micro_http parses. */
export type HttpVersion = 'HTTP/1.0' | 'HTTP/1.1';
/** The media types micro_http knows (`Accept`, `Content-Type`). */
export type MediaType = 'text/plain' | 'application/json';

/** A parsed request. */
export interface HttpRequest {
  readonly method: HttpMethod;
  /** The request target as sent (UTF-8). */
  readonly uri: string;
  readonly version: HttpVersion;
  /** From `Accept`; text/plain when absent or not one of the two known types. */
  readonly accept: MediaType;
  /** From `Content-Length` (0 when absent). */
  readonly contentLength: number;
  /** Every header micro_http does not interpret itself ("custom"), name and value trimmed, in order. */
  readonly custom: readonly (readonly [name: string, value: string])[];
}

/** A request micro_http refuses: the status and text the MMDS endpoint answers with. */
export interface HttpParseError {
  readonly status: 400 | 501;
  readonly message: string;
}

/** What `takeRequest` found at the start of the buffer. */
export type TakenRequest =
  | { readonly kind: 'request'; readonly consumed: number; readonly request: HttpRequest }
  | { readonly kind: 'error'; readonly consumed: number; readonly error: HttpParseError }
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'too-large' };

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
/** Shortest request line without its CRLF: "GET" SP one URI byte SP "HTTP/1.x" (micro_http `RequestLine::min_len`). */
const REQUEST_LINE_MIN_LEN = 14;
const U32_MAX = 0xffff_ffff;

const INCOMPLETE = { kind: 'incomplete' } as const;
const TOO_LARGE = { kind: 'too-large' } as const;
const INVALID_REQUEST: HttpParseError = { status: 400, message: 'Invalid request.' };
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The index just after the first blank line in buf[0, len) ("\n\n" or "\n\r\n", Firecracker's
 * endpoint rule), or -1.
 */
export function findRequestEnd(buf: Uint8Array, len: number): number {
  for (let i = 0; i + 1 < len; i++) {
    if (buf[i] !== LF) continue;
    if (buf[i + 1] === LF) return i + 2;
    if (i + 2 < len && buf[i + 1] === CR && buf[i + 2] === LF) return i + 3;
  }
  return -1;
}

/**
 * Takes the request at the start of buf[0, len): a request or parse error with the bytes it
 * occupies, 'incomplete' while bytes are missing, 'too-large' when it cannot complete within
 * `capacity` bytes.
 */
export function takeRequest(buf: Uint8Array, len: number, capacity: number): TakenRequest {
  const end = findRequestEnd(buf, len);
  if (end < 0) return len >= capacity ? TOO_LARGE : INCOMPLETE;
  const parsed = parseRequest(buf.subarray(0, end));
  if ('status' in parsed) return { kind: 'error', consumed: end, error: parsed };
  const total = end + parsed.contentLength;
  if (total > capacity) return TOO_LARGE;
  if (total > len) return INCOMPLETE;
  // micro_http refuses a GET or DELETE with a body (request.rs `try_from`).
  if (parsed.contentLength > 0 && (parsed.method === 'GET' || parsed.method === 'DELETE')) {
    return { kind: 'error', consumed: total, error: INVALID_REQUEST };
  }
  return { kind: 'request', consumed: total, request: parsed };
}

function indexOfCrlf(b: Uint8Array, from: number): number {
  for (let i = from; i + 1 < b.length; i++) if (b[i] === CR && b[i + 1] === LF) return i;
  return -1;
}

function indexOfCrlfCrlf(b: Uint8Array, from: number): number {
  for (let i = from; i + 3 < b.length; i++) if (b[i] === CR && b[i + 1] === LF && b[i + 2] === CR && b[i + 3] === LF) return i;
  return -1;
}

function ascii(b: Uint8Array): string {
  return String.fromCharCode(...b);
}

/** Rust's `str::parse::<u32>`: an optional '+', then decimal digits, at most u32::MAX; null otherwise. */
export function parseU32(s: string): number | null {
  if (!/^\+?[0-9]+$/.test(s)) return null;
  const v = Number(s.startsWith('+') ? s.slice(1) : s);
  return v <= U32_MAX ? v : null;
}

function mediaType(s: string): MediaType | null {
  const t = s.trim();
  return t === 'text/plain' || t === 'application/json' ? t : null;
}

/** micro_http `Encoding::try_from`: refuses only what rules out the identity encoding. */
function checkAcceptEncoding(value: string): HttpParseError | null {
  if (value === '') return INVALID_REQUEST;
  for (const encoding of value.split(',')) {
    const t = encoding.trim();
    if (t === 'identity;q=0' || (t === '*;q=0' && !value.includes('identity'))) {
      return { status: 400, message: `Invalid value. Key:Accept-Encoding; Value:${encoding}` };
    }
  }
  return null;
}

interface HeaderState {
  accept: MediaType;
  contentLength: number;
  custom: [string, string][];
}

/** One header line (micro_http `Headers::parse_header_line`); unsupported values of known headers are ignored. */
function parseHeaderLine(line: string, h: HeaderState): HttpParseError | null {
  const colon = line.indexOf(':');
  if (colon < 0) return { status: 400, message: `Header is incorrectly formatted. Key: ${line}` };
  const key = line.slice(0, colon);
  const value = line.slice(colon + 1);
  switch (key.trim().replace(/[A-Z]/g, (c) => c.toLowerCase())) {
    case 'content-length': {
      const n = parseU32(value.trim());
      if (n === null) return { status: 400, message: `Invalid value. Key:${key}; Value:${value}` };
      h.contentLength = n;
      return null;
    }
    case 'accept':
      h.accept = mediaType(value) ?? h.accept;
      return null;
    case 'accept-encoding':
      return checkAcceptEncoding(value.trim());
    case 'content-type':
    case 'transfer-encoding':
    case 'expect':
    case 'server':
      // Parsed by micro_http but of no use to the MMDS (chunked bodies are not read there either).
      return null;
    default:
      h.custom.push([key.trim(), value.trim()]);
      return null;
  }
}

/** Parses one request (micro_http `Request::try_from` on the bytes up to the blank line). */
export function parseRequest(bytes: Uint8Array): HttpRequest | HttpParseError {
  const lineEnd = indexOfCrlf(bytes, 0);
  if (lineEnd < REQUEST_LINE_MIN_LEN) return INVALID_REQUEST;
  const sp1 = bytes.indexOf(SP);
  const sp2 = sp1 < 0 || sp1 >= lineEnd ? -1 : bytes.indexOf(SP, sp1 + 1);
  if (sp2 < 0 || sp2 >= lineEnd) return INVALID_REQUEST;
  const method = ascii(bytes.subarray(0, sp1));
  if (method !== 'GET' && method !== 'PUT' && method !== 'PATCH' && method !== 'DELETE') {
    return { status: 501, message: 'Unsupported HTTP method.' };
  }
  if (sp2 === sp1 + 1) return { status: 400, message: 'Empty URI not allowed.' };
  let uri: string;
  try {
    uri = utf8.decode(bytes.subarray(sp1 + 1, sp2));
  } catch {
    return { status: 400, message: 'Cannot parse URI as UTF-8.' };
  }
  const version = ascii(bytes.subarray(sp2 + 1, lineEnd));
  if (version !== 'HTTP/1.0' && version !== 'HTTP/1.1') return { status: 501, message: 'Unsupported HTTP version.' };

  const h: HeaderState = { accept: 'text/plain', contentLength: 0, custom: [] };
  const blank = indexOfCrlfCrlf(bytes, lineEnd);
  if (blank < 0) return INVALID_REQUEST;
  if (blank > lineEnd) {
    let text: string;
    try {
      text = utf8.decode(bytes.subarray(lineEnd + 2, blank));
    } catch {
      return INVALID_REQUEST;
    }
    for (const line of text.split('\r\n')) {
      if (line === '') break;
      const err = parseHeaderLine(line, h);
      if (err) return err;
    }
  }
  return { method, uri, version, accept: h.accept, contentLength: h.contentLength, custom: h.custom };
}

/** A response as micro_http writes it. */
export interface HttpResponse {
  readonly version: HttpVersion;
  readonly status: number;
  readonly contentType: MediaType;
  readonly body: string;
  /** Adds `Allow: GET, PUT` (the 405 answer). */
  readonly allowGetPut?: boolean;
  /** Extra headers, written as given (the token TTL echo). */
  readonly headers?: readonly (readonly [string, string])[];
}

/**
 * The bytes of a response (micro_http response.rs `Response::write_all`): the status line has
 * no reason phrase, `Server: Firecracker API` and `Connection: keep-alive` always, then Allow,
 * the extra headers, Content-Type and Content-Length, a blank line and the body.
 */
export function encodeResponse(r: HttpResponse): Uint8Array {
  let head = `${r.version} ${r.status} \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n`;
  if (r.allowGetPut) head += 'Allow: GET, PUT\r\n';
  for (const [k, v] of r.headers ?? []) head += `${k}: ${v}\r\n`;
  head += `Content-Type: ${r.contentType}\r\nContent-Length: ${Buffer.byteLength(r.body)}\r\n\r\n`;
  return Buffer.from(head + r.body, 'utf8');
}
