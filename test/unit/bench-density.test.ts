/**
 * The density scenario's memory accounting (bench/scenarios/density.ts): smaps_rollup parsing
 * (PSS, and USS as Private_Clean + Private_Dirty) and the process tree whose memory a VMM pays
 * for, against this test's own process and a real child.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseRollup, processTree } from '../../bench/scenarios/density.js';

const ROLLUP = `55d0c0a00000-7ffd6b3f2000 ---p 00000000 00:00 0                          [rollup]
Rss:              102400 kB
Pss:               61234 kB
Pss_Anon:          40000 kB
Pss_File:          21234 kB
Pss_Shmem:             0 kB
Shared_Clean:      50000 kB
Shared_Dirty:        100 kB
Private_Clean:      2300 kB
Private_Dirty:     50000 kB
Referenced:       102400 kB
`;

test('parseRollup: Rss, Pss, and USS = Private_Clean + Private_Dirty (not the Pss_* breakdown)', () => {
  assert.equal(parseRollup(ROLLUP), { rssKib: 102400, pssKib: 61234, ussKib: 52300, pssAnonKib: 40000, pssFileKib: 21234, pssShmemKib: 0 });
});

test('parseRollup: a rollup without Pss is refused, not read as 0', () => {
  assert.throws(() => parseRollup(ROLLUP.replace(/^Pss:.*$/m, '')), /no Pss line/);
});

test('parseRollup reads this process\'s real smaps_rollup: PSS <= RSS, USS <= PSS', () => {
  const r = parseRollup(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  assert.ok(r.rssKib > 0 && r.pssKib <= r.rssKib && r.ussKib <= r.pssKib, JSON.stringify(r));
});

test('processTree: the process first, then its children', async () => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await new Promise((r) => child.once('spawn', r));
    const tree = processTree(process.pid);
    assert.is(tree[0], process.pid);
    assert.ok(tree.includes(child.pid!), `${child.pid} in ${tree.join(',')}`);
    assert.equal(processTree(child.pid!), [child.pid!], 'sleep has no children');
  } finally {
    child.kill('SIGKILL');
  }
});

test.run();
