/**
 * The first real-KVM test: /dev/kvm answers API version 12, and a vCPU in real mode runs
 * `mov dx, 0x3f8; mov al, 'K'; out dx, al; hlt` from a one-slot guest: we see
 * the IO exit (port, direction, size, data) and then the HLT exit.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Kvm } from '../../src/kvm/kvm.js';
import { KVM_EXIT, KVM_EXIT_IO_OUT, REQUIRED_CAPS } from '../../src/kvm/constants.js';
import { HostGuestMemory } from '../../src/memory/host-memory.js';
import { KvmUnavailableError } from '../../src/errors.js';

const CODE_GPA = 0x1000;
// mov dx, 0x3f8 ; mov al, 'K' ; out dx, al ; hlt
const REAL_MODE_OUT_HLT = [0xba, 0xf8, 0x03, 0xb0, 0x4b, 0xee, 0xf4];

test('KVM_GET_API_VERSION is 12', () => {
  const kvm = Kvm.open();
  const v = kvm.getApiVersion();
  console.log(`\n    KVM API version ${v}`);
  assert.is(v, 12);
  kvm.close();
});

test('every capability Kindling requires is present', () => {
  const kvm = Kvm.open();
  kvm.requireCaps(REQUIRED_CAPS);
  kvm.close();
});

test('a missing device node is a KVM_UNAVAILABLE error, not a crash', () => {
  try {
    Kvm.open('/dev/kvm-does-not-exist');
    assert.unreachable('opened a missing device');
  } catch (e) {
    assert.instance(e, KvmUnavailableError);
    assert.is((e as KvmUnavailableError).code, 'KVM_UNAVAILABLE');
  }
});

test('real mode: OUT to 0x3f8 exits with the byte, then HLT', () => {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  const mem = HostGuestMemory.create([{ gpa: 0, size: 64 * 1024 }]);
  const r = mem.hostRegions[0]!;
  vm.setUserMemoryRegion(0, BigInt(r.gpa), BigInt(r.size), r.hostAddr);
  assert.is(mem.write(CODE_GPA, Uint8Array.from(REAL_MODE_OUT_HLT)), undefined);

  const vcpu = vm.createVcpu(0);
  const sregs = vcpu.getSregs();
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  vcpu.setSregs(sregs);
  vcpu.setRegs({ rip: BigInt(CODE_GPA), rflags: 2n });

  assert.is(vcpu.run(), KVM_EXIT.KVM_EXIT_IO);
  assert.is(vcpu.ioPort, 0x3f8);
  assert.is(vcpu.ioDirection, KVM_EXIT_IO_OUT);
  assert.is(vcpu.ioSize, 1);
  assert.is(vcpu.ioCount, 1);
  assert.equal([...vcpu.ioData()], [0x4b]);

  assert.is(vcpu.run(), KVM_EXIT.KVM_EXIT_HLT);
  assert.is(vcpu.getRegs().rip, BigInt(CODE_GPA + REAL_MODE_OUT_HLT.length));
  vcpu.close();
  vm.close();
  kvm.close();
});

test.run();
