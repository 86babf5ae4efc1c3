/**
 * The MMDS data store (firecracker src/vmm/src/mmds/, mmds/data_store.rs): one JSON value, PUT replaces it, PATCH
 * merges (RFC 7396) and requires a prior PUT, both refuse results whose compact serialization
 * exceeds the limit (→ 413). Keys come back sorted (serde_json's BTreeMap). The guest-facing MMDS
 * (backend) reads `value()`.
 */
import { ConfigError } from './errors.js';
import { MmdsVersion } from './mmds-config.js';
import { JsonValue, serdeJsonStringify } from './serde-read.js';

/** MmdsDatastoreError texts. */
export const MMDS_DATA_ERRORS = {
  DataStoreLimitExceeded: "The MMDS patch request doesn't fit.",
  NotFound: 'The MMDS resource does not exist.',
  NotInitialized: 'The MMDS data store is not initialized.',
} as const;

/** RFC 7396 JSON merge patch (mmds/mod.rs `json_patch`); returns the patched target. */
export function jsonMergePatch(target: JsonValue, patch: JsonValue): JsonValue {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch) || !isPlainObject(patch)) return clone(patch);
  const doc: { [k: string]: JsonValue } = isPlainObject(target) ? { ...(target as { [k: string]: JsonValue }) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete doc[k];
    else Object.defineProperty(doc, k, { value: jsonMergePatch(Object.hasOwn(doc, k) ? doc[k]! : null, v), enumerable: true, writable: true, configurable: true });
  }
  return doc;
}

function isPlainObject(v: JsonValue): v is { [k: string]: JsonValue } {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) !== null && (v as object).constructor === Object;
}

function clone(v: JsonValue): JsonValue {
  return structuredClone(v);
}

/** The MMDS data store plus its version/compat settings. */
export class MmdsDataStore {
  version: MmdsVersion = 'V1';
  imdsCompat = false;
  private data: JsonValue = null;
  private initialized = false;

  /** @param limit max compact-serialized size in bytes (--mmds-size-limit). */
  constructor(readonly limit: number) {}

  /** PUT /mmds: replaces the store. */
  put(value: JsonValue): void {
    this.checkSize(value);
    this.data = value;
    this.initialized = true;
  }

  /** PATCH /mmds: merge patch onto the stored value. */
  patch(value: JsonValue): void {
    if (!this.initialized) throw new ConfigError('mmds', MMDS_DATA_ERRORS.NotInitialized);
    const next = jsonMergePatch(this.data, value);
    this.checkSize(next);
    this.data = next;
  }

  /** The stored value (null until the first PUT). */
  value(): JsonValue {
    return this.data;
  }

  /** The GET /mmds body: serde_json serialization, `null` shown as `{}` (firecracker src/firecracker/src/api_server/parsed_request.rs). */
  toJson(): string {
    return this.data === null ? '{}' : serdeJsonStringify(this.data);
  }

  private checkSize(v: JsonValue): void {
    if (Buffer.byteLength(serdeJsonStringify(v)) > this.limit) throw new ConfigError('mmds-limit', MMDS_DATA_ERRORS.DataStoreLimitExceeded);
  }
}
