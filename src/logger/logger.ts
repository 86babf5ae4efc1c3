/**
 * Firecracker's logger (firecracker src/vmm/src/logger/metrics.rs, logger/logging.rs):
 *
 *   `<YYYY-MM-DDTHH:MM:SS.nnnnnnnnn local> [<instance id>:<thread>[:<LEVEL>][:<file>:<line>]] <msg>\n`
 *
 * written with one write per line to `log_path` (opened O_NONBLOCK, created if missing, not
 * truncated) or stdout. A failed write counts `logger.missed_log_count`. The level filter
 * defaults to Info; `module` keeps only records whose module path starts with it. `error`,
 * `warn` and `info` may be rate limited per call site (rate-limited.ts); the API server's own
 * lines are "unrestricted", as in Firecracker.
 */
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { ConfigError, ioErrorText } from '../config/errors.js';
import type { LogLevel, LoggerConfig } from '../config/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { LogRateLimiter } from './rate-limited.js';

/** Default instance id (`--id`). */
export const DEFAULT_INSTANCE_ID = 'anonymous-instance';

/** A record's level (not `Off`). */
export type RecordLevel = Exclude<LogLevel, 'Off'>;

const SEVERITY: Record<LogLevel, number> = { Off: 0, Error: 1, Warn: 2, Info: 3, Debug: 4, Trace: 5 };
const LEVEL_NAME: Record<RecordLevel, string> = { Error: 'ERROR', Warn: 'WARN', Info: 'INFO', Debug: 'DEBUG', Trace: 'TRACE' };

/** Where a record comes from: thread name (`main`, `fc_api`, `fc_vcpu N`) and module path. */
export interface LogSource {
  thread?: string;
  /** Module path used by the `module` filter, e.g. `firecracker::api_server`. */
  module?: string;
  /** Rate limiter of the call site (Firecracker's `error!/warn!/info!`); absent = unrestricted. */
  limiter?: LogRateLimiter;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** Local time with nanoseconds, as `utils::time::LocalTime` prints it. */
export function localTimestamp(epochNs: bigint = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6))): string {
  const ms = Number(epochNs / 1_000_000n);
  const d = new Date(ms);
  const nsec = Number(epochNs % 1_000_000_000n);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(nsec, 9)}`;
}

function callerOrigin(): string {
  const stack = new Error().stack?.split('\n') ?? [];
  const frame = stack.find((l, i) => i > 0 && !l.includes('/logger/logger.'));
  const m = frame && /\(?(?:file:\/\/)?([^():]+):(\d+):\d+\)?$/.exec(frame.trim());
  return m ? `${m[1]!.replace(/^.*?\/(src|dist)\//, '$1/')}:${m[2]}` : '?:?';
}

/** The logger (Firecracker's global `LOGGER`). */
export class Logger {
  level: LogLevel = 'Info';
  showLevel = false;
  showLogOrigin = false;
  module: string | null = null;
  instanceId = DEFAULT_INSTANCE_ID;
  /** Metrics that receive missed/rate-limited counts. */
  metrics: Metrics | null = null;
  private fd: number | null = null;
  /** Test hook: receives each line instead of the file/stdout. */
  sink: ((line: string) => void) | null = null;

  /**
   * Applies PUT /logger, --log-path/--level/... (`Logger::update`): the file is opened first;
   * `level` resets to Info when absent; other absent fields keep their value.
   */
  update(cfg: LoggerConfig): void {
    let fd: number | null = null;
    if (cfg.log_path !== null) {
      try {
        fd = openSync(cfg.log_path, constants.O_RDWR | constants.O_CREAT | constants.O_NONBLOCK, 0o644);
      } catch (e) {
        throw new ConfigError('logger', `Failed to open target file: ${ioErrorText(e)}`, { cause: e });
      }
    }
    this.level = cfg.level ?? 'Info';
    if (fd !== null) {
      if (this.fd !== null) closeSync(this.fd);
      this.fd = fd;
    }
    if (cfg.show_level !== null) this.showLevel = cfg.show_level;
    if (cfg.show_log_origin !== null) this.showLogOrigin = cfg.show_log_origin;
    if (cfg.module !== null) this.module = cfg.module;
  }

  /** True when records of `level` pass the level filter (`log_enabled!`). */
  enabled(level: RecordLevel): boolean {
    return SEVERITY[level] <= SEVERITY[this.level];
  }

  /** Formats one line (without writing it). */
  format(level: RecordLevel, msg: string, thread = 'main', origin?: string): string {
    const lvl = this.showLevel ? `:${LEVEL_NAME[level]}` : '';
    const org = this.showLogOrigin ? `:${origin ?? callerOrigin()}` : '';
    return `${localTimestamp()} [${this.instanceId}:${thread}${lvl}${org}] ${msg}\n`;
  }

  /** Logs one record through the level, module and (optional) rate-limit filters. */
  log(level: RecordLevel, msg: string, src: LogSource = {}): void {
    if (!this.enabled(level)) return;
    if (src.limiter) {
      const { allowed, reportSuppressed } = src.limiter.check();
      if (!allowed) {
        this.metrics?.logger.rate_limited_log_count.inc();
        return;
      }
      if (reportSuppressed > 0) this.log('Warn', `${reportSuppressed} messages were suppressed due to rate limiting`, { thread: src.thread, module: src.module });
    }
    if (this.module !== null && !(src.module ?? '').startsWith(this.module)) return;
    this.write(this.format(level, msg, src.thread));
  }

  /** `error!` */
  error(msg: string, src?: LogSource): void {
    this.log('Error', msg, src);
  }
  /** `warn!` */
  warn(msg: string, src?: LogSource): void {
    this.log('Warn', msg, src);
  }
  /** `info!` */
  info(msg: string, src?: LogSource): void {
    this.log('Info', msg, src);
  }
  /** `debug!` */
  debug(msg: string, src?: LogSource): void {
    this.log('Debug', msg, src);
  }
  /** `trace!` */
  trace(msg: string, src?: LogSource): void {
    this.log('Trace', msg, src);
  }

  private write(line: string): void {
    if (this.sink) {
      this.sink(line);
      return;
    }
    const buf = Buffer.from(line);
    try {
      const fd = this.fd ?? 1;
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
    } catch {
      this.metrics?.logger.missed_log_count.inc();
    }
  }

  /** Closes the log file (tests and shutdown). */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** The process-wide logger. */
export const LOGGER = new Logger();

export { LogRateLimiter };
