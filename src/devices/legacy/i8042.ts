/**
 * i8042 PS/2 controller, just enough of it for a Linux guest to reboot and to receive
 * Ctrl+Alt+Del: Firecracker's devices/legacy/i8042.rs, specified in firecracker src/vmm/src/devices/legacy/i8042.rs (shutdown path
 * in firecracker src/firecracker/src/main.rs). Bit and command names follow Firecracker's (`CB_*` control bits, `SB_*`
 * status bits, `CMD_*` commands), prefixed with I8042_.
 *
 * Ports (offsets from base 0x60): 0 = data (0x60), 4 = status on read / command on write
 * (0x64). Byte accesses only. The controller keeps a 16-byte output buffer the guest pops
 * from the data port; keyboard interrupts (GSI 1) are edge pulses, one per event, sent only
 * while the guest keeps the control register's KBD_INT bit set.
 *
 * State transitions of the two-step commands:
 *
 *   0x64 <- CMD_WRITE_CTR/CMD_WRITE_OUTP ----> status.CMD_DATA set, cmd remembered
 *   0x60 <- value  (CMD_DATA set)        ----> control/outp = value, CMD_DATA cleared
 *   0x60 <- value  (CMD_DATA clear)      ----> keyboard command: buffer = [0xFA ACK], IRQ1
 *
 * All state lives in a SharedArrayBuffer (shared-state.ts): vCPU workers call `read`/`write`
 * on port-IO exits, the main thread calls `sendCtrlAltDel`; every thread builds its own
 * I8042 over the same buffer.
 */
import type { BusDevice } from '../bus.js';
import { defineStateLayout, SharedState } from './shared-state.js';

/** Offset of the data port (0x60). */
export const I8042_DATA_OFFSET = 0;
/** Offset of the status (read) / command (write) port (0x64). */
export const I8042_STATUS_OFFSET = 4;

/** Command 0x20: put the control byte in the output buffer. */
export const I8042_CMD_READ_CTR = 0x20;
/** Command 0x60: the next data-port byte is the new control byte. */
export const I8042_CMD_WRITE_CTR = 0x60;
/** Command 0xD0: put the output port in the output buffer. */
export const I8042_CMD_READ_OUTP = 0xd0;
/** Command 0xD1: the next data-port byte is the new output port. */
export const I8042_CMD_WRITE_OUTP = 0xd1;
/** Pulse the CPU reset line: how `reboot=k` guests ask the VMM to stop (firecracker src/firecracker/src/main.rs). */
export const I8042_CMD_RESET_CPU = 0xfe;

/** Status bit 0: the output buffer holds data for port 0x60. */
export const I8042_SB_OUT_DATA_AVAIL = 0x01;
/** Status bit 3: port 0x60 expects the parameter of a command. */
export const I8042_SB_CMD_DATA = 0x08;
/** Status register bit: keyboard enabled (not locked). */
export const I8042_SB_KBD_ENABLED = 0x10;

/** Control bit 0: keyboard interrupt (IRQ1) enabled. */
export const I8042_CB_KBD_INT = 0x01;
/** Control bit 2: system flag, POST passed (always 1). */
export const I8042_CB_POST_OK = 0x04;

/** What the emulated keyboard answers to any command byte (ATKBD_RET_ACK). */
export const I8042_KBD_ACK = 0xfa;

/** Scan code set 2 make code of left Ctrl. */
export const KEY_CTRL = 0x14;
/** Scan code set 2 make code of left Alt. */
export const KEY_ALT = 0x11;
/** Prefix byte of extended (E0) scan codes. */
export const SCANCODE_EXTENDED_PREFIX = 0xe0;
/** Scan code set 2 make code of Delete, after SCANCODE_EXTENDED_PREFIX. */
export const KEY_DEL = 0x71;

/** Internal output buffer size, bytes. */
export const I8042_BUFFER_SIZE = 16;

/** Ctrl+Alt+Del as keys; each key is followed by one IRQ1 (make codes only). */
const CTRL_ALT_DEL: readonly (readonly number[])[] = [[KEY_CTRL], [KEY_ALT], [SCANCODE_EXTENDED_PREFIX, KEY_DEL]];
/** Buffer bytes Ctrl+Alt+Del needs (Firecracker refuses the whole sequence otherwise). */
const CTRL_ALT_DEL_BYTES = CTRL_ALT_DEL.reduce((n, key) => n + key.length, 0);

const INITIAL_CONTROL = I8042_CB_POST_OK | I8042_CB_KBD_INT;
const INITIAL_STATUS = I8042_SB_KBD_ENABLED;
const BYTE_MASK = 0xff;
/** Layout tag of an i8042 state buffer (shared-state.ts invariant 4). */
const I8042_STATE_TAG = 0x8042;

const LAYOUT = defineStateLayout(
  'i8042',
  I8042_STATE_TAG,
  [
    'STATUS', 'CONTROL', 'OUTP',
    /** The last two-step command written to 0x64, awaiting its parameter on 0x60. */
    'CMD',
    'BUF_HEAD', 'BUF_LEN',
    'READ_COUNT', 'WRITE_COUNT', 'MISSED_READ_COUNT', 'MISSED_WRITE_COUNT', 'RESET_COUNT', 'ERROR_COUNT',
  ] as const,
  { buf: I8042_BUFFER_SIZE },
);
const S = LAYOUT.slots;

/** Firecracker's `i8042` metrics group (totals; the metrics writer takes deltas). */
export interface I8042Metrics {
  /** Interrupt or reset callbacks that threw. */
  error_count: number;
  /** Reads of another size or at an offset other than 0 and 4. */
  missed_read_count: number;
  /** Writes of another size, at another offset, or of an unknown command. */
  missed_write_count: number;
  /** Successful reads. */
  read_count: number;
  /** CPU reset commands (0xFE) received. */
  reset_count: number;
  /** Successful writes. */
  write_count: number;
}

/**
 * One thread's handle on the shared i8042. Guest side: `read`/`write` (BusDevice) or
 * `readByte`/`writeByte`; host side: `sendCtrlAltDel`, `metrics`.
 */
export class I8042 implements BusDevice {
  /** Bytes the shared state buffer must have. */
  static readonly stateBytes = LAYOUT.byteLength;

  private readonly state: SharedState<keyof typeof S, 'buf'>;
  private readonly r: Int32Array;
  private readonly buf: Uint8Array;
  /** IRQ1 pulses owed, counted and sent under the lock. */
  private pulses = 0;
  private resetRequested = false;

  /** A zeroed state buffer; the first I8042 attached to it performs the reset. */
  static allocateState(): SharedArrayBuffer {
    return SharedState.allocate(LAYOUT);
  }

  /**
   * Attaches to `state` (initialising it if fresh). `irq` drives GSI 1 from this thread and
   * `onReset` is called (on the thread that handled the write) when the guest writes 0xFE to
   * port 0x64; neither runs with the state lock held. Throws DeviceStateError on a bad buffer.
   */
  constructor(
    state: SharedArrayBuffer,
    private readonly irq: (level: 0 | 1) => void,
    private readonly onReset: () => void,
  ) {
    this.state = new SharedState(LAYOUT, state, (st) => {
      st.i32[S.CONTROL] = INITIAL_CONTROL;
      st.i32[S.STATUS] = INITIAL_STATUS;
    });
    this.r = this.state.i32;
    this.buf = this.state.region('buf');
  }

  /** BusDevice read: byte accesses only; others read 0 and count a missed read. */
  read(offset: number, data: Uint8Array): void {
    if (data.length !== 1) {
      data.fill(0);
      this.state.count(S.MISSED_READ_COUNT);
      return;
    }
    data[0] = this.readByte(offset);
  }

  /** BusDevice write: byte accesses only; others are dropped and counted. */
  write(offset: number, data: Uint8Array): void {
    if (data.length !== 1) {
      this.state.count(S.MISSED_WRITE_COUNT);
      return;
    }
    this.writeByte(offset, data[0]!);
  }

  /** Guest read at `offset`: 4 = status, 0 = pop the output buffer (0 when empty). */
  readByte(offset: number): number {
    const r = this.r;
    let value = 0;
    this.state.lock();
    try {
      if (offset === I8042_STATUS_OFFSET) {
        value = r[S.STATUS]!;
        this.state.count(S.READ_COUNT);
      } else if (offset === I8042_DATA_OFFSET) {
        value = this.popLocked();
        // More bytes queued: interrupt again so the guest comes back for the next one.
        if ((r[S.STATUS]! & I8042_SB_OUT_DATA_AVAIL) !== 0) this.kbdInterruptLocked();
        this.state.count(S.READ_COUNT);
      } else {
        this.state.count(S.MISSED_READ_COUNT);
      }
    } finally {
      this.sendPulsesLocked();
      this.state.unlock();
    }
    this.deliverReset();
    return value;
  }

  /** Guest write of `value` (low 8 bits) at `offset`; see the header for the commands. */
  writeByte(offset: number, value: number): void {
    const r = this.r;
    const v = value & BYTE_MASK;
    let ok = true;
    this.state.lock();
    try {
      if (offset === I8042_STATUS_OFFSET) {
        switch (v) {
          case I8042_CMD_RESET_CPU:
            this.state.count(S.RESET_COUNT);
            this.resetRequested = true;
            break;
          case I8042_CMD_READ_CTR:
            // Only the control byte is readable at 0x60 after this.
            this.flushLocked();
            this.pushLocked(r[S.CONTROL]!);
            break;
          case I8042_CMD_WRITE_CTR:
            this.flushLocked();
            r[S.STATUS] = r[S.STATUS]! | I8042_SB_CMD_DATA;
            r[S.CMD] = v;
            break;
          case I8042_CMD_READ_OUTP:
            this.flushLocked();
            this.pushLocked(r[S.OUTP]!);
            break;
          case I8042_CMD_WRITE_OUTP:
            // Firecracker does not flush the buffer here (unlike CMD_WRITE_CTR); kept as is.
            r[S.STATUS] = r[S.STATUS]! | I8042_SB_CMD_DATA;
            r[S.CMD] = v;
            break;
          default:
            ok = false;
        }
      } else if (offset === I8042_DATA_OFFSET) {
        if ((r[S.STATUS]! & I8042_SB_CMD_DATA) !== 0) {
          // The parameter of a two-step command.
          if (r[S.CMD] === I8042_CMD_WRITE_CTR) r[S.CONTROL] = v;
          else if (r[S.CMD] === I8042_CMD_WRITE_OUTP) r[S.OUTP] = v;
          r[S.STATUS] = r[S.STATUS]! & ~I8042_SB_CMD_DATA;
        } else {
          // A byte for the keyboard itself: this dumb keyboard ACKs anything.
          this.flushLocked();
          this.pushLocked(I8042_KBD_ACK);
          this.kbdInterruptLocked();
        }
      } else {
        ok = false;
      }
      this.state.count(ok ? S.WRITE_COUNT : S.MISSED_WRITE_COUNT);
    } finally {
      this.sendPulsesLocked();
      this.state.unlock();
    }
    this.deliverReset();
  }

  /**
   * Host: queues Ctrl+Alt+Del (0x14, 0x11, 0xE0 0x71) with one IRQ1 per key, or none if the
   * guest cleared KBD_INT. Returns false, queueing nothing, when fewer than 4 buffer bytes
   * are free (Firecracker's InternalBufferFull).
   */
  sendCtrlAltDel(): boolean {
    this.state.lock();
    try {
      if (I8042_BUFFER_SIZE - this.r[S.BUF_LEN]! < CTRL_ALT_DEL_BYTES) return false;
      for (const key of CTRL_ALT_DEL) {
        for (const b of key) this.pushLocked(b);
        this.kbdInterruptLocked();
      }
    } finally {
      this.sendPulsesLocked();
      this.state.unlock();
    }
    this.deliverReset();
    return true;
  }

  /** Current counter totals (no lock: counters are atomic). */
  metrics(): I8042Metrics {
    const c = (slot: number): number => this.state.counter(slot);
    return {
      error_count: c(S.ERROR_COUNT),
      missed_read_count: c(S.MISSED_READ_COUNT),
      missed_write_count: c(S.MISSED_WRITE_COUNT),
      read_count: c(S.READ_COUNT),
      reset_count: c(S.RESET_COUNT),
      write_count: c(S.WRITE_COUNT),
    };
  }

  // ---- everything below runs with the state lock held (except deliver) ----

  /** Appends to the output buffer; callers guarantee room (flush first or pre-check). */
  private pushLocked(value: number): void {
    const r = this.r;
    const len = r[S.BUF_LEN]!;
    if (len >= I8042_BUFFER_SIZE) return;
    this.buf[(r[S.BUF_HEAD]! + len) % I8042_BUFFER_SIZE] = value;
    r[S.BUF_LEN] = len + 1;
    r[S.STATUS] = r[S.STATUS]! | I8042_SB_OUT_DATA_AVAIL;
  }

  private popLocked(): number {
    const r = this.r;
    if (r[S.BUF_LEN] === 0) return 0;
    const head = r[S.BUF_HEAD]!;
    const value = this.buf[head]!;
    r[S.BUF_HEAD] = (head + 1) % I8042_BUFFER_SIZE;
    r[S.BUF_LEN] = r[S.BUF_LEN]! - 1;
    if (r[S.BUF_LEN] === 0) r[S.STATUS] = r[S.STATUS]! & ~I8042_SB_OUT_DATA_AVAIL;
    return value;
  }

  private flushLocked(): void {
    this.r[S.BUF_HEAD] = 0;
    this.r[S.BUF_LEN] = 0;
    this.r[S.STATUS] = this.r[S.STATUS]! & ~I8042_SB_OUT_DATA_AVAIL;
  }

  /** Owes one IRQ1 pulse, unless the guest disabled keyboard interrupts. */
  private kbdInterruptLocked(): void {
    if ((this.r[S.CONTROL]! & I8042_CB_KBD_INT) !== 0) this.pulses++;
  }

  /**
   * Sends the owed IRQ1 pulses with the state lock held; throws are counted. Held because the
   * main thread (Ctrl+Alt+Del) and a vCPU pulse the same edge-triggered line: interleaved
   * `irq(1)`/`irq(0)` calls from two threads merge into one edge at the IOAPIC (the serial
   * port's lost-interrupt bug, serial.ts `deliver`).
   */
  private sendPulsesLocked(): void {
    while (this.pulses > 0) {
      this.pulses--;
      try {
        this.irq(1);
        this.irq(0);
      } catch {
        this.state.count(S.ERROR_COUNT);
      }
    }
  }

  /** Runs a requested reset, outside the lock (the callback ends the vCPU's run loop); throws are counted. */
  private deliverReset(): void {
    if (this.resetRequested) {
      this.resetRequested = false;
      try {
        this.onReset();
      } catch {
        this.state.count(S.ERROR_COUNT);
      }
    }
  }
}
