/**
 * Schema-driven deserialization with serde's semantics (firecracker src/firecracker/src/api_server/parsed_request.rs, docs/design.md, Errors and replies).
 *
 * Each API resource describes its body once with the `Desc` builders below, and
 * `deserialize()` walks the bytes exactly as serde_json + serde derive would — same order of
 * checks, same texts ("unknown field `foo`, expected one of ...", "missing field
 * `vcpu_count`", "invalid type: string \"2\", expected u8") and positions. (JSON Schema
 * validators cannot reproduce serde's texts, which is why bodies are not validated by schema.)
 */
import { JsonValue, ParsedNumber, SERDE_CODES, SerdeError, SerdeReader, numberToValue } from './serde-read.js';

/** Rust integer types a field may have; they set the range and the "expected u8" text. */
export type RustInt = 'u8' | 'u16' | 'u32' | 'u64' | 'usize' | 'i32' | 'i64';

/** Describes how one Rust type deserializes. */
export type Desc =
  | { kind: 'struct'; name: string; fields: readonly FieldDesc[]; denyUnknown: boolean }
  | { kind: 'int'; rust: RustInt }
  | { kind: 'bool' }
  | { kind: 'string'; expecting: string }
  | { kind: 'enum'; variants: readonly string[] }
  | { kind: 'option'; inner: Desc }
  | { kind: 'seq'; items: Desc }
  | { kind: 'map'; values: Desc }
  | { kind: 'any' }
  | { kind: 'custom'; inner: Desc; convert: (v: never) => unknown };

/** One struct field: its serialized name, type, and serde default (applied when absent). */
export interface FieldDesc {
  readonly name: string;
  readonly desc: Desc;
  readonly default?: () => unknown;
}

const RANGES: Record<RustInt, [bigint, bigint]> = {
  u8: [0n, 255n],
  u16: [0n, 65535n],
  u32: [0n, 4294967295n],
  u64: [0n, (1n << 64n) - 1n],
  usize: [0n, (1n << 64n) - 1n],
  i32: [-(1n << 31n), (1n << 31n) - 1n],
  i64: [-(1n << 63n), (1n << 63n) - 1n],
};

/** `struct Name { ... }` with `#[serde(deny_unknown_fields)]` unless `denyUnknown` is false. */
export const struct = (name: string, fields: readonly FieldDesc[], denyUnknown = true): Desc => ({ kind: 'struct', name, fields, denyUnknown });
/** A field; `dflt` models `#[serde(default)]` / `#[serde(default = "...")]`. */
export const field = (name: string, desc: Desc, dflt?: () => unknown): FieldDesc => (dflt ? { name, desc, default: dflt } : { name, desc });
/** An integer of the given Rust type. */
export const int = (rust: RustInt): Desc => ({ kind: 'int', rust });
/** `bool`. */
export const bool: Desc = { kind: 'bool' };
/** `String`. */
export const str: Desc = { kind: 'string', expecting: 'a string' };
/** `PathBuf` (same as a string, but serde's expectation text is "path string"). */
export const path: Desc = { kind: 'string', expecting: 'path string' };
/** A unit-variant enum; names in declaration order. */
export const enumOf = (...variants: string[]): Desc => ({ kind: 'enum', variants });
/** `Option<T>`: `null` or absent → `null`. */
export const opt = (inner: Desc): Desc => ({ kind: 'option', inner });
/** `Vec<T>`. */
export const seq = (items: Desc): Desc => ({ kind: 'seq', items });
/** `BTreeMap<String, T>`. */
export const map = (values: Desc): Desc => ({ kind: 'map', values });
/** `serde_json::Value`. */
export const any: Desc = { kind: 'any' };
/** A type with a hand-written `Deserialize`: `inner` is read, then `convert` may throw `custom()`. */
export const custom = <T>(inner: Desc, convert: (v: T) => unknown): Desc => ({ kind: 'custom', inner, convert: convert as (v: never) => unknown });
/** `serde::de::Error::custom(msg)`; positioned where serde_json would place it. */
export const customError = (msg: string): SerdeError => new SerdeError(msg);

function oneOf(names: readonly string[]): string {
  const q = names.map((n) => `\`${n}\``);
  if (q.length === 1) return `expected ${q[0]}`;
  if (q.length === 2) return `expected ${q[0]} or ${q[1]}`;
  return `expected one of ${q.join(', ')}`;
}

/** Rust's `{:?}` of a string (used in serde's `invalid type: string "..."`). */
export function rustDebugStr(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c === 0) out += '\\0';
    else if (c < 0x20 || c === 0x7f || (c >= 0x80 && c < 0xa0)) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

function expecting(d: Desc): string {
  switch (d.kind) {
    case 'struct': return `struct ${d.name}`;
    case 'int': return d.rust;
    case 'bool': return 'a boolean';
    case 'string': return d.expecting;
    case 'enum': return 'variant identifier';
    case 'option': return 'option';
    case 'seq': return 'a sequence';
    case 'map': return 'a map';
    case 'any': return 'any valid JSON value';
    case 'custom': return expecting(d.inner);
  }
}

function unexpectedNumber(n: ParsedNumber): string {
  if (n.kind === 'f64') {
    const s = Number.isInteger(n.value) && Math.abs(n.value) < 1e21 ? `${n.value.toFixed(0)}.0` : String(n.value);
    return `floating point \`${s}\``;
  }
  return `integer \`${n.big}\``;
}

/** serde_json `peek_invalid_type`: reads the offending value and names it. */
function invalidType(r: SerdeReader, d: Desc): SerdeError {
  const b = r.peekWs();
  let what: string;
  switch (b) {
    case 0x6e: r.index++; r.parseIdent('ull'); what = 'null'; break;
    case 0x74: r.index++; r.parseIdent('rue'); what = 'boolean `true`'; break;
    case 0x66: r.index++; r.parseIdent('alse'); what = 'boolean `false`'; break;
    case 0x2d: r.index++; what = unexpectedNumber(r.parseNumber(false)); break;
    case 0x22: r.index++; what = `string ${rustDebugStr(r.parseStr())}`; break;
    case 0x5b: what = 'sequence'; break;
    case 0x7b: what = 'map'; break;
    default:
      if (b !== undefined && b >= 0x30 && b <= 0x39) {
        what = unexpectedNumber(r.parseNumber(true));
        break;
      }
      return r.peekError(b === undefined ? SERDE_CODES.EofWhileParsingValue : SERDE_CODES.ExpectedSomeValue);
  }
  return r.error(`invalid type: ${what}, expected ${expecting(d)}`);
}

function readInt(r: SerdeReader, d: Extract<Desc, { kind: 'int' }>): number {
  const b = r.peekWs();
  let n: ParsedNumber;
  if (b === 0x2d) {
    r.index++;
    n = r.parseNumber(false);
  } else if (b !== undefined && b >= 0x30 && b <= 0x39) {
    n = r.parseNumber(true);
  } else {
    throw invalidType(r, d);
  }
  if (n.kind === 'f64') throw r.error(`invalid type: ${unexpectedNumber(n)}, expected ${d.rust}`);
  const [lo, hi] = RANGES[d.rust];
  if (n.big < lo || n.big > hi) throw r.error(`invalid value: ${unexpectedNumber(n)}, expected ${d.rust}`);
  return Number(n.big);
}

function readEnum(r: SerdeReader, d: Extract<Desc, { kind: 'enum' }>): string {
  const b = r.peekWs();
  const variant = (): string => {
    r.index++;
    const name = r.parseStr();
    if (!d.variants.includes(name)) throw r.error(`unknown variant \`${name}\`, ${oneOf(d.variants)}`);
    return name;
  };
  if (b === 0x22) return variant();
  if (b === 0x7b) {
    // Externally tagged form `{"Variant": null}` (serde_json VariantAccess for unit variants).
    r.enter();
    r.index++;
    if (r.peekWs() !== 0x22) throw r.peekError(SERDE_CODES.KeyMustBeAString);
    const name = variant();
    r.mapColon();
    if (r.peekWs() !== 0x6e) throw invalidType(r, { kind: 'custom', inner: str, convert: () => 0 });
    r.index++;
    r.parseIdent('ull');
    r.leave();
    const e = r.peekWs();
    if (e === 0x7d) {
      r.index++;
      return name;
    }
    throw r.peekError(e === undefined ? SERDE_CODES.EofWhileParsingObject : SERDE_CODES.ExpectedSomeValue);
  }
  throw r.peekError(b === undefined ? SERDE_CODES.EofWhileParsingValue : SERDE_CODES.ExpectedSomeValue);
}

function readStruct(r: SerdeReader, d: Extract<Desc, { kind: 'struct' }>): Record<string, unknown> {
  const b = r.peekWs();
  const out: Record<string, unknown> = {};
  const seen = new Set<string>();
  const names = d.fields.map((f) => f.name);
  const finish = (): void => {
    for (const f of d.fields) {
      if (seen.has(f.name)) continue;
      if (f.default) out[f.name] = f.default();
      else if (f.desc.kind === 'option') out[f.name] = null;
      else throw new SerdeError(`missing field \`${f.name}\``);
    }
  };
  if (b === 0x7b) {
    r.enter();
    r.index++;
    let err: unknown;
    try {
      for (let key = r.mapNextKey(true); key !== undefined; key = r.mapNextKey(false)) {
        const f = d.fields.find((x) => x.name === key);
        if (!f) {
          if (d.denyUnknown) throw new SerdeError(`unknown field \`${key}\`, ${names.length ? oneOf(names) : 'there are no fields'}`);
          r.mapColon();
          r.parseAny();
          continue;
        }
        if (seen.has(key)) throw new SerdeError(`duplicate field \`${key}\``);
        seen.add(key);
        r.mapColon();
        out[key] = readValue(r, f.desc);
      }
      finish();
    } catch (e) {
      err = e;
    }
    r.leave();
    // serde_json evaluates `end_map()` even when the visitor failed; the visitor's error wins.
    try {
      r.endMap();
    } catch (e) {
      err ??= e;
    }
    if (err) throw r.fix(err);
    return out;
  }
  if (b === 0x5b) {
    // serde derive also accepts a struct as a sequence of its fields in declaration order.
    r.enter();
    r.index++;
    let err: unknown;
    try {
      let first = true;
      for (const [i, f] of d.fields.entries()) {
        if (!r.seqNext(first)) {
          if (f.default) {
            out[f.name] = f.default();
            continue;
          }
          throw new SerdeError(`invalid length ${i}, expected struct ${d.name} with ${d.fields.length} element${d.fields.length === 1 ? '' : 's'}`);
        }
        first = false;
        out[f.name] = readValue(r, f.desc);
      }
    } catch (e) {
      err = e;
    }
    r.leave();
    try {
      r.endSeq();
    } catch (e) {
      err ??= e;
    }
    if (err) throw r.fix(err);
    return out;
  }
  throw invalidType(r, d);
}

function readValue(r: SerdeReader, d: Desc): unknown {
  try {
    switch (d.kind) {
      case 'struct':
        return readStruct(r, d);
      case 'int':
        return readInt(r, d);
      case 'bool': {
        const b = r.peekWs();
        if (b === 0x74) { r.index++; r.parseIdent('rue'); return true; }
        if (b === 0x66) { r.index++; r.parseIdent('alse'); return false; }
        throw invalidType(r, d);
      }
      case 'string':
        if (r.peekWs() === 0x22) {
          r.index++;
          return r.parseStr();
        }
        throw invalidType(r, d);
      case 'enum':
        return readEnum(r, d);
      case 'option':
        if (r.peekWs() === 0x6e) {
          r.index++;
          r.parseIdent('ull');
          return null;
        }
        return readValue(r, d.inner);
      case 'seq': {
        if (r.peekWs() !== 0x5b) throw invalidType(r, d);
        r.enter();
        r.index++;
        const out: unknown[] = [];
        for (let first = true; r.seqNext(first); first = false) out.push(readValue(r, d.items));
        r.leave();
        r.endSeq();
        return out;
      }
      case 'map': {
        if (r.peekWs() !== 0x7b) throw invalidType(r, d);
        r.enter();
        r.index++;
        const out: Record<string, unknown> = {};
        for (let key = r.mapNextKey(true); key !== undefined; key = r.mapNextKey(false)) {
          r.mapColon();
          Object.defineProperty(out, key, { value: readValue(r, d.values), enumerable: true, writable: true, configurable: true });
        }
        r.leave();
        r.endMap();
        return out;
      }
      case 'any':
        return r.parseAny();
      case 'custom':
        return d.convert(readValue(r, d.inner) as never);
    }
  } catch (e) {
    throw r.fix(e);
  }
}

/**
 * Deserializes a complete JSON document (`serde_json::from_slice::<T>`): the value, then only
 * whitespace. Throws `SerdeError` with serde_json's text and position.
 */
export function deserialize<T>(input: Uint8Array | string, d: Desc): T {
  const r = new SerdeReader(typeof input === 'string' ? Buffer.from(input) : input);
  const v = readValue(r, d);
  r.end();
  return v as T;
}

/** Re-exported for resources that take raw JSON values. */
export { numberToValue };
export type { JsonValue };

/**
 * A request body as a client writes it: the keys `K` Firecracker requires, every other key
 * optional (absent means the server's default). Derived from the parsed shape, so a client's
 * types cannot drift from what the server accepts.
 */
export type RequestBody<T, K extends keyof T = never> = Pick<T, K> & Partial<T>;
