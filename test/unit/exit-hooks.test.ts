/** The exit hooks the binaries run before process.exit (src/util/exit-hooks.ts, src/cli/exit.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { onBeforeExit, runExitHooks } from '../../src/util/exit-hooks.js';

test('every hook runs once, a hook that never settles is cut off at the bound, a failing one does not stop the rest', async () => {
  let runs = 0;
  const counted = async (): Promise<void> => { runs++; };
  onBeforeExit(counted);
  onBeforeExit(counted); // the same hook twice: registered once
  onBeforeExit(async () => { throw new Error('a hook that fails'); });
  const t0 = performance.now();
  await runExitHooks(1000);
  assert.is(runs, 1);
  assert.ok(performance.now() - t0 < 900, 'settled hooks end the wait early');
  onBeforeExit(() => new Promise<void>(() => {})); // never settles
  const t1 = performance.now();
  await runExitHooks(150);
  const waited = performance.now() - t1;
  assert.ok(waited >= 140 && waited < 2000, `bounded wait: ${waited.toFixed(0)} ms`);
  assert.is(runs, 2);
});

test.run();
