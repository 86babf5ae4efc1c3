/** i8042 model (firecracker src/vmm/src/devices/legacy/i8042.rs): status/control, commands, ACK + IRQ1, reset, Ctrl+Alt+Del. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  I8042,
  I8042_BUFFER_SIZE,
  I8042_CB_KBD_INT,
  I8042_CB_POST_OK,
  I8042_CMD_READ_CTR,
  I8042_CMD_READ_OUTP,
  I8042_CMD_RESET_CPU,
  I8042_CMD_WRITE_CTR,
  I8042_CMD_WRITE_OUTP,
  I8042_DATA_OFFSET as DATA,
  I8042_KBD_ACK,
  I8042_SB_CMD_DATA,
  I8042_SB_KBD_ENABLED,
  I8042_SB_OUT_DATA_AVAIL,
  I8042_STATUS_OFFSET as STATUS,
  KEY_ALT,
  KEY_CTRL,
  KEY_DEL,
  SCANCODE_EXTENDED_PREFIX,
} from '../../src/devices/legacy/index.js';

function setup(): { k: I8042; state: SharedArrayBuffer; edges: () => number; resets: () => number } {
  const state = I8042.allocateState();
  let edges = 0;
  let resets = 0;
  const k = new I8042(state, (l) => { if (l === 1) edges++; }, () => { resets++; });
  return { k, state, edges: () => edges, resets: () => resets };
}

test('initial status is KBD_ENABLED (0x10) and control POST_OK|KBD_INT (0x05)', () => {
  const { k } = setup();
  assert.is(k.readByte(STATUS), I8042_SB_KBD_ENABLED);
  assert.is(I8042_SB_KBD_ENABLED, 0x10);
  k.writeByte(STATUS, I8042_CMD_READ_CTR);
  assert.is(k.readByte(STATUS), I8042_SB_KBD_ENABLED | I8042_SB_OUT_DATA_AVAIL);
  assert.is(k.readByte(DATA), I8042_CB_POST_OK | I8042_CB_KBD_INT);
  assert.is(I8042_CB_POST_OK | I8042_CB_KBD_INT, 0x05);
  assert.is(k.readByte(STATUS), I8042_SB_KBD_ENABLED, 'popping the last byte clears OUT_DATA_AVAIL');
  assert.is(k.readByte(DATA), 0, 'an empty buffer reads 0');
});

test('0x60 then a data byte writes the control register; 0x20 reads it back', () => {
  const { k, edges } = setup();
  k.writeByte(STATUS, I8042_CMD_WRITE_CTR);
  assert.is(k.readByte(STATUS) & I8042_SB_CMD_DATA, I8042_SB_CMD_DATA);
  k.writeByte(DATA, 0x52);
  assert.is(k.readByte(STATUS) & I8042_SB_CMD_DATA, 0);
  assert.is(edges(), 0, 'a command parameter is not a keyboard command: no ACK');
  k.writeByte(STATUS, I8042_CMD_READ_CTR);
  assert.is(k.readByte(DATA), 0x52);
});

test('0xD1 then a data byte writes the output port; 0xD0 reads it back', () => {
  const { k } = setup();
  k.writeByte(STATUS, I8042_CMD_WRITE_OUTP);
  k.writeByte(DATA, 0x3c);
  k.writeByte(STATUS, I8042_CMD_READ_OUTP);
  assert.is(k.readByte(DATA), 0x3c);
});

test('a keyboard command byte on 0x60 is ACKed with 0xFA and one IRQ1 pulse', () => {
  const { k, edges } = setup();
  k.writeByte(DATA, 0xff);
  assert.is(edges(), 1);
  assert.is(k.readByte(STATUS) & I8042_SB_OUT_DATA_AVAIL, I8042_SB_OUT_DATA_AVAIL);
  assert.is(k.readByte(DATA), I8042_KBD_ACK);
  assert.is(edges(), 1, 'buffer now empty: no re-raise');
  k.writeByte(DATA, 0xf4);
  k.writeByte(DATA, 0xed);
  assert.is(k.readByte(DATA), I8042_KBD_ACK, 'each command flushes: one ACK queued');
  assert.is(k.readByte(DATA), 0);
  assert.is(edges(), 3);
});

test('0xFE calls onReset and counts reset_count, nothing else', () => {
  const { k, edges, resets } = setup();
  k.writeByte(STATUS, I8042_CMD_RESET_CPU);
  assert.is(resets(), 1);
  assert.is(edges(), 0);
  assert.is(k.metrics().reset_count, 1);
  k.writeByte(DATA, I8042_CMD_RESET_CPU);
  assert.is(resets(), 1, '0xFE on the data port is a keyboard command, not a reset');
  k.writeByte(STATUS, I8042_CMD_RESET_CPU);
  assert.is(resets(), 2);
});

test('a throwing onReset is counted as an error, not thrown into the vCPU loop', () => {
  const k = new I8042(I8042.allocateState(), () => {}, () => { throw new Error('exit evt'); });
  k.writeByte(STATUS, I8042_CMD_RESET_CPU);
  assert.is(k.metrics().reset_count, 1);
  assert.is(k.metrics().error_count, 1);
});

test('Ctrl+Alt+Del queues 0x14, 0x11, 0xE0 0x71 with one IRQ1 per key', () => {
  const { k, edges } = setup();
  assert.ok(k.sendCtrlAltDel());
  assert.is(edges(), 3);
  const got = [k.readByte(DATA), k.readByte(DATA), k.readByte(DATA), k.readByte(DATA)];
  assert.equal(got, [KEY_CTRL, KEY_ALT, SCANCODE_EXTENDED_PREFIX, KEY_DEL]);
  assert.equal(got, [0x14, 0x11, 0xe0, 0x71]);
  assert.is(edges(), 6, 'each pop that leaves data re-raises IRQ1 (3 of the 4 pops)');
  assert.is(k.readByte(STATUS) & I8042_SB_OUT_DATA_AVAIL, 0);
});

test('Ctrl+Alt+Del needs 4 free buffer bytes and queues nothing otherwise', () => {
  const { k } = setup();
  for (let i = 0; i < I8042_BUFFER_SIZE / 4; i++) assert.ok(k.sendCtrlAltDel(), `sequence ${i}`);
  assert.not.ok(k.sendCtrlAltDel(), 'full');
  k.readByte(DATA);
  k.readByte(DATA);
  k.readByte(DATA);
  assert.not.ok(k.sendCtrlAltDel(), '3 free bytes are not enough');
  assert.is(k.readByte(DATA), KEY_DEL, 'the refusals queued nothing: next is the first sequence\'s Del');
  assert.ok(k.sendCtrlAltDel(), '4 free bytes are');
  const rest: number[] = [];
  for (let i = 0; i < I8042_BUFFER_SIZE; i++) rest.push(k.readByte(DATA));
  assert.equal(rest.slice(-4), [KEY_CTRL, KEY_ALT, SCANCODE_EXTENDED_PREFIX, KEY_DEL]);
});

test('with KBD_INT cleared by the guest, keys are queued but no IRQ1 is sent', () => {
  const { k, edges } = setup();
  k.writeByte(STATUS, I8042_CMD_WRITE_CTR);
  k.writeByte(DATA, I8042_CB_POST_OK);
  assert.ok(k.sendCtrlAltDel());
  assert.is(edges(), 0);
  assert.is(k.readByte(DATA), KEY_CTRL);
  k.writeByte(DATA, 0xf5);
  assert.is(edges(), 0, 'no ACK interrupt either');
  assert.is(k.readByte(DATA), I8042_KBD_ACK);
});

test('host and vCPU objects over one buffer see one controller', () => {
  const state = I8042.allocateState();
  let vcpuEdges = 0;
  let hostEdges = 0;
  const vcpu = new I8042(state, (l) => { if (l) vcpuEdges++; }, () => {});
  const host = new I8042(state, (l) => { if (l) hostEdges++; }, () => {});
  vcpu.writeByte(STATUS, I8042_CMD_WRITE_CTR);
  vcpu.writeByte(DATA, I8042_CB_POST_OK | I8042_CB_KBD_INT);
  assert.ok(host.sendCtrlAltDel());
  assert.is(hostEdges, 3);
  assert.is(vcpu.readByte(DATA), KEY_CTRL);
  assert.is(vcpuEdges, 1);
  assert.is(host.metrics().read_count, vcpu.metrics().read_count);
});

test('unknown offsets, commands and access sizes are counted as missed, never thrown', () => {
  const { k, resets } = setup();
  assert.is(k.readByte(1), 0);
  k.writeByte(2, I8042_CMD_RESET_CPU);
  k.writeByte(STATUS, 0xaa);
  const wide = new Uint8Array([7, 7]);
  k.read(STATUS, wide);
  assert.equal(Array.from(wide), [0, 0]);
  k.write(STATUS, Uint8Array.of(I8042_CMD_RESET_CPU, 0));
  assert.is(resets(), 0);
  const m = k.metrics();
  assert.is(m.missed_read_count, 2);
  assert.is(m.missed_write_count, 3);
  for (const off of [-1, 3, 5, 0x64, Number.NaN, 2 ** 53]) {
    for (const v of [0, 0xfe, 0x1fe, -2, Number.NaN]) {
      k.writeByte(off, v);
      assert.ok(k.readByte(off) >= 0);
    }
  }
  assert.is(resets(), 0, 'only offset 4 resets');
  k.writeByte(STATUS, 0x1fe);
  assert.is(resets(), 1, 'values are truncated to a byte, as a port write is');
});

test.run();
