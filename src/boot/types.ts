/**
 * Types shared by the kernel loaders (elf.ts, bzimage.ts) and the boot configurators
 * (zero-page.ts, pvh.ts). The boot layer is pure (docs/design.md, Layers): it writes into a
 * GuestMemory and returns these values; registers are set elsewhere from the EntryPoint
 * (firecracker src/vmm/src/arch/x86_64/regs.rs: Linux boot → rip=entry, rsi=ZERO_PAGE_START; PVH → rip=entry, rbx=PVH_INFO_START).
 */

/**
 * How the vCPU enters the kernel (firecracker src/vmm/src/arch/x86_64/mod.rs):
 * - `linux64`: the Linux 64-bit boot protocol, long mode with identity paging, RSI → zero page;
 * - `pvh`: the Xen PVH ABI, 32-bit protected mode without paging, RBX → hvm_start_info.
 */
export type EntryKind = 'linux64' | 'pvh';

/** Where and how to start the boot vCPU. */
export interface EntryPoint {
  readonly kind: EntryKind;
  /** Guest physical address of the first instruction. */
  readonly addr: number;
}

/** What a kernel loader reports after copying an image into guest memory. */
export interface LoadedImage {
  /** Which file format was recognised. */
  readonly format: 'elf' | 'bzimage';
  readonly entry: EntryPoint;
  /** First guest physical address past the loaded kernel (past every segment's memsz). */
  readonly kernelEnd: number;
  /**
   * bzImage only: the image's own setup header (boot_params offsets 0x1f1..0x26c), which the
   * zero page must start from (firecracker src/vmm/src/arch/x86_64/mod.rs). Absent for ELF, whose zero page starts zeroed.
   */
  readonly setupHeader?: Uint8Array;
}

/** A guest physical range written by the boot layer (initrd, command line). */
export interface GuestPlacement {
  /** Guest physical start address. */
  readonly addr: number;
  /** Length in bytes. */
  readonly size: number;
}
