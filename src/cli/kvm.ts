/**
 * The VM factory the `kindling` binary runs with (bin/kindling.js): KVM microVMs whose serial
 * console is this process's stdout (or the configured serial_out_path) and whose VMM log lines
 * go to the Firecracker-format logger.
 */
import { fstatSync } from 'node:fs';
import { LOGGER } from '../logger/logger.js';
import { KvmVmFactory } from '../vmm/kvm-factory.js';
import type { FactoryMaker } from './main.js';

/** Firecracker reads stdin only when the console goes to stdout and stdin is a terminal or a pipe. */
function stdinIsConsole(): boolean {
  if (process.stdin.isTTY === true) return true;
  try {
    return fstatSync(0).isFIFO();
  } catch {
    return false;
  }
}

export const createKvmFactory: FactoryMaker = ({ metrics }) =>
  new KvmVmFactory({ console: 'stdout', stdin: stdinIsConsole(), log: (level, msg, thread) => LOGGER[level](msg, { thread }), metrics });
