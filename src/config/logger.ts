/**
 * PUT /logger body (firecracker src/vmm/src/vmm_config/ Logger; logger/logging.rs `LoggerConfig`). Levels are matched
 * case-insensitively and `Warning` means `Warn`; anything else is serde's custom
 * "Invalid LevelFilter". Applying the config is src/logger's job.
 */
import { Desc, bool, custom, customError, deserialize, field, opt, path, str, struct } from './serde.js';

/** Log levels, most to least severe after `Off`. */
export type LogLevel = 'Off' | 'Error' | 'Warn' | 'Info' | 'Debug' | 'Trace';

/** The PUT /logger body; null fields are left unchanged (except `level`, which resets to Info). */
export interface LoggerConfig {
  log_path: string | null;
  level: LogLevel | null;
  show_level: boolean | null;
  show_log_origin: boolean | null;
  module: string | null;
}

/** `LevelFilter::from_str` (CLI --level) and the Deserialize impl share this mapping. */
export function parseLevel(s: string): LogLevel | null {
  switch (s.toLowerCase()) {
    case 'off': return 'Off';
    case 'trace': return 'Trace';
    case 'debug': return 'Debug';
    case 'info': return 'Info';
    case 'warn':
    case 'warning': return 'Warn';
    case 'error': return 'Error';
    default: return null;
  }
}

const LEVEL = custom<string>(str, (s) => parseLevel(s) ?? (() => { throw customError('Invalid LevelFilter'); })());

/** serde description of `LoggerConfig` (deny_unknown_fields). */
export const LOGGER: Desc = struct('LoggerConfig', [
  field('log_path', opt(path)),
  field('level', opt(LEVEL)),
  field('show_level', opt(bool)),
  field('show_log_origin', opt(bool)),
  field('module', opt(str)),
]);


/** Parses a PUT /logger body. */
export function parseLoggerConfig(body: Uint8Array | string): LoggerConfig {
  return deserialize<LoggerConfig>(body, LOGGER);
}
