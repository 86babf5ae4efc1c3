/**
 * What the MMDS answers to one HTTP request (Firecracker src/vmm/src/mmds/mod.rs
 * `convert_to_response`, token_headers.rs): GET reads the data, PUT /latest/api/token mints a
 * session token, PATCH and DELETE get 405, and V2 wants a valid token on every GET. Texts and
 * status codes are Firecracker's; error bodies are text/plain and every answer uses the
 * request's HTTP version.
 */
import { MmdsData } from './data-tree.js';
import { parseU32, type HttpParseError, type HttpRequest, type HttpResponse } from './http.js';
import type { MmdsMetrics } from './metrics.js';
import { MAX_TOKEN_TTL_SECONDS, MIN_TOKEN_TTL_SECONDS, TokenAuthority } from './token.js';

/** MMDS version: V1 answers without a token, V2 requires one. */
export type MmdsVersion = 'V1' | 'V2';

/** Firecracker's answer texts (mod.rs `VmmMmdsError`, data_store.rs, micro_http errors). */
export const MMDS_TEXTS = {
  InvalidToken: 'MMDS token not valid.',
  InvalidURI: 'Invalid URI.',
  MethodNotAllowed: 'Not allowed HTTP method.',
  NoTokenProvided:
    'No MMDS token provided. Use `X-metadata-token` or `X-aws-ec2-metadata-token` header to specify the session token.',
  NoTtlProvided:
    "Token time to live value not found. Use `X-metadata-token-ttl-seconds` or `X-aws-ec2-metadata-token-ttl-seconds` header to specify the token's lifetime.",
  UnsupportedValueType: 'Cannot retrieve value. The value has an unsupported type.',
} as const;

/** `Resource not found: <uri>.` (the URI as the request wrote it). */
export function resourceNotFound(uri: string): string {
  return `Resource not found: ${uri}.`;
}

/** token.rs `InvalidTtlValue`. */
export function invalidTtlText(ttl: number): string {
  return `Invalid time to live value provided for token: ${ttl}. Please provide a value between ${MIN_TOKEN_TTL_SECONDS} and ${MAX_TOKEN_TTL_SECONDS}.`;
}

/** The only path PUT serves (token.rs PATH_TO_TOKEN). */
export const PATH_TO_TOKEN = '/latest/api/token';
/** Headers carrying a session token (token_headers.rs), compared case-insensitively. */
const TOKEN_HEADERS = ['x-metadata-token', 'x-aws-ec2-metadata-token'];
/** Headers carrying a token TTL request. */
const TTL_HEADERS = ['x-metadata-token-ttl-seconds', 'x-aws-ec2-metadata-token-ttl-seconds'];
/** A PUT carrying this header is refused: it came through a proxy (mod.rs `respond_to_put_request`). */
const FORWARDED_FOR_HEADERS = ['x-forwarded-for'];

/**
 * The last header whose name is one of `names` (ASCII case-insensitive). Firecracker keeps
 * custom headers in a HashMap, where a repeated name keeps its last value and the pick among
 * differently spelled names is arbitrary; the last one makes that deterministic.
 */
function findHeader(req: HttpRequest, names: readonly string[]): readonly [string, string] | undefined {
  for (let i = req.custom.length - 1; i >= 0; i--) {
    const h = req.custom[i]!;
    const lower = h[0].replace(/[A-Z]/g, (c) => c.toLowerCase());
    if (names.includes(lower)) return h;
  }
  return undefined;
}

/** micro_http `Uri::get_abs_path`: `http://host/path` → `/path`; otherwise the target when it starts with `/`, else "". */
export function absPath(uri: string): string {
  const scheme = 'http://';
  if (uri.startsWith(scheme)) {
    const slash = uri.indexOf('/', scheme.length);
    return slash < 0 ? '' : uri.slice(slash);
  }
  return uri.startsWith('/') ? uri : '';
}

/** mod.rs `sanitize_uri`: every run of slashes collapsed to one. */
export function sanitizeUri(path: string): string {
  return path.replace(/\/{2,}/g, '/');
}

/** The MMDS's HTTP logic, with its data, version and format settings. */
export class MmdsResponder {
  /** The data the guest reads (Firecracker's store starts as `null`). */
  data = new MmdsData('null');
  version: MmdsVersion = 'V1';
  /** EC2 IMDS compatibility: always the IMDS format, whatever `Accept` says. */
  imdsCompat = false;

  constructor(private readonly tokens: TokenAuthority, private readonly metrics: MmdsMetrics) {}

  /** The answer to a request micro_http refused: HTTP/1.1 and micro_http's default content type (endpoint.rs `build_response`). */
  static parseErrorResponse(e: HttpParseError): HttpResponse {
    return { version: 'HTTP/1.1', status: e.status, contentType: 'application/json', body: e.message };
  }

  /** The answer to a request (mod.rs `convert_to_response`). */
  respond(req: HttpRequest): HttpResponse {
    const text = (status: number, body: string): HttpResponse => ({ version: req.version, status, contentType: 'text/plain', body });
    const path = absPath(req.uri);
    if (path === '') return text(400, MMDS_TEXTS.InvalidURI);
    if (req.method === 'GET') return this.get(req, path, text);
    if (req.method === 'PUT') return this.put(req, path, text);
    return { ...text(405, MMDS_TEXTS.MethodNotAllowed), allowGetPut: true };
  }

  private get(req: HttpRequest, path: string, text: (s: number, b: string) => HttpResponse): HttpResponse {
    const token = findHeader(req, TOKEN_HEADERS);
    if (this.version === 'V2') {
      if (!token) {
        this.metrics.inc('rx_no_token');
        return text(401, MMDS_TEXTS.NoTokenProvided);
      }
      if (!this.tokens.isValid(token[1])) {
        this.metrics.inc('rx_invalid_token');
        return text(401, MMDS_TEXTS.InvalidToken);
      }
    } else if (!token) {
      this.metrics.inc('rx_no_token');
    } else if (!this.tokens.isValid(token[1])) {
      this.metrics.inc('rx_invalid_token');
    }
    const node = this.data.lookup(sanitizeUri(path));
    if (!node) return text(404, resourceNotFound(path));
    // data_store.rs `get_value`: EC2 IMDS ignores Accept; the content type still follows it.
    const body = this.imdsCompat || req.accept === 'text/plain' ? this.data.imds(node) : this.data.json(node);
    if (body === null) return text(501, MMDS_TEXTS.UnsupportedValueType);
    return { version: req.version, status: 200, contentType: req.accept, body };
  }

  private put(req: HttpRequest, path: string, text: (s: number, b: string) => HttpResponse): HttpResponse {
    const forwarded = findHeader(req, FORWARDED_FOR_HEADERS);
    if (forwarded) return text(400, `Invalid header. Reason: Unsupported header name. Key: ${forwarded[0]}`);
    if (sanitizeUri(path) !== PATH_TO_TOKEN) return text(404, resourceNotFound(path));
    const ttlHeader = findHeader(req, TTL_HEADERS);
    if (!ttlHeader) return text(400, MMDS_TEXTS.NoTtlProvided);
    const [name, value] = ttlHeader;
    const ttl = parseU32(value);
    if (ttl === null) return text(400, `Invalid header. Reason: Invalid value. Key:${name}; Value:${value}`);
    if (!TokenAuthority.isValidTtl(ttl)) return text(400, invalidTtlText(ttl));
    return { ...text(200, this.tokens.generate(ttl)), headers: [[name, String(ttl)]] };
  }
}
