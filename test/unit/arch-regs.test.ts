/** Boot register state, GDT, identity page tables, MSRs and LAPIC LINTs (firecracker src/vmm/src/arch/x86_64/regs.rs). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { KvmSegment, KvmSregs } from '../../src/kvm/vcpu-fd.js';
import { arrayGuestMemory } from '../../src/memory/guest-memory.js';
import {
  APIC_LVT0, APIC_LVT1, bootFpu, bootGdt, bootMsrs, bootRegs, bootSregs, GDT_CODE32_FLAGS,
  GDT_CODE64_FLAGS, GDT_DATA_FLAGS, GDT_TSS32_FLAGS, GDT_TSS64_FLAGS, gdtEntry, KVM_APIC_REG_SIZE,
  MSR_CSTAR, MSR_IA32_MISC_ENABLE, MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP,
  MSR_IA32_TSC, MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_MTRRdefType, MSR_STAR, MSR_SYSCALL_MASK,
  segmentFromGdt, setLapicLints, writeGdtIdt, writeIdentityPageTables,
} from '../../src/arch/x86_64/regs.js';

/** uvu's throws() takes a predicate, not a class. */
const isA = (C: abstract new (...a: never[]) => unknown) => (e: unknown): boolean => e instanceof C;

const seg = (): KvmSegment => ({ base: 0, limit: 0xffff, selector: 0, type: 3, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0, padding: 0 });

/** KVM_GET_SREGS right after vCPU creation: CR0 = CD|NW|ET. */
function resetSregs(): KvmSregs {
  return {
    cs: seg(), ds: seg(), es: seg(), fs: seg(), gs: seg(), ss: seg(), tr: seg(), ldt: seg(),
    gdt: { base: 0, limit: 0xffff, padding: [0, 0, 0] }, idt: { base: 0, limit: 0xffff, padding: [0, 0, 0] },
    cr0: 0x6000_0010, cr2: 0, cr3: 0, cr4: 0, cr8: 0, efer: 0, apic_base: 0xfee0_0900,
    interrupt_bitmap: [0, 0, 0, 0],
  };
}

test('GDT flag constants are the firecracker src/vmm/src/arch/x86_64/regs.rs values', () => {
  assert.is(GDT_CODE64_FLAGS, 0xa09b);
  assert.is(GDT_DATA_FLAGS, 0xc093);
  assert.is(GDT_TSS64_FLAGS, 0x808b);
  assert.is(GDT_CODE32_FLAGS, 0xc09b);
  assert.is(GDT_TSS32_FLAGS, 0x008b);
});

test('gdtEntry encodes the Linux and PVH boot GDTs exactly', () => {
  assert.equal(bootGdt('linux64'), [0n, 0x00af9b000000ffffn, 0x00cf93000000ffffn, 0x008f8b000000ffffn]);
  assert.equal(bootGdt('pvh'), [0n, 0x00cf9b000000ffffn, 0x00cf93000000ffffn, 0x00008b0000000067n]);
  // Base bits land in 39:16 and 63:56.
  assert.is(gdtEntry(0, 0x12345678, 0), 0x1200003456780000n);
});

test('segments decoded from GDT entries carry selector, G-scaled limit and flags', () => {
  const [, code, data, tss] = bootGdt('linux64').map((e, i) => segmentFromGdt(e, i));
  assert.equal(
    { sel: code!.selector, limit: code!.limit, type: code!.type, l: code!.l, db: code!.db, g: code!.g, s: code!.s, p: code!.present },
    { sel: 0x08, limit: 0xffff_ffff, type: 0xb, l: 1, db: 0, g: 1, s: 1, p: 1 },
  );
  assert.equal({ sel: data!.selector, db: data!.db, l: data!.l, type: data!.type }, { sel: 0x10, db: 1, l: 0, type: 3 });
  assert.equal({ sel: tss!.selector, s: tss!.s, type: tss!.type, unusable: tss!.unusable }, { sel: 0x18, s: 0, type: 0xb, unusable: 0 });
  const nul = segmentFromGdt(0n, 0);
  assert.is(nul.unusable, 1);
  const pvhTss = segmentFromGdt(bootGdt('pvh')[3]!, 3);
  assert.is(pvhTss.limit, 0x67, 'G clear: limit is not scaled');
});

test('Linux sregs: long mode, paging, CR3 at PML4, reset CR0 bits kept, input untouched', () => {
  const cur = resetSregs();
  const s = bootSregs(cur, 'linux64');
  assert.is(BigInt(s.cr0), 0xe000_0011n);
  assert.is(BigInt(s.cr3), 0x9000n);
  assert.is(BigInt(s.cr4), 0x20n);
  assert.is(BigInt(s.efer), 0x500n);
  assert.equal([BigInt(s.gdt.base), s.gdt.limit, BigInt(s.idt.base), s.idt.limit], [0x500n, 31, 0x520n, 7]);
  assert.equal([s.cs.selector, s.ds.selector, s.es.selector, s.fs.selector, s.gs.selector, s.ss.selector, s.tr.selector], [8, 16, 16, 16, 16, 16, 24]);
  assert.is(s.cs.l, 1);
  assert.is(BigInt(s.apic_base), 0xfee0_0900n, 'fields not set at boot are kept');
  assert.is(cur.cr0, 0x6000_0010, 'current sregs not modified');
  assert.is(cur.cs.selector, 0);
});

test('PVH sregs: 32-bit protected mode, no paging, EFER untouched', () => {
  const cur = { ...resetSregs(), efer: 0xd01 };
  const s = bootSregs(cur, 'pvh');
  assert.is(BigInt(s.cr0), 0x11n);
  assert.is(BigInt(s.cr4), 0n);
  assert.is(s.efer, 0xd01);
  assert.is(BigInt(s.cr3), 0n);
  assert.equal([s.cs.db, s.cs.l, s.cs.limit, s.tr.limit], [1, 0, 0xffff_ffff, 0x67]);
});

test('writeGdtIdt writes four descriptors and a zero IDT entry', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: 0x10000 }]);
  mem.writeU64(0x520, 0xffn);
  writeGdtIdt(mem, 'linux64');
  assert.equal([0, 1, 2, 3].map((i) => mem.readU64(0x500 + 8 * i)), bootGdt('linux64'));
  assert.is(mem.readU64(0x520), 0n);
});

test('identity page tables map the first GiB with 2 MiB pages', () => {
  const mem = arrayGuestMemory([{ gpa: 0, size: 0x10000 }]);
  writeIdentityPageTables(mem);
  assert.is(mem.readU64(0x9000), 0xa003n);
  assert.is(mem.readU64(0xa000), 0xb003n);
  assert.is(mem.readU64(0xb000), 0x83n);
  assert.is(mem.readU64(0xb008), 0x20_0083n);
  assert.is(mem.readU64(0xb000 + 511 * 8), (511n << 21n) | 0x83n);
  assert.is(mem.readU64(0xc000), 0n, 'nothing past PDE[511]');
  assert.is(mem.readU64(0x9008), 0n, 'only PML4[0]');
});

test('writes below guest RAM throw the GuestMemoryError', () => {
  const mem = arrayGuestMemory([{ gpa: 0x100000, size: 0x1000 }]);
  assert.throws(() => writeIdentityPageTables(mem), (e: Error & { code?: string }) => e.code === 'GUEST_MEMORY_OUT_OF_RANGE');
});

test('boot regs per protocol', () => {
  assert.equal(bootRegs({ kind: 'linux64', addr: 0x1000000 }), { rflags: 2n, rip: 0x1000000n, rsp: 0x8ff0n, rbp: 0x8ff0n, rsi: 0x7000n });
  assert.equal(bootRegs({ kind: 'pvh', addr: 0x1000200 }), { rflags: 2n, rip: 0x1000200n, rbx: 0x6000n });
});

test('boot FPU', () => {
  assert.equal(bootFpu(), { fcw: 0x37f, mxcsr: 0x1f80 });
});

test('boot MSRs: the eleven Firecracker writes with their values', () => {
  const m = new Map(bootMsrs().map((e) => [e.index, e.data]));
  assert.is(m.size, 11);
  assert.equal([MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP, MSR_IA32_TSC], [0x174, 0x175, 0x176, 0x10]);
  assert.equal([MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK, MSR_KERNEL_GS_BASE], [0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, 0xc0000102]);
  for (const i of [MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP, MSR_STAR, MSR_CSTAR, MSR_KERNEL_GS_BASE, MSR_SYSCALL_MASK, MSR_LSTAR, MSR_IA32_TSC]) {
    assert.is(m.get(i), 0n, i.toString(16));
  }
  assert.is(MSR_IA32_MISC_ENABLE, 0x1a0);
  assert.is(m.get(MSR_IA32_MISC_ENABLE), 1n);
  assert.is(MSR_MTRRdefType, 0x2ff);
  assert.is(m.get(MSR_MTRRdefType), 0x806n);
});

test('LAPIC LINT0 → ExtINT, LINT1 → NMI, only bits 10:8 replaced', () => {
  const regs = new Uint8Array(KVM_APIC_REG_SIZE).fill(0x5a);
  const v = new DataView(regs.buffer);
  v.setUint32(APIC_LVT0, 0x0001_0000, true); // masked, fixed delivery
  v.setUint32(APIC_LVT1, 0xffff_ffff, true);
  const before = Uint8Array.from(regs);
  setLapicLints(regs);
  assert.is(v.getUint32(APIC_LVT0, true), 0x0001_0700);
  assert.is(v.getUint32(APIC_LVT1, true), 0xffff_fcff);
  for (let i = 0; i < regs.length; i++) {
    if ((i >= APIC_LVT0 && i < APIC_LVT0 + 4) || (i >= APIC_LVT1 && i < APIC_LVT1 + 4)) continue;
    if (regs[i] !== before[i]) assert.unreachable(`byte 0x${i.toString(16)} changed`);
  }
  assert.throws(() => setLapicLints(new Uint8Array(0x100)), isA(RangeError));
});

test.run();
