/**
 * The `kindling` binary's body (bin/kindling.js loads it from the bundle, dist/bundle/kindling.js,
 * or from dist/src when no bundle was built): the Firecracker-compatible CLI (main.ts) with VMs
 * built on KVM (kvm.ts) and Firecracker's signal handling (signals.ts). Exit code 134 is a
 * panic: Firecracker aborts (SIGABRT) there.
 */
import { runCli } from './main.js';
import { createKvmFactory } from './kvm.js';
import { exitAfterDrain, exitNow } from './exit.js';
import { launchName, setThreadName } from '../util/thread-name.js';

// The process name bin/firecracker or the jailer asks for (`firecracker`).
const name = launchName();
if (name) setThreadName(name);

exitAfterDrain(await runCli(process.argv.slice(2), { createFactory: createKvmFactory, process: { exit: exitNow } }));
