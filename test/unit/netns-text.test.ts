/**
 * test/helpers/netns.ts `withoutLogLines`: the network KVM tests read a VMM's stdout, where
 * the guest's console and the VMM's log lines share one stream (as with Firecracker without
 * --log-path); a log line written inside a console line must not split a marker.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withoutLogLines } from '../helpers/netns.js';

test('log lines are taken out wherever they start; console text around them joins up', () => {
  // As CI printed it: "NET_DONE" cut by two log lines.
  const text = 'GUEST_TIMED 42.60 44.62 52.83\nN2026-12-07T05:46:00.752459776 [net-test:fc_api] The API server received a Put request on "/actions".\n'
    + '2026-12-07T05:46:00.788044288 [net-test:fc_api] The request was executed successfully. Status code: 204 No Content.\nET_DONE\n';
  assert.not.match(text, /NET_DONE/);
  assert.is(withoutLogLines(text), 'GUEST_TIMED 42.60 44.62 52.83\nNET_DONE\n');
  const token = 'TOKEN_LEN 5' + '2026-12-07T05:46:01.000000001 [mmds-test:main] a line\n' + '6\n';
  assert.is(withoutLogLines(token).match(/TOKEN_LEN (\d+)/)?.[1], '56');
});

test('console lines that only look like times are kept', () => {
  const text = 'uptime 2026-12-07 12:00\n[    0.599749] PCI: Fatal\n';
  assert.is(withoutLogLines(text), text);
});

test.run();
