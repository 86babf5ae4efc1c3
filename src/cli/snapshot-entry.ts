/**
 * The `firecracker` launcher's startup snapshot (docs/design.md, Start-up): scripts/bundle.mjs
 * bundles this file to CommonJS and runs it under `node --build-snapshot`, so the CLI's code
 * (the API server, router, controller, configuration parsing: ~190 KB) is already compiled and
 * evaluated in the heap snapshot that `node --snapshot-blob` starts from. bin/firecracker
 * starts it when the blob exists.
 *
 * At build time only module evaluation happens: nothing here or in a statically imported
 * module may read the environment, the clock or a path at load (src/util/json-serializer.ts
 * and src/logger/rate-limited.ts defer theirs). What depends on the running process is set in
 * the deserialize main function below:
 *   - `__kindlingModuleUrl`: what `import.meta.url` means in the bundle (the CommonJS build
 *     replaces it with this name); a file URL in dist/bundle/, found from the blob's own path,
 *     so actor scripts and the snapshot writer task resolve as in the ESM bundle.
 *   - `__kindlingRequire`: the snapshot's own `require` knows only built-in modules; koffi,
 *     piscina and fast-json-stringify are loaded through a require made here.
 *   - the process name the launcher or the jailer asks for (`firecracker`, launchName).
 */
import v8 from 'node:v8';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { runCli } from './main.js';
import { createKvmFactory } from './kvm.js';
import { launchName, setThreadName } from '../util/thread-name.js';
import { exitAfterDrain, exitNow } from './exit.js';

declare let __kindlingModuleUrl: string;
declare let __kindlingRequire: NodeJS.Require;

v8.startupSnapshot.setDeserializeMainFunction(() => {
  const i = process.execArgv.indexOf('--snapshot-blob');
  const blob = i >= 0 ? process.execArgv[i + 1] : undefined;
  if (!blob) throw new Error('kindling: the startup snapshot must be run with --snapshot-blob <path> (bin/firecracker does)');
  const here = resolve(dirname(blob), 'kindling.js');
  __kindlingModuleUrl = pathToFileURL(here).href;
  __kindlingRequire = createRequire(here);
  const name = launchName();
  if (name) setThreadName(name);
  // `node --snapshot-blob <blob> -- <args>`: argv is [node, ...args], no script path.
  void runCli(process.argv.slice(1), { createFactory: createKvmFactory, process: { exit: exitNow } }).then(exitAfterDrain);
});
