/**
 * PUT /serial (src/vmm/src/vmm_config/serial.rs): where guest console output goes
 * (`serial_out_path`, opened O_NONBLOCK at boot) and an optional byte token bucket. Not part of
 * GET /vm/config.
 */
import { DeviceManagerError } from '../errors.js';
import { HostIoError } from './errors.js';
import { TOKEN_BUCKET, TokenBucketConfig } from './rate-limiter.js';
import { Desc, deserialize, field, opt, path, struct } from './serde.js';

/** The PUT /serial body (`SerialConfig`). */
export interface SerialConfig {
  serial_out_path: string | null;
  rate_limiter: TokenBucketConfig | null;
}

/** serde description of `SerialConfig` (deny_unknown_fields). */
const SERIAL: Desc = struct('SerialConfig', [field('serial_out_path', opt(path)), field('rate_limiter', opt(TOKEN_BUCKET))]);


/** Parses a PUT /serial body. */
export function parseSerial(body: Uint8Array | string): SerialConfig {
  return deserialize<SerialConfig>(body, SERIAL);
}

/**
 * Runs `create` (the builder's legacy-device set-up) as Firecracker's `DeviceManager::new`
 * fails (src/vmm/src/device_manager/mod.rs): the serial output file is opened there, and any
 * io::Error on the way converts into `DeviceManagerCreateError::EventFd`, the variant holding
 * `#[from] io::Error`. So a bad `serial_out_path` reads "Failed to create device manager: Error
 * with EventFd: <io::Error>". Errors that are no host I/O error pass through unchanged.
 */
export function createDeviceManager<T>(create: () => T): T {
  try {
    return create();
  } catch (e) {
    const io = HostIoError.from(e);
    if (!io) throw e;
    throw new DeviceManagerError(`Failed to create device manager: Error with EventFd: ${io.message}`, { cause: e });
  }
}
