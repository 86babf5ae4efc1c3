/**
 * fast-json-stringify, loaded and compiled on first use. Requiring it pulls in ajv and its
 * helpers (about a third of the CLI's module loading), and each schema compiles to code; the
 * API socket should accept before any of that is needed (Firecracker starts in milliseconds).
 * A leaf utility: imports nothing from Kindling.
 */
import { createRequire } from 'node:module';

type Compile = (schema: unknown) => (o: unknown) => string;

let compileImpl: Compile | undefined;

/**
 * The fast-json-stringify compiler, required once. The require is made here, not at module
 * load: the CLI's startup snapshot evaluates this module at build time (scripts/bundle.mjs).
 */
function compiler(): Compile {
  return (compileImpl ??= createRequire(import.meta.url)('fast-json-stringify') as Compile);
}

/** A serializer for `schema`, compiled on its first call. */
export function lazySerializer(schema: unknown): (o: unknown) => string {
  let fn: ((o: unknown) => string) | undefined;
  return (o) => (fn ??= compiler()(schema))(o);
}

/** Compiles `schema` now (for serializers built at run time, e.g. per metrics key layout). */
export function compileSerializer(schema: unknown): (o: unknown) => string {
  return compiler()(schema);
}

/** Loads the library ahead of use (called once the API socket listens). */
export function preloadSerializer(): void {
  compiler();
}
