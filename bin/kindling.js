#!/usr/bin/env node
// Kindling launcher: runs src/cli/bin.ts from the esbuild bundle (dist/bundle/, one entry file
// and a few shared chunks: start-up loads a handful of files instead of a module graph of
// ~50, docs/design.md Start-up); from tsc's dist/src when the bundle was not built.
try {
  await import('../dist/bundle/kindling.js');
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('dist/bundle/kindling.js')) throw e;
  await import('../dist/src/cli/bin.js');
}
