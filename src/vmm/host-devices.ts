/**
 * The main thread's side of the legacy devices: allocates their shared state, lists them in
 * the DeviceManifest every vCPU worker gets, pumps serial output to its target and stdin (or
 * library writes) into the serial RX FIFO, and injects Ctrl+Alt+Del.
 *
 * The pumps wait with Atomics.waitAsync on the serial's sequence words, so the main thread
 * is woken by the vCPU that wrote a byte, without polling and without a message per byte;
 * flowing output is drained in batches (`OUTPUT_BATCH_MS`).
 */
import { openSync, writeSync, closeSync, constants as fsc } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import type { VmFd } from '../kvm/kvm.js';
import type { DeviceManifest } from '../actors/vcpu/protocol.js';
import { Serial, I8042, type BootTimestamp, type I8042Metrics, type SerialMetrics } from '../devices/legacy/index.js';
import { BOOT_DEVICE_MEM_START, I8042_DATA_PORT, I8042_GSI, SERIAL_COM1_GSI, SERIAL_COM1_PORT } from '../arch/x86_64/layout.js';

/** Where the serial console goes: PUT /serial `serial_out_path`, this process's stdout, or a stream. */
export type SerialOutput = { kind: 'stream' } | { kind: 'stdout' } | { kind: 'file'; path: string };

export interface HostDeviceOptions {
  vm: VmFd;
  serial: SerialOutput;
  stdin: boolean;
  /** Adds the boot-timer device; the timestamp is InstanceStart's. */
  bootTimer?: BootTimestamp;
  /** Extra devices (e.g. the test debug port). */
  extra?: DeviceManifest[];
  /** Snapshot restore: the UART's and the i8042's saved state (`saveLegacyState`). */
  legacy?: LegacyState;
}

/** The legacy devices' shared state as a snapshot keeps it (their whole register files and FIFOs). */
export interface LegacyState {
  serial: Uint8Array;
  i8042: Uint8Array;
}

export interface HostDeviceSet {
  manifest: DeviceManifest[];
  /** Serial output as a stream (library users); ends when the VM stops. */
  console: Readable;
  /** Queues bytes for the guest's serial input. */
  writeConsole(bytes: Uint8Array | string): void;
  /** Injects Ctrl+Alt+Del through the i8042; false when its buffer has no room. */
  sendCtrlAltDel(): boolean;
  /** The UART's and the i8042's counters as the vCPUs left them (totals modulo 2^32). */
  legacyMetrics(): { uart: SerialMetrics; i8042: I8042Metrics };
  /** Copies of the UART's and the i8042's state (snapshot; the vCPUs are paused). */
  saveLegacyState(): LegacyState;
  /** Stops the pumps (stdin, serial output) and flushes pending output. */
  close(): Promise<void>;
}

/** How long the serial output pump lets bytes gather once output is flowing. */
const OUTPUT_BATCH_MS = 2;

/** Waits until slot changes from `value` (or `ms` passes); never blocks the event loop. */
async function waitSlot(array: Int32Array, index: number, value: number, ms?: number): Promise<void> {
  const w = Atomics.waitAsync(array, index, value, ms);
  if (w.async) await w.value;
}

/** `fresh`, or `fresh` overwritten with a saved state of the same layout size. */
function restoredState(fresh: SharedArrayBuffer, saved: Uint8Array | undefined, name: string): SharedArrayBuffer {
  if (!saved) return fresh;
  if (saved.length !== fresh.byteLength) throw new Error(`saved ${name} state is ${saved.length} bytes, this build's is ${fresh.byteLength}`);
  new Uint8Array(fresh).set(saved);
  return fresh;
}

export function createHostDevices(opts: HostDeviceOptions): HostDeviceSet {
  const irq = (gsi: number) => (level: 0 | 1): void => opts.vm.irqLine(gsi, level);
  const serialState = restoredState(Serial.allocateState(), opts.legacy?.serial, 'serial');
  const i8042State = restoredState(I8042.allocateState(), opts.legacy?.i8042, 'i8042');
  const serial = new Serial(serialState, irq(SERIAL_COM1_GSI));
  // The host never writes 0xFE itself; a reset is always a guest action handled on a vCPU.
  const i8042 = new I8042(i8042State, irq(I8042_GSI), () => {});
  const manifest: DeviceManifest[] = [
    { kind: 'serial', port: SERIAL_COM1_PORT, state: serialState, gsi: SERIAL_COM1_GSI },
    { kind: 'i8042', port: I8042_DATA_PORT, state: i8042State, gsi: I8042_GSI },
    ...(opts.bootTimer ? [{ kind: 'boot-timer' as const, addr: BOOT_DEVICE_MEM_START, startWallUs: opts.bootTimer.wallUs, startCpuUs: opts.bootTimer.cpuUs }] : []),
    ...(opts.extra ?? []),
  ];

  const stream = new PassThrough();
  const fileFd = opts.serial.kind === 'file'
    ? openSync(opts.serial.path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND | fsc.O_NONBLOCK, 0o600)
    : -1;
  const emit = (bytes: Uint8Array): void => {
    if (bytes.length === 0) return;
    if (opts.serial.kind === 'stdout') process.stdout.write(bytes);
    else if (fileFd >= 0) {
      try {
        writeSync(fileFd, bytes);
      } catch {
        // Firecracker drops serial output it cannot write (EAGAIN on a full FIFO).
      }
    } else stream.write(Buffer.from(bytes));
  };

  let running = true;
  const out = serial.outputWaitSlot();
  // Every THR write bumps and notifies OUT_SEQ. While output flows the pump sleeps
  // OUTPUT_BATCH_MS between drains instead of waiting on the word, so a chatty guest wakes
  // this thread a few hundred times a second, not once per byte (a notify with no waiter
  // costs the vCPU nothing); a quiet console still wakes at its first byte. The 4 KiB ring
  // holds far more than a guest can write in that time (one port I/O exit per byte).
  const pumpOut = (async () => {
    while (running) {
      const seq = Atomics.load(out.array, out.index);
      const bytes = serial.drainOutput();
      emit(bytes);
      if (bytes.length > 0) await new Promise((r) => setTimeout(r, OUTPUT_BATCH_MS));
      else await waitSlot(out.array, out.index, seq, 200);
    }
    emit(serial.drainOutput());
  })();

  // Serial input: bytes wait here until the guest has room in its 64-byte FIFO.
  let pending = new Uint8Array(0);
  const inSlot = serial.inputWaitSlot();
  // Invariant: `pumping` is true exactly while one feed loop owns `pending`. It is set before
  // the loop's first await, so a loop that finishes synchronously cannot leave it set.
  let pumping = false;
  const feed = async (): Promise<void> => {
    if (pumping) return;
    pumping = true;
    try {
      while (running && pending.length) {
        const seq = Atomics.load(inSlot.array, inSlot.index);
        const n = serial.enqueueInput(pending);
        pending = pending.subarray(n);
        if (pending.length) await waitSlot(inSlot.array, inSlot.index, seq, 200);
      }
    } finally {
      pumping = false;
    }
  };
  const writeConsole = (bytes: Uint8Array | string): void => {
    const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    const merged = new Uint8Array(pending.length + b.length);
    merged.set(pending);
    merged.set(b, pending.length);
    pending = merged;
    void feed();
  };

  const stdin = process.stdin;
  const onStdin = (chunk: Buffer): void => writeConsole(chunk);
  let rawWas: boolean | undefined;
  if (opts.stdin) {
    if (stdin.isTTY) {
      rawWas = stdin.isRaw;
      stdin.setRawMode(true);
    }
    stdin.on('data', onStdin);
    stdin.resume();
  }

  return {
    manifest,
    console: stream,
    writeConsole,
    sendCtrlAltDel: () => i8042.sendCtrlAltDel(),
    legacyMetrics: () => ({ uart: serial.metrics(), i8042: i8042.metrics() }),
    saveLegacyState: () => ({ serial: new Uint8Array(serialState).slice(), i8042: new Uint8Array(i8042State).slice() }),
    async close() {
      running = false;
      Atomics.notify(out.array, out.index);
      Atomics.notify(inSlot.array, inSlot.index);
      await pumpOut;
      if (opts.stdin) {
        stdin.off('data', onStdin);
        stdin.pause();
        if (rawWas !== undefined) stdin.setRawMode(rawWas);
      }
      if (fileFd >= 0) closeSync(fileFd);
      stream.end();
    },
  };
}
