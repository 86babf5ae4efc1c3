/**
 * Runs one test tier (`unit` or `kvm`) in this process with uvu: every
 * dist/test/<tier>/**\/*.test.js (or the files named after the tier), one suite queue, one
 * summary. Writes `{ tier, passed, failed, skipped, seconds }` to $KINDLING_TIER_RESULT when
 * set (the orchestrator, scripts/test.mjs, sums the tiers and prints the closing line).
 *
 * A file that fails to import counts as one failed test: a broken test file must never
 * shrink the count silently.
 *
 * KVM tier only: a file whose failure shows its guest dying (Kindling's "KVM_EXIT_SHUTDOWN
 * (triple fault)" or Firecracker's "Unexpected exit reason on vcpu run: Shutdown" line, or the guest kernel's "Kernel panic - not syncing" on a console the test
 * printed) runs once more, as a fresh module instance, and the second run's result is the
 * file's. In the nested rig (QEMU TCG emulating SVM) guests of both VMMs die those ways now
 * and then under load, QEMU's as well (docs/design.md, "a triple fault out of nowhere"); CI
 * stops 28 and 30 and other runs each lost one file to it. The output says so, with the first
 * run's failure above it; a second guest death, or any other failure, fails.
 */
import { appendFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { TRIPLE_FAULT_DETAIL, TRIPLE_FAULT_LOG } from '../../src/actors/vcpu/protocol.js';
import { GUEST_PANIC } from '../helpers/guest.js';

interface UvuGlobals { UVU_DEFER?: number; UVU_INDEX?: number; UVU_QUEUE?: unknown[][] }

const here = fileURLToPath(new URL('.', import.meta.url));
const distTest = resolve(here, '..');

/** uvu's closing totals, read from what it printed (colour codes stripped). */
function totals(printed: string): { total: number; passed: number; skipped: number } {
  const plain = printed.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label: string): number => Number(/(\d+)\s*$/.exec(plain.split(`${label}:`).pop()!.split('\n')[0]!)?.[1] ?? 0);
  return { total: num('Total'), passed: num('Passed'), skipped: num('Skipped') };
}

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
  // What guest death the current file's output showed, if any (kept apart from `captured`,
  // which keeps only its tail).
  let guestDeath: string | null = null;
  const origWrite = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    // Either of the VMM's two triple-fault lines: the vCPU's (Firecracker's text) comes first,
    // and the VM's closing line can come after the file's last test has failed.
    const tripleFault = text.includes(TRIPLE_FAULT_DETAIL) || text.includes(TRIPLE_FAULT_LOG);
    guestDeath ??= tripleFault ? 'a guest triple fault' : text.includes(GUEST_PANIC) ? 'a guest kernel panic' : null;
    captured += text;
    if (captured.length > 1 << 16) captured = captured.slice(-4096);
    return (origWrite as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;

  const g = globalThis as UvuGlobals;
  g.UVU_DEFER = 1;
  const uvu = await import('uvu');
  // One uvu run per file, so each finished file leaves a line in the progress file: when the
  // KVM sandbox's own kernel dies mid-tier, scripts/test.mjs keeps those results and runs only
  // the files that have none in a fresh sandbox.
  const progress = process.env.KINDLING_TIER_RESULT ? `${process.env.KINDLING_TIER_RESULT}.files` : undefined;
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  /** One run of a test file (`instance` > 0: a fresh module instance of it): its counts, and what guest death its output showed. */
  const runFile = async (file: string, name: string, instance: number): Promise<{ passed: number; failed: number; skipped: number; guestDeath: string | null }> => {
    captured = '';
    guestDeath = null;
    // uvu keeps one queue array for the process (suites find it through UVU_QUEUE/UVU_INDEX).
    g.UVU_QUEUE!.length = 0;
    g.UVU_INDEX = 0;
    g.UVU_QUEUE!.push([name]);
    let importFailed = 0;
    try {
      await import(`${pathToFileURL(file).href}${instance ? `?run=${instance}` : ''}`);
    } catch (e) {
      importFailed = 1;
      console.error(`\n  FAIL (import) ${name}\n    ${(e as Error).stack ?? e}`);
    }
    await uvu.exec(false);
    const r = totals(captured);
    return { passed: r.passed, failed: r.total - r.passed + importFailed, skipped: r.skipped, guestDeath };
  };
  for (const file of files) {
    const name = relative(distTest, file);
    const fileStarted = performance.now();
    let r = await runFile(file, name, 0);
    if (tier === 'kvm' && r.failed > 0 && r.guestDeath) {
      const death = r.guestDeath;
      console.log(`\n${tier} tier: ${name} failed with ${death}, the nested rig's known failure: running it once more; its second run counts`);
      r = await runFile(file, name, 1);
      console.log(`${tier} tier: ${name} second run after ${death}: ${r.passed} passed, ${r.failed} failed`);
    }
    const f = { file: name, passed: r.passed, failed: r.failed, skipped: r.skipped, seconds: (performance.now() - fileStarted) / 1000 };
    passed += f.passed;
    failed += f.failed;
    skipped += f.skipped;
    if (progress) appendFileSync(progress, `${JSON.stringify(f)}\n`);
  }
  process.stdout.write = origWrite;

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
