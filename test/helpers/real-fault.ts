/**
 * A child process for test/unit/cli-process.test.ts: Firecracker's signal handlers as the binary
 * installs them (src/cli/signals.ts, hardened), then a real fault — a native write to address
 * 16. The one-shot handler must let the process die of SIGSEGV instead of returning into the
 * faulting instruction forever.
 */
import koffi from 'koffi';
import { hardenSignalHandlers, installSignalHandlers } from '../../src/cli/signals.js';
import { Logger } from '../../src/logger/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';

const logger = new Logger();
logger.sink = (l) => process.stderr.write(l);
installSignalHandlers({ logger, metrics: createMetrics(), exit: (code) => process.exit(code) });
await hardenSignalHandlers();
process.stdout.write('armed\n');
const memset = koffi.load('libc.so.6').func('void *memset(void *s, int c, size_t n)');
memset(16n, 0, 8);
process.stdout.write('survived\n');
