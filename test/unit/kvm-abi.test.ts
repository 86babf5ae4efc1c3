/**
 * Layout of every koffi struct against the kernel's x86_64 values (sizes from pahole /
 * linux/kvm.h, offsets of the fields a mistake would silently shift), and the ioctl numbers
 * computed from them against the numbers the kernel headers produce.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import koffi, { type TypeObject } from 'koffi';
import * as abi from '../../src/kvm/abi.js';
import { KVM, _IOC, _IOC_READ, _IOC_WRITE } from '../../src/kvm/ioctls.js';

const sizes: [string, TypeObject, number][] = [
  ['kvm_regs', abi.kvm_regs, 144],
  ['kvm_segment', abi.kvm_segment, 24],
  ['kvm_dtable', abi.kvm_dtable, 16],
  ['kvm_sregs', abi.kvm_sregs, 312],
  ['kvm_fpu', abi.kvm_fpu, 416],
  ['kvm_msr_entry', abi.kvm_msr_entry, 16],
  ['kvm_msrs', abi.kvm_msrs, 8],
  ['kvm_cpuid_entry2', abi.kvm_cpuid_entry2, 40],
  ['kvm_cpuid2', abi.kvm_cpuid2, 8],
  ['kvm_lapic_state', abi.kvm_lapic_state, 1024],
  ['kvm_pit_config', abi.kvm_pit_config, 64],
  ['kvm_pit_channel_state', abi.kvm_pit_channel_state, 24],
  ['kvm_pit_state2', abi.kvm_pit_state2, 112],
  ['kvm_irqchip', abi.kvm_irqchip, 520],
  ['kvm_irqfd', abi.kvm_irqfd, 32],
  ['kvm_ioeventfd', abi.kvm_ioeventfd, 64],
  ['kvm_userspace_memory_region', abi.kvm_userspace_memory_region, 32],
  ['kvm_irq_level', abi.kvm_irq_level, 8],
  ['kvm_dirty_log', abi.kvm_dirty_log, 16],
  ['kvm_clock_data', abi.kvm_clock_data, 48],
  ['kvm_vcpu_events', abi.kvm_vcpu_events, 64],
  ['kvm_mp_state', abi.kvm_mp_state, 4],
  ['kvm_xsave', abi.kvm_xsave, 4096],
  ['kvm_xcr', abi.kvm_xcr, 16],
  ['kvm_xcrs', abi.kvm_xcrs, 392],
  ['kvm_debugregs', abi.kvm_debugregs, 128],
  ['kvm_msr_list', abi.kvm_msr_list, 4],
];

for (const [name, type, size] of sizes) {
  test(`sizeof(struct ${name}) = ${size}`, () => {
    assert.is(koffi.sizeof(type), size);
  });
}

const offsets: [string, TypeObject, string, number][] = [
  ['kvm_regs', abi.kvm_regs, 'rip', 128],
  ['kvm_regs', abi.kvm_regs, 'rflags', 136],
  ['kvm_sregs', abi.kvm_sregs, 'gdt', 192],
  ['kvm_sregs', abi.kvm_sregs, 'cr0', 224],
  ['kvm_sregs', abi.kvm_sregs, 'efer', 264],
  ['kvm_sregs', abi.kvm_sregs, 'interrupt_bitmap', 280],
  ['kvm_segment', abi.kvm_segment, 'selector', 12],
  ['kvm_segment', abi.kvm_segment, 'unusable', 22],
  ['kvm_fpu', abi.kvm_fpu, 'fcw', 128],
  ['kvm_fpu', abi.kvm_fpu, 'last_ip', 136],
  ['kvm_fpu', abi.kvm_fpu, 'mxcsr', 408],
  ['kvm_userspace_memory_region', abi.kvm_userspace_memory_region, 'userspace_addr', 24],
  ['kvm_ioeventfd', abi.kvm_ioeventfd, 'fd', 20],
  ['kvm_ioeventfd', abi.kvm_ioeventfd, 'flags', 24],
  ['kvm_vcpu_events', abi.kvm_vcpu_events, 'sipi_vector', 16],
  ['kvm_vcpu_events', abi.kvm_vcpu_events, 'exception_payload', 56],
  ['kvm_pit_channel_state', abi.kvm_pit_channel_state, 'count_load_time', 16],
  ['kvm_pit_state2', abi.kvm_pit_state2, 'flags', 72],
  ['kvm_clock_data', abi.kvm_clock_data, 'realtime', 16],
  ['kvm_xcrs', abi.kvm_xcrs, 'padding', 264],
  ['kvm_debugregs', abi.kvm_debugregs, 'dr7', 40],
];

for (const [name, type, field, off] of offsets) {
  test(`offsetof(struct ${name}, ${field}) = ${off}`, () => {
    assert.is(koffi.offsetof(type, field), off);
  });
}

// Values as the kernel's _IO/_IOR/_IOW macros produce them (e.g. from strace or C printf).
const numbers: [keyof typeof KVM, number][] = [
  ['KVM_GET_API_VERSION', 0xae00],
  ['KVM_CREATE_VM', 0xae01],
  ['KVM_GET_SUPPORTED_CPUID', 0xc008ae05],
  ['KVM_CREATE_VCPU', 0xae41],
  ['KVM_SET_USER_MEMORY_REGION', 0x4020ae46],
  ['KVM_SET_TSS_ADDR', 0xae47],
  ['KVM_CREATE_IRQCHIP', 0xae60],
  ['KVM_IRQ_LINE', 0x4008ae61],
  ['KVM_IRQFD', 0x4020ae76],
  ['KVM_CREATE_PIT2', 0x4040ae77],
  ['KVM_IOEVENTFD', 0x4040ae79],
  ['KVM_RUN', 0xae80],
  ['KVM_GET_REGS', 0x8090ae81],
  ['KVM_SET_REGS', 0x4090ae82],
  ['KVM_GET_SREGS', 0x8138ae83],
  ['KVM_SET_SREGS', 0x4138ae84],
  ['KVM_SET_MSRS', 0x4008ae89],
  ['KVM_GET_FPU', 0x81a0ae8c],
  ['KVM_GET_LAPIC', 0x8400ae8e],
  ['KVM_SET_CPUID2', 0x4008ae90],
  ['KVM_GET_VCPU_EVENTS', 0x8040ae9f],
  ['KVM_GET_PIT2', 0x8070ae9f],
  ['KVM_GET_XSAVE', 0x9000aea4],
  ['KVM_GET_XCRS', 0x8188aea6],
  ['KVM_GET_DEBUGREGS', 0x8080aea1],
  ['KVM_GET_CLOCK', 0x8030ae7c],
  ['KVM_KVMCLOCK_CTRL', 0xaead],
];

for (const [name, value] of numbers) {
  test(`${name} = 0x${value.toString(16)}`, () => {
    assert.is(KVM[name], value);
  });
}

test('_IOC rejects sizes that do not fit 14 bits', () => {
  assert.throws(() => _IOC(_IOC_READ | _IOC_WRITE, 0xae, 1, 1 << 14), /14 bits/);
});

test.run();
