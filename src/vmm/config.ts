/**
 * The in-process library's configuration: the same resources, field names and defaults as
 * Firecracker's API bodies (facts §1.4), so a config written for `PUT /boot-source` or a
 * `--config-file` reads the same here. Validation of API input happens in src/config; this
 * module only fills defaults and checks what the builder relies on.
 */

/** Firecracker's default kernel command line when `boot_args` is absent (facts §1.4). */
export const DEFAULT_BOOT_ARGS = 'reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce';

/** PUT /boot-source. */
export interface BootSourceConfig {
  kernel_image_path: string;
  initrd_path?: string | null;
  boot_args?: string | null;
}

/** PUT /machine-config. */
export interface MachineConfig {
  vcpu_count: number;
  mem_size_mib: number;
  smt?: boolean;
  track_dirty_pages?: boolean;
  huge_pages?: 'None' | 'Transparent' | '2M';
}

/** A token bucket of a rate limiter (facts §1.4 RateLimiter). */
export interface TokenBucketConfig {
  size: number;
  refill_time: number;
  one_time_burst?: number | null;
}

/** PUT /drives/{id} (virtio-block). */
export interface DriveConfig {
  drive_id: string;
  is_root_device: boolean;
  path_on_host: string;
  is_read_only?: boolean;
  partuuid?: string | null;
  cache_type?: 'Unsafe' | 'Writeback';
  io_engine?: 'Sync' | 'Async';
  rate_limiter?: { bandwidth?: TokenBucketConfig | null; ops?: TokenBucketConfig | null } | null;
}

/** Where the serial console goes: PUT /serial `serial_out_path`, or the library's stream. */
export type SerialOutput = { kind: 'stream' } | { kind: 'stdout' } | { kind: 'file'; path: string };

/** A whole microVM, as the library takes it. */
export interface MicroVmConfig {
  'boot-source': BootSourceConfig;
  'machine-config'?: Partial<MachineConfig>;
  drives?: DriveConfig[];
  /** Firecracker's --boot-timer flag: the 0xC0000000 boot-timer device. */
  bootTimer?: boolean;
  /** Serial output target; default: a readable stream (`MicroVm.console`). */
  serial?: SerialOutput;
  /** Feed this process's stdin to the guest serial port (a TTY is put in raw mode). */
  stdin?: boolean;
  /** Instance id (--id), for logs. */
  id?: string;
  /** Test-only: the 0xe9 debug port (src/devices/debug-port.ts). */
  debugPort?: boolean;
}

/** Machine config with Firecracker's defaults applied (1 vCPU, 128 MiB). */
export function machineDefaults(m: Partial<MachineConfig> | undefined): MachineConfig {
  return {
    vcpu_count: m?.vcpu_count ?? 1,
    mem_size_mib: m?.mem_size_mib ?? 128,
    smt: m?.smt ?? false,
    track_dirty_pages: m?.track_dirty_pages ?? false,
    huge_pages: m?.huge_pages ?? 'None',
  };
}
