/**
 * The MMDS data as the guest reads it: an index over the data store's JSON text, JSON-pointer
 * lookup and the two output formats (Firecracker src/vmm/src/mmds/data_store.rs `get_value`,
 * `format_imds`; serde_json `Value::pointer`).
 *
 * The stack is handed the store's serialization (src/config/mmds-data.ts serializes it as
 * serde_json does: compact, keys sorted by their UTF-8 bytes, floats as `1.0`), not a value:
 * text crosses to the net workers intact, and a JSON answer is then a slice of it, exactly
 * what Firecracker's `json.to_string()` prints, with no number formatting redone here. The
 * index keeps every node's source range; strings are decoded only when read.
 */
import { MmdsError } from '../errors.js';

/** One JSON value in the text: its kind, its source range, and its members. */
export type DataNode =
  | { readonly kind: 'object'; readonly start: number; readonly end: number; readonly members: ReadonlyMap<string, DataNode> }
  | { readonly kind: 'array'; readonly start: number; readonly end: number; readonly items: readonly DataNode[] }
  | { readonly kind: 'string' | 'number' | 'boolean' | 'null'; readonly start: number; readonly end: number };

/** Deepest nesting accepted (serde_json's recursion limit is 128, so the store never holds deeper). */
const MAX_DEPTH = 512;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const WS = /[ \t\n\r]*/y;

/** Recursive-descent reader of one JSON text into DataNodes. */
class Indexer {
  private pos = 0;
  constructor(private readonly text: string) {}

  run(): DataNode {
    const v = this.value(0);
    this.ws();
    if (this.pos !== this.text.length) this.fail('trailing characters');
    return v;
  }

  private fail(what: string): never {
    throw new MmdsError('MMDS_DATA_INVALID', `MMDS data is not JSON: ${what} at ${this.pos}`);
  }

  private ws(): void {
    WS.lastIndex = this.pos;
    WS.exec(this.text);
    this.pos = WS.lastIndex;
  }

  private match(re: RegExp): number {
    re.lastIndex = this.pos;
    if (!re.test(this.text)) this.fail('invalid token');
    return (this.pos = re.lastIndex);
  }

  private value(depth: number): DataNode {
    if (depth > MAX_DEPTH) this.fail('nesting too deep');
    this.ws();
    const start = this.pos;
    const c = this.text[start];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return { kind: 'string', start, end: this.match(STRING) };
    for (const [word, kind] of [['true', 'boolean'], ['false', 'boolean'], ['null', 'null']] as const) {
      if (this.text.startsWith(word, start)) {
        this.pos += word.length;
        return { kind, start, end: this.pos };
      }
    }
    return { kind: 'number', start, end: this.match(NUMBER) };
  }

  private object(depth: number): DataNode {
    const start = this.pos++;
    const members = new Map<string, DataNode>();
    this.ws();
    if (this.text[this.pos] === '}') return { kind: 'object', start, end: ++this.pos, members };
    for (;;) {
      this.ws();
      const keyStart = this.pos;
      const key = JSON.parse(this.text.slice(keyStart, this.match(STRING))) as string;
      this.ws();
      if (this.text[this.pos++] !== ':') this.fail("expected ':'");
      members.set(key, this.value(depth + 1));
      this.ws();
      const c = this.text[this.pos++];
      if (c === '}') return { kind: 'object', start, end: this.pos, members };
      if (c !== ',') this.fail("expected ',' or '}'");
    }
  }

  private array(depth: number): DataNode {
    const start = this.pos++;
    const items: DataNode[] = [];
    this.ws();
    if (this.text[this.pos] === ']') return { kind: 'array', start, end: ++this.pos, items };
    for (;;) {
      items.push(this.value(depth + 1));
      this.ws();
      const c = this.text[this.pos++];
      if (c === ']') return { kind: 'array', start, end: this.pos, items };
      if (c !== ',') this.fail("expected ',' or ']'");
    }
  }
}

/** serde_json `parse_index`: a decimal array index without sign or leading zero. */
function arrayIndex(token: string): number {
  return /^(0|[1-9][0-9]*)$/.test(token) ? Number(token) : -1;
}

/** The MMDS data: the JSON text and its index. */
export class MmdsData {
  /** The root node. */
  readonly root: DataNode;

  /** Indexes `text` (throws MmdsError when it is not one JSON value). */
  constructor(readonly text: string) {
    this.root = new Indexer(text).run();
  }

  /**
   * serde_json `Value::pointer` (RFC 6901): "" is the whole value, otherwise "/"-separated
   * tokens with `~1` → `/` then `~0` → `~`; arrays take decimal indexes.
   */
  pointer(path: string): DataNode | undefined {
    if (path === '') return this.root;
    if (!path.startsWith('/')) return undefined;
    let node: DataNode | undefined = this.root;
    for (const raw of path.slice(1).split('/')) {
      const token = raw.replaceAll('~1', '/').replaceAll('~0', '~');
      if (node.kind === 'object') node = node.members.get(token);
      else if (node.kind === 'array') node = node.items[arrayIndex(token)];
      else return undefined;
      if (node === undefined) return undefined;
    }
    return node;
  }

  /**
   * The value at a request path (data_store.rs `get_value`): a path ending in `/` looks up
   * the path without that one `/`.
   */
  lookup(path: string): DataNode | undefined {
    return this.pointer(path.endsWith('/') ? path.slice(0, -1) : path);
  }

  /** A node as JSON text: its slice of the store's serialization. */
  json(node: DataNode): string {
    return this.text.slice(node.start, node.end);
  }

  /**
   * A node in IMDS format (data_store.rs `format_imds`): an object lists its keys one per line
   * (no trailing newline), an object-valued key suffixed with `/`; a string is its raw value;
   * anything else has no IMDS form (null → the 501 answer).
   */
  imds(node: DataNode): string | null {
    if (node.kind === 'string') return JSON.parse(this.json(node)) as string;
    if (node.kind !== 'object') return null;
    const lines: string[] = [];
    for (const [key, child] of node.members) lines.push(child.kind === 'object' ? `${key}/` : key);
    return lines.join('\n');
  }
}
