#!/usr/bin/env node
/**
 * `npm test`: the one command that sets up and runs every test on a fresh clone.
 *
 *   1. Debian packages the tests need (installed when root, else the exact apt-get line).
 *   2. `npm ci` when node_modules is missing or older than package-lock.json.
 *   3. `tsc` → dist/ (workers load compiled JS).
 *   4. Guest fixtures (scripts/guest-fixtures.sh, cached outside the repo).
 *   5. Unit tier (test/unit), then the KVM tier (test/kvm): directly when /dev/kvm opens,
 *      otherwise inside the QEMU sandbox (test/sandbox) — never skipped.
 *   6. One closing line `N passed, N failed` over both tiers; non-zero exit on any failure.
 *
 * Flags: --unit / --kvm run one tier; other arguments are test files (test/kvm/x.test.ts).
 * Env: KINDLING_SANDBOX=always|never|auto (default auto), KINDLING_QEMU, KINDLING_SANDBOX_KERNEL.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { repo, secs, setupAll, kvmUnusableReason, sandboxEnvScript, SetupError } from './setup.mjs';

const t0 = performance.now();
const argv = process.argv.slice(2);
const onlyUnit = argv.includes('--unit');
const onlyKvm = argv.includes('--kvm');
const files = argv.filter((a) => !a.startsWith('--'));
const unitFiles = files.filter((f) => f.includes('/unit/'));
const kvmFiles = files.filter((f) => f.includes('/kvm/'));
const wantUnit = !onlyKvm && (files.length === 0 || unitFiles.length > 0);
const wantKvm = !onlyUnit && (files.length === 0 || kvmFiles.length > 0);

function die(msg) {
  console.error(`\nnpm test: ${msg}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

// 1–4. Debian packages, npm ci, build, guest fixtures.
let fixtures;
try {
  fixtures = setupAll((m) => console.log(`npm test: ${m.replace(/^setup: /, '')}`));
} catch (e) {
  if (e instanceof SetupError) die(e.message);
  throw e;
}

const results = [];
const resultFile = (dir) => join(dir, 'result.json');
const readResult = (file, tier) => {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return { tier, passed: 0, failed: 1, skipped: 0, seconds: 0, note: 'tier ended without a result' };
  }
};

/** The per-file lines tier.ts appends as each test file finishes. */
function readProgress(file) {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}

/** Every KVM test file, as `test/kvm/x.test.ts` (the form the tier takes on its command line). */
function listKvmFiles() {
  return readdirSync(join(repo, 'test', 'kvm')).filter((n) => n.endsWith('.test.ts')).sort().map((n) => `test/kvm/${n}`);
}

/** The name tier.ts records for a file given as `test/kvm/x.test.ts`: `kvm/x.test.js`. */
const kvmResultName = (f) => f.replace(/^test\//, '').replace(/\.ts$/, '.js');

/**
 * A shell loop the sandbox runs beside the tier: every 20 s it rewrites watch.txt in the run
 * folder (which the host sees live, ~/.cache/kindling/sandbox/run-*) with the load and every
 * thread's state, kernel wait channel and CPU time, busiest first, so a tier that stops making
 * progress can be looked at from outside while it hangs. Shell builtins only inside the loop:
 * a fork per thread every 20 s would load the emulated CPUs the tests run on.
 */
const WATCHER = `( w="$(dirname "$0")/watch.txt"; while sleep 20; do { date; cat /proc/loadavg; for t in /proc/[0-9]*/task/[0-9]*; do { read -r st < "$t/stat"; } 2>/dev/null || continue; set -- \${st##*) }; ch=; c=; { read -r ch < "$t/wchan"; read -r c < "$t/comm"; } 2>/dev/null; printf '%s %s %s %s %s\\n' "$((\${12} + \${13}))" "\${t#/proc/}" "$1" "$ch" "$c"; done | sort -rn | head -40; } > "$w.new" 2>&1; mv "$w.new" "$w"; done ) &`;

/** Runs a tier in a child node; resolves with its result. */
function runTier(tier, tierFiles, timeoutMs) {
  const dir = mkdtempSync(join(tmpdir(), `kindling-${tier}-`));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repo, 'dist', 'test', 'harness', 'tier.js'), tier, ...tierFiles], {
      cwd: repo, stdio: 'inherit', env: { ...process.env, KINDLING_TIER_RESULT: resultFile(dir) },
    });
    const timer = setTimeout(() => { console.error(`\nnpm test: ${tier} tier passed its ${timeoutMs / 1000} s deadline`); child.kill('SIGKILL'); }, timeoutMs);
    child.on('close', () => { clearTimeout(timer); resolve(readResult(resultFile(dir), tier)); });
  });
}

// 5. Tiers.
if (wantUnit) results.push(await runTier('unit', unitFiles, 5 * 60_000));
if (wantKvm) {
  const mode = process.env.KINDLING_SANDBOX ?? 'auto';
  const why = kvmUnusableReason();
  if (mode !== 'always' && !why) {
    console.log('npm test: /dev/kvm is usable here: KVM tier runs natively');
    results.push(await runTier('kvm', kvmFiles, 20 * 60_000));
  } else if (mode === 'never') {
    die(`${why} and KINDLING_SANDBOX=never`);
  } else {
    console.log(`npm test: ${why || 'KINDLING_SANDBOX=always'}: KVM tier runs inside the QEMU sandbox`);
    const { runInSandbox } = await import('../dist/test/sandbox/sandbox.js');
    const exports = sandboxEnvScript(fixtures);
    const all = kvmFiles.length ? kvmFiles : listKvmFiles();
    // The sandbox's own kernel (QEMU TCG emulating nested SVM) panics now and then under load:
    // an interrupt is taken right after VMRUN returns, while the guest's GS base is still
    // loaded, and its page-fault entry recurses until "stack guard page was hit". That is the
    // test rig failing, not Kindling. The tier records each finished file (tier.ts), so after
    // such a panic the files that finished keep their results and only the rest run again, in
    // a fresh sandbox, up to MAX_SANDBOX_BOOTS boots in all (a full tier has seen two panics in
    // one run, mostly under strace's and the network tests' cross-CPU wake-ups); the output says
    // so. A test that fails is not retried, with one exception the tier makes itself
    // (test/harness/tier.ts): a file whose failure shows its guest dying (a triple fault or a
    // kernel panic), the rig's other known failure, runs once more and its second run counts.
    const MAX_SANDBOX_BOOTS = 5;
    // The watcher rewrites watch.txt every 20 s; 150 s without it means the sandbox's kernel
    // stopped (seen: QEMU idle at 0% CPU, both emulated CPUs halted, nothing running inside).
    const HEARTBEAT_STALE_MS = 150_000;
    const done = [];
    /** Adds the files finished in earlier, panicked boots to a tier result. */
    const addFinished = (r) => {
      for (const f of done) { r.passed += f.passed; r.failed += f.failed; r.skipped += f.skipped; r.seconds += f.seconds; }
      return r;
    };
    let left = all;
    for (let attempt = 1; ; attempt++) {
      let panicked = false;
      try {
        const res = await runInSandbox({
          fixtures,
          timeoutMs: 25 * 60_000,
          onLine: (l) => {
            if (/Kernel panic - not syncing/.test(l)) panicked = true;
            process.stdout.write(`${l}\n`);
          },
          script: `${exports}\nexport KINDLING_TIER_RESULT="$(dirname "$0")/result.json"\n${WATCHER}\ncd '${repo}' || exit 97\nexec '${process.execPath}' dist/test/harness/tier.js kvm ${left.map((f) => `'${f}'`).join(' ')}`,
          heartbeat: { file: 'watch.txt', staleMs: HEARTBEAT_STALE_MS },
        });
        const r = readResult(resultFile(res.outDir), 'kvm');
        r.sandbox = { bootSeconds: res.bootSeconds, totalSeconds: res.totalSeconds, status: res.status, boots: attempt };
        if (res.status !== 0 && r.failed === 0) r.failed = 1;
        addFinished(r);
        console.log(`npm test: sandbox boot ${res.bootSeconds.toFixed(1)} s, sandbox total ${res.totalSeconds.toFixed(1)} s`);
        results.push(r);
        break;
      } catch (e) {
        console.error(`\n${e.message}`);
        const finished = e.outDir ? readProgress(join(e.outDir, 'result.json.files')) : [];
        done.push(...finished);
        const finishedNames = new Set(finished.map((f) => f.file));
        left = left.filter((f) => !finishedNames.has(kvmResultName(f)));
        if (left.length === 0 && done.length > 0) {
          // Every file recorded its result before the sandbox failed: seen as the tier's
          // process stuck in the sandbox kernel while exiting ("soft lockup ... [node]" after
          // the tier's last line) until the sandbox's deadline. The results are known; the
          // failure is said, not counted as a test's.
          console.log(`npm test: every KVM test file finished before the sandbox failed (${e.message.split('\n')[0]}); the files' own results count`);
          results.push(addFinished({ tier: 'kvm', passed: 0, failed: 0, skipped: 0, seconds: 0 }));
          break;
        }
        if ((panicked || e.stalled) && attempt < MAX_SANDBOX_BOOTS && left.length > 0) {
          const what = panicked ? 'panicked' : 'stopped (no heartbeat)';
          console.log(`npm test: the KVM sandbox's kernel ${what} (the nested-virtualisation rig, not a test) with ${finished.length} file(s) finished: ${left.length} file(s) run again in a fresh sandbox (boot ${attempt + 1} of at most ${MAX_SANDBOX_BOOTS})`);
          continue;
        }
        results.push(addFinished({ tier: 'kvm', passed: 0, failed: 1, skipped: 0, seconds: 0 }));
        break;
      }
    }
  }
}

// 6. Summary.
const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
for (const r of results) console.log(`npm test: ${r.tier} tier ${r.passed} passed, ${r.failed} failed in ${Number(r.seconds).toFixed(1)} s`);
console.log(`npm test: total ${secs(t0)} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
