/**
 * Runs one test tier (`unit` or `kvm`) in this process with uvu: every
 * dist/test/<tier>/**\/*.test.js (or the files named after the tier), one suite queue, one
 * summary. Writes `{ tier, passed, failed, skipped, seconds }` to $KINDLING_TIER_RESULT when
 * set (the orchestrator, scripts/test.mjs, sums the tiers and prints the closing line).
 *
 * A file that fails to import counts as one failed test: a broken test file must never
 * shrink the count silently.
 */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface UvuGlobals { UVU_DEFER?: number; UVU_INDEX?: number; UVU_QUEUE?: unknown[][] }

const here = fileURLToPath(new URL('.', import.meta.url));
const distTest = resolve(here, '..');

function listTests(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

async function main(): Promise<void> {
  const [tier, ...only] = process.argv.slice(2);
  if (tier !== 'unit' && tier !== 'kvm') {
    console.error('usage: tier.js <unit|kvm> [test files...]');
    process.exit(2);
  }
  const started = performance.now();
  const files = only.length
    ? only.map((f) => resolve(f.replace(/^test\//, join(distTest, '/')).replace(/\.ts$/, '.js')))
    : listTests(join(distTest, tier));

  // uvu prints its own totals; capture them so the orchestrator can add tiers up.
  let captured = '';
  const origWrite = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    if (captured.length > 1 << 16) captured = captured.slice(-4096);
    return (origWrite as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;

  const g = globalThis as UvuGlobals;
  g.UVU_DEFER = 1;
  const uvu = await import('uvu');
  let importFailures = 0;
  let idx = 0;
  for (const file of files) {
    g.UVU_INDEX = idx++;
    g.UVU_QUEUE!.push([relative(distTest, file)]);
    try {
      await import(pathToFileURL(file).href);
    } catch (e) {
      importFailures++;
      console.error(`\n  FAIL (import) ${relative(distTest, file)}\n    ${(e as Error).stack ?? e}`);
    }
  }
  await uvu.exec(false);
  process.stdout.write = origWrite;

  const plain = captured.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label: string): number => Number(/(\d+)\s*$/.exec(plain.split(`${label}:`).pop()!.split('\n')[0]!)?.[1] ?? 0);
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped');
  const failed = total - passed + importFailures;
  const seconds = (performance.now() - started) / 1000;
  const result = { tier, passed, failed, skipped, seconds, files: files.length };
  if (process.env.KINDLING_TIER_RESULT) writeFileSync(process.env.KINDLING_TIER_RESULT, JSON.stringify(result));
  console.log(`${tier} tier — ${passed} passed, ${failed} failed, ${skipped} skipped in ${seconds.toFixed(1)} s`);
  process.exitCode = failed > 0 || files.length === 0 ? 1 : 0;
  // A test that leaks a timer or handle must not hold the tier (and the sandbox) open for
  // minutes: name what is still open, then exit.
  setTimeout(() => {
    const handles = (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles();
    console.error(`${tier} tier: still ${handles.length} open handle(s) 5 s after the last test (${handles.map((h) => h.constructor.name).join(', ')}); exiting`);
    process.exit(process.exitCode ?? 1);
  }, 5000).unref();
}

await main();
