/**
 * The kernel command line: a builder that validates as it goes, after linux-loader
 * `src/cmdline/mod.rs` (the crate Firecracker builds its command line with), and the writer
 * that puts it at CMDLINE_START (firecracker src/vmm/src/arch/x86_64/layout.rs).
 *
 * A command line has two parts: boot args (kernel parameters) and init args (handed to init),
 * joined by INIT_ARGS_SEPARATOR " -- ". Firecracker appends its own kernel parameters
 * (`virtio_mmio.device=...`, `root=...`, `pci=off`) to the boot args, i.e. before the " -- "
 * (firecracker src/vmm/src/builder.rs, the command line is finished last); `insertStr` does exactly that.
 *
 * Invariants, held after every successful call:
 * - every character is printable ASCII, ' '..'~' (so there is no NUL inside);
 * - the rendered line plus its NUL terminator is at most `capacity` bytes
 *   (CMDLINE_MAX_SIZE = 2048 by default: a 2047-character line fits, 2048 does not).
 * A failed call throws CmdlineError and leaves the builder unchanged.
 */
import { CMDLINE_MAX_SIZE, CMDLINE_START } from '../arch/x86_64/layout.js';
import { CmdlineError } from '../errors.js';
import { must, type GuestMemory } from '../memory/guest-memory.js';
import type { GuestPlacement } from './types.js';

/** Separates boot args from init args (linux-loader INIT_ARGS_SEPARATOR). */
export const INIT_ARGS_SEPARATOR = ' -- ';

/** Printable ASCII, space through tilde: what linux-loader's `valid_char` accepts. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * Throws CMDLINE_INVALID_CHAR unless `s` is printable ASCII. The kernel reads the line as a C
 * string, so a NUL would silently cut it short; control and non-ASCII bytes have no defined
 * meaning to its parser (kernel/params.c), so they are refused rather than passed through.
 */
function validChars(s: string): void {
  if (PRINTABLE_ASCII.test(s)) return;
  // Name the first offending character so the user can find it in a 2 KiB line.
  const bad = [...s].find((c) => !PRINTABLE_ASCII.test(c))!;
  const what = bad === '\0' ? 'a NUL' : `character U+${bad.codePointAt(0)!.toString(16).padStart(4, '0')}`;
  throw new CmdlineError('CMDLINE_INVALID_CHAR', `kernel command line holds ${what}; only printable ASCII is allowed`);
}

/**
 * True when the number of double quotes in `s` is even, i.e. a position right after `s` is
 * outside a quoted value: the kernel's parser (next_arg in lib/cmdline.c) lets quotes protect
 * spaces, so a quoted " -- " is part of a value, not the separator.
 */
const outsideQuotes = (s: string): boolean => (s.split('"').length - 1) % 2 === 0;

/** A validated kernel command line under construction. */
export class Cmdline {
  private boot = '';
  private init = '';

  /** `capacity` counts the trailing NUL, like linux-loader's `Cmdline::new`. */
  constructor(readonly capacity: number = CMDLINE_MAX_SIZE) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`command line capacity ${capacity} must be a positive integer`);
  }

  /**
   * Builds a command line from user text (boot_source.boot_args): everything after the first
   * " -- " that is not inside double quotes becomes init args (linux-loader
   * `Cmdline::try_from`). Both parts are trimmed.
   */
  static parse(raw: string, capacity: number = CMDLINE_MAX_SIZE): Cmdline {
    const c = new Cmdline(capacity);
    // Find the first unquoted separator; later ones belong to the init args verbatim.
    let at = raw.indexOf(INIT_ARGS_SEPARATOR);
    while (at >= 0 && !outsideQuotes(raw.slice(0, at))) at = raw.indexOf(INIT_ARGS_SEPARATOR, at + 1);
    const boot = (at < 0 ? raw : raw.slice(0, at)).trim();
    const init = at < 0 ? '' : raw.slice(at + INIT_ARGS_SEPARATOR.length).trim();
    validChars(boot);
    validChars(init);
    c.commit(boot, init);
    return c;
  }

  /** The kernel parameters (before " -- "). */
  get bootArgs(): string {
    return this.boot;
  }

  /** The arguments for init (after " -- "); empty when there are none. */
  get initArgs(): string {
    return this.init;
  }

  /** Appends kernel parameter text (one or more space-separated params) to the boot args. */
  insertStr(slug: string): this {
    // Trimmed like linux-loader, so a trailing newline from a config file is not an error.
    const s = slug.trim();
    validChars(s);
    this.commit(this.boot && s ? `${this.boot} ${s}` : this.boot || s, this.init);
    return this;
  }

  /**
   * Appends `key=value` to the boot args. The key may hold neither spaces nor '='; a value
   * with spaces must be double-quoted and may hold no other quote (linux-loader
   * `valid_key` / `valid_value`).
   */
  insert(key: string, value: string): this {
    validChars(key);
    validChars(value);
    if (key.length === 0 || key.includes(' ') || key.includes('=')) {
      throw new CmdlineError('CMDLINE_INVALID_PARAM', `kernel parameter name ${JSON.stringify(key)} is empty or holds a space or '='`);
    }
    // A value may be quoted to carry spaces; a quote anywhere else would unbalance the
    // kernel's quote tracking and swallow the following parameters.
    const quoted = value.length >= 2 && value.startsWith('"') && value.endsWith('"');
    if (value.length >= 3 && value.slice(1, -1).includes('"')) {
      throw new CmdlineError('CMDLINE_INVALID_PARAM', `value of ${key} has a double quote inside it`);
    }
    if (value.includes(' ') && !quoted) {
      throw new CmdlineError('CMDLINE_INVALID_PARAM', `value of ${key} holds spaces but is not double-quoted`);
    }
    return this.insertStr(`${key}=${value}`);
  }

  /** Appends text to the init args (after " -- "). */
  insertInitArgs(slug: string): this {
    const s = slug.trim();
    validChars(s);
    this.commit(this.boot, this.init && s ? `${this.init} ${s}` : this.init || s);
    return this;
  }

  /** The line as the kernel sees it, without the NUL. */
  toString(): string {
    return render(this.boot, this.init);
  }

  /** Bytes the line occupies in guest memory, NUL included (boot_params.hdr.cmdline_size). */
  get size(): number {
    return this.toString().length + 1;
  }

  /** The NUL-terminated bytes to write at CMDLINE_START. */
  toBytes(): Uint8Array {
    const s = this.toString();
    const out = new Uint8Array(s.length + 1); // zero-filled: the last byte is the NUL
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i); // ASCII, checked on insert
    return out;
  }

  /** Stores both parts if the result fits the capacity; otherwise throws, changing nothing. */
  private commit(boot: string, init: string): void {
    // Measure the rendered line, separator included, so `size` can never exceed the capacity.
    const size = render(boot, init).length + 1;
    if (size > this.capacity) {
      throw new CmdlineError('CMDLINE_TOO_LONG', `kernel command line would be ${size} bytes with its NUL; the limit is ${this.capacity}`);
    }
    this.boot = boot;
    this.init = init;
  }
}

/**
 * Joins the two parts. linux-loader refuses init args without boot args; the kernel accepts a
 * leading "--", so Kindling renders "-- init" rather than failing.
 */
function render(boot: string, init: string): string {
  if (!init) return boot;
  return boot ? `${boot}${INIT_ARGS_SEPARATOR}${init}` : `${INIT_ARGS_SEPARATOR.trimStart()}${init}`;
}

/**
 * Writes the NUL-terminated command line at CMDLINE_START and returns where it went; `size`
 * (NUL included) is what boot_params.hdr.cmdline_size gets (firecracker src/vmm/src/arch/x86_64/mod.rs). A string is parsed
 * first (Cmdline.parse). Throws CmdlineError CMDLINE_TOO_LONG when it exceeds
 * CMDLINE_MAX_SIZE, whatever the builder's own capacity.
 */
export function writeCmdline(mem: GuestMemory, cmdline: Cmdline | string): GuestPlacement {
  const c = typeof cmdline === 'string' ? Cmdline.parse(cmdline) : cmdline;
  const bytes = c.toBytes();
  // The builder enforces its own capacity, which a caller may have set higher; the guest
  // region reserved at CMDLINE_START is what bounds the write.
  if (bytes.length > CMDLINE_MAX_SIZE) {
    throw new CmdlineError('CMDLINE_TOO_LONG', `kernel command line is ${bytes.length} bytes with its NUL; the limit is ${CMDLINE_MAX_SIZE}`);
  }
  // must(): CMDLINE_START is in low RAM, which every guest has; a failure is a set-up bug.
  must(mem.write(CMDLINE_START, bytes));
  return { addr: CMDLINE_START, size: bytes.length };
}
