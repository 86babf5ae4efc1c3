/**
 * An API server (real server and controller, fake VM) in a process of its own, so a test can
 * read the server's RSS without its own clients and buffers in the figure. Run with
 * `child_process.fork`; it talks over the IPC channel:
 *
 *   child → parent  { kind: 'ready', socketPath }      once listening
 *   child → parent  { kind: 'paused', reason, unsentBytes, queuedRequests }   a connection stopped being read
 *   parent → child  { kind: 'rss' }  → { kind: 'rss', rss }            process.memoryUsage().rss
 *   parent → child  { kind: 'close' }                                  closes the API and exits
 *
 * Logs go nowhere: the harness keeps every line in memory, which would be counted as RSS.
 */
import type { PauseState } from '../../src/api/connection.js';
import { startApi } from './api-harness.js';

/** Messages the child sends. */
export type ChildMessage =
  | { kind: 'ready'; socketPath: string }
  | ({ kind: 'paused' } & PauseState)
  | { kind: 'rss'; rss: number };

const send = (m: ChildMessage): void => void process.send!(m);

const h = await startApi({ onConnectionPaused: (s) => send({ kind: 'paused', ...s }) });
h.logger.sink = () => undefined;
process.on('message', (m: { kind: string }) => {
  if (m.kind === 'rss') send({ kind: 'rss', rss: process.memoryUsage().rss });
  else if (m.kind === 'close') void h.close().then(() => process.exit(0));
});
send({ kind: 'ready', socketPath: h.socketPath });
