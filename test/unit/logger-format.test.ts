/**
 * Log line format and filters (firecracker src/vmm/src/logger/metrics.rs): timestamp with nanoseconds, `[id:thread:LEVEL:origin]`,
 * level filter, module filter, rate limiting, and file targets.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger, localTimestamp } from '../../src/logger/logger.js';
import { LogRateLimiter } from '../../src/logger/rate-limited.js';
import { createMetrics } from '../../src/metrics/metrics.js';

const LINE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9} \[([^\]]+)\] (.*)\n$/;

function capture(): { logger: Logger; lines: string[] } {
  const logger = new Logger();
  const lines: string[] = [];
  logger.sink = (l) => lines.push(l);
  return { logger, lines };
}

test('default format: `<local time.ns> [instance:thread] msg`', () => {
  const { logger, lines } = capture();
  logger.info('API server started.', { thread: 'fc_api' });
  const m = LINE.exec(lines[0]!);
  assert.ok(m, lines[0]);
  assert.is(m![1], 'anonymous-instance:fc_api');
  assert.is(m![2], 'API server started.');
});

test('show_level and show_log_origin add `:LEVEL` and `:file:line`', () => {
  const { logger, lines } = capture();
  logger.update({ log_path: null, level: 'Debug', show_level: true, show_log_origin: true, module: null });
  logger.instanceId = 'vm-7';
  logger.warn('careful');
  const m = LINE.exec(lines[0]!)!;
  assert.match(m[1]!, /^vm-7:main:WARN:[^:]+logger-format\.test\.(js|ts):\d+$/);
});

test('level filter (default Info; Warning = Warn; PUT without level resets to Info)', () => {
  const { logger, lines } = capture();
  logger.debug('hidden');
  logger.info('shown');
  logger.update({ log_path: null, level: 'Error', show_level: null, show_log_origin: null, module: null });
  logger.warn('hidden too');
  logger.error('shown too');
  logger.update({ log_path: null, level: null, show_level: null, show_log_origin: null, module: null });
  assert.is(logger.level, 'Info');
  assert.equal(lines.map((l) => LINE.exec(l)![2]), ['shown', 'shown too']);
});

test('module filter keeps records whose module path starts with it', () => {
  const { logger, lines } = capture();
  logger.update({ log_path: null, level: null, show_level: null, show_log_origin: null, module: 'firecracker::api' });
  logger.info('a', { module: 'firecracker::api_server' });
  logger.info('b', { module: 'vmm::rpc_interface' });
  logger.info('c');
  assert.equal(lines.map((l) => LINE.exec(l)![2]), ['a']);
});

test('rate limiting: 10 per 5 s per call site, then a suppression report', () => {
  let now = 0;
  const limiter = new LogRateLimiter(10, 5000, () => now);
  const { logger, lines } = capture();
  const metrics = createMetrics();
  logger.metrics = metrics;
  for (let i = 0; i < 15; i++) logger.error(`e${i}`, { limiter });
  assert.is(lines.length, 10);
  assert.is(metrics.logger.rate_limited_log_count.count(), 5);
  now = 600;
  logger.error('after', { limiter });
  assert.equal(lines.slice(10).map((l) => LINE.exec(l)![2]), ['5 messages were suppressed due to rate limiting', 'after']);
});

test('log_path: opened at update (created), one line per write, errors in Firecracker words', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-log-'));
  const logger = new Logger();
  logger.update({ log_path: join(dir, 'fc.log'), level: null, show_level: null, show_log_origin: null, module: null });
  logger.info('to the file');
  logger.close();
  assert.match(readFileSync(join(dir, 'fc.log'), 'utf8'), LINE);
  assert.throws(() => logger.update({ log_path: join(dir, 'missing', 'x.log'), level: null, show_level: null, show_log_origin: null, module: null }),
    (e: Error & { faultMessage: string }) => e.faultMessage === 'Logger error: Failed to open target file: No such file or directory (os error 2)');
});

test('local timestamp has 9 fractional digits', () => {
  assert.match(localTimestamp(1_700_000_000_123_456_789n), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.123456789$/);
});

test.run();
