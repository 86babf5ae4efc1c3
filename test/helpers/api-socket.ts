/**
 * Raw-socket helpers for the API resource and abuse tests: the process's open fd count, and
 * clients that wait on events (reply bytes, 'close'), never on timers.
 */
import { readdirSync } from 'node:fs';

/** Entries of /proc/self/fd: every fd this process holds (sockets of both ends included). */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}
