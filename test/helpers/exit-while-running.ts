/**
 * A program for test/kvm/vcpu-actor.test.ts: starts a tiny VM whose vCPU counts in guest RAM
 * forever without a VM exit, waits until it is inside the guest, then exits the process
 * without stopping the VM — as a program (or a test) that fails half-way would. The process
 * must still end: the vCPU exit hook (src/actors/vcpu/handle.ts) kicks the vCPU out of KVM_RUN.
 */
import { tinyVm } from './tiny-vm.js';

const COUNT_AT_2000 = [0x66, 0xff, 0x06, 0x00, 0x20, 0xeb, 0xf9]; // l: inc dword [0x2000] ; jmp l

const t = await tinyVm([{ addr: 0x1000, code: COUNT_AT_2000 }]);
await t.handles[0]!.run();
const counter = (): number => t.mem.readU32(0x2000) as number;
const before = counter();
const deadline = Date.now() + 20_000;
while (counter() === before) {
  if (Date.now() > deadline) {
    console.log('GUEST_NEVER_RAN');
    process.exit(3);
  }
  await new Promise((r) => setTimeout(r, 1));
}
console.log('GUEST_RUNNING');
process.exit(0);
