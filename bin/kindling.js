#!/usr/bin/env node
// Kindling launcher: the Firecracker-compatible CLI (src/cli/main.ts) from the build in dist/,
// with the real KVM backend (src/api/kindling-backend.ts).
import { runCli } from '../dist/src/cli/main.js';
import { createBackend } from '../dist/src/api/kindling-backend.js';

const code = await runCli(process.argv.slice(2), { createBackend });
if (code === 134) process.kill(process.pid, 'SIGABRT');
process.exit(code);
