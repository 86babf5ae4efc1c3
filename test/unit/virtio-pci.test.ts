/**
 * The PCI root and the virtio-pci transport (src/devices/pci/, src/devices/virtio/pci.ts),
 * driven as a guest driver would over ECAM and the 0xcf8 ports: configuration space reads and
 * writes (write masks), BAR sizing and placement, the capability chain, MSI-X table, PBA,
 * masking and pending delivery, the common configuration up to DRIVER_OK, and hostile input.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PciConfigIo, PciEcam, PciMmioWindow, PciRoot } from '../../src/devices/pci/root.js';
import { MsiRoutes } from '../../src/devices/pci/msi-routes.js';
import { encodeGsiRouting, legacyRoutes, KVM_IRQ_ROUTING_ENTRY_SIZE } from '../../src/kvm/gsi-routing.js';
import { VirtioPciTransport } from '../../src/devices/virtio/pci.js';
import {
  VIRTIO_PCI_BAR_SIZE, VirtioPciState, pciInterrupt, MSIX_TABLE_OFFSET, MSIX_PBA_OFFSET, NOTIFICATION_OFFSET,
  ISR_CONFIG_OFFSET, DEVICE_CONFIG_OFFSET,
} from '../../src/devices/virtio/pci-state.js';
import { MmioState } from '../../src/devices/virtio/mmio-state.js';
import { ByteConfigSpace, VIRTIO_INTERRUPT, type VirtioDeviceDescription } from '../../src/devices/virtio/device.js';
import type { MsiMessage } from '../../src/devices/pci/msix.js';

const BAR = 256 * 2 ** 30; // the 64-bit window's start
const SLOT = 1;

interface Rig {
  ecam: PciEcam;
  cf8: PciConfigIo;
  window: PciMmioWindow;
  state: MmioState;
  pci: VirtioPciState;
  activations: number;
  notifies: number[];
  signals: number[];
  routes: { vector: number; message: MsiMessage | null }[][];
  injected: MsiMessage[];
  /** Whether the function's lock was held at each updateRoutes / injectMsi call. */
  underLock: boolean[];
  warnings: string[];
}

function rig(numQueues = 2, ramOk = true): Rig {
  const mmio = MmioState.create(numQueues);
  const desc: VirtioDeviceDescription = {
    deviceId: 2, features: 1n << 9n, queueMaxSizes: Array.from({ length: numQueues }, () => 256),
    config: new ByteConfigSpace(Uint8Array.of(0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88)),
  };
  const layout = { deviceId: 2, numQueues, numVectors: numQueues + 1, barAddr: BAR };
  const pciBuf = VirtioPciState.create(layout);
  const root = new PciRoot(PciRoot.createState());
  const r: Rig = {
    ecam: new PciEcam(root), cf8: new PciConfigIo(root), window: new PciMmioWindow(root, BAR),
    state: new MmioState(mmio), pci: new VirtioPciState(pciBuf), activations: 0, notifies: [], signals: [], routes: [], injected: [], underLock: [], warnings: [],
  };
  root.attach(SLOT, new VirtioPciTransport(mmio, pciBuf, desc, layout, {
    onActivate: () => { r.activations++; },
    onNotify: (q) => r.notifies.push(q),
    signalVector: (v) => r.signals.push(v),
    updateRoutes: (c) => { r.routes.push([...c]); r.underLock.push(r.pci.locked()); },
    injectMsi: (m) => { r.injected.push(m); r.underLock.push(r.pci.locked()); },
    warn: (m) => r.warnings.push(m),
  }, { contains: () => ramOk }));
  return r;
}

const ecamOff = (dev: number, reg: number): number => (dev << 15) | reg;
function cfgRead(r: Rig, reg: number, len = 4, dev = SLOT): number {
  const b = new Uint8Array(len);
  r.ecam.read(ecamOff(dev, reg), b);
  return b.reduceRight((v, x) => v * 256 + x, 0);
}
function cfgWrite(r: Rig, reg: number, v: number, len = 4, dev = SLOT): void {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = Math.floor(v / 256 ** i) & 0xff;
  r.ecam.write(ecamOff(dev, reg), b);
}
function barRead(r: Rig, off: number, len = 4): number {
  const b = new Uint8Array(len);
  r.window.read(off, b);
  return b.reduceRight((v, x) => v * 256 + x, 0);
}
function barWrite(r: Rig, off: number, v: number, len = 4): void {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = Math.floor(v / 256 ** i) & 0xff;
  r.window.write(off, b);
}
/** Walks the capability list: [offset, id, bytes…] per capability. */
function caps(r: Rig): { at: number; id: number; type: number }[] {
  const out: { at: number; id: number; type: number }[] = [];
  for (let at = cfgRead(r, 0x34, 1), n = 0; at !== 0 && n < 48; at = cfgRead(r, at + 1, 1), n++) {
    out.push({ at, id: cfgRead(r, at, 1), type: cfgRead(r, at + 3, 1) });
  }
  return out;
}
const enableMemory = (r: Rig): void => cfgWrite(r, 0x04, 0x0006, 2);

test('host bridge at 00:00.0, virtio function at 00:01.0, nothing elsewhere (ECAM and 0xcf8)', () => {
  const r = rig();
  assert.is(cfgRead(r, 0, 4, 0), 0x0d57_8086);
  assert.is(cfgRead(r, 0x08, 4, 0) >>> 8, 0x060000, 'host bridge class');
  assert.is(cfgRead(r, 0, 4), 0x1042_1af4, 'virtio-blk modern: 0x1040 + 2');
  assert.is(cfgRead(r, 0x08, 4), 0x0180_0001, 'mass storage class, revision 1');
  assert.is(cfgRead(r, 0x2c, 4), 0x1042_1af4, 'subsystem');
  assert.is(cfgRead(r, 0x0e, 1) & 0x80, 0, 'single function');
  assert.is(cfgRead(r, 0, 4, 2), 0xffff_ffff, 'empty slot');
  const fn1 = new Uint8Array(4);
  r.ecam.read((SLOT << 15) | (1 << 12), fn1);
  assert.equal([...fn1], [0xff, 0xff, 0xff, 0xff], 'function 1 does not exist');
  // Type 1: CONFIG_ADDRESS, Linux's probe (byte write to 0xcfb must not change it), then data.
  const a = new Uint8Array(4);
  r.cf8.write(0, Uint8Array.of(0, 0, 0, 0x80));
  r.cf8.write(3, Uint8Array.of(1));
  r.cf8.read(0, a);
  assert.equal([...a], [0, 0, 0, 0x80]);
  r.cf8.write(0, Uint8Array.of(0x00, 0x08, 0x00, 0x80)); // bus 0, device 1, register 0
  const d = new Uint8Array(2);
  r.cf8.read(6, d);
  assert.equal([...d], [0x42, 0x10], 'device id through 0xcfe');
  r.cf8.write(0, Uint8Array.of(0, 0x08, 0, 0)); // enable bit clear
  r.cf8.read(4, a);
  assert.equal([...a], [0xff, 0xff, 0xff, 0xff]);
});

test('config space: only writable bits change; read-only fields ignore writes; ext space reads 0', () => {
  const r = rig();
  cfgWrite(r, 0x00, 0xdead_beef);
  assert.is(cfgRead(r, 0), 0x1042_1af4, 'ids are read-only');
  cfgWrite(r, 0x04, 0xffff_ffff);
  assert.is(cfgRead(r, 0x04, 2), 0x0547, 'command: writable bits only');
  assert.is(cfgRead(r, 0x06, 2), 0x0010, 'status: capability list, not writable');
  cfgWrite(r, 0x3c, 0xffff_ffff);
  assert.is(cfgRead(r, 0x3c, 1), 0xff, 'interrupt line is writable');
  assert.is(cfgRead(r, 0x3d, 1), 0, 'no interrupt pin (MSI-X only)');
  cfgWrite(r, 0x30, 0xffff_ffff);
  assert.is(cfgRead(r, 0x30), 0, 'no expansion ROM');
  for (const bar of [0x18, 0x1c, 0x20, 0x24]) { cfgWrite(r, bar, 0xffff_ffff); assert.is(cfgRead(r, bar), 0, `BAR at 0x${bar.toString(16)} unimplemented`); }
  assert.is(cfgRead(r, 0x100), 0, 'extended space');
  cfgWrite(r, 0x100, 0x1234);
  // Misaligned accesses are refused.
  const b = new Uint8Array(4);
  r.ecam.read(ecamOff(SLOT, 2), b);
  assert.equal([...b], [0xff, 0xff, 0xff, 0xff]);
});

test('BAR 0: 64-bit memory, sizing returns the size mask, the address comes back, placement follows writes', () => {
  const r = rig();
  assert.is(cfgRead(r, 0x10), (BAR % 2 ** 32) | 0x4, 'low dword: address | 64-bit');
  assert.is(cfgRead(r, 0x14), BAR / 2 ** 32);
  cfgWrite(r, 0x10, 0xffff_ffff);
  cfgWrite(r, 0x14, 0xffff_ffff);
  const lo = cfgRead(r, 0x10);
  const hi = cfgRead(r, 0x14);
  const size = 2 ** 64 - (hi * 2 ** 32 + (lo & ~0xf >>> 0));
  assert.is(lo & 0xf, 0x4, 'flags stay');
  assert.is(Number(BigInt(2) ** 64n - (BigInt(hi) << 32n | BigInt((lo & ~0xf) >>> 0))), VIRTIO_PCI_BAR_SIZE, `size ${size}`);
  cfgWrite(r, 0x10, BAR % 2 ** 32);
  cfgWrite(r, 0x14, BAR / 2 ** 32);
  assert.is(cfgRead(r, 0x10), (BAR % 2 ** 32) | 0x4);
  // Decoding needs the memory bit.
  assert.is(barRead(r, 0x12, 2), 0xffff, 'not decoded before memory enable');
  enableMemory(r);
  assert.is(barRead(r, 0x12, 2), 2, 'num_queues through the window');
  // Moved within the window: served at the new place, not the old; low bits are masked.
  cfgWrite(r, 0x10, (BAR + 4 * VIRTIO_PCI_BAR_SIZE + 0x123) % 2 ** 32);
  assert.is(cfgRead(r, 0x10), ((BAR + 4 * VIRTIO_PCI_BAR_SIZE) % 2 ** 32) | 0x4, 'aligned to the BAR size');
  assert.is(barRead(r, 4 * VIRTIO_PCI_BAR_SIZE + 0x12, 2), 2);
  assert.is(barRead(r, 0x12, 2), 0xffff);
  // Narrow BAR writes are dropped.
  cfgWrite(r, 0x10, 0, 2);
  assert.is(cfgRead(r, 0x10), ((BAR + 4 * VIRTIO_PCI_BAR_SIZE) % 2 ** 32) | 0x4);
});

test('capability chain: common, ISR, device, notify, PCI-cfg (vendor 0x09), then MSI-X (0x11)', () => {
  const r = rig(3);
  const list = caps(r);
  assert.equal(list.map((c) => c.id), [0x09, 0x09, 0x09, 0x09, 0x09, 0x11]);
  assert.equal(list.slice(0, 5).map((c) => c.type), [1, 3, 4, 2, 5]);
  assert.ok(list.every((c) => c.at % 4 === 0 && c.at >= 0x40), 'dword aligned after the header');
  const [common, isr, device, notify] = list;
  const field = (at: number, off: number): number => cfgRead(r, at + off);
  assert.is(cfgRead(r, common!.at + 4, 1), 0, 'BAR 0');
  assert.equal([field(common!.at, 8), field(common!.at, 12)], [0, 56]);
  assert.equal([field(isr!.at, 8), field(isr!.at, 12)], [ISR_CONFIG_OFFSET, 1]);
  assert.equal([field(device!.at, 8), field(device!.at, 12)], [DEVICE_CONFIG_OFFSET, 0x1000]);
  assert.equal([field(notify!.at, 8), field(notify!.at, 16)], [NOTIFICATION_OFFSET, 4], 'notify_off_multiplier 4');
  const msix = list[5]!;
  assert.is(cfgRead(r, msix.at + 2, 2), 3, 'table size - 1 (3 queues + config)');
  assert.is(cfgRead(r, msix.at + 4), MSIX_TABLE_OFFSET);
  assert.is(cfgRead(r, msix.at + 8), MSIX_PBA_OFFSET);
  // Capabilities are read-only (except the PCI-cfg window and MSI-X control bits).
  cfgWrite(r, common!.at + 8, 0x1234);
  assert.is(field(common!.at, 8), 0);
});

test('MSI-X: table defaults masked, only the mask bit of vector control is writable, PBA read-only', () => {
  const r = rig();
  enableMemory(r);
  const e = (v: number, f: number): number => MSIX_TABLE_OFFSET + 16 * v + 4 * f;
  for (let v = 0; v < 3; v++) assert.equal([barRead(r, e(v, 0)), barRead(r, e(v, 1)), barRead(r, e(v, 2)), barRead(r, e(v, 3))], [0, 0, 0, 1]);
  barWrite(r, e(1, 3), 0xffff_fffe);
  assert.is(barRead(r, e(1, 3)), 0, 'reserved bits read 0, mask cleared');
  barWrite(r, e(1, 0), 0xfee0_0000);
  barWrite(r, e(1, 2), 0x4041);
  const q = new Uint8Array(8);
  r.window.read(e(1, 0), q);
  assert.equal([...q], [0, 0, 0xe0, 0xfe, 0, 0, 0, 0], '8-byte read of address');
  // Bad widths / alignment / past the table: all-ones, writes dropped.
  assert.is(barRead(r, e(0, 0) + 1, 2), 0xffff);
  barWrite(r, e(0, 0), 0x1, 2);
  assert.is(barRead(r, e(0, 0)), 0);
  assert.is(barRead(r, e(3, 0)), 0, 'past the table: outside every structure reads 0');
  barWrite(r, MSIX_PBA_OFFSET, 0xffff_ffff);
  assert.is(barRead(r, MSIX_PBA_OFFSET), 0, 'PBA is read-only');
});

test('MSI-X delivery: disabled drops, masked sets the PBA, unmask delivers the pending vector once; routes follow', () => {
  const r = rig();
  enableMemory(r);
  const msixCap = caps(r)[5]!.at;
  const irq = pciInterrupt(r.state, r.pci, (v) => r.signals.push(v));
  // Driver maps queue 1 to vector 2 (common cfg queue_select / queue_msix_vector).
  barWrite(r, 0x16, 1, 2);
  barWrite(r, 0x1a, 2, 2);
  assert.is(barRead(r, 0x1a, 2), 2);
  barWrite(r, 0x1a, 7, 2);
  assert.is(barRead(r, 0x1a, 2), 0xffff, 'a vector past the table maps to NO_VECTOR');
  barWrite(r, 0x1a, 2, 2);
  irq.trigger(VIRTIO_INTERRUPT.VRING, 1);
  assert.equal(r.signals, [], 'MSI-X disabled: nothing (no INTx)');
  cfgWrite(r, msixCap + 2, 0x8000, 2); // enable
  assert.is(cfgRead(r, msixCap + 2, 2), 0x8002, 'enable bit reads back with the table size');
  irq.trigger(VIRTIO_INTERRUPT.VRING, 1);
  assert.equal(r.signals, [], 'entry masked');
  assert.is(barRead(r, MSIX_PBA_OFFSET), 1 << 2, 'pending bit 2');
  const e = MSIX_TABLE_OFFSET + 16 * 2;
  barWrite(r, e, 0xfee0_1000);
  barWrite(r, e + 8, 0x31);
  assert.equal(r.injected, []);
  barWrite(r, e + 12, 0); // unmask
  assert.equal(r.injected, [{ addressLo: 0xfee0_1000, addressHi: 0, data: 0x31 }], 'the pending vector is delivered at unmask');
  assert.is(barRead(r, MSIX_PBA_OFFSET), 0, 'and its bit cleared');
  assert.equal(r.routes.at(-1), [{ vector: 2, message: { addressLo: 0xfee0_1000, addressHi: 0, data: 0x31 } }], 'route installed');
  irq.trigger(VIRTIO_INTERRUPT.VRING, 1);
  assert.equal(r.signals, [2], 'fires through the vector');
  // Function mask: pending again, delivered when the function is unmasked.
  cfgWrite(r, msixCap + 2, 0xc000, 2);
  assert.equal(r.routes.at(-1), [{ vector: 2, message: null }], 'route removed while masked');
  irq.trigger(VIRTIO_INTERRUPT.VRING, 1);
  assert.equal(r.signals, [2]);
  cfgWrite(r, msixCap + 2, 0x8000, 2);
  assert.is(r.injected.length, 2, 'delivered on function unmask');
  // A bogus message address is the guest's business: it is routed as written.
  barWrite(r, e, 0x1234_5678);
  assert.equal(r.routes.at(-1), [{ vector: 2, message: { addressLo: 0x1234_5678, addressHi: 0, data: 0x31 } }]);
  // Config vector NO_VECTOR: a config interrupt goes nowhere.
  irq.trigger(VIRTIO_INTERRUPT.CONFIG);
  assert.equal(r.signals, [2]);
  // Routes change and pending vectors go out while the function's lock is held, the lock the
  // device's raise() takes: otherwise a vector fired between "unmasked" and "route installed"
  // reaches a GSI without a route and KVM drops it (the guest's driver then waits forever).
  assert.ok(r.underLock.length >= 5 && r.underLock.every(Boolean), `effects applied under the lock: ${r.underLock}`);
  assert.not.ok(r.pci.locked(), 'and the lock released after');
});

test('common config: feature negotiation, queue setup and DRIVER_OK activate through the shared state machine', () => {
  const r = rig(1);
  enableMemory(r);
  assert.is(barRead(r, 0x12, 2), 1, 'num_queues');
  barWrite(r, 0x14, 1, 1); barWrite(r, 0x14, 3, 1);
  barWrite(r, 0x00, 1); // device_feature_select 1
  assert.is(barRead(r, 0x04), 1, 'VERSION_1 (bit 32) offered');
  barWrite(r, 0x00, 0);
  assert.is(barRead(r, 0x04), 1 << 9);
  barWrite(r, 0x08, 1); barWrite(r, 0x0c, 1);
  barWrite(r, 0x08, 0); barWrite(r, 0x0c, (1 << 9) | (1 << 3)); // bit 3 not offered: dropped
  assert.is(barRead(r, 0x0c), 1 << 9);
  barWrite(r, 0x14, 0xb, 1);
  assert.is(barRead(r, 0x14, 1), 0xb, 'FEATURES_OK');
  barWrite(r, 0x16, 0, 2);
  assert.is(barRead(r, 0x18, 2), 256, 'queue_size reads the maximum first');
  barWrite(r, 0x18, 128, 2);
  const q = new Uint8Array(8);
  new DataView(q.buffer).setBigUint64(0, 0x10000n, true);
  r.window.write(0x20, q);
  barWrite(r, 0x28, 0x20000); barWrite(r, 0x2c, 0);
  barWrite(r, 0x30, 0x30000); barWrite(r, 0x34, 0);
  assert.is(barRead(r, 0x1e, 2), 0, 'queue_notify_off');
  barWrite(r, 0x1c, 1, 2);
  assert.is(barRead(r, 0x1c, 2), 1);
  barWrite(r, 0x14, 0xf, 1);
  assert.is(r.activations, 1, 'DRIVER_OK activated the device');
  const a = r.state.activation();
  assert.equal(a.queues, [{ size: 128, descTable: 0x10000, availRing: 0x20000, usedRing: 0x30000 }]);
  assert.is(a.ackedFeatures, (1n << 32n) | (1n << 9n));
  barWrite(r, NOTIFICATION_OFFSET, 0, 2);
  assert.equal(r.notifies, [0], 'a notify that reached the bus rings the queue');
  // ISR is read-to-clear.
  pciInterrupt(r.state, r.pci, () => {}).trigger(VIRTIO_INTERRUPT.VRING, 0);
  assert.is(barRead(r, ISR_CONFIG_OFFSET, 1), 1);
  assert.is(barRead(r, ISR_CONFIG_OFFSET, 1), 0);
  // Device config through BAR offset 0x4000.
  assert.is(barRead(r, DEVICE_CONFIG_OFFSET, 4), 0x4433_2211);
});

test('hostile driver: wrong widths, read-only fields, reset of an active device, DRIVER_OK over bad rings', () => {
  const r = rig(1, false); // no ring is inside RAM
  enableMemory(r);
  barWrite(r, 0x12, 5, 2); // num_queues is read-only
  assert.is(barRead(r, 0x12, 2), 1);
  barWrite(r, 0x14, 1, 4); // status is one byte: a dword write is dropped
  assert.is(barRead(r, 0x14, 1), 0);
  assert.is(barRead(r, 0x00, 2), 0, 'half of a dword field reads 0');
  barWrite(r, 0x14, 1, 1); barWrite(r, 0x14, 3, 1); barWrite(r, 0x08, 1); barWrite(r, 0x0c, 1); barWrite(r, 0x14, 0xb, 1);
  barWrite(r, 0x1c, 1, 2);
  barWrite(r, 0x14, 0xf, 1);
  assert.is(r.activations, 0, 'rings outside RAM: not activated');
  assert.is(barRead(r, 0x14, 1) & 0x40, 0x40, 'NEEDS_RESET');
  barWrite(r, 0x10000, 1); // past the structures
  barWrite(r, NOTIFICATION_OFFSET + 2, 0, 2); // unaligned notify
  barWrite(r, NOTIFICATION_OFFSET + 4 * 9, 0, 2); // a queue that does not exist
  assert.equal(r.notifies, []);
  assert.ok(r.warnings.length > 0, 'ignored accesses were reported');
  // The PCI-cfg window refuses lengths other than 1/2/4 and other BARs.
  const cfgCap = caps(r)[4]!.at;
  cfgWrite(r, cfgCap + 4, 3, 1); // BAR 3
  assert.is(cfgRead(r, cfgCap + 16), 0);
  cfgWrite(r, cfgCap + 4, 0, 1);
  cfgWrite(r, cfgCap + 8, 0x12); // num_queues through the window
  cfgWrite(r, cfgCap + 12, 2);
  assert.is(cfgRead(r, cfgCap + 16), 1, 'PCI-cfg window reads num_queues');
});

test('MSI routes: the table rewrites every route with the legacy ones; GSI routing encoding', () => {
  const routes = new MsiRoutes(MsiRoutes.create(16), 24);
  let applied: unknown[] = [];
  routes.update([{ gsi: 25, message: { addressLo: 0xfee0_0000, addressHi: 0, data: 0x41 } }], (all) => { applied = all; });
  routes.update([{ gsi: 30, message: { addressLo: 0xfee0_0000, addressHi: 0, data: 0x42 } }], (all) => { applied = all; });
  assert.equal(applied.map((r) => (r as { gsi: number }).gsi), [25, 30]);
  routes.update([{ gsi: 25, message: null }], (all) => { applied = all; });
  assert.equal(applied.map((r) => (r as { gsi: number }).gsi), [30]);
  assert.throws(() => routes.update([{ gsi: 23, message: null }], () => {}), /not an MSI GSI/);
  const legacy = legacyRoutes();
  assert.is(legacy.length, 24 + 16, 'IOAPIC pins 0..23, PIC lines 0..15');
  const buf = encodeGsiRouting([...legacy, { gsi: 30, kind: 'msi', addressLo: 0xfee0_0000, addressHi: 0, data: 0x42 }]);
  const v = new DataView(buf.buffer);
  assert.is(v.getUint32(0, true), 41);
  assert.is(buf.length, 8 + 41 * KVM_IRQ_ROUTING_ENTRY_SIZE);
  const last = 8 + 40 * KVM_IRQ_ROUTING_ENTRY_SIZE;
  assert.equal([v.getUint32(last, true), v.getUint32(last + 4, true), v.getUint32(last + 16, true), v.getUint32(last + 24, true)], [30, 2, 0xfee0_0000, 0x42]);
});

test.run();
