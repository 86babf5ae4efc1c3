/**
 * The VMM's seccomp filter for the whole process (docs/design.md, Seccomp): Kindling's own
 * allow-list (default-filter.ts) or the one a `--seccomp-filter` file gives, compiled and
 * installed on every thread at once with TSYNC.
 */
import { encode } from './bpf.js';
import { DEFAULT_FILTER } from './default-filter.js';
import { compileFilter, parseFilterFile } from './filter.js';
import { installProcessFilter } from './install.js';

/** Installs the filter from `fileText` (a filter file's content), or the default one. */
export function installSeccomp(fileText: string | null): void {
  const spec = fileText === null ? DEFAULT_FILTER : parseFilterFile(fileText);
  installProcessFilter(compileFilter(spec));
}

/** The compiled default program as bytes (what `installSeccomp(null)` installs). */
export function defaultProgram(): Buffer {
  return encode(compileFilter(DEFAULT_FILTER));
}
