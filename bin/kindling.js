#!/usr/bin/env node
// Kindling launcher: the Firecracker-compatible CLI (src/cli/main.ts) from the build in dist/,
// with VMs built on KVM (src/vmm/kvm-factory.ts) and Firecracker's signal handling
// (src/cli/signals.ts). Exit code 134 is a panic: Firecracker aborts (SIGABRT) there.
import { runCli } from '../dist/src/cli/main.js';
import { createKvmFactory } from '../dist/src/cli/kvm.js';

const exit = (code) => (code === 134 ? process.kill(process.pid, 'SIGABRT') : process.exit(code));
const code = await runCli(process.argv.slice(2), { createFactory: createKvmFactory, process: { exit } });
exit(code);
