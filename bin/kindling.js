#!/usr/bin/env node
// Kindling launcher: the Firecracker-compatible CLI (src/cli/main.ts) from the build in dist/,
// with VMs built on KVM (src/vmm/kvm-factory.ts).
import { runCli } from '../dist/src/cli/main.js';
import { createKvmFactory } from '../dist/src/cli/kvm.js';

const code = await runCli(process.argv.slice(2), { createFactory: createKvmFactory });
if (code === 134) process.kill(process.pid, 'SIGABRT');
process.exit(code);
