/**
 * The bundle step of the build (docs/design.md, Start-up): esbuild turns each entry point that
 * starts a JavaScript isolate — the `kindling` binary, every actor kind, the snapshot writer's
 * piscina task — into one ES module plus chunks shared between entries, all flat in
 * dist/bundle/. A fresh isolate then loads a handful of files instead of tsc's module graph
 * (about 50 modules for the API process): process start to API socket and actor start are
 * both mostly module loading, and nested virtualisation makes each module costlier still.
 *
 * Bundled from the TypeScript sources (esbuild strips types; tsc still type-checks and emits
 * dist/src for the library and the tests). Kept outside the bundle: koffi (a native addon),
 * piscina (starts its own worker script from its package folder) and fast-json-stringify
 * (required lazily, src/util/json-serializer.ts); Node resolves them from node_modules as before.
 * The free identifier KINDLING_BUNDLE becomes an object literal (src/util/bundle-info.ts).
 *
 * Usage: node scripts/bundle.mjs  (run by `npm run build` and by setup's build step).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));

/** Output name (without .js) → source. Actor names match src/actors/actor-pool.ts bundleEntry. */
export const ENTRIES = {
  kindling: 'src/cli/bin.ts',
  // The library (`import { MicroVm } from 'kindling'`, package.json exports).
  'kindling-lib': 'src/index.ts',
  'actor-vcpu': 'src/actors/vcpu/worker.ts',
  'actor-block': 'src/actors/virtio/block-worker.ts',
  'actor-net': 'src/actors/virtio/net-worker.ts',
  'actor-vsock': 'src/actors/virtio/vsock-worker.ts',
  'actor-entropy': 'src/actors/virtio/entropy-worker.ts',
  'actor-balloon': 'src/actors/virtio/balloon-worker.ts',
  'actor-mem': 'src/actors/virtio/mem-worker.ts',
  'actor-pmem': 'src/actors/virtio/pmem-worker.ts',
  'actor-fs': 'src/actors/virtio/fs-worker.ts',
  'memory-file-task': 'src/snapshot/memory-file-task.ts',
};

/**
 * Builds dist/bundle/ afresh; returns the output files. The `kindling` entry is split at its
 * dynamic imports (the VM builder, snapshot restore: loaded after the socket listens or on
 * demand), so start-up parses only what it runs. Every other entry is built alone into one
 * file: splitting across eight entries cut shared code into ~20 chunks per actor, and a
 * worker's start is dominated by how many modules it loads.
 */
export async function bundle() {
  const { build } = await import('esbuild');
  const out = join(repo, 'dist', 'bundle');
  rmSync(out, { recursive: true, force: true });
  const { version } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  const common = {
    absWorkingDir: repo,
    outdir: out,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    chunkNames: 'chunk-[hash]',
    external: EXTERNAL,
    define: { KINDLING_BUNDLE: JSON.stringify({ version }) },
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
  };
  const results = await Promise.all(Object.entries(ENTRIES).map(([name, src]) =>
    build({ ...common, entryPoints: { [name]: join(repo, src) }, splitting: name === 'kindling' || name === 'kindling-lib' })));
  await startupSnapshot(build, common, out);
  return results.flatMap((r) => Object.keys(r.metafile.outputs).filter((f) => f.endsWith('.js')));
}

/** The packages the bundles leave to node_modules. */
const EXTERNAL = ['koffi', 'piscina', 'fast-json-stringify'];

/**
 * The CLI's startup snapshot (src/cli/snapshot-entry.ts): a CommonJS bundle that
 * `node --build-snapshot` evaluates into dist/bundle/kindling.blob, which bin/firecracker
 * starts from. A blob only loads in the Node binary that built it, so it is made here, by
 * the Node that runs the build. In the snapshot, `require` reaches only built-in modules:
 * the external packages become `__kindlingRequire(<name>)`, and `import.meta.url`
 * `__kindlingModuleUrl`, both set when the snapshot starts.
 */
async function startupSnapshot(build, common, out) {
  const script = join(out, 'kindling-snapshot.cjs');
  const blob = join(out, 'kindling.blob');
  await build({
    ...common,
    entryPoints: [join(repo, 'src/cli/snapshot-entry.ts')],
    outdir: undefined,
    outfile: script,
    format: 'cjs',
    external: [],
    define: { ...common.define, 'import.meta.url': '__kindlingModuleUrl' },
    banner: { js: 'var __kindlingModuleUrl, __kindlingRequire;' },
    sourcemap: false,
    plugins: [{
      name: 'kindling-externals',
      setup(b) {
        const filter = new RegExp(`^(${EXTERNAL.join('|')})$`);
        b.onResolve({ filter }, (a) => ({ path: a.path, namespace: 'kindling-external' }));
        b.onLoad({ filter: /.*/, namespace: 'kindling-external' }, (a) => ({ contents: `module.exports = __kindlingRequire(${JSON.stringify(a.path)});`, loader: 'js' }));
      },
    }],
  });
  const r = spawnSync(process.execPath, ['--snapshot-blob', blob, '--build-snapshot', script], { cwd: out, encoding: 'utf8' });
  // Node warns that node:module is "not yet fully verified" in snapshots; the entry only calls
  // createRequire after deserialization, which the CLI tests exercise through bin/firecracker.
  if (r.status !== 0) throw new Error(`startup snapshot: node --build-snapshot failed (${r.status}): ${r.stderr}`);
  // The blob's identity, for bin/firecracker's per-boot "does V8 take this blob here" verdict.
  writeFileSync(`${blob}.id`, `${Date.now().toString(36)}${process.pid.toString(36)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const t = performance.now();
  const files = await bundle();
  console.log(`bundle: ${files.length} files in dist/bundle/ (${Math.round(performance.now() - t)} ms)`);
}
