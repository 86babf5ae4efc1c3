/**
 * A byte reader that reproduces serde_json's `SliceRead` + `Deserializer` primitives (firecracker src/firecracker/src/api_server/parsed_request.rs):
 * whitespace, strings, numbers, literals, and the exact error texts and positions serde_json
 * reports ("expected `,` or `}` at line 1 column 12"). Firecracker embeds these texts in its
 * `fault_message`, so tools match on them; positions are byte offsets on the line, as in
 * serde_json's `position_of_index`.
 *
 * The schema-driven half (structs, enums, `deny_unknown_fields`) lives in serde.ts.
 */
import { ApiLayerError } from '../errors.js';

/** serde_json `ErrorCode` display texts (serde_json/src/error.rs). */
export const SERDE_CODES = {
  EofWhileParsingList: 'EOF while parsing a list',
  EofWhileParsingObject: 'EOF while parsing an object',
  EofWhileParsingString: 'EOF while parsing a string',
  EofWhileParsingValue: 'EOF while parsing a value',
  ExpectedColon: 'expected `:`',
  ExpectedListCommaOrEnd: 'expected `,` or `]`',
  ExpectedObjectCommaOrEnd: 'expected `,` or `}`',
  ExpectedSomeIdent: 'expected ident',
  ExpectedSomeValue: 'expected value',
  InvalidEscape: 'invalid escape',
  InvalidNumber: 'invalid number',
  NumberOutOfRange: 'number out of range',
  InvalidUnicodeCodePoint: 'invalid unicode code point',
  ControlCharacterWhileParsingString: 'control character (\\u0000-\\u001F) found while parsing a string',
  KeyMustBeAString: 'key must be a string',
  LoneLeadingSurrogateInHexEscape: 'lone leading surrogate in hex escape',
  TrailingComma: 'trailing comma',
  TrailingCharacters: 'trailing characters',
  UnexpectedEndOfHexEscape: 'unexpected end of hex escape',
  RecursionLimitExceeded: 'recursion limit exceeded',
} as const;

/**
 * A serde_json error: `reason` is the code/custom text, `line`/`column` its position (0/0 for
 * errors serde_json reports without one, e.g. `Error::custom` after deserialization).
 */
export class SerdeError extends ApiLayerError {
  readonly reason: string;
  line: number;
  column: number;
  constructor(reason: string, line = 0, column = 0) {
    super('CONFIG_DESERIALIZE', line === 0 ? reason : `${reason} at line ${line} column ${column}`);
    this.reason = reason;
    this.line = line;
    this.column = column;
  }

  /** Gives a position-less error the reader's current position (serde_json `fix_position`). */
  fixPosition(line: number, column: number): this {
    if (this.line === 0) {
      this.line = line;
      this.column = column;
      this.message = `${this.reason} at line ${line} column ${column}`;
    }
    return this;
  }
}

/**
 * A JSON number that a JS `number` cannot carry faithfully: floats (serde_json prints `1.0`,
 * never `1`) and integers beyond 2^53. `text` is what serde_json would serialize.
 */
export class JsonNumber {
  constructor(readonly text: string, readonly value: number) {}
  toJSON(): number {
    return this.value;
  }
}

/** A serde_json `Value`: safe integers are plain numbers, other numbers are `JsonNumber`. */
export type JsonValue = null | boolean | number | string | JsonNumber | JsonValue[] | { [key: string]: JsonValue };

/** A number as serde_json's parser classifies it: u64, negative i64, or f64. */
export type ParsedNumber =
  | { kind: 'u64'; big: bigint }
  | { kind: 'i64'; big: bigint }
  | { kind: 'f64'; value: number };

const RECURSION_LIMIT = 128;
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** serde_json's reader over one complete input (`serde_json::from_slice`). */
export class SerdeReader {
  index = 0;
  private depth = RECURSION_LIMIT;
  constructor(readonly buf: Uint8Array) {}

  /** Line and column of byte `i` (serde_json `position_of_index`). */
  positionOf(i: number): [number, number] {
    let startOfLine = 0;
    let line = 1;
    for (let k = 0; k < i; k++) {
      if (this.buf[k] === 0x0a) {
        line++;
        startOfLine = k + 1;
      }
    }
    return [line, i - startOfLine];
  }

  /** An error at the current index (serde_json `Deserializer::error`). */
  error(reason: string): SerdeError {
    const [l, c] = this.positionOf(this.index);
    return new SerdeError(reason, l, c);
  }

  /** An error one byte past the current index (serde_json `peek_error`). */
  peekError(reason: string): SerdeError {
    const [l, c] = this.positionOf(Math.min(this.index + 1, this.buf.length));
    return new SerdeError(reason, l, c);
  }

  /** Attaches the current position to a position-less error (serde_json `fix_position`). */
  fix(e: unknown): unknown {
    if (e instanceof SerdeError && e.line === 0) {
      const [l, c] = this.positionOf(this.index);
      e.fixPosition(l, c);
    }
    return e;
  }

  /** Skips JSON whitespace and returns the next byte without consuming it. */
  peekWs(): number | undefined {
    while (this.index < this.buf.length) {
      const b = this.buf[this.index]!;
      if (b !== 0x20 && b !== 0x0a && b !== 0x09 && b !== 0x0d) return b;
      this.index++;
    }
    return undefined;
  }

  /** Enters a container; serde_json fails past 128 nesting levels. */
  enter(): void {
    if (--this.depth === 0) throw this.peekError(SERDE_CODES.RecursionLimitExceeded);
  }

  /** Leaves a container. */
  leave(): void {
    this.depth++;
  }

  /** After the top-level value: only whitespace may follow (serde_json `Deserializer::end`). */
  end(): void {
    if (this.peekWs() !== undefined) throw this.peekError(SERDE_CODES.TrailingCharacters);
  }

  /** Consumes the rest of a literal after its first byte (serde_json `parse_ident`). */
  parseIdent(rest: string): void {
    for (let k = 0; k < rest.length; k++) {
      if (this.index >= this.buf.length) throw this.error(SERDE_CODES.EofWhileParsingValue);
      const b = this.buf[this.index++]!;
      if (b !== rest.charCodeAt(k)) throw this.error(SERDE_CODES.ExpectedSomeIdent);
    }
  }

  /** Parses a string whose opening quote was consumed (SliceRead `parse_str`). */
  parseStr(): string {
    const parts: string[] = [];
    let start = this.index;
    for (;;) {
      while (this.index < this.buf.length) {
        const b = this.buf[this.index]!;
        if (b === 0x22 || b === 0x5c || b < 0x20) break;
        this.index++;
      }
      if (this.index >= this.buf.length) throw this.error(SERDE_CODES.EofWhileParsingString);
      const b = this.buf[this.index]!;
      if (b === 0x22) {
        parts.push(this.decode(start, this.index));
        this.index++;
        return parts.join('');
      }
      if (b === 0x5c) {
        parts.push(this.decode(start, this.index));
        this.index++;
        parts.push(this.parseEscape());
        start = this.index;
        continue;
      }
      this.index++;
      throw this.error(SERDE_CODES.ControlCharacterWhileParsingString);
    }
  }

  private decode(from: number, to: number): string {
    try {
      return utf8.decode(this.buf.subarray(from, to));
    } catch {
      throw this.error(SERDE_CODES.InvalidUnicodeCodePoint);
    }
  }

  private parseEscape(): string {
    if (this.index >= this.buf.length) throw this.error(SERDE_CODES.EofWhileParsingString);
    const c = this.buf[this.index++]!;
    switch (c) {
      case 0x22: return '"';
      case 0x5c: return '\\';
      case 0x2f: return '/';
      case 0x62: return '\b';
      case 0x66: return '\f';
      case 0x6e: return '\n';
      case 0x72: return '\r';
      case 0x74: return '\t';
      case 0x75: {
        const hi = this.hex4();
        if (hi < 0xd800 || hi > 0xdfff) return String.fromCharCode(hi);
        if (hi >= 0xdc00) throw this.error(SERDE_CODES.LoneLeadingSurrogateInHexEscape);
        if (this.buf[this.index] !== 0x5c || this.buf[this.index + 1] !== 0x75) {
          if (this.index >= this.buf.length) throw this.error(SERDE_CODES.EofWhileParsingString);
          throw this.error(SERDE_CODES.UnexpectedEndOfHexEscape);
        }
        this.index += 2;
        const lo = this.hex4();
        if (lo < 0xdc00 || lo > 0xdfff) throw this.error(SERDE_CODES.LoneLeadingSurrogateInHexEscape);
        return String.fromCharCode(hi, lo);
      }
      default:
        throw this.error(SERDE_CODES.InvalidEscape);
    }
  }

  private hex4(): number {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      if (this.index >= this.buf.length) throw this.error(SERDE_CODES.EofWhileParsingString);
      const d = parseInt(String.fromCharCode(this.buf[this.index++]!), 16);
      if (Number.isNaN(d)) throw this.error(SERDE_CODES.InvalidEscape);
      v = v * 16 + d;
    }
    return v;
  }

  /** Parses a number; a leading '-' has already been consumed when `positive` is false. */
  parseNumber(positive: boolean): ParsedNumber {
    const begin = this.index;
    if (this.index >= this.buf.length) throw this.error(SERDE_CODES.EofWhileParsingValue);
    const first = this.buf[this.index++]!;
    if (first === 0x30) {
      if (this.isDigit(this.buf[this.index])) throw this.peekError(SERDE_CODES.InvalidNumber);
    } else if (first >= 0x31 && first <= 0x39) {
      while (this.isDigit(this.buf[this.index])) this.index++;
    } else {
      throw this.error(SERDE_CODES.InvalidNumber);
    }
    let isFloat = false;
    if (this.buf[this.index] === 0x2e) {
      isFloat = true;
      this.index++;
      if (!this.isDigit(this.buf[this.index])) {
        throw this.peekError(this.index < this.buf.length ? SERDE_CODES.InvalidNumber : SERDE_CODES.EofWhileParsingValue);
      }
      while (this.isDigit(this.buf[this.index])) this.index++;
    }
    const e = this.buf[this.index];
    if (e === 0x65 || e === 0x45) {
      isFloat = true;
      this.index++;
      const sign = this.buf[this.index];
      if (sign === 0x2b || sign === 0x2d) this.index++;
      if (this.index >= this.buf.length) throw this.error(SERDE_CODES.EofWhileParsingValue);
      if (!this.isDigit(this.buf[this.index])) {
        this.index++;
        throw this.error(SERDE_CODES.InvalidNumber);
      }
      while (this.isDigit(this.buf[this.index])) this.index++;
    }
    const text = (positive ? '' : '-') + Buffer.from(this.buf.subarray(begin, this.index)).toString('latin1');
    if (!isFloat) {
      const big = BigInt(text);
      if (positive && big <= U64_MAX) return { kind: 'u64', big };
      if (!positive && big < 0n && big >= I64_MIN) return { kind: 'i64', big };
    }
    const value = Number(text);
    if (!Number.isFinite(value)) throw this.error(SERDE_CODES.NumberOutOfRange);
    return { kind: 'f64', value };
  }

  private isDigit(b: number | undefined): boolean {
    return b !== undefined && b >= 0x30 && b <= 0x39;
  }

  /** Parses any JSON value (serde_json `Value` / `IgnoredAny`). */
  parseAny(): JsonValue {
    const b = this.peekWs();
    if (b === undefined) throw this.peekError(SERDE_CODES.EofWhileParsingValue);
    switch (b) {
      case 0x6e: this.index++; this.parseIdent('ull'); return null;
      case 0x74: this.index++; this.parseIdent('rue'); return true;
      case 0x66: this.index++; this.parseIdent('alse'); return false;
      case 0x2d: this.index++; return numberToValue(this.parseNumber(false));
      case 0x22: this.index++; return this.parseStr();
      case 0x5b: {
        this.enter();
        this.index++;
        const out: JsonValue[] = [];
        for (let first = true; this.seqNext(first); first = false) out.push(this.parseAny());
        this.leave();
        this.endSeq();
        return out;
      }
      case 0x7b: {
        this.enter();
        this.index++;
        const out: { [key: string]: JsonValue } = {};
        for (let key = this.mapNextKey(true); key !== undefined; key = this.mapNextKey(false)) {
          this.mapColon();
          const v = this.parseAny();
          Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
        }
        this.leave();
        this.endMap();
        return out;
      }
      default:
        if (b >= 0x30 && b <= 0x39) return numberToValue(this.parseNumber(true));
        throw this.peekError(SERDE_CODES.ExpectedSomeValue);
    }
  }

  /** SeqAccess::next_element: true when another element follows (its first byte peeked). */
  seqNext(first: boolean): boolean {
    let b = this.peekWs();
    if (b === 0x5d) return false;
    if (b === 0x2c && !first) {
      this.index++;
      b = this.peekWs();
    } else if (b !== undefined && !first) {
      throw this.peekError(SERDE_CODES.ExpectedListCommaOrEnd);
    } else if (b === undefined) {
      throw this.peekError(SERDE_CODES.EofWhileParsingList);
    }
    if (b === 0x5d) throw this.peekError(SERDE_CODES.TrailingComma);
    if (b === undefined) throw this.peekError(SERDE_CODES.EofWhileParsingValue);
    return true;
  }

  /** serde_json `end_seq`, after the visitor stopped reading elements. */
  endSeq(): void {
    const b = this.peekWs();
    if (b === 0x5d) {
      this.index++;
      return;
    }
    if (b === 0x2c) {
      this.index++;
      if (this.peekWs() === 0x5d) throw this.peekError(SERDE_CODES.TrailingComma);
      throw this.peekError(SERDE_CODES.TrailingCharacters);
    }
    if (b === undefined) throw this.peekError(SERDE_CODES.EofWhileParsingList);
    throw this.peekError(SERDE_CODES.TrailingCharacters);
  }

  /** MapAccess::next_key for string keys: the key, or undefined at `}` (not consumed). */
  mapNextKey(first: boolean): string | undefined {
    let b = this.peekWs();
    if (b === 0x7d) return undefined;
    if (b === 0x2c && !first) {
      this.index++;
      b = this.peekWs();
    } else if (b !== undefined && !first) {
      throw this.peekError(SERDE_CODES.ExpectedObjectCommaOrEnd);
    } else if (b === undefined) {
      throw this.peekError(SERDE_CODES.EofWhileParsingObject);
    }
    if (b === 0x22) {
      this.index++;
      return this.parseStr();
    }
    if (b === 0x7d) throw this.peekError(SERDE_CODES.TrailingComma);
    if (b === undefined) throw this.peekError(SERDE_CODES.EofWhileParsingValue);
    throw this.peekError(SERDE_CODES.KeyMustBeAString);
  }

  /** serde_json `parse_object_colon`. */
  mapColon(): void {
    const b = this.peekWs();
    if (b === 0x3a) {
      this.index++;
      return;
    }
    if (b === undefined) throw this.peekError(SERDE_CODES.EofWhileParsingObject);
    throw this.peekError(SERDE_CODES.ExpectedColon);
  }

  /** serde_json `end_map`. */
  endMap(): void {
    const b = this.peekWs();
    if (b === 0x7d) {
      this.index++;
      return;
    }
    if (b === 0x2c) throw this.peekError(SERDE_CODES.TrailingComma);
    if (b === undefined) throw this.peekError(SERDE_CODES.EofWhileParsingObject);
    throw this.peekError(SERDE_CODES.TrailingCharacters);
  }
}

/** Converts a parsed number into a `JsonValue` (plain number when exact). */
export function numberToValue(n: ParsedNumber): JsonValue {
  if (n.kind === 'f64') return new JsonNumber(formatF64(n.value), n.value);
  const v = Number(n.big);
  return Number.isSafeInteger(v) ? v : new JsonNumber(n.big.toString(), v);
}

/**
 * Formats an f64 the way serde_json does (ryu `format64`): shortest round-trip digits, decimal
 * notation for exponents in [-5, 16], else `1.5e-7` / `1e20`; always a `.0` on integral values.
 */
export function formatF64(v: number): string {
  if (Object.is(v, -0)) return '-0.0';
  if (v === 0) return '0.0';
  const neg = v < 0;
  const [mant, expStr] = Math.abs(v).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const length = digits.length;
  const kk = Number(expStr) + 1; // position of the decimal point relative to the digits
  const k = kk - length;
  let out: string;
  if (k >= 0 && kk <= 16) out = `${digits}${'0'.repeat(k)}.0`;
  else if (kk > 0 && kk <= 16) out = `${digits.slice(0, kk)}.${digits.slice(kk)}`;
  else if (kk > -5 && kk <= 0) out = `0.${'0'.repeat(-kk)}${digits}`;
  else if (length === 1) out = `${digits}e${kk - 1}`;
  else out = `${digits[0]}.${digits.slice(1)}e${kk - 1}`;
  return neg ? `-${out}` : out;
}

/**
 * Serializes a `JsonValue` compactly as serde_json does with its default `BTreeMap`: object keys
 * sorted by their UTF-8 bytes, floats via `formatF64` (firecracker src/firecracker/src/api_server/parsed_request.rs: GET /mmds output).
 */
export function serdeJsonStringify(v: JsonValue): string {
  if (v === null) return 'null';
  if (v instanceof JsonNumber) return v.text;
  if (Array.isArray(v)) return `[${v.map(serdeJsonStringify).join(',')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return `{${keys.map((k) => `${JSON.stringify(k)}:${serdeJsonStringify(v[k]!)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Parses a whole document as a serde_json `Value` (e.g. PUT /mmds, --metadata). */
export function parseJsonValue(input: Uint8Array | string): JsonValue {
  const r = new SerdeReader(typeof input === 'string' ? Buffer.from(input) : input);
  let v: JsonValue;
  try {
    v = r.parseAny();
  } catch (e) {
    throw r.fix(e);
  }
  r.end();
  return v;
}
