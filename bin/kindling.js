#!/usr/bin/env node
// Kindling launcher: runs the Firecracker-compatible CLI (src/cli/main.ts) from the build in
// dist/. The VM backend comes from dist/src/vmm/backend.js (`createBackend`) when that module
// exists; until then every InstanceStart fails with a clear "no VM backend" error.
import { runCli, unavailableBackend } from '../dist/src/cli/main.js';

let createBackend = unavailableBackend;
try {
  ({ createBackend } = await import('../dist/src/vmm/backend.js'));
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('vmm/backend.js')) throw e;
}

const code = await runCli(process.argv.slice(2), { createBackend });
if (code === 134) process.kill(process.pid, 'SIGABRT');
process.exit(code);
