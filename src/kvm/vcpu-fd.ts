/**
 * A vCPU file descriptor and its mmap'd struct kvm_run.
 *
 * kvm_run is read in place through a DataView (no copy per exit): after `run()` returns, the
 * exit-specific fields below are valid until the next `run()`. For IO exits the data lives
 * inside the same mapping at `io.data_offset`; for MMIO exits in `mmio.data`. A handler
 * answers an IN / MMIO read by writing into those bytes before the next `run()`.
 */
import * as abi from './abi.js';
import { kvmIoctl, KVM } from './ioctls.js';
import { KVM_EXIT, KVM_RUN_OFFSETS as R } from './constants.js';
import * as libc from './libc.js';
import { KvmIoctlError } from '../errors.js';

/** General purpose registers, u64 values as bigint. */
export interface KvmRegs {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint; rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint; r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

/** struct kvm_segment as decoded by koffi. */
export interface KvmSegment {
  base: number | bigint; limit: number; selector: number; type: number; present: number; dpl: number;
  db: number; s: number; l: number; g: number; avl: number; unusable: number; padding: number;
}

/** struct kvm_sregs as decoded by koffi (u64 fields may be number or bigint). */
export interface KvmSregs {
  cs: KvmSegment; ds: KvmSegment; es: KvmSegment; fs: KvmSegment; gs: KvmSegment; ss: KvmSegment;
  tr: KvmSegment; ldt: KvmSegment;
  gdt: { base: number | bigint; limit: number; padding: number[] };
  idt: { base: number | bigint; limit: number; padding: number[] };
  cr0: number | bigint; cr2: number | bigint; cr3: number | bigint; cr4: number | bigint;
  cr8: number | bigint; efer: number | bigint; apic_base: number | bigint;
  interrupt_bitmap: (number | bigint)[];
}

const REG_NAMES = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11',
  'r12', 'r13', 'r14', 'r15', 'rip', 'rflags'] as const;

/** A vCPU: its fd, its id (= APIC id) and its kvm_run page. */
export class VcpuFd {
  readonly fd: number;
  readonly id: number;
  /** Host address of this thread's mapping of kvm_run. */
  readonly runAddr: bigint;
  readonly runSize: number;
  /** kvm_run, decoded in place. */
  readonly run_: DataView;
  /** The same page as bytes (IO data, MMIO data). */
  readonly runBytes: Uint8Array;

  private constructor(fd: number, id: number, runSize: number) {
    this.fd = fd;
    this.id = id;
    this.runSize = runSize;
    // SAFETY: the mapping lives as long as this object (unmapped only by close()); the view
    // never outlives it because it is only reachable through this object.
    this.runAddr = libc.mmapChecked(null, runSize, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 0);
    const ab = libc.viewOf(this.runAddr, runSize);
    this.run_ = new DataView(ab);
    this.runBytes = new Uint8Array(ab);
  }

  /** Maps kvm_run of an existing vCPU fd (possibly created by another thread). */
  static adopt(fd: number, id: number, runSize: number): VcpuFd {
    return new VcpuFd(fd, id, runSize);
  }

  /**
   * KVM_RUN. Returns the exit reason; an interrupted run (signal or immediate_exit, errno
   * EINTR) returns KVM_EXIT_INTR, and so does EAGAIN: an application processor waiting for
   * INIT/SIPI blocks inside KVM_RUN and returns EAGAIN once the IPI arrives, asking to be
   * called again (arch/x86/kvm/x86.c, KVM_MP_STATE_UNINITIALIZED). Other failures throw.
   */
  run(): number {
    const r = libc.ioctlInt(this.fd, KVM.KVM_RUN, 0);
    if (r < 0) {
      const e = libc.errno();
      if (e === EINTR || e === EAGAIN) return KVM_EXIT.KVM_EXIT_INTR;
      throw new KvmIoctlError('KVM_RUN', e, libc.errnoName(e));
    }
    return this.run_.getUint32(R.exit_reason, true);
  }

  get exitReason(): number { return this.run_.getUint32(R.exit_reason, true); }

  /** kvm_run.immediate_exit: when 1, the next KVM_RUN returns EINTR at once (see kick.ts). */
  get immediateExit(): number { return this.run_.getUint8(R.immediate_exit); }
  set immediateExit(v: number) { this.run_.setUint8(R.immediate_exit, v); }

  // --- KVM_EXIT_IO ---
  get ioDirection(): number { return this.run_.getUint8(R.io_direction); }
  get ioSize(): number { return this.run_.getUint8(R.io_size); }
  get ioPort(): number { return this.run_.getUint16(R.io_port, true); }
  get ioCount(): number { return this.run_.getUint32(R.io_count, true); }
  /**
   * The IO data bytes (size × count) inside kvm_run, bounds-checked against the mapping. KVM
   * puts them at the same offset every time (KVM_PIO_PAGE_OFFSET pages in), so the view of
   * the last exit is reused when offset and length match: no allocation per port-IO exit.
   */
  ioData(): Uint8Array {
    // io.data_offset is a u64; read as two u32 halves (no BigInt per exit). A high half
    // is past any mapping.
    const off = this.run_.getUint32(R.io_data_offset, true);
    const high = this.run_.getUint32(R.io_data_offset + 4, true);
    const len = this.ioSize * this.ioCount;
    const view = this.ioView;
    if (view !== undefined && high === 0 && off === this.ioViewOffset && len === view.length) return view;
    if (high !== 0 || off + len > this.runSize) throw new RangeError(`kvm_run io data ${off}+${len} outside the mapping`);
    this.ioViewOffset = off;
    return (this.ioView = this.runBytes.subarray(off, off + len));
  }
  private ioView: Uint8Array | undefined;
  private ioViewOffset = 0;

  // --- KVM_EXIT_MMIO ---
  get mmioPhysAddr(): bigint { return this.run_.getBigUint64(R.mmio_phys_addr, true); }
  get mmioLen(): number { return this.run_.getUint32(R.mmio_len, true); }
  get mmioIsWrite(): boolean { return this.run_.getUint8(R.mmio_is_write) !== 0; }
  /** The 8-byte MMIO data field; only the first `mmioLen` bytes are meaningful. */
  mmioData(): Uint8Array { return this.runBytes.subarray(R.mmio_data, R.mmio_data + 8); }

  // --- other exits ---
  get failEntryReason(): bigint { return this.run_.getBigUint64(R.fail_entry_reason, true); }
  get internalSuberror(): number { return this.run_.getUint32(R.internal_suberror, true); }
  get systemEventType(): number { return this.run_.getUint32(R.system_event_type, true); }
  get hardwareExitReason(): bigint { return this.run_.getBigUint64(R.hw_exit_reason, true); }

  // --- register state ---
  /** KVM_GET_REGS. */
  getRegs(): KvmRegs {
    const raw = this.getStruct<Record<string, number | bigint>>('KVM_GET_REGS', abi.kvm_regs);
    const out = {} as KvmRegs;
    for (const n of REG_NAMES) out[n] = BigInt(raw[n]!);
    return out;
  }
  /** KVM_SET_REGS (missing fields are zero). */
  setRegs(regs: Partial<KvmRegs>): void { this.setStruct('KVM_SET_REGS', abi.kvm_regs, regs); }
  /** KVM_GET_SREGS. */
  getSregs(): KvmSregs { return this.getStruct<KvmSregs>('KVM_GET_SREGS', abi.kvm_sregs); }
  /** KVM_SET_SREGS. */
  setSregs(s: KvmSregs): void { this.setStruct('KVM_SET_SREGS', abi.kvm_sregs, s); }
  /** KVM_GET_FPU. */
  getFpu(): Record<string, unknown> { return this.getStruct('KVM_GET_FPU', abi.kvm_fpu); }
  /** KVM_SET_FPU (missing fields are zero). */
  setFpu(f: Record<string, unknown>): void { this.setStruct('KVM_SET_FPU', abi.kvm_fpu, f); }
  /** KVM_GET_LAPIC: the 1 KiB LAPIC register page. */
  getLapic(): Buffer { return this.getBytes('KVM_GET_LAPIC', abi.kvm_lapic_state); }
  /** KVM_SET_LAPIC. */
  setLapic(regs: Uint8Array): void { kvmIoctl(this.fd, 'KVM_SET_LAPIC', regs); }
  /** KVM_GET_MP_STATE. */
  getMpState(): number { return this.getBytes('KVM_GET_MP_STATE', abi.kvm_mp_state).readUInt32LE(0); }
  /** KVM_SET_MP_STATE. */
  setMpState(state: number): void { this.setStruct('KVM_SET_MP_STATE', abi.kvm_mp_state, { mp_state: state }); }
  /** KVM_GET_VCPU_EVENTS, raw bytes (snapshots store them as they are). */
  getVcpuEvents(): Buffer { return this.getBytes('KVM_GET_VCPU_EVENTS', abi.kvm_vcpu_events); }
  setVcpuEvents(b: Uint8Array): void { kvmIoctl(this.fd, 'KVM_SET_VCPU_EVENTS', b); }
  getXsave(): Buffer { return this.getBytes('KVM_GET_XSAVE', abi.kvm_xsave); }
  setXsave(b: Uint8Array): void { kvmIoctl(this.fd, 'KVM_SET_XSAVE', b); }
  getXcrs(): Buffer { return this.getBytes('KVM_GET_XCRS', abi.kvm_xcrs); }
  setXcrs(b: Uint8Array): void { kvmIoctl(this.fd, 'KVM_SET_XCRS', b); }
  getDebugregs(): Buffer { return this.getBytes('KVM_GET_DEBUGREGS', abi.kvm_debugregs); }
  setDebugregs(b: Uint8Array): void { kvmIoctl(this.fd, 'KVM_SET_DEBUGREGS', b); }

  /** KVM_GET_REGS as raw kvm_regs (snapshots). */
  getRegsRaw(): Buffer { return this.getBytes('KVM_GET_REGS', abi.kvm_regs); }
  setRegsRaw(b: Uint8Array): void { kvmIoctl(this.fd, 'KVM_SET_REGS', b); }
  /** KVM_GET_SREGS as raw kvm_sregs (snapshots). */
  getSregsRaw(): Buffer { return this.getBytes('KVM_GET_SREGS', abi.kvm_sregs); }
  setSregsRaw(b: Uint8Array): void { kvmIoctl(this.fd, 'KVM_SET_SREGS', b); }
  /** KVM_GET_XSAVE2 into a buffer of `size` bytes (KVM_CAP_XSAVE2's answer, above 4 KiB). */
  getXsave2(size: number): Buffer {
    const buf = Buffer.alloc(size);
    kvmIoctl(this.fd, 'KVM_GET_XSAVE2', buf);
    return buf;
  }
  /** KVM_GET_TSC_KHZ: the guest TSC frequency. */
  getTscKhz(): number { return kvmIoctl(this.fd, 'KVM_GET_TSC_KHZ'); }
  /** KVM_SET_TSC_KHZ: scales the guest TSC to `khz` (KVM_CAP_TSC_CONTROL). */
  setTscKhz(khz: number): void { kvmIoctl(this.fd, 'KVM_SET_TSC_KHZ', khz); }

  /** KVM_GET_CPUID2: the CPUID entries this vCPU has (raw kvm_cpuid_entry2 array, `nent` entries). */
  getCpuid2Raw(): { nent: number; entries: Buffer } {
    const { buf, entries } = abi.cpuid2Buffer();
    kvmIoctl(this.fd, 'KVM_GET_CPUID2', buf);
    return { nent: buf.readUInt32LE(0), entries: entries(buf) };
  }

  /** KVM_SET_CPUID2 from raw entries (`getCpuid2Raw`). */
  setCpuid2Raw(nent: number, entries: Uint8Array): void {
    const hdr = abi.sizeOf(abi.kvm_cpuid2);
    if (entries.length !== nent * abi.sizeOf(abi.kvm_cpuid_entry2)) throw new RangeError(`CPUID: ${entries.length} bytes for ${nent} entries`);
    const buf = Buffer.alloc(hdr + entries.length);
    buf.writeUInt32LE(nent, 0);
    buf.set(entries, hdr);
    kvmIoctl(this.fd, 'KVM_SET_CPUID2', buf);
  }

  /**
   * KVM_SET_MSRS without the all-or-nothing check: returns how many leading entries KVM took
   * (it stops at the first it refuses).
   */
  setMsrsPartial(msrs: readonly { index: number; data: bigint }[]): number {
    return kvmIoctl(this.fd, 'KVM_SET_MSRS', this.msrBuffer(msrs));
  }

  /** KVM_SET_CPUID2 with the given entries. */
  setCpuid2(entries: readonly object[]): void {
    const hdr = abi.sizeOf(abi.kvm_cpuid2);
    const ent = abi.sizeOf(abi.kvm_cpuid_entry2);
    const buf = Buffer.alloc(hdr + entries.length * ent);
    buf.writeUInt32LE(entries.length, 0);
    entries.forEach((e, i) => buf.set(abi.encode(abi.kvm_cpuid_entry2, e), hdr + i * ent));
    kvmIoctl(this.fd, 'KVM_SET_CPUID2', buf);
  }

  /** KVM_SET_MSRS; throws unless every entry was written. */
  setMsrs(msrs: readonly { index: number; data: bigint }[]): void {
    const buf = this.msrBuffer(msrs);
    const n = kvmIoctl(this.fd, 'KVM_SET_MSRS', buf);
    if (n !== msrs.length) throw new KvmIoctlError('KVM_SET_MSRS', 0, `wrote ${n} of ${msrs.length} MSRs (first refused: 0x${msrs[n]!.index.toString(16)})`);
  }

  /** KVM_GET_MSRS for the given indices. */
  getMsrs(indices: readonly number[]): Map<number, bigint> {
    const buf = this.msrBuffer(indices.map((index) => ({ index, data: 0n })));
    const n = kvmIoctl(this.fd, 'KVM_GET_MSRS', buf);
    const hdr = abi.sizeOf(abi.kvm_msrs);
    const ent = abi.sizeOf(abi.kvm_msr_entry);
    const out = new Map<number, bigint>();
    for (let i = 0; i < n; i++) out.set(buf.readUInt32LE(hdr + i * ent), buf.readBigUInt64LE(hdr + i * ent + 8));
    return out;
  }

  /** KVM_KVMCLOCK_CTRL: tells the guest it was paused (no soft-lockup warnings). */
  kvmclockCtrl(): void { kvmIoctl(this.fd, 'KVM_KVMCLOCK_CTRL'); }

  /** Unmaps kvm_run and closes the fd. The object must not be used afterwards. */
  close(): void {
    libc.munmap(this.runAddr, this.runSize);
    libc.close(this.fd);
  }

  private msrBuffer(msrs: readonly { index: number; data: bigint }[]): Buffer {
    const hdr = abi.sizeOf(abi.kvm_msrs);
    const ent = abi.sizeOf(abi.kvm_msr_entry);
    const buf = Buffer.alloc(hdr + msrs.length * ent);
    buf.writeUInt32LE(msrs.length, 0);
    msrs.forEach((m, i) => {
      buf.writeUInt32LE(m.index, hdr + i * ent);
      buf.writeBigUInt64LE(m.data, hdr + i * ent + 8);
    });
    return buf;
  }

  private getBytes(name: Parameters<typeof kvmIoctl>[1], t: Parameters<typeof abi.sizeOf>[0]): Buffer {
    const buf = Buffer.alloc(abi.sizeOf(t));
    kvmIoctl(this.fd, name, buf);
    return buf;
  }

  private getStruct<T>(name: Parameters<typeof kvmIoctl>[1], t: Parameters<typeof abi.sizeOf>[0]): T {
    return abi.decode<T>(t, this.getBytes(name, t));
  }

  private setStruct(name: Parameters<typeof kvmIoctl>[1], t: Parameters<typeof abi.sizeOf>[0], v: object): void {
    kvmIoctl(this.fd, name, abi.encode(t, v));
  }
}

/** errno values (asm-generic/errno-base.h). */
const EINTR = 4;
const EAGAIN = 11;
