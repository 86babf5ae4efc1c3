#!/usr/bin/env node
// Kindling's jailer (src/jailer/main.ts), installed as `kindling-jailer` and `jailer`: it
// returns only when it did not exec the VMM. 134 is a panic: Firecracker's jailer aborts there.
import { runJailer, EXIT_ABORT } from '../dist/src/jailer/main.js';

const code = runJailer(process.argv.slice(2));
if (code === EXIT_ABORT) process.kill(process.pid, 'SIGABRT');
else process.exitCode = code;
