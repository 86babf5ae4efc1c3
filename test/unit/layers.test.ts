/**
 * The import structure of src/ (docs/design.md "Layers"): every import points down the layer
 * order, and no cycle exists among runtime imports. Reads the sources as text, so a new file
 * or folder is checked the moment it exists.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Layers from the bottom up; a file may import its own layer and the ones below it. */
const LAYERS: readonly (readonly string[])[] = [
  ['util', 'errors.ts'],
  ['kvm'],
  ['seccomp'],
  ['memory'],
  ['arch'],
  ['boot'],
  ['devices', 'mmds'],
  ['actors'],
  ['config'],
  ['metrics'],
  ['logger'],
  ['snapshot'],
  ['vmm'],
  ['api'],
  ['cli'],
  ['jailer'],
  ['index.ts'],
];

const here = dirname(fileURLToPath(import.meta.url));
// Compiled to dist/test/unit; the sources are read from the repository.
const SRC = resolve(here, '..', '..', '..', 'src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

interface Import { from: string; to: string; typeOnly: boolean }

/** Relative imports of one file: static, re-exports and dynamic `import()`. */
function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const out: Import[] = [];
  const add = (spec: string, typeOnly: boolean): void => {
    if (spec.startsWith('.')) out.push({ from: file, to: resolve(dirname(file), spec).replace(/\.js$/, '.ts'), typeOnly });
  };
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'";]*?from\s+'([^']+)'/gm)) add(m[3]!, m[2] !== undefined);
  for (const m of text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) add(m[1]!, text.slice(Math.max(0, m.index! - 7), m.index).includes('typeof'));
  return out;
}

function layerOf(file: string): number {
  const top = relative(SRC, file).split('/')[0]!;
  const i = LAYERS.findIndex((l) => l.includes(top));
  if (i === -1) throw new Error(`src/${top} is in no layer: add it to LAYERS in test/unit/layers.test.ts and docs/design.md`);
  return i;
}

const files = tsFiles(SRC);
const imports = files.flatMap(importsOf);

test('src/ has files and imports to check', () => {
  assert.ok(files.length > 50, `found ${files.length} files under ${SRC}`);
  assert.ok(imports.length > 200);
});

test('every import points down the layer order (type imports included)', () => {
  const up = imports
    .filter((i) => layerOf(i.to) > layerOf(i.from))
    .map((i) => `${relative(SRC, i.from)} → ${relative(SRC, i.to)}`);
  assert.equal(up, [], `imports against the layer order:\n${up.join('\n')}`);
});

test('no import cycle among runtime imports', () => {
  const graph = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const i of imports) if (!i.typeOnly && graph.has(i.to)) graph.get(i.from)!.push(i.to);
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  let cycle: string[] | null = null;
  const visit = (n: string): void => {
    state.set(n, 1);
    stack.push(n);
    for (const d of graph.get(n)!) {
      if (cycle) return;
      if (state.get(d) === 1) cycle = [...stack.slice(stack.indexOf(d)), d];
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const f of files) if (!state.has(f) && !cycle) visit(f);
  const found = cycle as string[] | null;
  assert.ok(found === null, `import cycle: ${found?.map((f) => relative(SRC, f)).join(' → ')}`);
});

test.run();
