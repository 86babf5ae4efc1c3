/**
 * ACPI tables and the AML of the DSDT (firecracker src/vmm/src/arch/x86_64/mptable.rs and src/vmm/src/acpi/): checksums, lengths, the pointer chain, and
 * the virtio-mmio / COM1 / PS2 devices decoded back with a small AML reader.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arrayGuestMemory, type GuestMemory } from '../../src/memory/guest-memory.js';
import { AcpiError } from '../../src/errors.js';
import { writeMptable } from '../../src/arch/x86_64/mptable.js';
import { acpiDevicesPlan, newGeneration, writeAcpiDeviceData, writeAcpiTables, type AcpiLayout } from '../../src/arch/x86_64/acpi/index.js';
import { interruptLayout, VMCLOCK_ADDR, VMGENID_ADDR } from '../../src/arch/x86_64/layout.js';
import { eisaId, eisaIdValue, integer, namePath, pkgLength, resourceTemplate, string, memory32Fixed, interrupt, ioPort } from '../../src/arch/x86_64/acpi/aml.js';

/** uvu's throws() takes a predicate, not a class. */
const isA = (C: abstract new (...a: never[]) => unknown) => (e: unknown): boolean => e instanceof C;

// ----------------------------------------------------------------------------------------------
// A tiny AML reader for the subset the DSDT uses (ACPI 6.5 §20.2).
// ----------------------------------------------------------------------------------------------
type AmlValue = number | bigint | string | Uint8Array | AmlValue[] | AmlMethod;
/** A Method object: its flags byte and its raw TermList (checked against hand-assembled bytes). */
interface AmlMethod { flags: number; body: Uint8Array }
interface AmlDevice { path: string; names: Map<string, AmlValue> }

class AmlReader {
  constructor(readonly b: Uint8Array, public pos = 0) {}
  u8(): number {
    if (this.pos >= this.b.length) throw new Error('AML ends early');
    return this.b[this.pos++]!;
  }
  le(n: number): bigint {
    let v = 0n;
    for (let i = 0; i < n; i++) v |= BigInt(this.u8()) << BigInt(8 * i);
    return v;
  }
  /** PkgLength → absolute end offset of the package. */
  pkgEnd(): number {
    const start = this.pos;
    const lead = this.u8();
    const follow = lead >> 6;
    if (follow === 0) return start + (lead & 0x3f);
    assert.is(lead & 0x30, 0, 'PkgLeadByte bits 5:4 are zero in the multi-byte form');
    let len = lead & 0x0f;
    for (let i = 0; i < follow; i++) len |= this.u8() << (4 + 8 * i);
    return start + len;
  }
  seg(): string {
    let s = '';
    for (let i = 0; i < 4; i++) s += String.fromCharCode(this.u8());
    return s;
  }
  nameString(): string {
    let prefix = '';
    while (this.b[this.pos] === 0x5c || this.b[this.pos] === 0x5e) prefix += String.fromCharCode(this.u8());
    const lead = this.b[this.pos];
    if (lead === 0x00) { this.pos++; return prefix; }
    if (lead === 0x2e) { this.pos++; return prefix + [this.seg(), this.seg()].join('.'); }
    if (lead === 0x2f) {
      this.pos++;
      const n = this.u8();
      return prefix + Array.from({ length: n }, () => this.seg()).join('.');
    }
    return prefix + this.seg();
  }
  dataObject(): AmlValue {
    const op = this.u8();
    switch (op) {
      case 0x00: return 0;
      case 0x01: return 1;
      case 0x0a: return Number(this.le(1));
      case 0x0b: return Number(this.le(2));
      case 0x0c: return Number(this.le(4));
      case 0x0e: return this.le(8);
      case 0x0d: {
        let s = '';
        for (let c = this.u8(); c !== 0; c = this.u8()) s += String.fromCharCode(c);
        return s;
      }
      case 0x11: {
        const end = this.pkgEnd();
        const size = Number(this.dataObject());
        const data = this.b.slice(this.pos, end);
        assert.is(data.length, size, 'BufferSize equals the bytes in the package');
        this.pos = end;
        return data;
      }
      case 0x12: {
        const end = this.pkgEnd();
        const n = this.u8();
        const items = Array.from({ length: n }, () => this.dataObject());
        assert.is(this.pos, end, 'Package ends where its PkgLength says');
        return items;
      }
      default: throw new Error(`unexpected data object opcode 0x${op.toString(16)} at ${this.pos - 1}`);
    }
  }
  /** A TermList of Device objects, each holding Name objects. */
  devices(end = this.b.length): AmlDevice[] {
    const out: AmlDevice[] = [];
    while (this.pos < end) {
      assert.equal([this.u8(), this.u8()], [0x5b, 0x82], 'DeviceOp');
      const devEnd = this.pkgEnd();
      const dev: AmlDevice = { path: this.nameString(), names: new Map() };
      while (this.pos < devEnd) {
        const op = this.u8();
        if (op === 0x14) {
          const end = this.pkgEnd();
          const n = this.nameString();
          dev.names.set(n, { flags: this.u8(), body: this.b.slice(this.pos, end) });
          this.pos = end;
          continue;
        }
        assert.is(op, 0x08, 'NameOp or MethodOp');
        const n = this.nameString();
        dev.names.set(n, this.dataObject());
      }
      assert.is(this.pos, devEnd, 'device package ends where its PkgLength says');
      out.push(dev);
    }
    return out;
  }
}

interface Resources {
  mem: { base: number; len: number; rw: number }[];
  io: { min: number; max: number; len: number }[];
  irq: { gsi: number; flags: number }[];
  qmem: { type: number; general: number; typeFlags: number; min: bigint; max: bigint; len: bigint }[];
}

/** Decodes a _CRS buffer: Memory32Fixed, IO, Extended Interrupt, End Tag (ACPI 6.5 §6.4). */
function resources(buf: Uint8Array): Resources {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const r: Resources = { mem: [], io: [], irq: [], qmem: [] };
  let off = 0;
  for (;;) {
    const tag = buf[off]!;
    if (tag === 0x79) {
      assert.is(off + 2, buf.length, 'End Tag is last');
      assert.is(buf.reduce((s, x) => (s + x) & 0xff, 0), 0, 'End Tag checksum');
      return r;
    }
    if (tag === 0x47) { r.io.push({ min: v.getUint16(off + 2, true), max: v.getUint16(off + 4, true), len: buf[off + 7]! }); off += 8; continue; }
    const len = v.getUint16(off + 1, true);
    if (tag === 0x86) r.mem.push({ rw: buf[off + 3]!, base: v.getUint32(off + 4, true), len: v.getUint32(off + 8, true) });
    else if (tag === 0x89) {
      assert.is(buf[off + 4], 1, 'one interrupt');
      r.irq.push({ flags: buf[off + 3]!, gsi: v.getUint32(off + 5, true) });
    } else if (tag === 0x8a) {
      assert.is(len, 43, 'QWord Address Space descriptor length');
      r.qmem.push({
        type: buf[off + 3]!, general: buf[off + 4]!, typeFlags: buf[off + 5]!,
        min: v.getBigUint64(off + 14, true), max: v.getBigUint64(off + 22, true), len: v.getBigUint64(off + 38, true),
      });
    } else throw new Error(`unexpected descriptor 0x${tag.toString(16)}`);
    off += 3 + len;
  }
}

/** Reverses EisaId() compression. */
function eisaIdString(value: number): string {
  const v = ((value & 0xff) << 24 | (value & 0xff00) << 8 | (value >>> 8) & 0xff00 | value >>> 24) >>> 0;
  const ch = (shift: number): string => String.fromCharCode(((v >>> shift) & 0x1f) + 0x40);
  return ch(26) + ch(21) + ch(16) + (v & 0xffff).toString(16).toUpperCase().padStart(4, '0');
}

// ----------------------------------------------------------------------------------------------
// Helpers over guest memory
// ----------------------------------------------------------------------------------------------
const sum8 = (b: Uint8Array): number => b.reduce((s, x) => (s + x) & 0xff, 0);
const bytes = (mem: GuestMemory, gpa: number, len: number): Uint8Array => {
  const out = new Uint8Array(len);
  assert.is(mem.read(gpa, out), undefined);
  return out;
};
const text = (b: Uint8Array, off: number, len: number): string => Buffer.from(b.subarray(off, off + len)).toString('latin1');
/** A whole SDT: checks its length field against memory and returns its bytes. */
function table(mem: GuestMemory, gpa: number, signature: string): Uint8Array {
  const head = bytes(mem, gpa, 36);
  assert.is(text(head, 0, 4), signature);
  const len = new DataView(head.buffer).getUint32(4, true);
  const t = bytes(mem, gpa, len);
  assert.is(sum8(t), 0, `${signature} checksum`);
  assert.is(text(t, 10, 6), 'FIRECK');
  return t;
}
const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

const VIRTIO = [{ addr: 0xc000_1000, gsi: 5 }, { addr: 0xc000_2000, gsi: 6 }, { addr: 0xc000_3000, gsi: 7 }];

function setup(vcpuCount = 2, virtioDevices = VIRTIO): { mem: GuestMemory; layout: AcpiLayout; mpEnd: number } {
  const mem = arrayGuestMemory([{ gpa: 0, size: 0x100000 }]);
  const mpEnd = writeMptable(mem, vcpuCount);
  return { mem, mpEnd, layout: writeAcpiTables(mem, { vcpuCount, virtioDevices, startAddr: mpEnd }) };
}

// ----------------------------------------------------------------------------------------------
// AML encodings
// ----------------------------------------------------------------------------------------------
test('PkgLength: shortest of the 1–4 byte forms, counting its own bytes', () => {
  assert.equal([...pkgLength(0)], [1]);
  assert.equal([...pkgLength(62)], [63]);
  assert.equal([...pkgLength(63)], [0x40 | (65 & 0xf), 65 >> 4]);
  assert.equal([...pkgLength(4093)], [0x4f, 0xff]);
  assert.equal([...pkgLength(4094)], [0x80 | ((4094 + 3) & 0xf), ((4094 + 3) >> 4) & 0xff, (4094 + 3) >> 12]);
  assert.is(pkgLength(0xf_ffff - 3).length, 3);
  assert.is(pkgLength(0xf_ffff - 2).length, 4);
  assert.throws(() => pkgLength(0xfff_ffff), isA(AcpiError));
  for (const n of [0, 10, 62, 63, 100, 4093, 4094, 70000, 0x10_0000]) {
    const enc = pkgLength(n);
    const r = new AmlReader(enc);
    assert.is(r.pkgEnd(), n + enc.length, `round trip ${n}`);
  }
});

test('integers use Zero/One and the shortest prefix', () => {
  assert.equal([...integer(0)], [0x00]);
  assert.equal([...integer(1)], [0x01]);
  assert.equal([...integer(2)], [0x0a, 2]);
  assert.equal([...integer(0x1000)], [0x0b, 0x00, 0x10]);
  assert.equal([...integer(0xc000_1000)], [0x0c, 0x00, 0x10, 0x00, 0xc0]);
  assert.equal([...integer(2n ** 32n)], [0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.throws(() => integer(-1), isA(AcpiError));
});

test('names, strings and EISA ids', () => {
  assert.equal([...namePath('_SB_.COM1')], [0x2e, ...Buffer.from('_SB_COM1')]);
  assert.equal([...namePath('\\_SB_')], [0x5c, ...Buffer.from('_SB_')]);
  assert.equal([...namePath('PS2')], [...Buffer.from('PS2_')]);
  assert.equal([...namePath('A.B.C')], [0x2f, 3, ...Buffer.from('A___B___C___')]);
  assert.equal([...namePath('\\')], [0x5c, 0x00]);
  for (const bad of ['1ABC', 'abcd', 'TOOLONG', 'A..B']) assert.throws(() => namePath(bad), isA(AcpiError), bad);
  assert.equal([...string('LNRO0005')], [0x0d, ...Buffer.from('LNRO0005'), 0]);
  assert.is(eisaIdValue('PNP0501'), 0x0105d041);
  assert.is(eisaIdValue('PNP0303'), 0x0303d041);
  assert.equal([...eisaId('PNP0A03')], [0x0c, 0x41, 0xd0, 0x0a, 0x03]);
  assert.is(eisaIdString(eisaIdValue('PNP0501')), 'PNP0501');
});

test('resource template: descriptors, End Tag checksum, Buffer wrapper', () => {
  const rt = resourceTemplate([memory32Fixed(0xd000_0000, 0x1000), interrupt(9, { edge: true }), ioPort(0x60, 0x60, 1, 1)]);
  const r = new AmlReader(rt);
  const buf = r.dataObject() as Uint8Array;
  assert.is(r.pos, rt.length);
  assert.equal(resources(buf), {
    mem: [{ rw: 1, base: 0xd000_0000, len: 0x1000 }],
    io: [{ min: 0x60, max: 0x60, len: 1 }],
    irq: [{ flags: 0x03, gsi: 9 }],
    qmem: [],
  });
  assert.throws(() => memory32Fixed(2 ** 32, 1), isA(AcpiError));
  assert.throws(() => ioPort(0x10000, 0, 1, 1), isA(AcpiError));
});

// ----------------------------------------------------------------------------------------------
// Tables in guest memory
// ----------------------------------------------------------------------------------------------
test('tables follow the MP table in Firecracker order inside the system region', () => {
  const { layout: l, mpEnd } = setup();
  assert.is(l.dsdtAddr, mpEnd);
  const order = [l.dsdtAddr, l.fadtAddr, l.madtAddr, l.mcfgAddr, l.xsdtAddr, l.endAddr];
  for (let i = 1; i < order.length; i++) assert.ok(order[i]! > order[i - 1]!, `ascending ${i}`);
  assert.ok(l.endAddr <= 0xe0000);
  assert.is(l.rsdpAddr, 0xe0000);
});

test('RSDP revision 2: both checksums, length, XSDT pointer', () => {
  const { mem, layout } = setup();
  const r = bytes(mem, 0xe0000, 36);
  assert.is(text(r, 0, 8), 'RSD PTR ');
  assert.is(sum8(r.subarray(0, 20)), 0, 'ACPI 1.0 checksum');
  assert.is(sum8(r), 0, 'extended checksum');
  assert.is(text(r, 9, 6), 'FIRECK');
  assert.is(r[15], 2);
  assert.is(dv(r).getUint32(16, true), 0, 'no RSDT');
  assert.is(dv(r).getUint32(20, true), 36);
  assert.is(dv(r).getBigUint64(24, true), BigInt(layout.xsdtAddr));
});

test('every table: checksum 0, header length, OEM table id, revision, creator', () => {
  const { mem, layout: l } = setup();
  const expect: [number, string, string, number][] = [
    [l.xsdtAddr, 'XSDT', 'FCMVXSDT', 1], [l.fadtAddr, 'FACP', 'FCVMFADT', 6], [l.madtAddr, 'APIC', 'FCVMMADT', 6],
    [l.mcfgAddr, 'MCFG', 'FCMVMCFG', 1], [l.dsdtAddr, 'DSDT', 'FCVMDSDT', 2],
  ];
  for (const [addr, sig, id, rev] of expect) {
    const t = table(mem, addr, sig);
    assert.is(text(t, 16, 8), id);
    assert.is(t[8], rev, `${sig} revision`);
    assert.is(text(t, 28, 4), 'FCAT');
    assert.is(dv(t).getUint32(32, true), 0x20240119);
  }
});

test('table sizes match Firecracker guests with 4 vCPUs (FACP 0x114, APIC 0x58, MCFG/XSDT 0x3c)', () => {
  const { mem, layout: l } = setup(4);
  assert.is(table(mem, l.fadtAddr, 'FACP').length, 0x114);
  assert.is(table(mem, l.madtAddr, 'APIC').length, 0x58);
  assert.is(table(mem, l.mcfgAddr, 'MCFG').length, 0x3c);
  assert.is(table(mem, l.xsdtAddr, 'XSDT').length, 0x3c);
  assert.is(l.dsdtAddr, 0x9fd6c);
});

test('XSDT points at FADT, MADT, MCFG; FADT points at the DSDT', () => {
  const { mem, layout: l } = setup();
  const x = table(mem, l.xsdtAddr, 'XSDT');
  const ptrs = [0, 1, 2].map((i) => Number(dv(x).getBigUint64(36 + 8 * i, true)));
  assert.is(x.length, 36 + 24);
  assert.equal(ptrs.map((p) => text(bytes(mem, p, 4), 0, 4)), ['FACP', 'APIC', 'MCFG']);
  const f = table(mem, ptrs[0]!, 'FACP');
  const xDsdt = Number(dv(f).getBigUint64(140, true));
  assert.is(xDsdt, l.dsdtAddr);
  assert.is(text(bytes(mem, xDsdt, 4), 0, 4), 'DSDT');
  assert.is(dv(f).getUint32(40, true), 0, '32-bit DSDT field unused');
  assert.is(dv(f).getUint32(112, true), (1 << 20) | (1 << 4) | (1 << 5), 'HW_REDUCED_ACPI | PWR_BUTTON | SLP_BUTTON');
  assert.is(dv(f).getUint16(109, true), 1 << 2, 'VGA not present');
  assert.is(f[131], 5, 'FADT minor version');
  assert.is(text(f, 268, 8), 'FIRECKVM');
});

test('MADT: LAPIC base, IOAPIC id 0, one enabled Local APIC per vCPU', () => {
  const { mem, layout: l } = setup(3);
  const m = table(mem, l.madtAddr, 'APIC');
  const v = dv(m);
  assert.is(v.getUint32(36, true), 0xfee00000);
  assert.is(v.getUint32(40, true), 0, 'flags');
  assert.equal([m[44], m[45], m[46]], [1, 12, 0]);
  assert.is(v.getUint32(48, true), 0xfec00000);
  assert.is(v.getUint32(52, true), 0, 'GSI base');
  for (let i = 0; i < 3; i++) {
    const off = 56 + 8 * i;
    assert.equal([m[off], m[off + 1], m[off + 2], m[off + 3], v.getUint32(off + 4, true)], [0, 8, i, i, 1]);
  }
  assert.is(m.length, 56 + 24);
});

test('MCFG: one ECAM window at PCI_MMCONFIG_START, segment 0, bus 0', () => {
  const { mem, layout: l } = setup();
  const c = table(mem, l.mcfgAddr, 'MCFG');
  assert.is(dv(c).getBigUint64(44, true), 0xeec00000n);
  assert.equal([dv(c).getUint16(52, true), c[54], c[55]], [0, 0, 0]);
});

test('DSDT decodes to the virtio-mmio devices, COM1 and PS2_ with the resources put in', () => {
  const { mem, layout: l } = setup();
  const d = table(mem, l.dsdtAddr, 'DSDT');
  const devs = new AmlReader(d, 36).devices();
  assert.equal(devs.map((x) => x.path), ['_SB_.V000', '_SB_.V001', '_SB_.V002', '_SB_.COM1', '_SB_.PS2_']);
  VIRTIO.forEach((want, i) => {
    const dev = devs[i]!;
    assert.is(dev.names.get('_HID'), 'LNRO0005');
    assert.is(dev.names.get('_UID'), want.gsi - 5);
    assert.is(dev.names.get('_CCA'), 1);
    const r = resources(dev.names.get('_CRS') as Uint8Array);
    assert.equal(r.mem, [{ rw: 1, base: want.addr, len: 0x1000 }]);
    assert.equal(r.irq, [{ flags: 0x03, gsi: want.gsi }], 'consumer, edge, active-high, exclusive');
    assert.equal(r.io, []);
  });
  const com1 = devs[3]!;
  assert.is(eisaIdString(com1.names.get('_HID') as number), 'PNP0501');
  assert.is(com1.names.get('_UID'), 0);
  assert.is(com1.names.get('_DDN'), 'COM1');
  const c = resources(com1.names.get('_CRS') as Uint8Array);
  assert.equal(c.io, [{ min: 0x3f8, max: 0x3f8, len: 8 }]);
  assert.equal(c.irq, [{ flags: 0x03, gsi: 4 }]);
  const ps2 = devs[4]!;
  assert.is(eisaIdString(ps2.names.get('_HID') as number), 'PNP0303');
  const p = resources(ps2.names.get('_CRS') as Uint8Array);
  assert.equal(p.io, [{ min: 0x60, max: 0x60, len: 1 }, { min: 0x64, max: 0x64, len: 1 }]);
  assert.equal(p.irq, [{ flags: 0x03, gsi: 1 }]);
});

test('a full set of 19 virtio devices (GSI 5..23) still decodes; no devices leaves COM1 and PS2_', () => {
  const many = Array.from({ length: 19 }, (_, i) => ({ addr: 0xc000_1000 + i * 0x1000, gsi: 5 + i }));
  const { mem, layout: l } = setup(1, many);
  const devs = new AmlReader(table(mem, l.dsdtAddr, 'DSDT'), 36).devices();
  assert.is(devs.length, 21);
  assert.is(devs[18]!.path, '_SB_.V018');
  assert.equal(resources(devs[18]!.names.get('_CRS') as Uint8Array).irq, [{ flags: 0x03, gsi: 23 }]);
  const none = setup(1, []);
  assert.equal(new AmlReader(table(none.mem, none.layout.dsdtAddr, 'DSDT'), 36).devices().map((x) => x.path), ['_SB_.COM1', '_SB_.PS2_']);
});

test('bad configuration: one defect per case', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: 0x100000 }]);
  const ok = { vcpuCount: 1, virtioDevices: [{ addr: 0xc000_1000, gsi: 5 }], startAddr: 0x9fc00 };
  const bad = (patch: object, label: string): void => {
    assert.throws(() => writeAcpiTables(mem, { ...ok, ...patch }), (e: unknown) => e instanceof AcpiError && e.code === 'ACPI_SETUP', label);
  };
  assert.ok(writeAcpiTables(mem, ok));
  bad({ virtioDevices: [{ addr: 0xc000_1000, gsi: 4 }] }, 'GSI below the virtio range');
  bad({ virtioDevices: [{ addr: 0xc000_1000, gsi: 24 }] }, 'GSI past the IOAPIC');
  bad({ virtioDevices: [{ addr: 0xc000_1000, gsi: 5 }, { addr: 0xc000_2000, gsi: 5 }] }, 'shared GSI');
  bad({ virtioDevices: [{ addr: 0xc000_1000, gsi: 5 }, { addr: 0xc000_1000, gsi: 6 }] }, 'shared window');
  bad({ virtioDevices: [{ addr: 0xc000_1800, gsi: 5 }] }, 'unaligned window');
  bad({ virtioDevices: [{ addr: 0x1_0000_0000, gsi: 5 }] }, 'window above 4 GiB');
  bad({ vcpuCount: 0 }, 'no vCPUs');
  bad({ vcpuCount: 255 }, 'too many vCPUs');
  bad({ startAddr: 0xdff00 }, 'tables do not fit below the RSDP');
  bad({ startAddr: 0x1000 }, 'start outside the system region');
});

// ----------------------------------------------------------------------------------------------
// VMGenID, VMClock and the GED (Firecracker's ACPI devices)
// ----------------------------------------------------------------------------------------------
test('interrupt layout: virtio devices from GSI 5, then VMGenID and VMClock; 17 virtio devices at most', () => {
  assert.equal(interruptLayout(2), { virtio: [5, 6], vmgenid: 7, vmclock: 8 });
  assert.equal(interruptLayout(0), { virtio: [], vmgenid: 5, vmclock: 6 });
  const full = interruptLayout(17)!;
  assert.equal([full.virtio.at(-1), full.vmgenid, full.vmclock], [21, 22, 23]);
  assert.is(interruptLayout(18), null, 'no line left for VMClock');
  assert.equal([VMGENID_ADDR, VMCLOCK_ADDR], [0xdfff0, 0xde000], 'LastMatch from the top of the system region');
});

test('DSDT with the ACPI devices: VGEN, VCLK and GED_ between the virtio devices and COM1, each as Firecracker describes it', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: 0x100000 }]);
  const mpEnd = writeMptable(mem, 1);
  const plan = acpiDevicesPlan(interruptLayout(VIRTIO.length)!);
  const l = writeAcpiTables(mem, { vcpuCount: 1, virtioDevices: VIRTIO, startAddr: mpEnd, acpiDevices: plan });
  assert.ok(l.endAddr <= VMCLOCK_ADDR, 'the tables end below the VMClock page');
  const devs = new AmlReader(table(mem, l.dsdtAddr, 'DSDT'), 36).devices();
  assert.equal(devs.map((x) => x.path), ['_SB_.V000', '_SB_.V001', '_SB_.V002', '_SB_.VGEN', '_SB_.VCLK', '_SB_.GED_', '_SB_.COM1', '_SB_.PS2_']);
  const [vgen, vclk, ged] = [devs[3]!, devs[4]!, devs[5]!];
  assert.equal([vgen.names.get('_HID'), vgen.names.get('_CID'), vgen.names.get('_DDN')], ['VMGENCTR', 'VM_Gen_Counter', 'VM_Gen_Counter']);
  assert.equal(vgen.names.get('ADDR'), [0xdfff0, 0], 'ADDR: low and high halves');
  assert.equal([vclk.names.get('_HID'), vclk.names.get('_CID'), vclk.names.get('_DDN')], ['AMZNC10C', 'VMCLOCK', 'VMCLOCK']);
  // Method (_STA, 0, NotSerialized) { Return (0x0F) }: ReturnOp BytePrefix 0x0F.
  assert.equal(vclk.names.get('_STA'), { flags: 0, body: Uint8Array.of(0xa4, 0x0a, 0x0f) });
  const crs = resources(vclk.names.get('_CRS') as Uint8Array);
  assert.equal(crs.qmem, [{ type: 0, general: 0x0c, typeFlags: 0x02, min: 0xde000n, max: 0xdefffn, len: 0x1000n }], 'memory, MinFixed|MaxFixed, cacheable, read-only');
  assert.is(ged.names.get('_HID'), 'ACPI0013');
  assert.equal(resources(ged.names.get('_CRS') as Uint8Array).irq, [{ flags: 0x03, gsi: 8 }, { flags: 0x03, gsi: 9 }]);
  // Method (_EVT, 1, Serialized) { If (Arg0 == 8) { Notify (\_SB_.VGEN, 0x80) } If (Arg0 == 9) { Notify (\_SB_.VCLK, 0x80) } }
  const seg = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));
  const ifNotify = (gsi: number, dev: string): number[] => {
    const body = [0x93, 0x68, 0x0a, gsi, 0x86, 0x5c, 0x2e, ...seg('_SB_'), ...seg(dev), 0x0a, 0x80];
    return [0xa0, body.length + 1, ...body];
  };
  assert.equal(ged.names.get('_EVT'), { flags: 0x09, body: Uint8Array.from([...ifNotify(8, 'VGEN'), ...ifNotify(9, 'VCLK')]) });
});

test('the devices\' data in guest memory: the generation id at ADDR, the initial vmclock_abi in its page', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: 0x100000 }]);
  const plan = acpiDevicesPlan({ vmgenid: 6, vmclock: 7 });
  const id = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
  writeAcpiDeviceData(mem, plan, id);
  assert.equal(bytes(mem, 0xdfff0, 16), id);
  const abi = dv(bytes(mem, 0xde000, 112));
  assert.is(abi.getUint32(0, true), 1263289174, 'VMCLOCK_MAGIC');
  assert.is(abi.getUint32(4, true), 0x1000, 'size');
  assert.is(abi.getUint16(8, true), 1, 'version');
  assert.is(abi.getUint8(10), 255, 'counter_id: VMCLOCK_COUNTER_INVALID');
  assert.is(abi.getBigUint64(24, true), 0x300n, 'flags: VM_GEN_COUNTER_PRESENT | NOTIFICATION_PRESENT');
  assert.is(abi.getUint8(34), 0, 'clock_status: unknown');
  assert.is(abi.getBigUint64(104, true), 0n, 'vm_generation_counter');
  assert.throws(() => writeAcpiDeviceData(mem, plan, new Uint8Array(8)), isA(AcpiError));
});

test('a restore is a new generation: a new id at ADDR, then one pulse on the VMGenID GSI', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: 0x100000 }]);
  const plan = acpiDevicesPlan({ vmgenid: 6, vmclock: 7 });
  writeAcpiDeviceData(mem, plan, new Uint8Array(16).fill(1));
  const pulses: number[] = [];
  const next = Uint8Array.from({ length: 16 }, (_, i) => 0x40 + i);
  newGeneration(mem, plan, next, (gsi) => pulses.push(gsi));
  assert.equal(bytes(mem, 0xdfff0, 16), next);
  assert.equal(pulses, [6], 'the VMGenID line, which the GED turns into Notify(VGEN, 0x80)');
  assert.throws(() => newGeneration(mem, plan, new Uint8Array(4), () => pulses.push(-1)), isA(AcpiError));
  assert.equal(pulses, [6], 'no pulse for a refused id');
});

test.run();
