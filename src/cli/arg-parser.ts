/**
 * Firecracker's command-line parser (src/utils/src/arg_parser.rs): `--name value` only (no
 * `--name=value`, a value may not start with `--`), duplicates and unknown arguments are errors,
 * `--` ends the options, `--help`/`-h` and `--version` short-circuit everything else, and
 * `requires`/`forbids` are checked after parsing. Errors exit with 153 (main.ts).
 */
import { ApiLayerError } from '../errors.js';

/** One accepted argument. */
export interface ArgSpec {
  name: string;
  takesValue: boolean;
  defaultValue?: string;
  requires?: string;
  forbids?: readonly string[];
  required?: boolean;
  /** `allow_multiple`: the argument may repeat, each time with a value (the jailer's --cgroup). */
  multiple?: boolean;
  help?: string;
}

/** `UtilsArgParserError`: `message` is its Display, `debug` its `{:?}`. */
export class ArgParseError extends ApiLayerError {
  readonly debug: string;
  constructor(message: string, debug: string) {
    super('CLI_ARGUMENT', message);
    this.debug = debug;
  }
}

const q = (s: string): string => JSON.stringify(s);
const errors = {
  forbidden: (a: string, b: string) => new ArgParseError(`Argument '${b}' cannot be used together with argument '${a}'.`, `ForbiddenArgument(${q(a)}, ${q(b)})`),
  missingArgument: (a: string) => new ArgParseError(`Argument '${a}' required, but not found.`, `MissingArgument(${q(a)})`),
  missingValue: (a: string) => new ArgParseError(`The argument '${a}' requires a value, but none was supplied.`, `MissingValue(${q(a)})`),
  unexpected: (a: string) => new ArgParseError(`Found argument '${a}' which wasn't expected, or isn't valid in this context.`, `UnexpectedArgument(${q(a)})`),
  duplicate: (a: string) => new ArgParseError(`The argument '${a}' was provided more than once.`, `DuplicateArgument(${q(a)})`),
};

/** The parse result: user values (flags as `true`), defaults applied on lookup. */
export class ParsedArgs {
  constructor(
    private readonly specs: ReadonlyMap<string, ArgSpec>,
    private readonly values: ReadonlyMap<string, string | true | string[]>,
    /** Arguments after `--`. */
    readonly extra: readonly string[],
  ) {}

  /** `single_value`: the user's value or the default. */
  value(name: string): string | undefined {
    const v = this.values.get(name);
    if (typeof v === 'string') return v;
    return v === undefined ? this.specs.get(name)?.defaultValue : undefined;
  }

  /** `multiple_values`: every value of a repeatable argument, in order (empty when absent). */
  all(name: string): readonly string[] {
    const v = this.values.get(name);
    return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  }

  /** `flag_present`. */
  flag(name: string): boolean {
    return this.values.get(name) === true;
  }

  /** True when the user gave `name` (not just a default). */
  given(name: string): boolean {
    return this.values.has(name);
  }
}

/**
 * `Arguments::parse` on `args` (argv without the program name). `--help`/`-h` wins over
 * `--version`, both over everything else (even invalid arguments).
 */
export function parseArgs(specList: readonly ArgSpec[], args: readonly string[]): ParsedArgs {
  const specs = new Map(specList.map((s) => [s.name, s]));
  const sep = args.indexOf('--');
  const own = sep === -1 ? args : args.slice(0, sep);
  const extra = sep === -1 ? [] : args.slice(sep + 1);
  if (own.includes('--help') || own.includes('-h')) return new ParsedArgs(specs, new Map([['help', true]]), extra);
  if (own.includes('--version')) return new ParsedArgs(specs, new Map([['version', true]]), extra);
  const values = new Map<string, string | true | string[]>();
  for (let i = 0; i < own.length; i++) {
    const arg = own[i]!;
    if (!arg.startsWith('--')) throw errors.unexpected(arg);
    const name = arg.slice(2);
    const spec = specs.get(name);
    if (!spec) throw errors.unexpected(name);
    if (spec.multiple) {
      const v = own[i + 1];
      if (v === undefined || v.startsWith('--')) throw errors.missingValue(name);
      const prev = values.get(name);
      values.set(name, [...(Array.isArray(prev) ? prev : []), v]);
      i++;
      continue;
    }
    if (values.has(name)) throw errors.duplicate(name);
    if (spec.takesValue) {
      const v = own[i + 1];
      if (v === undefined || v.startsWith('--')) throw errors.missingValue(name);
      values.set(name, v);
      i++;
    } else {
      values.set(name, true);
    }
  }
  // validate_requirements: BTreeMap order (by name).
  for (const spec of [...specList].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (spec.required && !values.has(spec.name)) throw errors.missingArgument(spec.name);
    if (!values.has(spec.name)) continue;
    if (spec.requires && !own.includes(`--${spec.requires}`)) throw errors.missingArgument(spec.requires);
    for (const f of spec.forbids ?? []) if (own.includes(`--${f}`)) throw errors.forbidden(spec.name, f);
  }
  return new ParsedArgs(specs, values, extra);
}

function formatName(s: ArgSpec): string {
  return s.takesValue || s.multiple ? `  --${s.name} <${s.name}>` : `  --${s.name}`;
}

/** `ArgParser::formatted_help`: required then optional arguments, aligned, sorted by name. */
export function formattedHelp(specList: readonly ArgSpec[]): string {
  const section = (required: boolean): string => {
    const list = [...specList].filter((s) => (s.required ?? false) === required).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const width = Math.max(0, ...list.map((s) => formatName(s).length));
    return list
      .map((s) => {
        const help = s.help && s.defaultValue !== undefined ? `${s.help} [default: "${s.defaultValue}"]` : s.help ?? (s.defaultValue !== undefined ? `[default: "${s.defaultValue}"]` : '');
        return `${formatName(s).padEnd(width)}   ${help}`;
      })
      .join('\n');
  };
  const out: string[] = [];
  const req = section(true);
  if (req) out.push('required arguments:', req);
  const opt = section(false);
  if (opt) {
    if (out.length) out.push('');
    out.push('optional arguments:', opt);
  }
  return out.join('\n');
}
