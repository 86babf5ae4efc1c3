/**
 * Waiting on state that nothing notifies about (guest RAM written by a vCPU, a file growing,
 * a child process's output): re-check a condition until it holds, or fail with a message
 * saying what did not happen. The interval only bounds how often the check runs; no test
 * relies on it for ordering.
 */

/** Resolves once `cond()` is true; rejects with "`what` within N s" after `ms`. */
export async function pollUntil(cond: () => boolean, ms: number, what: string | (() => string), intervalMs = 1): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`${typeof what === 'function' ? what() : what} within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
