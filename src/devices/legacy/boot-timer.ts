/**
 * The boot-timer pseudo device (firecracker src/vmm/src/devices/pseudo/boot_timer.rs; firecracker devices/pseudo/boot_timer.rs): a
 * 4 KiB MMIO page at BOOT_DEVICE_MEM_START (0xC000_0000), present only with --boot-timer.
 * The test init writes the byte 123 at offset 0 once /sbin/init is about to run, and the VMM
 * logs (info) how long the boot took since InstanceStart began building the microVM:
 *
 *   Guest-boot-time = %6u us %u ms, %6u CPU us %u CPU ms
 *
 * with monotonic wall time and process CPU time. Reads return nothing useful (zeros here);
 * every other write is ignored. The device has no state, so unlike serial and i8042 it needs
 * no shared buffer: each vCPU worker builds its own over the start timestamp main took.
 */
import type { BusDevice } from '../bus.js';

/** The byte a guest writes at offset 0 to say "boot complete" (Firecracker's name). */
export const MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE = 123;
/** Size of the boot-timer MMIO window, bytes. */
export const BOOT_TIMER_MMIO_SIZE = 0x1000;
/** The only meaningful register: the signal byte at the start of the window. */
export const BOOT_TIMER_SIGNAL_OFFSET = 0;

const US_PER_MS = 1000;
const NS_PER_US = 1000n;
/** printf `%6u`: right-aligned in six columns, wider numbers are not cut. */
const US_FIELD_WIDTH = 6;

/** A point in time on both clocks the boot-time line reports. */
export interface BootTimestamp {
  /** Monotonic wall clock (CLOCK_MONOTONIC), microseconds. */
  wallUs: number;
  /** CPU time of the whole process (user + system, all threads), microseconds. */
  cpuUs: number;
}

/**
 * Reads both clocks now. `process.hrtime` is CLOCK_MONOTONIC and `process.cpuUsage` is
 * getrusage(RUSAGE_SELF), both process-wide, so a timestamp taken on main can be compared
 * with one taken on a vCPU worker.
 */
export function bootTimestamp(): BootTimestamp {
  const cpu = process.cpuUsage();
  return { wallUs: Number(process.hrtime.bigint() / NS_PER_US), cpuUs: cpu.user + cpu.system };
}

/** Elapsed wall and CPU microseconds from `start` to now (never negative). */
export function bootTimeSince(start: BootTimestamp): BootTimestamp {
  const now = bootTimestamp();
  return { wallUs: Math.max(0, now.wallUs - start.wallUs), cpuUs: Math.max(0, now.cpuUs - start.cpuUs) };
}

/** Formats a non-negative integer like printf %u (floors fractions; non-finite or < 0 → 0). */
function u(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/**
 * The exact log line Firecracker prints: `Guest-boot-time = %6u us %u ms, %6u CPU us %u
 * CPU ms`, milliseconds by integer division (Rust `u64 / 1000`).
 */
export function formatBootTime(wallUs: number, cpuUs: number): string {
  const w = u(wallUs);
  const c = u(cpuUs);
  const pad = (n: number): string => String(n).padStart(US_FIELD_WIDTH, ' ');
  return `Guest-boot-time = ${pad(w)} us ${Math.floor(w / US_PER_MS)} ms, ${pad(c)} CPU us ${Math.floor(c / US_PER_MS)} CPU ms`;
}

/**
 * The MMIO device. `onBootComplete` runs on the vCPU thread that took the exit, once per
 * magic write (Firecracker logs every one, not only the first).
 */
export class BootTimer implements BusDevice {
  constructor(private readonly onBootComplete: () => void) {}

  /** Reads carry no information; the access is zero-filled. */
  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  /** A 1-byte write of MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE at offset 0 signals; all else is ignored. */
  write(offset: number, data: Uint8Array): void {
    if (data.length === 1 && offset === BOOT_TIMER_SIGNAL_OFFSET && data[0] === MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE) {
      this.onBootComplete();
    }
  }
}
