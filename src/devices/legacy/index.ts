/**
 * Legacy (non-virtio) x86 devices: the COM1 16550A UART, the i8042 controller and the
 * boot-timer pseudo device. Pure models (no KVM, no FFI, no I/O): the vCPU workers put them
 * on their buses, the VMM wires interrupts and host I/O. Where they sit (ports, GSIs) is part of
 * the machine, defined once in src/arch/x86_64/layout.ts beside the ACPI tables that announce
 * it; the models only know register offsets.
 */
export * from './shared-state.js';
export * from './uart-registers.js';
export * from './serial.js';
export * from './i8042.js';
export * from './boot-timer.js';
