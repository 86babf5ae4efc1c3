/**
 * 16550A UART register map: offsets, bits and sizes, named as in Linux
 * include/uapi/linux/serial_reg.h and described by the National Semiconductor PC16550D
 * datasheet (June 1995), "Register Description" Tables II–IV. Shared by the model
 * (serial.ts) and its tests; no logic here.
 */
// Register offsets from the base port (datasheet Table II). RX/TX/DLL share offset 0 and
// IER/DLM offset 1, selected by LCR.DLAB; IIR (read) and FCR (write) share offset 2.
/** Receiver Buffer Register (read, DLAB=0). */
export const UART_RX = 0;
/** Transmitter Holding Register (write, DLAB=0). */
export const UART_TX = 0;
/** Divisor Latch, low byte (DLAB=1). */
export const UART_DLL = 0;
/** Divisor Latch, high byte (DLAB=1); "DLH" in some datasheets. */
export const UART_DLM = 1;
/** Interrupt Enable Register (DLAB=0). */
export const UART_IER = 1;
/** Interrupt Identification Register (read). */
export const UART_IIR = 2;
/** FIFO Control Register (write; the model ignores it, see serial.ts). */
export const UART_FCR = 2;
/** Line Control Register. */
export const UART_LCR = 3;
/** Modem Control Register. */
export const UART_MCR = 4;
/** Line Status Register (read only). */
export const UART_LSR = 5;
/** Modem Status Register (read only). */
export const UART_MSR = 6;
/** Scratch Register. */
export const UART_SCR = 7;

/** IER bit 0: Enable Received Data Available Interrupt (ERBFI). */
export const UART_IER_RDI = 0x01;
/** IER bit 1: Enable Transmitter Holding Register Empty Interrupt (ETBEI). */
export const UART_IER_THRI = 0x02;
/** IER bit 2: Enable Receiver Line Status Interrupt (ELSI). */
export const UART_IER_RLSI = 0x04;
/** IER bit 3: Enable Modem Status Interrupt (EDSSI). */
export const UART_IER_MSI = 0x08;
/** IER bits that exist on a 16550A (the upper four read as 0). */
export const UART_IER_VALID = UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI;

/** IIR bit 0 set: no interrupt pending (bits 1–3 then read 0). */
export const UART_IIR_NO_INT = 0x01;
/** IIR id, priority 3: THR empty. Reset by reading IIR (if the source) or writing THR. */
export const UART_IIR_THRI = 0x02;
/** IIR id, priority 2: received data available. Reset when the FIFO drops below trigger. */
export const UART_IIR_RDI = 0x04;
/** IIR id, priority 1 (highest): receiver line status (OE/PE/FE/BI). Reset by reading LSR. */
export const UART_IIR_RLSI = 0x06;
/** IIR bits 6–7 both set: FIFOs enabled, i.e. the chip identifies as a 16550A. */
export const UART_IIR_FIFO_ENABLED_16550A = 0xc0;

/** LCR bits 0–1 = 11: 8-bit words (the reset value, 8N1). */
export const UART_LCR_WLEN8 = 0x03;
/** LCR bit 7: Divisor Latch Access Bit; offsets 0/1 become DLL/DLM. */
export const UART_LCR_DLAB = 0x80;

/** MCR bit 0: Data Terminal Ready (loops back to MSR.DSR). */
export const UART_MCR_DTR = 0x01;
/** MCR bit 1: Request To Send (loops back to MSR.CTS). */
export const UART_MCR_RTS = 0x02;
/** MCR bit 2: auxiliary output 1 (loops back to MSR.RI). */
export const UART_MCR_OUT1 = 0x04;
/** MCR bit 3: auxiliary output 2, gates the IRQ on PCs (loops back to MSR.DCD). */
export const UART_MCR_OUT2 = 0x08;
/** MCR bit 4: loopback diagnostic mode. */
export const UART_MCR_LOOP = 0x10;
/** MCR bits that exist (5–7 are always 0). */
export const UART_MCR_VALID = UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT1 | UART_MCR_OUT2 | UART_MCR_LOOP;

/** LSR bit 0: Data Ready, the RX FIFO holds at least one byte. */
export const UART_LSR_DR = 0x01;
/** LSR bit 1: Overrun Error, a byte arrived with the FIFO full (cleared by reading LSR). */
export const UART_LSR_OE = 0x02;
/** LSR bit 5: Transmitter Holding Register Empty. */
export const UART_LSR_THRE = 0x20;
/** LSR bit 6: Transmitter Empty (THR and shift register). */
export const UART_LSR_TEMT = 0x40;

/** MSR bit 4: Clear To Send. */
export const UART_MSR_CTS = 0x10;
/** MSR bit 5: Data Set Ready. */
export const UART_MSR_DSR = 0x20;
/** MSR bit 6: Ring Indicator. */
export const UART_MSR_RI = 0x40;
/** MSR bit 7: Data Carrier Detect. */
export const UART_MSR_DCD = 0x80;

/** Receive FIFO depth of a 16550A, bytes. */
export const UART_FIFO_SIZE = 64;
/** Capacity of the output ring the host drains, bytes. */
export const SERIAL_OUTPUT_RING_SIZE = 4096;
