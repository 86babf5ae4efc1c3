/**
 * A child process for test/unit/cli-process.test.ts: Firecracker's panic hook as the binary
 * installs it (src/cli/signals.ts), metrics to the file named by argv[2], then an uncaught
 * exception. Exits as bin/kindling.js does for a panic: SIGABRT.
 */
import { installSignalHandlers } from '../../src/cli/signals.js';
import { Logger } from '../../src/logger/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';

const logger = new Logger();
logger.sink = (l) => process.stdout.write(l);
logger.instanceId = 'panic-test';
const metrics = createMetrics();
metrics.init({ metrics_path: process.argv[2]!, emit_id: false, properties: null }, 'panic-test');
installSignalHandlers({ logger, metrics, exit: (code) => (code === 134 ? process.kill(process.pid, 'SIGABRT') : process.exit(code)) });
setImmediate(() => {
  throw new Error('the VMM hit a bug');
});
