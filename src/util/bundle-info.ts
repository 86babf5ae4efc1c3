/**
 * Whether this code runs from the esbuild bundle (dist/bundle/, scripts/bundle.mjs) or from
 * tsc's module tree (dist/src/), and what the bundle step baked in (docs/design.md, Start-up).
 *
 * scripts/bundle.mjs replaces the free identifier `KINDLING_BUNDLE` with an object literal
 * (esbuild `define`); in tsc's output the identifier stays undeclared, and `typeof` of an
 * undeclared name is 'undefined', never a ReferenceError. Invariant: every bundle output file,
 * entries and shared chunks, lies flat in one folder, so `new URL('./<entry>.js',
 * import.meta.url)` names a sibling entry from any chunk.
 *
 * A leaf utility: imports nothing.
 */
declare const KINDLING_BUNDLE: { version: string } | undefined;

/** What the bundle step recorded; undefined when running from dist/src. */
export const BUNDLE: { version: string } | undefined = typeof KINDLING_BUNDLE === 'undefined' ? undefined : KINDLING_BUNDLE;
