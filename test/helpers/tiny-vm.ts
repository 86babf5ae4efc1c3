/**
 * Tiny real-mode test VMs for the KVM tier: a VM with host-backed RAM, no irqchip, vCPUs
 * pointed at hand-assembled 16-bit code, a debug port (0xe9) ring to observe the guest, and
 * vCPU actors (real workers) to run them. Used by tests of the KVM layer and actors, where a
 * Linux boot would be slow and would prove less.
 */
import { Kvm, type VmFd } from '../../src/kvm/kvm.js';
import type { VcpuFd } from '../../src/kvm/vcpu-fd.js';
import { HostGuestMemory } from '../../src/memory/host-memory.js';
import { ByteRing } from '../../src/devices/byte-ring.js';
import { DEBUG_PORT } from '../../src/devices/debug-port.js';
import { VcpuHandle } from '../../src/actors/vcpu/handle.js';
import { VM_CONTROL_SLOTS, VM_SLOT } from '../../src/actors/vcpu/protocol.js';
import type { RamRange } from '../../src/memory/guest-memory.js';

export interface TinyVm {
  kvm: Kvm;
  vm: VmFd;
  mem: HostGuestMemory;
  ring: ByteRing;
  vmControl: Int32Array;
  vcpus: VcpuFd[];
  handles: VcpuHandle[];
  close(): Promise<void>;
}

/** Creates the VM, loads `programs[i]` at its address and spawns one vCPU actor per program. */
export async function tinyVm(programs: { addr: number; code: number[] }[], ram: RamRange[] = [{ gpa: 0, size: 1 << 20 }]): Promise<TinyVm> {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  const mem = HostGuestMemory.create(ram);
  mem.hostRegions.forEach((r, slot) => vm.setUserMemoryRegion(slot, BigInt(r.gpa), BigInt(r.size), r.hostAddr));
  const ringBuf = ByteRing.allocate(4096);
  const vmControl = new Int32Array(new SharedArrayBuffer(VM_CONTROL_SLOTS * 4));
  Atomics.store(vmControl, VM_SLOT.EXIT_CODE, -1);
  const vcpus: VcpuFd[] = [];
  const handles: VcpuHandle[] = [];
  for (const [i, p] of programs.entries()) {
    mem.write(p.addr, Uint8Array.from(p.code));
    const vcpu = vm.createVcpu(i);
    const sregs = vcpu.getSregs();
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.setSregs(sregs);
    vcpu.setRegs({ rip: BigInt(p.addr), rflags: 2n });
    vcpus.push(vcpu);
    handles.push(await VcpuHandle.spawn({
      vm, vcpu, memory: mem.describe(), vmControl: vmControl.buffer as SharedArrayBuffer,
      devices: [{ kind: 'debug-port', port: DEBUG_PORT, ring: ringBuf }],
    }));
  }
  return {
    kvm, vm, mem, ring: new ByteRing(ringBuf), vmControl, vcpus, handles,
    async close() {
      await Promise.all(handles.map((h) => h.stop()));
      vcpus.forEach((v) => v.close());
      vm.close();
      kvm.close();
    },
  };
}

/** Waits until the ring holds at least `n` bytes (or the deadline passes); returns them. */
export async function readRing(ring: ByteRing, n: number, timeoutMs = 10_000): Promise<Uint8Array> {
  const chunks: number[] = [];
  const deadline = performance.now() + timeoutMs;
  while (chunks.length < n) {
    const seq = ring.seq;
    chunks.push(...ring.drain());
    if (chunks.length >= n) break;
    const left = deadline - performance.now();
    if (left <= 0) break;
    const w = Atomics.waitAsync(ring.seqArray(), ring.seqIndex, seq, left);
    if (w.async) await w.value;
  }
  return Uint8Array.from(chunks);
}
