/**
 * Legacy (non-virtio) x86 devices: the COM1 16550A UART, the i8042 controller and the
 * boot-timer pseudo device. Pure models (no KVM, no FFI, no I/O): the vCPU workers put them
 * on their buses, the VMM wires interrupts and host I/O. Where they sit follows Firecracker's
 * device_manager/legacy.rs (facts §4.1, §4.2, §3.2): fixed ports and GSIs, placed here rather
 * than in the models, which only know register offsets.
 */
export * from './shared-state.js';
export * from './uart-registers.js';
export * from './serial.js';
export * from './i8042.js';
export * from './boot-timer.js';

/** COM1 base port; the UART spans SERIAL_PORT_SIZE ports (0x3f8–0x3ff). */
export const SERIAL_COM1_PORT_BASE = 0x3f8;
/** Ports per 16550A (register offsets 0–7). */
export const SERIAL_PORT_SIZE = 8;
/** GSI of COM1 (legacy IRQ 4). */
export const SERIAL_COM1_GSI = 4;

/** i8042 base port: data at 0x60, status/command at 0x64 (bus range 0x60..0x65). */
export const I8042_PORT_BASE = 0x60;
/** Ports the i8042 occupies on the bus, from I8042_PORT_BASE. */
export const I8042_PORT_SIZE = 5;
/** GSI of the i8042 keyboard interrupt (legacy IRQ 1). */
export const I8042_GSI = 1;
