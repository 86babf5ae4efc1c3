/**
 * 16550A UART (COM1), modelled on Firecracker's serial device (firecracker src/vmm/src/devices/legacy/serial.rs): rust-vmm
 * vm-superio `Serial` behind devices/legacy/serial.rs. Register semantics follow the National
 * Semiconductor PC16550D datasheet (June 1995, "Register Description", Tables II–IV) and the
 * bit names of Linux include/uapi/linux/serial_reg.h.
 *
 * The whole device state lives in one SharedArrayBuffer (see shared-state.ts): vCPU workers
 * call `read`/`write` on port-IO exits, the main thread calls the host-side methods
 * (`enqueueInput`, `drainOutput`, ...). Every thread constructs its own `Serial` over the same
 * buffer with its own interrupt function.
 *
 * The model, and where it departs from a physical chip:
 * - Transmission is instantaneous: a THR write lands in the output ring (4 KiB) at once, so
 *   LSR always reports THRE|TEMT. A full ring drops the byte and counts `missed_write_count`
 *   (Firecracker counts a failed non-blocking stdout write the same way); the guest is never
 *   blocked.
 * - RX is a 64-byte FIFO with a trigger level of 1 (FCR writes are ignored, as in
 *   vm-superio). LSR.DR and the RDI interrupt stay up while the FIFO holds data (vm-superio
 *   instead drops RDI on the first RBR or IIR read; Linux drains while LSR.DR either way).
 * - Interrupt identification is recomputed from the sources in datasheet priority order
 *   (Table IV): line status (OE) > received data > THR empty. Modem-status interrupts never
 *   occur (the modem lines never change, as in vm-superio).
 * - THRE interrupt: set by a THR write, and by IER.ETBEI going 0→1 while THR is empty (which
 *   it always is; QEMU does the same and Linux's 8250 driver probes for it at startup —
 *   without it the driver marks the port UART_BUG_THRE and falls back to a timer). Cleared
 *   by an IIR read that reports it, or by clearing IER.ETBEI.
 * - The interrupt line (GSI 4) is edge-triggered, as Firecracker's irqfd is: `irq(1); irq(0)`
 *   is pulsed, with the state lock held (`deliver`), when the pending condition goes from none
 *   to some. While one interrupt is
 *   unacknowledged (IIR not yet read down to "no interrupt"), new events add no new edge,
 *   exactly like vm-superio which triggers only if the IIR bit was not already set.
 * - Loopback (MCR.LOOP): THR bytes go to the RX FIFO (overflow sets LSR.OE), host input is
 *   refused, and MSR mirrors MCR (DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD).
 */
import type { BusDevice } from '../bus.js';
import { defineStateLayout, SharedState, type WaitSlot } from './shared-state.js';
import {
  SERIAL_OUTPUT_RING_SIZE, UART_DLL, UART_DLM, UART_FIFO_SIZE, UART_IER, UART_IER_RDI, UART_IER_RLSI,
  UART_IER_THRI, UART_IER_VALID, UART_IIR, UART_IIR_FIFO_ENABLED_16550A, UART_IIR_NO_INT, UART_IIR_RDI,
  UART_IIR_RLSI, UART_IIR_THRI, UART_LCR, UART_LCR_DLAB, UART_LCR_WLEN8, UART_LSR, UART_LSR_DR,
  UART_LSR_OE, UART_LSR_TEMT, UART_LSR_THRE, UART_MCR, UART_MCR_DTR, UART_MCR_LOOP, UART_MCR_OUT1,
  UART_MCR_OUT2, UART_MCR_RTS, UART_MCR_VALID, UART_MSR, UART_MSR_CTS, UART_MSR_DCD, UART_MSR_DSR,
  UART_MSR_RI, UART_RX, UART_SCR, UART_TX,
} from './uart-registers.js';

// Reset values, as vm-superio's SerialState::default(): 9600 baud divisor (0x000c), 8N1,
// OUT2 set, modem lines DSR|CTS|DCD asserted.
const DEFAULT_DIVISOR_LOW = 12;
const DEFAULT_DIVISOR_HIGH = 0;
const DEFAULT_MODEM_STATUS = UART_MSR_DSR | UART_MSR_CTS | UART_MSR_DCD;
const BYTE_MASK = 0xff;
/** Layout tag of a serial state buffer (shared-state.ts invariant 4). */
const SERIAL_STATE_TAG = 0x16550a;

const LAYOUT = defineStateLayout(
  'serial',
  SERIAL_STATE_TAG,
  [
    'IER', 'LCR', 'MCR', 'SCR', 'DLL', 'DLM',
    /** LSR error bits (OE) latched until LSR is read. */
    'LSR_ERRORS',
    /** 1 while a THRE interrupt is pending (set on THR write / ETBEI enable). */
    'THR_PENDING',
    /** Last computed interrupt line level (0/1); an edge is pulsed on 0→1. */
    'IRQ_LINE',
    'RX_HEAD', 'RX_COUNT', 'OUT_HEAD', 'OUT_COUNT',
    /** Bumped + notified per byte accepted into the output ring. */
    'OUT_SEQ',
    /** Bumped + notified when the guest empties the RX FIFO. */
    'IN_SEQ',
    'READ_COUNT', 'WRITE_COUNT', 'MISSED_READ_COUNT', 'MISSED_WRITE_COUNT', 'ERROR_COUNT',
  ] as const,
  { rx: UART_FIFO_SIZE, out: SERIAL_OUTPUT_RING_SIZE },
);
const S = LAYOUT.slots;

/** Firecracker's `uart` metrics group (counters are totals; the metrics writer takes deltas). */
export interface SerialMetrics {
  /** Interrupt deliveries that threw. */
  error_count: number;
  /** Reads of a size other than one byte. */
  missed_read_count: number;
  /** Writes of a size other than one byte, and output bytes dropped on a full ring. */
  missed_write_count: number;
  /** RBR reads by the guest. */
  read_count: number;
  /** Bytes accepted into the output ring. */
  write_count: number;
}

/**
 * One thread's handle on the shared COM1 UART. Guest side (vCPU worker): `read`/`write`
 * (BusDevice) or `readByte`/`writeByte`. Host side (main thread): `enqueueInput`, `rxFree`,
 * `drainOutput`, `outputWaitSlot`, `inputWaitSlot`, `metrics`.
 */
export class Serial implements BusDevice {
  /** Bytes the shared state buffer must have. */
  static readonly stateBytes = LAYOUT.byteLength;

  private readonly state: SharedState<keyof typeof S, 'rx' | 'out'>;
  private readonly r: Int32Array;
  private readonly rx: Uint8Array;
  private readonly out: Uint8Array;
  /** Set under the lock when the line rose; the pulse is sent after unlocking. */
  private raise = false;

  /** A zeroed state buffer; the first Serial attached to it performs the reset. */
  static allocateState(): SharedArrayBuffer {
    return SharedState.allocate(LAYOUT);
  }

  /**
   * Attaches to `state` (initialising it if fresh). `irq` drives GSI 4 from this thread; it
   * is never called with the state lock held. Throws DeviceStateError on a bad buffer.
   */
  constructor(state: SharedArrayBuffer, private readonly irq: (level: 0 | 1) => void) {
    this.state = new SharedState(LAYOUT, state, (st) => {
      const r = st.i32;
      r[S.DLL] = DEFAULT_DIVISOR_LOW;
      r[S.DLM] = DEFAULT_DIVISOR_HIGH;
      r[S.LCR] = UART_LCR_WLEN8;
      r[S.MCR] = UART_MCR_OUT2;
    });
    this.r = this.state.i32;
    this.rx = this.state.region('rx');
    this.out = this.state.region('out');
  }

  /** BusDevice read: byte accesses only; any other size reads 0 and counts a missed read. */
  read(offset: number, data: Uint8Array): void {
    if (data.length !== 1) {
      data.fill(0);
      this.state.count(S.MISSED_READ_COUNT);
      return;
    }
    data[0] = this.readByte(offset);
  }

  /** BusDevice write: byte accesses only; any other size is dropped and counted. */
  write(offset: number, data: Uint8Array): void {
    if (data.length !== 1) {
      this.state.count(S.MISSED_WRITE_COUNT);
      return;
    }
    this.writeByte(offset, data[0]!);
  }

  /** Guest read of register `offset` (0–7); anything else reads 0. Never throws. */
  readByte(offset: number): number {
    let value: number;
    this.state.lock();
    try {
      value = this.readLocked(offset);
      this.updateIrqLocked();
      this.deliver();
    } finally {
      this.state.unlock();
    }
    return value;
  }

  /** Guest write of `value` (low 8 bits) to register `offset`; unknown offsets are ignored. */
  writeByte(offset: number, value: number): void {
    this.state.lock();
    try {
      this.writeLocked(offset, value & BYTE_MASK);
      this.updateIrqLocked();
      this.deliver();
    } finally {
      this.state.unlock();
    }
  }

  /**
   * Host: queues input bytes for the guest, as many as fit in the RX FIFO; returns how many
   * were taken (0 in loopback mode, where the serial input is disconnected). Raises the
   * received-data interrupt if the guest enabled it.
   */
  enqueueInput(bytes: Uint8Array): number {
    let n = 0;
    this.state.lock();
    try {
      if ((this.r[S.MCR]! & UART_MCR_LOOP) === 0) {
        n = Math.min(UART_FIFO_SIZE - this.r[S.RX_COUNT]!, bytes.length);
        for (let i = 0; i < n; i++) this.pushRxLocked(bytes[i]!);
        this.updateIrqLocked();
        this.deliver();
      }
    } finally {
      this.state.unlock();
    }
    return n;
  }

  /** Host: free bytes in the RX FIFO (how much `enqueueInput` would accept now). */
  rxFree(): number {
    this.state.lock();
    const free = UART_FIFO_SIZE - this.r[S.RX_COUNT]!;
    this.state.unlock();
    return free;
  }

  /** Host: bytes waiting in the output ring. */
  outputPending(): number {
    this.state.lock();
    const n = this.r[S.OUT_COUNT]!;
    this.state.unlock();
    return n;
  }

  /** Host: takes up to `max` pending output bytes, oldest first, into a new array. */
  drainOutput(max = SERIAL_OUTPUT_RING_SIZE): Uint8Array {
    const dst = new Uint8Array(Math.max(0, Math.min(max, this.outputPending())));
    return dst.subarray(0, this.drainOutputInto(dst));
  }

  /** Host: moves pending output bytes into `dst` (no allocation); returns the count. */
  drainOutputInto(dst: Uint8Array): number {
    this.state.lock();
    try {
      const head = this.r[S.OUT_HEAD]!;
      const n = Math.min(dst.length, this.r[S.OUT_COUNT]!);
      const first = Math.min(n, SERIAL_OUTPUT_RING_SIZE - head);
      dst.set(this.out.subarray(head, head + first), 0);
      dst.set(this.out.subarray(0, n - first), first);
      this.r[S.OUT_HEAD] = (head + n) % SERIAL_OUTPUT_RING_SIZE;
      this.r[S.OUT_COUNT] = this.r[S.OUT_COUNT]! - n;
      return n;
    } finally {
      this.state.unlock();
    }
  }

  /**
   * Host: the word bumped (and notified) for every byte the guest writes to the ring. Read
   * it, drain, then `Atomics.waitAsync(array, index, valueReadBeforeDraining)`. Note that
   * under Node a pending waitAsync holds no event-loop handle: keep something ref'd (the
   * vCPU workers, a timer) or the process may exit with the promise unsettled.
   */
  outputWaitSlot(): WaitSlot {
    return { array: this.r, index: S.OUT_SEQ };
  }

  /** Host: the word bumped (and notified) whenever the guest empties the RX FIFO. */
  inputWaitSlot(): WaitSlot {
    return { array: this.r, index: S.IN_SEQ };
  }

  /** Current counter totals (no lock: counters are atomic). */
  metrics(): SerialMetrics {
    const c = (slot: number): number => this.state.counter(slot);
    return {
      error_count: c(S.ERROR_COUNT),
      missed_read_count: c(S.MISSED_READ_COUNT),
      missed_write_count: c(S.MISSED_WRITE_COUNT),
      read_count: c(S.READ_COUNT),
      write_count: c(S.WRITE_COUNT),
    };
  }

  // ---- everything below runs with the state lock held ----

  private readLocked(offset: number): number {
    const r = this.r;
    const dlab = (r[S.LCR]! & UART_LCR_DLAB) !== 0;
    switch (offset) {
      case UART_RX:
        return dlab ? r[S.DLL]! : this.popRxLocked();
      case UART_IER:
        return dlab ? r[S.DLM]! : r[S.IER]!;
      case UART_IIR: {
        // Reading IIR acknowledges a THRE interrupt only when THRE is what it reports
        // (datasheet Table IV, "Interrupt Reset Control").
        const id = this.interruptIdLocked();
        if (id === UART_IIR_THRI) r[S.THR_PENDING] = 0;
        return id | UART_IIR_FIFO_ENABLED_16550A;
      }
      case UART_LCR:
        return r[S.LCR]!;
      case UART_MCR:
        return r[S.MCR]!;
      case UART_LSR: {
        // Error bits are cleared by reading LSR; THRE|TEMT always set (instant transmit).
        const lsr = UART_LSR_THRE | UART_LSR_TEMT | r[S.LSR_ERRORS]! | (r[S.RX_COUNT]! > 0 ? UART_LSR_DR : 0);
        r[S.LSR_ERRORS] = 0;
        return lsr;
      }
      case UART_MSR:
        return this.modemStatusLocked();
      case UART_SCR:
        return r[S.SCR]!;
      default:
        return 0;
    }
  }

  private writeLocked(offset: number, value: number): void {
    const r = this.r;
    const dlab = (r[S.LCR]! & UART_LCR_DLAB) !== 0;
    switch (offset) {
      case UART_TX:
        if (dlab) r[S.DLL] = value;
        else this.transmitLocked(value);
        break;
      case UART_IER:
        if (dlab) {
          r[S.DLM] = value;
        } else {
          const enabled = value & UART_IER_VALID & ~r[S.IER]!;
          r[S.IER] = value & UART_IER_VALID;
          // THR is always empty, so turning ETBEI on makes a THRE interrupt pending at once.
          if ((enabled & UART_IER_THRI) !== 0) r[S.THR_PENDING] = 1;
          else if ((value & UART_IER_THRI) === 0) r[S.THR_PENDING] = 0;
        }
        break;
      case UART_LCR:
        r[S.LCR] = value;
        break;
      case UART_MCR:
        r[S.MCR] = value & UART_MCR_VALID;
        break;
      case UART_SCR:
        r[S.SCR] = value;
        break;
      default:
        // FCR (ignored, see header), LSR and MSR (read only), and offsets outside 0–7.
        break;
    }
  }

  /** A THR write: loop it back into RX, or append it to the output ring (drop when full). */
  private transmitLocked(value: number): void {
    const r = this.r;
    if ((r[S.MCR]! & UART_MCR_LOOP) !== 0) {
      if (r[S.RX_COUNT]! < UART_FIFO_SIZE) this.pushRxLocked(value);
      else r[S.LSR_ERRORS] = r[S.LSR_ERRORS]! | UART_LSR_OE;
    } else if (r[S.OUT_COUNT]! < SERIAL_OUTPUT_RING_SIZE) {
      this.out[(r[S.OUT_HEAD]! + r[S.OUT_COUNT]!) % SERIAL_OUTPUT_RING_SIZE] = value;
      r[S.OUT_COUNT] = r[S.OUT_COUNT]! + 1;
      this.state.count(S.WRITE_COUNT);
      this.state.bump(S.OUT_SEQ);
    } else {
      this.state.count(S.MISSED_WRITE_COUNT);
    }
    // The byte left THR immediately, so THR is empty again: THRE interrupt (if enabled).
    if ((r[S.IER]! & UART_IER_THRI) !== 0) r[S.THR_PENDING] = 1;
  }

  private pushRxLocked(value: number): void {
    const r = this.r;
    this.rx[(r[S.RX_HEAD]! + r[S.RX_COUNT]!) % UART_FIFO_SIZE] = value;
    r[S.RX_COUNT] = r[S.RX_COUNT]! + 1;
  }

  /** An RBR read: the oldest FIFO byte, or 0 when empty (vm-superio). */
  private popRxLocked(): number {
    const r = this.r;
    this.state.count(S.READ_COUNT);
    if (r[S.RX_COUNT] === 0) return 0;
    const head = r[S.RX_HEAD]!;
    const value = this.rx[head]!;
    r[S.RX_HEAD] = (head + 1) % UART_FIFO_SIZE;
    r[S.RX_COUNT] = r[S.RX_COUNT]! - 1;
    if (r[S.RX_COUNT] === 0) this.state.bump(S.IN_SEQ);
    return value;
  }

  /** MSR: fixed lines, or in loopback the MCR outputs wired back (datasheet, MCR bit 4). */
  private modemStatusLocked(): number {
    const mcr = this.r[S.MCR]!;
    if ((mcr & UART_MCR_LOOP) === 0) return DEFAULT_MODEM_STATUS;
    return (
      ((mcr & UART_MCR_DTR) !== 0 ? UART_MSR_DSR : 0) |
      ((mcr & UART_MCR_RTS) !== 0 ? UART_MSR_CTS : 0) |
      ((mcr & UART_MCR_OUT1) !== 0 ? UART_MSR_RI : 0) |
      ((mcr & UART_MCR_OUT2) !== 0 ? UART_MSR_DCD : 0)
    );
  }

  /** The highest-priority pending, enabled interrupt source (datasheet Table IV). */
  private interruptIdLocked(): number {
    const r = this.r;
    const ier = r[S.IER]!;
    if ((ier & UART_IER_RLSI) !== 0 && (r[S.LSR_ERRORS]! & UART_LSR_OE) !== 0) return UART_IIR_RLSI;
    if ((ier & UART_IER_RDI) !== 0 && r[S.RX_COUNT]! > 0) return UART_IIR_RDI;
    if ((ier & UART_IER_THRI) !== 0 && r[S.THR_PENDING] !== 0) return UART_IIR_THRI;
    return UART_IIR_NO_INT;
  }

  /** Recomputes the line level; a 0→1 transition schedules one edge pulse. */
  private updateIrqLocked(): void {
    const level = this.interruptIdLocked() === UART_IIR_NO_INT ? 0 : 1;
    if (level === 1 && this.r[S.IRQ_LINE] === 0) this.raise = true;
    this.r[S.IRQ_LINE] = level;
  }

  /**
   * Sends the scheduled edge, with the state lock held. A throwing `irq` is counted, not
   * rethrown. Under the lock because two threads pulse this one edge-triggered line (a vCPU
   * for THRE, the main thread for host input): interleaved, main's `irq(1)`, then the vCPU's
   * `irq(1)` (coalesced by the IOAPIC: the pin is already high), then both `irq(0)` leave one
   * interrupt, delivered before the vCPU's condition existed; the model then waits for an IIR
   * read that never comes and the console's output stalls for good (seen in CI: the guest's
   * next line never appeared after host input).
   */
  private deliver(): void {
    if (!this.raise) return;
    this.raise = false;
    try {
      this.irq(1);
      this.irq(0);
    } catch {
      this.state.count(S.ERROR_COUNT);
    }
  }
}
