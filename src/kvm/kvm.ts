/**
 * The owning handle chain over KVM's three kinds of file descriptor:
 *
 *   Kvm (/dev/kvm) ──createVm()──▶ VmFd ──createVcpu()──▶ VcpuFd (vcpu-fd.ts)
 *
 * One method per ioctl; every failure is a KvmIoctlError naming the ioctl and errno.
 * File descriptors are plain numbers and valid in every thread of the process, so a worker
 * can adopt a VmFd or VcpuFd created elsewhere (`VmFd.adopt`, `VcpuFd.adopt`).
 */
import * as abi from './abi.js';
import { kvmIoctl } from './ioctls.js';
import {
  KVM_API_VERSION, KVM_CAP, REQUIRED_CAPS, KVM_IOEVENTFD_FLAG_DATAMATCH, KVM_IOEVENTFD_FLAG_PIO,
  KVM_PIT_SPEAKER_DUMMY, dirtyLogBytes, type KvmCapName,
} from './constants.js';
import * as libc from './libc.js';
import { KvmIoctlError, KvmUnavailableError } from '../errors.js';
import { VcpuFd } from './vcpu-fd.js';

const E2BIG = 7;


export interface CpuidEntry {
  function: number; index: number; flags: number;
  eax: number; ebx: number; ecx: number; edx: number;
}

/** The /dev/kvm system file descriptor. */
export class Kvm {
  readonly fd: number;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** Opens /dev/kvm and checks the API version; `path` is for tests of the failure path. */
  static open(path = '/dev/kvm'): Kvm {
    const fd = libc.open(path, libc.O_RDWR | libc.O_CLOEXEC, 0);
    if (fd < 0) {
      const e = libc.errno();
      throw new KvmUnavailableError('KVM_UNAVAILABLE', `cannot open ${path}: ${libc.errnoName(e)}`);
    }
    const kvm = new Kvm(fd);
    const v = kvm.getApiVersion();
    if (v !== KVM_API_VERSION) {
      kvm.close();
      throw new KvmUnavailableError('KVM_API_VERSION', `KVM API version ${v}, expected ${KVM_API_VERSION}`);
    }
    return kvm;
  }

  /** KVM_GET_API_VERSION. */
  getApiVersion(): number {
    return kvmIoctl(this.fd, 'KVM_GET_API_VERSION');
  }

  /** KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific positive value. */
  checkExtension(cap: KvmCapName): number {
    return kvmIoctl(this.fd, 'KVM_CHECK_EXTENSION', KVM_CAP[cap]);
  }

  /** KVM_CHECK_EXTENSION by number: a CPU template's `kvm_capabilities` may name any capability. */
  checkExtensionRaw(cap: number): number {
    return kvmIoctl(this.fd, 'KVM_CHECK_EXTENSION', cap);
  }

  /** Throws KvmUnavailableError naming the first missing capability of `caps`. */
  requireCaps(caps: readonly KvmCapName[] = REQUIRED_CAPS): void {
    for (const cap of caps) {
      if (this.checkExtension(cap) <= 0) {
        throw new KvmUnavailableError('KVM_MISSING_CAPABILITY', `KVM lacks ${cap}, which Kindling requires`);
      }
    }
  }

  /** KVM_GET_VCPU_MMAP_SIZE: bytes to mmap from each vCPU fd (struct kvm_run and beyond). */
  getVcpuMmapSize(): number {
    return kvmIoctl(this.fd, 'KVM_GET_VCPU_MMAP_SIZE');
  }

  /** KVM_GET_SUPPORTED_CPUID: the CPUID KVM can expose, the base for every vCPU's CPUID. */
  getSupportedCpuid(): CpuidEntry[] {
    const { buf, entries } = abi.cpuid2Buffer();
    kvmIoctl(this.fd, 'KVM_GET_SUPPORTED_CPUID', buf);
    const raw = entries(buf);
    const ent = abi.sizeOf(abi.kvm_cpuid_entry2);
    const out: CpuidEntry[] = [];
    for (let at = 0; at < raw.length; at += ent) out.push(abi.decode<CpuidEntry>(abi.kvm_cpuid_entry2, raw.subarray(at)));
    return out;
  }

  /**
   * KVM_GET_MSR_INDEX_LIST: the MSRs KVM can save and restore for a guest (what a snapshot
   * asks every vCPU for). Called once with room for none to learn the count (E2BIG).
   */
  getMsrIndexList(): number[] {
    const hdr = abi.sizeOf(abi.kvm_msr_list);
    const probe = Buffer.alloc(hdr);
    try {
      kvmIoctl(this.fd, 'KVM_GET_MSR_INDEX_LIST', probe);
    } catch (e) {
      if (!(e instanceof KvmIoctlError) || e.errno !== E2BIG) throw e;
    }
    const n = probe.readUInt32LE(0);
    const buf = Buffer.alloc(hdr + n * 4);
    buf.writeUInt32LE(n, 0);
    kvmIoctl(this.fd, 'KVM_GET_MSR_INDEX_LIST', buf);
    const got = buf.readUInt32LE(0);
    return Array.from({ length: got }, (_, i) => buf.readUInt32LE(hdr + i * 4));
  }

  /** KVM_CREATE_VM (machine type 0: default x86). */
  createVm(): VmFd {
    return new VmFd(kvmIoctl(this.fd, 'KVM_CREATE_VM', 0), this.getVcpuMmapSize());
  }

  close(): void {
    libc.close(this.fd);
  }
}

/** A VM file descriptor. */
export class VmFd {
  readonly fd: number;
  /** Size of each vCPU's kvm_run mapping. */
  readonly vcpuMmapSize: number;

  constructor(fd: number, vcpuMmapSize: number) {
    this.fd = fd;
    this.vcpuMmapSize = vcpuMmapSize;
  }

  /** Wraps a VM fd received from another thread. */
  static adopt(fd: number, vcpuMmapSize: number): VmFd {
    return new VmFd(fd, vcpuMmapSize);
  }

  /** KVM_SET_TSS_ADDR: three pages KVM needs below 4 GiB for real-mode emulation on VMX. */
  setTssAddr(addr: number): void {
    kvmIoctl(this.fd, 'KVM_SET_TSS_ADDR', addr);
  }

  /** KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and per-vCPU LAPICs (before any vCPU). */
  createIrqchip(): void {
    kvmIoctl(this.fd, 'KVM_CREATE_IRQCHIP');
  }

  /** KVM_CREATE_PIT2 with KVM_PIT_SPEAKER_DUMMY, as Firecracker does (firecracker src/vmm/src/builder.rs). */
  createPit2(): void {
    kvmIoctl(this.fd, 'KVM_CREATE_PIT2', abi.encode(abi.kvm_pit_config, { flags: KVM_PIT_SPEAKER_DUMMY }));
  }

  /** KVM_SET_USER_MEMORY_REGION: maps host memory at `hostAddr` into guest physical space. */
  setUserMemoryRegion(slot: number, guestPhysAddr: bigint, size: bigint, hostAddr: bigint, flags = 0): void {
    kvmIoctl(this.fd, 'KVM_SET_USER_MEMORY_REGION', abi.encode(abi.kvm_userspace_memory_region, {
      slot, flags, guest_phys_addr: guestPhysAddr, memory_size: size, userspace_addr: hostAddr,
    }));
  }

  /**
   * KVM_GET_DIRTY_LOG: the pages of memory slot `slot` (of `sizeBytes`) written since the last
   * call, bit n of byte n/8 for page n (a little-endian u64 array as the kernel fills it). The
   * slot must carry KVM_MEM_LOG_DIRTY_PAGES (ENOENT otherwise). Without
   * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled, which Kindling never enables, KVM clears the log
   * and write-protects the pages again as it returns it, so each call starts a new interval
   * (Documentation/virt/kvm/api.rst, 4.8 KVM_GET_DIRTY_LOG).
   */
  getDirtyLog(slot: number, sizeBytes: number): Uint8Array {
    // A fresh ArrayBuffer: its backing store is off the V8 heap, so the address stays valid.
    const bitmap = new Uint8Array(new ArrayBuffer(dirtyLogBytes(sizeBytes)));
    kvmIoctl(this.fd, 'KVM_GET_DIRTY_LOG', abi.encode(abi.kvm_dirty_log, { slot, padding1: 0, dirty_bitmap: libc.addressOf(bitmap) }));
    return bitmap;
  }

  /** KVM_IRQ_LINE: drives an interrupt line of the in-kernel irqchip. */
  irqLine(irq: number, level: 0 | 1): void {
    kvmIoctl(this.fd, 'KVM_IRQ_LINE', abi.encode(abi.kvm_irq_level, { irq, level }));
  }

  /**
   * KVM_SET_GSI_ROUTING: replaces the VM's whole GSI routing table (Documentation/virt/kvm/
   * api.rst 4.52). `encodeGsiRouting` (src/kvm/gsi-routing.ts) builds the argument.
   */
  setGsiRouting(table: Uint8Array): void {
    kvmIoctl(this.fd, 'KVM_SET_GSI_ROUTING', table);
  }

  /** KVM_SIGNAL_MSI: injects one MSI message now; returns 0 when the guest blocked it, else >0. */
  signalMsi(addressLo: number, addressHi: number, data: number): number {
    const b = Buffer.alloc(32);
    b.writeUInt32LE(addressLo >>> 0, 0);
    b.writeUInt32LE(addressHi >>> 0, 4);
    b.writeUInt32LE(data >>> 0, 8);
    return kvmIoctl(this.fd, 'KVM_SIGNAL_MSI', b);
  }

  /** KVM_IRQFD: writes to `eventFd` raise GSI `gsi` without a trip through userspace. */
  registerIrqfd(eventFd: number, gsi: number): void {
    kvmIoctl(this.fd, 'KVM_IRQFD', abi.encode(abi.kvm_irqfd, { fd: eventFd, gsi, flags: 0, resamplefd: 0 }));
  }

  /**
   * KVM_IOEVENTFD: a guest write of `len` bytes to `addr` (MMIO, or a port when `pio`) signals
   * `eventFd` instead of exiting to userspace; with `datamatch` only that value matches.
   */
  registerIoeventfd(eventFd: number, addr: bigint, len: number, opts: { datamatch?: bigint; pio?: boolean } = {}): void {
    let flags = 0;
    if (opts.datamatch !== undefined) flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    if (opts.pio) flags |= KVM_IOEVENTFD_FLAG_PIO;
    kvmIoctl(this.fd, 'KVM_IOEVENTFD', abi.encode(abi.kvm_ioeventfd, {
      datamatch: opts.datamatch ?? 0n, addr, len, fd: eventFd, flags,
    }));
  }

  /** KVM_GET_CLOCK. */
  getClock(): { clock: bigint; flags: number } {
    const buf = Buffer.alloc(abi.sizeOf(abi.kvm_clock_data));
    kvmIoctl(this.fd, 'KVM_GET_CLOCK', buf);
    return { clock: buf.readBigUInt64LE(0), flags: buf.readUInt32LE(8) };
  }

  /** KVM_SET_CLOCK from the raw kvm_clock_data a snapshot kept (flags as the caller set them). */
  setClockRaw(data: Uint8Array): void {
    kvmIoctl(this.fd, 'KVM_SET_CLOCK', data);
  }

  /** KVM_GET_CLOCK as raw kvm_clock_data (snapshots store it as it is). */
  getClockRaw(): Buffer {
    const buf = Buffer.alloc(abi.sizeOf(abi.kvm_clock_data));
    kvmIoctl(this.fd, 'KVM_GET_CLOCK', buf);
    return buf;
  }

  /** KVM_GET_PIT2: the in-kernel PIT's raw kvm_pit_state2. */
  getPit2(): Buffer {
    const buf = Buffer.alloc(abi.sizeOf(abi.kvm_pit_state2));
    kvmIoctl(this.fd, 'KVM_GET_PIT2', buf);
    return buf;
  }

  /** KVM_SET_PIT2. */
  setPit2(state: Uint8Array): void {
    kvmIoctl(this.fd, 'KVM_SET_PIT2', state);
  }

  /** KVM_GET_IRQCHIP for `chipId` (KVM_IRQCHIP_*): the raw kvm_irqchip. */
  getIrqchip(chipId: number): Buffer {
    const buf = Buffer.alloc(abi.sizeOf(abi.kvm_irqchip));
    buf.writeUInt32LE(chipId, 0);
    kvmIoctl(this.fd, 'KVM_GET_IRQCHIP', buf);
    return buf;
  }

  /** KVM_SET_IRQCHIP from a raw kvm_irqchip (its chip_id says which chip). */
  setIrqchip(state: Uint8Array): void {
    kvmIoctl(this.fd, 'KVM_SET_IRQCHIP', state);
  }

  /** KVM_CREATE_VCPU: vCPU `id` (also its APIC id), with its kvm_run page mapped. */
  createVcpu(id: number): VcpuFd {
    const fd = kvmIoctl(this.fd, 'KVM_CREATE_VCPU', id);
    return VcpuFd.adopt(fd, id, this.vcpuMmapSize);
  }

  close(): void {
    libc.close(this.fd);
  }
}
