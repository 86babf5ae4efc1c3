/** COM1 16550A model over shared state: registers, interrupts, FIFOs, rings, threads. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import {
  I8042,
  Serial,
  SERIAL_OUTPUT_RING_SIZE,
  UART_DLL,
  UART_DLM,
  UART_FIFO_SIZE,
  UART_IER,
  UART_IER_RDI,
  UART_IER_RLSI,
  UART_IER_THRI,
  UART_IIR,
  UART_IIR_FIFO_ENABLED_16550A,
  UART_IIR_NO_INT,
  UART_IIR_RDI,
  UART_IIR_RLSI,
  UART_IIR_THRI,
  UART_LCR,
  UART_LCR_DLAB,
  UART_LCR_WLEN8,
  UART_LSR,
  UART_LSR_DR,
  UART_LSR_OE,
  UART_LSR_TEMT,
  UART_LSR_THRE,
  UART_MCR,
  UART_MCR_DTR,
  UART_MCR_LOOP,
  UART_MCR_OUT2,
  UART_MCR_RTS,
  UART_MSR,
  UART_MSR_CTS,
  UART_MSR_DCD,
  UART_MSR_DSR,
  UART_RX,
  UART_SCR,
  UART_TX,
} from '../../src/devices/legacy/index.js';
import { DeviceStateError } from '../../src/errors.js';

/** A Serial on a fresh buffer plus a log of its interrupt-line calls. */
function setup(): { s: Serial; state: SharedArrayBuffer; edges: () => number; levels: number[] } {
  const state = Serial.allocateState();
  const levels: number[] = [];
  const s = new Serial(state, (l) => levels.push(l));
  return { s, state, levels, edges: () => levels.filter((l) => l === 1).length };
}

const IIR = (id: number): number => id | UART_IIR_FIFO_ENABLED_16550A;
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

test('reset values match vm-superio', () => {
  const { s } = setup();
  assert.is(s.readByte(UART_LCR), UART_LCR_WLEN8);
  assert.is(s.readByte(UART_MCR), UART_MCR_OUT2);
  assert.is(s.readByte(UART_IER), 0);
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_NO_INT));
  assert.is(s.readByte(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
  assert.is(s.readByte(UART_MSR), UART_MSR_DSR | UART_MSR_CTS | UART_MSR_DCD);
  assert.is(s.readByte(UART_SCR), 0);
});

test('divisor latch is reached only with LCR.DLAB and does not transmit', () => {
  const { s } = setup();
  s.writeByte(UART_LCR, UART_LCR_DLAB | UART_LCR_WLEN8);
  assert.is(s.readByte(UART_DLL), 12, 'reset divisor is 9600 baud');
  assert.is(s.readByte(UART_DLM), 0);
  s.writeByte(UART_DLM, 0x12);
  s.writeByte(UART_DLL, 0x34);
  assert.is(s.readByte(UART_DLL), 0x34);
  assert.is(s.readByte(UART_DLM), 0x12);
  assert.is(s.outputPending(), 0, 'a DLL write is not a THR write');
  assert.is(s.readByte(UART_IER), 0x12, 'offset 1 is DLM while DLAB is set');
  s.writeByte(UART_LCR, UART_LCR_WLEN8);
  assert.is(s.readByte(UART_IER), 0, 'IER untouched by the DLM write');
  assert.is(s.readByte(UART_RX), 0, 'RBR of an empty FIFO');
  s.writeByte(UART_LCR, UART_LCR_DLAB);
  assert.is(s.readByte(UART_DLL), 0x34, 'divisor kept across DLAB toggles');
});

test('plain registers round trip, IER and MCR keep only their defined bits', () => {
  const { s } = setup();
  s.writeByte(UART_SCR, 0xa5);
  assert.is(s.readByte(UART_SCR), 0xa5);
  s.writeByte(UART_LCR, 0x1b);
  assert.is(s.readByte(UART_LCR), 0x1b);
  s.writeByte(UART_IER, 0xff);
  assert.is(s.readByte(UART_IER), 0x0f);
  s.writeByte(UART_MCR, 0xff);
  assert.is(s.readByte(UART_MCR), 0x1f);
  s.writeByte(UART_LSR, 0);
  s.writeByte(UART_MSR, 0);
  assert.is(s.readByte(UART_LSR) & UART_LSR_THRE, UART_LSR_THRE, 'LSR is read only');
});

test('output: THR bytes reach the ring, LSR stays THRE|TEMT without DR', () => {
  const { s } = setup();
  for (const b of bytes('hi\n')) s.writeByte(UART_TX, b);
  assert.is(s.readByte(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
  assert.is(s.outputPending(), 3);
  assert.equal(Array.from(s.drainOutput()), Array.from(bytes('hi\n')));
  assert.is(s.outputPending(), 0);
  assert.is(s.drainOutput().length, 0);
  assert.is(s.metrics().write_count, 3);
});

test('THRE interrupt: ETBEI 0→1 pulses once, IIR read acknowledges, THR write re-arms', () => {
  const { s, edges, levels } = setup();
  s.writeByte(UART_IER, UART_IER_THRI);
  assert.is(edges(), 1, 'enabling ETBEI with THR empty raises THRE');
  assert.equal(levels, [1, 0], 'an edge is a 1 then 0 pulse');
  s.writeByte(UART_IER, UART_IER_THRI);
  assert.is(edges(), 1, 'rewriting the same IER adds no edge');
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_THRI));
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_NO_INT), 'the IIR read cleared THRE');
  s.writeByte(UART_TX, 0x41);
  assert.is(edges(), 2, 'THR write: THR empty again');
  s.writeByte(UART_TX, 0x42);
  assert.is(edges(), 2, 'still unacknowledged: no new edge');
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_THRI));
  s.writeByte(UART_IER, 0);
  s.writeByte(UART_TX, 0x43);
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_NO_INT), 'THRE not reported with ETBEI off');
  assert.is(edges(), 2);
});

test('disabling ETBEI withdraws a pending THRE', () => {
  const { s, edges } = setup();
  s.writeByte(UART_IER, UART_IER_THRI);
  s.writeByte(UART_IER, 0);
  s.writeByte(UART_IER, UART_IER_RDI);
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_NO_INT));
  assert.is(edges(), 1);
});

test('RX FIFO takes 64 bytes, refuses the rest, and reads back in order', () => {
  const { s } = setup();
  const input = Uint8Array.from({ length: 100 }, (_, i) => i + 1);
  assert.is(s.enqueueInput(input), UART_FIFO_SIZE);
  assert.is(s.rxFree(), 0);
  assert.is(s.enqueueInput(bytes('x')), 0, 'a full FIFO accepts nothing');
  assert.is(s.readByte(UART_LSR) & UART_LSR_DR, UART_LSR_DR);
  for (let i = 0; i < UART_FIFO_SIZE; i++) assert.is(s.readByte(UART_RX), i + 1);
  assert.is(s.readByte(UART_LSR) & UART_LSR_DR, 0);
  assert.is(s.readByte(UART_RX), 0, 'reading an empty FIFO gives 0');
  assert.is(s.rxFree(), UART_FIFO_SIZE);
  assert.is(s.metrics().read_count, UART_FIFO_SIZE + 1);
});

test('RX interrupt: pulse on new data, RDI while data remains, no edge while unacknowledged', () => {
  const { s, edges } = setup();
  assert.is(s.enqueueInput(bytes('ab')), 2);
  assert.is(edges(), 0, 'RDI disabled');
  s.writeByte(UART_IER, UART_IER_RDI);
  assert.is(edges(), 1, 'enabling RDI with data present raises the line');
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_RDI));
  s.enqueueInput(bytes('c'));
  assert.is(edges(), 1, 'line already high');
  assert.is(s.readByte(UART_RX), 0x61);
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_RDI), 'RDI stays while the FIFO holds data');
  s.readByte(UART_RX);
  s.readByte(UART_RX);
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_NO_INT));
  s.enqueueInput(bytes('d'));
  assert.is(edges(), 2, 'new data after the line fell');
});

test('received data outranks THR empty in IIR', () => {
  const { s } = setup();
  s.writeByte(UART_IER, UART_IER_THRI | UART_IER_RDI);
  s.enqueueInput(bytes('z'));
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_RDI));
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_RDI), 'reading IIR does not clear RDI');
  s.readByte(UART_RX);
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_THRI), 'THRE was kept pending behind RDI');
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_NO_INT));
});

test('loopback: THR feeds RX, MSR mirrors MCR, host input refused, overflow sets OE', () => {
  const { s, edges } = setup();
  s.writeByte(UART_MCR, UART_MCR_LOOP | UART_MCR_RTS | UART_MCR_OUT2);
  assert.is(s.readByte(UART_MSR), UART_MSR_CTS | UART_MSR_DCD, 'Linux autoconfig expects 0x90 here');
  s.writeByte(UART_MCR, UART_MCR_LOOP | UART_MCR_DTR);
  assert.is(s.readByte(UART_MSR), UART_MSR_DSR);
  s.writeByte(UART_IER, UART_IER_RDI | UART_IER_RLSI);
  s.writeByte(UART_TX, 0x55);
  assert.is(edges(), 1);
  assert.is(s.outputPending(), 0, 'looped bytes are not output');
  assert.is(s.enqueueInput(bytes('host')), 0);
  assert.is(s.readByte(UART_RX), 0x55);
  for (let i = 0; i < UART_FIFO_SIZE + 1; i++) s.writeByte(UART_TX, i);
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_RLSI), 'overrun outranks received data');
  assert.is(s.readByte(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT | UART_LSR_DR | UART_LSR_OE);
  assert.is(s.readByte(UART_LSR) & UART_LSR_OE, 0, 'reading LSR clears OE');
  assert.is(s.readByte(UART_IIR), IIR(UART_IIR_RDI));
  for (let i = 0; i < UART_FIFO_SIZE; i++) assert.is(s.readByte(UART_RX), i, 'the 65th byte was lost');
  s.writeByte(UART_MCR, UART_MCR_OUT2);
  assert.is(s.readByte(UART_MSR), UART_MSR_DSR | UART_MSR_CTS | UART_MSR_DCD);
});

test('output ring wraps and a full ring drops new bytes and counts them', () => {
  const { s } = setup();
  for (let i = 0; i < SERIAL_OUTPUT_RING_SIZE + 10; i++) s.writeByte(UART_TX, i & 0xff);
  assert.is(s.outputPending(), SERIAL_OUTPUT_RING_SIZE);
  assert.is(s.metrics().missed_write_count, 10);
  assert.is(s.metrics().write_count, SERIAL_OUTPUT_RING_SIZE);
  const first = s.drainOutput(3000);
  assert.is(first.length, 3000);
  assert.ok(first.every((b, i) => b === (i & 0xff)));
  for (let i = 0; i < 2000; i++) s.writeByte(UART_TX, (i + 7) & 0xff);
  const rest = s.drainOutput();
  assert.is(rest.length, SERIAL_OUTPUT_RING_SIZE - 3000 + 2000);
  const expected = [
    ...Array.from({ length: SERIAL_OUTPUT_RING_SIZE - 3000 }, (_, i) => (i + 3000) & 0xff),
    ...Array.from({ length: 2000 }, (_, i) => (i + 7) & 0xff),
  ];
  assert.equal(Array.from(rest), expected, 'order survives the wrap');
  const into = new Uint8Array(4);
  s.writeByte(UART_TX, 9);
  assert.is(s.drainOutputInto(into), 1);
  assert.is(into[0], 9);
});

test('output sequence slot is bumped per byte and wakes Atomics.waitAsync', async () => {
  const { s } = setup();
  const { array, index } = s.outputWaitSlot();
  const seen = Atomics.load(array, index);
  const waitAsync = (Atomics as unknown as WaitAsync).waitAsync;
  const w = waitAsync(array, index, seen, 1000);
  assert.ok(w.async);
  s.writeByte(UART_TX, 0x21);
  assert.is(await w.value, 'ok');
  assert.is(Atomics.load(array, index), seen + 1);
  const inSlot = s.inputWaitSlot();
  const before = Atomics.load(inSlot.array, inSlot.index);
  s.enqueueInput(bytes('ab'));
  s.readByte(UART_RX);
  assert.is(Atomics.load(inSlot.array, inSlot.index), before, 'not yet empty');
  s.readByte(UART_RX);
  assert.is(Atomics.load(inSlot.array, inSlot.index), before + 1, 'bumped when the FIFO empties');
});

interface WaitAsync {
  waitAsync(a: Int32Array, i: number, v: number, t?: number): { async: boolean; value: Promise<string> | string };
}

test('two Serial objects over one buffer are one device; each pulses its own irq', () => {
  const state = Serial.allocateState();
  const a: number[] = [];
  const b: number[] = [];
  const vcpu = new Serial(state, (l) => a.push(l));
  vcpu.writeByte(UART_SCR, 0x77);
  vcpu.writeByte(UART_IER, UART_IER_RDI);
  const host = new Serial(state, (l) => b.push(l));
  assert.is(host.readByte(UART_SCR), 0x77, 'attaching again does not reset the state');
  assert.is(host.enqueueInput(bytes('k')), 1);
  assert.equal(b, [1, 0], 'the thread that raised the condition sends the edge');
  assert.equal(a, []);
  assert.is(vcpu.readByte(UART_RX), 0x6b);
  vcpu.writeByte(UART_TX, 0x4f);
  assert.equal(Array.from(host.drainOutput()), [0x4f]);
  assert.is(vcpu.metrics().write_count, 1);
  assert.is(host.rxFree(), UART_FIFO_SIZE);
});

test('wrong-size accesses are counted and read as zero', () => {
  const { s } = setup();
  const d = new Uint8Array([9, 9]);
  s.read(UART_SCR, d);
  assert.equal(Array.from(d), [0, 0]);
  s.write(UART_TX, new Uint8Array(4));
  assert.is(s.outputPending(), 0);
  assert.equal(s.metrics(), { error_count: 0, missed_read_count: 1, missed_write_count: 1, read_count: 0, write_count: 0 });
  const one = new Uint8Array(1);
  s.write(UART_TX, Uint8Array.of(0x30));
  s.read(UART_LSR, one);
  assert.is(one[0], UART_LSR_THRE | UART_LSR_TEMT);
});

test('a hostile guest: any offset and value, no throw, invariants hold', () => {
  const { s } = setup();
  let seed = 12345;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const offsets = [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 255, 2 ** 40, 0.5, Number.NaN];
  const values = [0, 0x80, 0xff, 0x100, -1, 2 ** 31, Number.NaN, 0x1f, 0x03];
  for (let i = 0; i < 20000; i++) {
    const off = offsets[Math.floor(rnd() * offsets.length)]!;
    if (rnd() < 0.5) s.writeByte(off, values[Math.floor(rnd() * values.length)]!);
    else {
      const v = s.readByte(off);
      assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xff);
    }
    if (i % 97 === 0) s.enqueueInput(bytes('xyz'));
    if (i % 1000 === 0) s.drainOutput();
  }
  assert.ok(s.outputPending() <= SERIAL_OUTPUT_RING_SIZE);
  assert.ok(s.rxFree() >= 0 && s.rxFree() <= UART_FIFO_SIZE);
  assert.is(s.readByte(8), 0);
});

test('a state buffer that is too small, unshared, or another device is refused', () => {
  const irq = (): void => {};
  assert.throws(() => new Serial(new SharedArrayBuffer(16), irq), (e: unknown) => e instanceof DeviceStateError);
  assert.throws(() => new Serial(new ArrayBuffer(Serial.stateBytes) as unknown as SharedArrayBuffer, irq), (e: unknown) => e instanceof DeviceStateError);
  const kbd = new SharedArrayBuffer(Math.max(I8042.stateBytes, Serial.stateBytes));
  new I8042(kbd, irq, irq);
  assert.throws(() => new Serial(kbd, irq), (e: unknown) => e instanceof DeviceStateError && e.code === 'DEVICE_STATE_INVALID');
});

// The worker is a vCPU stand-in: it transmits N bytes (pacing itself on the ring, as a
// guest would not, so that nothing is dropped) and consumes M input bytes, while the main
// thread drains and feeds through its own Serial over the same buffer.
const WORKER_SRC = `
const { workerData, parentPort } = require('node:worker_threads');
import(workerData.url).then((m) => {
  const s = new m.Serial(workerData.state, () => {});
  const { total, input } = workerData;
  let sent = 0, got = 0, inOrder = true;
  while (sent < total || got < input) {
    if (sent < total && s.outputPending() < m.SERIAL_OUTPUT_RING_SIZE) s.writeByte(m.UART_TX, sent++ & 0xff);
    if (got < input && (s.readByte(m.UART_LSR) & m.UART_LSR_DR)) {
      if (s.readByte(m.UART_RX) !== (got++ * 7) % 251) inOrder = false;
    }
  }
  parentPort.postMessage({ sent, got, inOrder });
});
`;

test('a worker transmits while main drains and feeds: every byte, in order, both ways', async () => {
  const state = Serial.allocateState();
  const host = new Serial(state, () => {});
  const total = 100_000;
  const input = 20_000;
  const url = new URL('../../src/devices/legacy/index.js', import.meta.url).href;
  const worker = new Worker(WORKER_SRC, { eval: true, workerData: { url, state, total, input } });
  const done = new Promise<{ sent: number; got: number; inOrder: boolean }>((res, rej) => {
    worker.once('message', res);
    worker.once('error', rej);
  });
  const out = host.outputWaitSlot();
  const inp = host.inputWaitSlot();
  const waitAsync = (Atomics as unknown as WaitAsync).waitAsync;
  const chunk = new Uint8Array(SERIAL_OUTPUT_RING_SIZE);
  let received = 0;
  let fed = 0;
  let ordered = true;
  while (received < total || fed < input) {
    // Sleep on output while output is due, then on "RX FIFO emptied" for the input tail.
    const { array, index } = received < total ? out : inp;
    const seen = Atomics.load(array, index);
    const n = host.drainOutputInto(chunk);
    for (let i = 0; i < n; i++) if (chunk[i] !== ((received + i) & 0xff)) ordered = false;
    received += n;
    if (fed < input) {
      const want = Math.min(host.rxFree(), input - fed);
      const batch = Uint8Array.from({ length: want }, (_, i) => ((fed + i) * 7) % 251);
      fed += host.enqueueInput(batch);
    }
    if (n === 0 && (received < total || fed < input)) {
      // Atomics.waitAsync holds no libuv handle: a ref'd timer keeps the loop alive.
      const w = waitAsync(array, index, seen, 5);
      if (w.async) await Promise.race([w.value, new Promise((r) => setTimeout(r, 5))]);
    }
  }
  const result = await done;
  await worker.terminate();
  assert.ok(ordered, 'output bytes arrived in order');
  assert.is(received, total);
  assert.equal(result, { sent: total, got: input, inOrder: true });
  assert.is(host.metrics().missed_write_count, 0);
  assert.is(host.metrics().write_count, total);
});

test.run();
